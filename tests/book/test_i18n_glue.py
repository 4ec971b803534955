"""Glued numbers in translated paragraphs (``_ext/i18n.py``): a one-page book with a glued
value, built in Chinese from a .po file, shows the value in the translated paragraph.

Without the extension, myst-nb parses a translated paragraph with a parser that finds no
notebook, and the Chinese page loses the number ("No key 'm' found in glue data"; the
extension patches myst-nb for the whole process, so that case is not rebuilt here).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo

ROOT = Path(__file__).resolve().parents[2]
PAGE = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  name: python3
  display_name: Python 3
---
# Counting

```{code-cell} ipython3
from myst_nb import glue
glue("m", 2 * 4, display=False)
```

The batch holds {glue:text}`m` values in all.
"""
TRANSLATED = "这个批量共有 {glue:text}`m` 个值。"


def test_translated_paragraph_keeps_its_glued_number(tmp_path, monkeypatch):
    # the extension sets these for the build's kernels: restored after the test
    monkeypatch.setenv("BNBOOK_LANG", "en")
    monkeypatch.setenv("BNBOOK_I18N_MISSING", "")
    sphinx_application = pytest.importorskip("sphinx.application")
    source = tmp_path / "src"
    (source / "locales" / "zh_CN" / "LC_MESSAGES").mkdir(parents=True)
    (source / "index.md").write_text(PAGE, encoding="utf-8")
    catalog = Catalog(locale="zh_CN")
    catalog.add("The batch holds {glue:text}`m` values in all.", TRANSLATED)
    catalog.add("Counting", "计数")
    with (source / "locales" / "zh_CN" / "LC_MESSAGES" / "index.mo").open("wb") as file:
        write_mo(file, catalog)
    extensions = ["myst_nb", "i18n"]
    (source / "conf.py").write_text(
        f"import sys\nsys.path.insert(0, {str(ROOT / '_ext')!r})\n"
        f"extensions = {extensions!r}\nlanguage = 'zh_CN'\nlocale_dirs = ['locales/']\n"
        "gettext_compact = False\nnb_execution_mode = 'force'\n"
        "exclude_patterns = ['_build']\n",
        encoding="utf-8",
    )
    warnings = io.StringIO()
    app = sphinx_application.Sphinx(
        str(source), str(source), str(tmp_path / "html"), str(tmp_path / "doctrees"), "html",
        status=None, warning=warnings, freshenv=True,
    )  # fmt: skip
    app.build()
    html = (tmp_path / "html" / "index.html").read_text(encoding="utf-8")
    assert "<h1>计数" in html
    assert '这个批量共有 <span class="pasted-text">8</span> 个值。' in html
    assert "No key" not in warnings.getvalue()
    assert os.environ["BNBOOK_LANG"] == "zh"  # set from language, for the kernels
