"""Glued numbers in translated paragraphs (``_ext/i18n.py``): a one-page book with a glued
value, built in Chinese from a .po file, shows the value in the translated paragraph.

Without the extension, myst-nb parses a translated paragraph with a parser that finds no
notebook, and the Chinese page loses the number ("No key 'm' found in glue data"; the
extension patches myst-nb for the whole process, so that case is not rebuilt here).
"""

from __future__ import annotations

import os

from tests.book.sphinx_project import build, write_catalog

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
    source = tmp_path / "src"
    source.mkdir()
    (source / "index.md").write_text(PAGE, encoding="utf-8")
    write_catalog(source, "index", {
        "The batch holds {glue:text}`m` values in all.": TRANSLATED,
        "Counting": "计数",
    })  # fmt: skip
    warnings = build(
        source, tmp_path, ["myst_nb", "i18n"], language="zh_CN", locale_dirs=["locales/"],
        gettext_compact=False, nb_execution_mode="force",
    )  # fmt: skip
    html = (tmp_path / "html" / "index.html").read_text(encoding="utf-8")
    assert "<h1>计数" in html
    assert '这个批量共有 <span class="pasted-text">8</span> 个值。' in html
    assert "No key" not in warnings
    assert os.environ["BNBOOK_LANG"] == "zh"  # set from language, for the kernels
