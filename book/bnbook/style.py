"""How the book draws and shows its figures, in one place; applied as a context, never globally.

The page's text column is :data:`TEXT_WIDTH_PX` CSS pixels wide at 1280 px (the browser
tests measure it) and its body text is :data:`BODY_PX` pixels tall. So the book lays every
figure out at :data:`DPI` = 96 dots per inch, the CSS pixel's own size, no wider than
:data:`FULL_WIDTH` inches (the text column, less the image's margin), with no text
smaller than :data:`BODY_PT` points (the body text's size), and the image is shown at the
size it was laid out for:

- **In a chapter**, :func:`use_book_figures` (the first cell) asks IPython for "retina"
  PNGs: each figure is rendered at ``PIXEL_RATIO × DPI`` = 192 dots per inch and carries
  its layout size as the image's width and height, which myst-nb writes into the page's
  ``<img>``. A figure 7 inches wide is a 1,344-pixel bitmap shown 672 CSS pixels wide:
  sharp on a high-density screen, its 12-point text as tall as the body text.
- **The training chapter's explorer** (:mod:`bnbook.train_figures`) renders its frames at
  the same ``PIXEL_RATIO × DPI`` and shows them at ``width × DPI`` CSS pixels. (The
  explorers of chapters 2–3, :mod:`bnbook.widgets`, keep their own 144 dpi frames shown
  at 72 per inch, also twice their displayed size.)

Importing a bnbook module changes no matplotlib setting. Each function that draws a figure
runs inside :func:`figure_style` (the :func:`styled` decorator), so the settings reach the
figure and its texts when they are created, and nothing else in the reader's session.
``tests/book/test_style.py`` checks every figure of the book's modules against
:func:`too_small_texts` and :data:`FULL_WIDTH`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import matplotlib
from cycler import cycler
from matplotlib.figure import Figure

F = TypeVar("F", bound=Callable)

#: Width of the page's text column at a 1280 px window, in CSS pixels: the widest a figure
#: is shown (``tests/site/test_layout.py`` opens every page at that width).
TEXT_WIDTH_PX = 672
#: The body text's size in CSS pixels (the theme's 1rem).
BODY_PX = 16
#: Dots per inch a figure is laid out at: one dot per CSS pixel.
DPI = 96
#: Image pixels per CSS pixel in every bitmap the book shows.
PIXEL_RATIO = 2
#: The margin, in inches, that the shown image keeps around the figure's content (IPython
#: saves with ``bbox_inches="tight"`` and matplotlib's ``savefig.pad_inches``).
PAD = 0.1
#: The widest figure, in inches: the text column, less the margin on both sides.
FULL_WIDTH = TEXT_WIDTH_PX / DPI - 2 * PAD
#: The smallest text in a figure, in points: the body text's size at :data:`DPI`.
BODY_PT = BODY_PX * 72 / DPI

#: Colours of lines and markers: matplotlib's tab10 with the four that have less than 3:1
#: contrast against the white figure background (orange, pink, olive, cyan) darkened, so
#: that each has at least 3.4:1 (WCAG 2.2, non-text contrast 1.4.11).
PALETTE = (
    "#1f77b4", "#c85a00", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#c2389a", "#6e6e6e", "#7d7e00", "#0e7f8a",
)  # fmt: skip
#: Colours of the channels in Part I's figures (chapters 1-3): each ≥ 3:1 against white.
CHANNEL_COLORS = PALETTE[:5]
#: Line styles: the n-th line of a figure is drawn in ``color(n)`` and ``linestyle(n)``, so
#: that lines are told apart without colour (WCAG 1.4.1). Dotted (":") is kept for
#: reference lines (expected values, defaults), so it is not in this list.
LINESTYLES = ("-", "--", "-.", (0, (6, 1.5, 1, 1.5, 1, 1.5)), (0, (10, 3)), (0, (3, 1, 1, 1)))
#: Grey of secondary marks (each batch's statistics, reference lines): 4.0:1 on white.
GREY = "0.5"


def color(index: int) -> str:
    """The ``index``-th colour of :data:`PALETTE` (cycling)."""
    return PALETTE[index % len(PALETTE)]


def linestyle(index: int):
    """The ``index``-th line style of :data:`LINESTYLES` (cycling)."""
    return LINESTYLES[index % len(LINESTYLES)]


#: The book's matplotlib settings: Computer Modern for math (γ and y, ν and v look
#: different in it), the palette, every text at the body text's size, figures laid out
#: at :data:`DPI`.
STYLE = {
    "mathtext.fontset": "cm",
    "axes.prop_cycle": cycler(color=PALETTE),
    "figure.dpi": DPI,
    "savefig.dpi": DPI * PIXEL_RATIO,
    "savefig.pad_inches": PAD,
    "figure.figsize": (FULL_WIDTH, 3.2),
    "font.size": BODY_PT,
    "axes.titlesize": BODY_PT,
    "axes.labelsize": BODY_PT,
    "xtick.labelsize": BODY_PT,
    "ytick.labelsize": BODY_PT,
    "legend.fontsize": BODY_PT,
    "legend.title_fontsize": BODY_PT,
    "figure.titlesize": BODY_PT,
    "figure.labelsize": BODY_PT,
}


#: The Chinese edition's fonts (:func:`bnbook.i18n.lang` "zh"): DejaVu Sans, matplotlib's
#: own, for Latin letters, digits and symbols (as in English), and glyph by glyph, Noto Sans
#: CJK SC for the Chinese characters (Debian's fonts-noto-cjk, which ``make book`` installs).
CJK_FONTS = ["DejaVu Sans", "Noto Sans CJK SC"]
#: Where Debian puts Noto Sans CJK (a font collection; SC is one of its faces).
CJK_FONT_FILES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
)


def _register_cjk_font() -> None:
    """Make matplotlib know Noto Sans CJK SC even if its font cache predates the install."""
    from pathlib import Path

    from matplotlib import font_manager

    if any(f.name == CJK_FONTS[1] for f in font_manager.fontManager.ttflist):
        return
    for path in CJK_FONT_FILES:
        if Path(path).exists():
            font_manager.fontManager.addfont(path)


def book_style() -> dict:
    """:data:`STYLE`, with the Chinese edition's fonts when the edition is Chinese."""
    from bnbook.i18n import lang

    if lang() != "zh":
        return STYLE
    _register_cjk_font()
    return {**STYLE, "font.family": CJK_FONTS}


