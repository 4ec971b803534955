"""The sidebar's part captions in Chinese (``_ext/i18n.py``): a two-page book whose
``_toc.yml`` has a caption, built in Chinese from a .po catalogue that translates it.

sphinx-external-toc inserts the root page's toctree after Sphinx translated the page, so
without the extension the caption stays English on every Chinese page.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo

ROOT = Path(__file__).resolve().parents[2]
TOC = """format: jb-book
root: index
parts:
  - caption: "Part I: the mechanism"
    chapters:
      - file: second
"""


# sphinx-external-toc finds Sphinx's toctree collector by walking every live object
# (gc.get_objects()); where another test has imported torch, that walk touches torch's
# deprecated ``torch.distributed.reduce_op`` alias, which warns. Nothing of ours is at fault.
@pytest.mark.filterwarnings("ignore:`torch.distributed.reduce_op` is deprecated:FutureWarning")
def test_toc_caption_is_translated(tmp_path, monkeypatch):
    monkeypatch.setenv("BNBOOK_LANG", "en")  # the extension sets these: restored after
    monkeypatch.setenv("BNBOOK_I18N_MISSING", "")
    sphinx_application = pytest.importorskip("sphinx.application")
    pytest.importorskip("sphinx_external_toc")
    source = tmp_path / "src"
    (source / "locales" / "zh_CN" / "LC_MESSAGES").mkdir(parents=True)
    (source / "index.md").write_text("# Home\n\nThe book.\n", encoding="utf-8")
    (source / "second.md").write_text("# Second\n\nA page.\n", encoding="utf-8")
    (source / "_toc.yml").write_text(TOC, encoding="utf-8")
    catalog = Catalog(locale="zh_CN")
    catalog.add("Part I: the mechanism", "第一部分：原理")
    with (source / "locales" / "zh_CN" / "LC_MESSAGES" / "index.mo").open("wb") as file:
        write_mo(file, catalog)
    extensions = ["myst_nb", "sphinx_external_toc", "i18n"]
    (source / "conf.py").write_text(
        f"import sys\nsys.path.insert(0, {str(ROOT / '_ext')!r})\n"
        f"extensions = {extensions!r}\nlanguage = 'zh_CN'\nlocale_dirs = ['locales/']\n"
        "gettext_compact = False\nexternal_toc_path = '_toc.yml'\nnb_execution_mode = 'off'\n"
        "exclude_patterns = ['_build']\n",
        encoding="utf-8",
    )
    app = sphinx_application.Sphinx(
        str(source), str(source), str(tmp_path / "html"), str(tmp_path / "doctrees"), "html",
        status=None, warning=None, freshenv=True,
    )  # fmt: skip
    app.build()
    for page in ("index", "second"):
        html = (tmp_path / "html" / f"{page}.html").read_text(encoding="utf-8")
        assert "第一部分：原理" in html, page
        assert "Part I: the mechanism" not in html, page
