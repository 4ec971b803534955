"""The sidebar's part captions in Chinese (``_ext/i18n.py``): a two-page book whose
``_toc.yml`` has a caption, built in Chinese from a .po catalogue that translates it.

sphinx-external-toc inserts the root page's toctree after Sphinx translated the page, so
without the extension the caption stays English on every Chinese page.
"""

from __future__ import annotations

import pytest

from tests.book.sphinx_project import build, write_catalog

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
    pytest.importorskip("sphinx_external_toc")
    source = tmp_path / "src"
    source.mkdir()
    (source / "index.md").write_text("# Home\n\nThe book.\n", encoding="utf-8")
    (source / "second.md").write_text("# Second\n\nA page.\n", encoding="utf-8")
    (source / "_toc.yml").write_text(TOC, encoding="utf-8")
    write_catalog(source, "index", {"Part I: the mechanism": "第一部分：原理"})
    build(
        source, tmp_path, ["myst_nb", "sphinx_external_toc", "i18n"], language="zh_CN",
        locale_dirs=["locales/"], gettext_compact=False, external_toc_path="_toc.yml",
        nb_execution_mode="off",
    )  # fmt: skip
    for page in ("index", "second"):
        html = (tmp_path / "html" / f"{page}.html").read_text(encoding="utf-8")
        assert "第一部分：原理" in html, page
        assert "Part I: the mechanism" not in html, page
