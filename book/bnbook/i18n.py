"""The words in the book's figures and widgets, in the reader's language: one place.

The book has two editions from one source (README, "中文版"): English, and Simplified
Chinese. Code and its output are the same in both; what a figure *says* (titles, axis
labels, legends, annotations) and a widget's labels follow the page's language. Every such
text in :mod:`bnbook` goes through :func:`t`, keyed by its English wording:

    ax.set_title(t("running_mean, channel {c}", c=channel))

- :func:`lang` is the edition being drawn: ``BNBOOK_LANG`` ("en" or "zh"), which the Chinese
  build sets (``_ext/i18n.py`` sets it from Sphinx's ``language`` before the chapters run);
  a reader's own notebook draws in English unless they set it.
- :data:`bnbook.i18n_zh.ZH` is the Chinese table, keyed by the English template (the text
  given to :func:`t`, placeholders included). ``tests/book/test_i18n.py`` fails when a text
  given to :func:`t` anywhere in bnbook has no Chinese entry, or an entry's placeholders
  differ from its key's.
- Chinese text needs a font with CJK glyphs: :mod:`bnbook.style` adds Noto Sans CJK SC
  (Debian's fonts-noto-cjk, which ``make book`` installs) as the fallback of DejaVu Sans.

The first argument of :func:`t` is a string literal (or :func:`N_`-marked one), so that the
tests can find every text by reading the source. Texts a chapter passes to a figure function
(a title, a legend's names) go through :func:`t` inside it; a Chinese build records each text
that has no entry in the file ``BNBOOK_I18N_MISSING`` names (``_ext/i18n.py`` sets it), and
``scripts/check_po.py`` lists them with the untranslated prose.
"""

from __future__ import annotations

import os
import re

#: The environment variable that names the edition: "zh" (also zh_CN, zh-CN) or "en".
ENV = "BNBOOK_LANG"


def lang() -> str:
    """The edition being drawn: "zh" or "en" (the default)."""
    return "zh" if os.environ.get(ENV, "").lower().startswith("zh") else "en"


def t(text: str, **fields) -> str:
    """TEXT in the edition's language, its ``{placeholders}`` filled from FIELDS.

    In English, TEXT itself. In Chinese, its entry in :data:`bnbook.i18n_zh.ZH`, or TEXT
    when there is none yet (the tests list what is missing).
    """
    template = text
    if lang() == "zh":
        from bnbook.i18n_zh import ZH

        template = ZH.get(text) or text
        if text not in ZH and needs_translation(text):
            _record_missing(text)
    return template.format(**fields) if fields else template


#: Words: two or more Latin letters in a row, outside $math$ (which is never translated).
_WORD = re.compile(r"[A-Za-z]{2,}")
_MATH = re.compile(r"\$[^$]*\$")


def needs_translation(text: str) -> bool:
    """Whether TEXT has words (not just math, numbers and symbols) a reader would read."""
    return bool(_WORD.search(_MATH.sub("", text)))


def _record_missing(text: str) -> None:
    path = os.environ.get("BNBOOK_I18N_MISSING")
    if path:
        with open(path, "a", encoding="utf-8") as file:
            file.write(repr(text) + "\n")


def N_(text: str) -> str:
    """Mark TEXT, kept in a table, for translation where it is used (``t(table[key])``).

    Returns TEXT unchanged: the tests read the literal given to it, as for :func:`t`.
    """
    return text


def marked_texts() -> dict[str, str]:
    """Every literal given to ``t(...)`` or ``N_(...)`` in bnbook's modules → "file:line"."""
    import ast
    from pathlib import Path

    def is_marker(func) -> bool:
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        return name in ("t", "N_")

    texts: dict[str, str] = {}
    for path in sorted(Path(__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and is_marker(node.func) and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    texts.setdefault(first.value, f"{path.name}:{node.lineno}")
    return texts


def missing_chinese() -> list[str]:
    """``"file:line: 'text'"`` for each text of :func:`marked_texts` with no Chinese entry."""
    from bnbook.i18n_zh import ZH

    return [
        f"{where}: {text!r}"
        for text, where in marked_texts().items()
        if needs_translation(text) and not ZH.get(text)
    ]
