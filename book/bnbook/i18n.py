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
  given to :func:`t`, placeholders included); :data:`bnbook.i18n_zh_pages.ZH_PAGES` holds
  the texts the chapters' own code puts into a page (glued phrases, tables), the same way.
  ``tests/book/test_i18n.py`` fails when a text given to :func:`t` anywhere in bnbook (or
  to ``tr`` in a chapter) has no Chinese entry, or an entry's placeholders differ from its
  key's.
- Chinese text needs a font with CJK glyphs: :mod:`bnbook.style` adds Noto Sans CJK SC
  (Debian's fonts-noto-cjk, which ``make book`` installs) as the fallback of DejaVu Sans.

The first argument of :func:`t` is a string literal (or :func:`N_`-marked one), so that the
tests can find every text by reading the source. Texts a chapter passes to a figure function
(a title, a legend's names) go through :func:`t` inside it; a Chinese build records each text
that has no entry in the file ``BNBOOK_I18N_MISSING`` names (``_ext/i18n.py`` sets it), and
``scripts/check_po.py`` lists them with the untranslated prose.

A chapter's code that puts words into the page (a glued phrase such as "from 0.01 to 1.6",
a Markdown table's header) imports :func:`t` as ``tr`` (``t`` is a common variable name in
the chapters) and calls it the same way: ``glue("range", tr("from {lo:g} to {hi:g}", ...))``;
a chapter's ``markdown_table`` helper gives its header and text cells to it. Those literals
are found in the chapters' code cells too (:func:`marked_texts`). Printed outputs (print,
reprs) are code and stay as they are.
"""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

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
        from bnbook.i18n_zh_pages import ZH_PAGES

        template = ZH.get(text) or ZH_PAGES.get(text) or text
        if text not in ZH and text not in ZH_PAGES and needs_translation(text):
            _record_missing(text)
    return template.format(**fields) if fields else template


def chinese(text: str) -> str:
    """TEXT's Chinese entry (bnbook's figures, or the chapters' pages), "" if none."""
    from bnbook.i18n_zh import ZH
    from bnbook.i18n_zh_pages import ZH_PAGES

    return ZH.get(text) or ZH_PAGES.get(text) or ""


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


def _name(func) -> str | None:
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)


def _literals(tree, markers: tuple[str, ...]):
    """(text, line) of each string literal given to a call of MARKERS in TREE; for a
    chapter's ``markdown_table(header, rows)``, each word of the literal header too."""
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and node.args):
            continue
        first = node.args[0]
        if _name(node.func) in markers:
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                yield first.value, node.lineno
        elif _name(node.func) == "markdown_table" and isinstance(first, (ast.List, ast.Tuple)):
            for cell in first.elts:
                if isinstance(cell, ast.Constant) and isinstance(cell.value, str):
                    if table_text(cell.value):
                        yield cell.value, cell.lineno


def table_text(cell) -> bool:
    """Whether a table cell is text to translate: a string, not empty, not `code`."""
    return isinstance(cell, str) and cell != "" and not cell.startswith("`")


#: The book's pages, from the repository's root (absent where bnbook is installed alone).
ROOT = Path(__file__).resolve().parents[2]
_CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(.*?)^```", re.S | re.M)


def _chapter_code(page: Path) -> list[tuple[str, int]]:
    """(python source, first line in PAGE) of each code cell of a MyST page, its options
    (``:tags:``, a ``---`` block) and IPython magics blanked (lines kept)."""
    text = page.read_text(encoding="utf-8")
    cells = []
    for match in _CELL.finditer(text):
        lines = match.group(1).split("\n")
        if lines and lines[0] == "---":
            end = lines.index("---", 1)
            lines[: end + 1] = [""] * (end + 1)
        lines = ["" if line.startswith((":", "%", "!")) else line for line in lines]
        cells.append(("\n".join(lines), text.count("\n", 0, match.start(1)) + 1))
    return cells


def page_files() -> list[Path]:
    """The pages whose code may put words into the page: chapters/*.md and index.md."""
    return sorted((ROOT / "chapters").glob("*.md")) + sorted(ROOT.glob("index.md"))


def marked_texts() -> dict[str, str]:
    """Every literal given to ``t(...)`` or ``N_(...)`` in bnbook's modules → "file:line",
    and to ``tr(...)`` / ``t(...)`` or a ``markdown_table`` header in the pages' code cells →
    "chapters/page.md:line"."""
    texts: dict[str, str] = {}
    for path in sorted(Path(__file__).parent.glob("*.py")):
        for text, line in _literals(ast.parse(path.read_text(encoding="utf-8")), ("t", "N_")):
            texts.setdefault(text, f"{path.name}:{line}")
    for page in page_files():
        for code, first in _chapter_code(page):
            try:
                tree = ast.parse(code)
            except SyntaxError:
                continue
            for text, line in _literals(tree, ("t", "tr", "N_")):
                where = page.relative_to(ROOT).as_posix()
                texts.setdefault(text, f"{where}:{first + line - 1}")
    return texts


def missing_chinese() -> list[str]:
    """``"file:line: 'text'"`` for each text of :func:`marked_texts` with no Chinese entry."""
    return [
        f"{where}: {text!r}"
        for text, where in marked_texts().items()
        if needs_translation(text) and not chinese(text)
    ]
