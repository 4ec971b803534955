"""A small Sphinx project built in the test's process, with the book's extensions (``_ext/``).

The tests of ``_ext/`` write a page or two into a folder, then :func:`build` writes its
``conf.py`` (``_ext`` importable, the extensions and settings given) and builds the HTML.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def write_catalog(source: Path, page: str, messages: dict[str, str]) -> None:
    """The Chinese catalogue of ``page``: ``messages`` (English → Chinese), compiled."""
    from babel.messages.catalog import Catalog
    from babel.messages.mofile import write_mo

    catalog = Catalog(locale="zh_CN")
    for english, chinese in messages.items():
        catalog.add(english, chinese)
    folder = source / "locales" / "zh_CN" / "LC_MESSAGES"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"{page}.mo").open("wb") as file:
        write_mo(file, catalog)


def build(source: Path, out: Path, extensions: list[str], **settings) -> str:
    """Build ``source`` to ``out / "html"`` with ``extensions`` and ``settings`` in its
    ``conf.py``; returns what Sphinx warned."""
    sphinx_application = pytest.importorskip("sphinx.application")
    lines = [
        "import sys",
        f"sys.path.insert(0, {str(ROOT / '_ext')!r})",
        f"extensions = {extensions!r}",
        *(f"{name} = {value!r}" for name, value in settings.items()),
        "exclude_patterns = ['_build']",
    ]
    (source / "conf.py").write_text("\n".join(lines) + "\n", encoding="utf-8")
    warnings = io.StringIO()
    app = sphinx_application.Sphinx(
        str(source), str(source), str(out / "html"), str(out / "doctrees"), "html",
        status=None, warning=warnings, freshenv=True,
    )  # fmt: skip
    app.build()
    return warnings.getvalue()