def figure_style():
    """A context in which figures get the book's style: ``with figure_style(): ...``."""
    return matplotlib.rc_context(book_style())


def styled(draw: F) -> F:
    """Decorate a function that draws a figure, so that it draws in :func:`figure_style`."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        with figure_style():
            return draw(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def use_book_figures() -> None:
    """Show this notebook's figures as the book does: PNGs at :data:`PIXEL_RATIO` times
    their layout size, displayed at that size (IPython's "retina" format: the image's
    width and height travel with it as metadata). A display setting of this IPython
    session only; no matplotlib setting changes."""
    from matplotlib_inline.backend_inline import set_matplotlib_formats

    set_matplotlib_formats("retina")


def too_small_texts(figure: Figure) -> list[str]:
    """The visible, non-empty texts of ``figure`` smaller than :data:`BODY_PT`, as
    ``"size pt: text"`` (empty when every text is readable at the displayed size)."""
    figure.draw_without_rendering()  # tick labels get their text when drawn
    small = []
    for text in figure.findobj(matplotlib.text.Text):
        if not text.get_visible() or not text.get_text().strip():
            continue
        if text.get_fontsize() < BODY_PT - 1e-9:
            small.append(f"{text.get_fontsize():g} pt: {text.get_text()[:40]!r}")
    return small
