"""WCAG 2.2 AA on every page: fixes to the theme's markup, colours and widgets.

A local Sphinx extension (``_config.yml``). ``tests/site/test_a11y.py`` measures every page
with axe-core in light and dark mode; what it found in the theme and what this does:

- **Names that match the visible text** (WCAG 2.5.3): the search field's button is labelled
  "Search" but shows "Search Ctrl+K"; myst-nb's folded cells' ``<summary>`` is labelled
  "Toggle hidden content" but shows "Show code cell source"; the theme switch's icons carry
  titles that are not part of its name. The labels are dropped where the visible text names
  the control, and the icons are hidden from assistive technology.
- **Contrast** (1.4.3): links inside notes (the theme's blue on its pale blue) get a darker
  blue: ``static/bnbook-a11y.css``, light and dark mode.
- **The explorers' widgets** (4.1.2, 1.1.1): ipywidgets renders a slider's handle with no
  name and a frame's image with no ``alt``. ``static/bnbook-a11y.js`` names each slider after
  its explorer's title, gives it a value text, and gives each frame the text of its caption
  as ``alt``, as the widgets appear.
- **Math for screen readers**: MathJax's assistive MathML is switched on explicitly.
"""

from __future__ import annotations

import re
from pathlib import Path

from sphinx.application import Sphinx

STATIC = Path(__file__).with_name("static")
#: (what the theme or myst-nb writes, what it becomes) in each page's HTML.
REPLACEMENTS = [
    ('<summary aria-label="Toggle hidden content">', "<summary>"),
    ('<i class="theme-switch fa-solid', '<i aria-hidden="true" class="theme-switch fa-solid'),
]
MATHJAX3_CONFIG = {"options": {"enableAssistiveMml": True}}


def add_static(app: Sphinx, config) -> None:
    config.html_static_path.append(str(STATIC))
    mathjax = dict(config.mathjax3_config or {})
    mathjax["options"] = {**mathjax.get("options", {}), **MATHJAX3_CONFIG["options"]}
    config.mathjax3_config = mathjax


#: The search button's label, in the page's language ("Search", "搜索"): its visible text
#: ("Search Ctrl+K") names it.
SEARCH_LABEL = re.compile(
    r'(search-button-field search-button__button pst-js-only" title="[^"]*") aria-label="[^"]*"'
)
#: The theme switch's icons: Font Awesome turns their titles into SVG titles (names).
ICON_TITLE = re.compile(r'(<i aria-hidden="true" class="theme-switch [^>]*?) title="[^"]*"')


def fix_html(text: str) -> str:
    for old, new in REPLACEMENTS:
        text = text.replace(old, new)
    return ICON_TITLE.sub(r"\1", SEARCH_LABEL.sub(r"\1", text))


def fix_pages(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    for page in Path(app.outdir).rglob("*.html"):
        if page.relative_to(app.outdir).parts[0] in ("_static", "_sources"):
            continue
        text = page.read_text(encoding="utf-8")
        fixed = fix_html(text)
        if fixed != text:
            page.write_text(fixed, encoding="utf-8")


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", add_static)
    app.add_css_file("bnbook-a11y.css")
    app.add_js_file("bnbook-a11y.js", defer="defer")
    app.connect("build-finished", fix_pages)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
