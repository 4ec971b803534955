"""The look of every figure in the book, applied as a style context, never globally.

Importing a bnbook module changes no matplotlib setting. Each function that draws a
figure runs inside :func:`figure_style` (the :func:`styled` decorator), so the settings
reach the figure's texts when they are created, and nothing else in the reader's session.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import matplotlib
from cycler import cycler

F = TypeVar("F", bound=Callable)

#: Colours of lines and markers: matplotlib's tab10 with the four that have less than 3:1
#: contrast against the white figure background (orange, pink, olive, cyan) darkened, so
#: that each has at least 3.4:1 (WCAG 2.2, non-text contrast 1.4.11).
PALETTE = (
    "#1f77b4", "#c85a00", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#c2389a", "#6e6e6e", "#7d7e00", "#0e7f8a",
)  # fmt: skip
#: Line styles: the n-th line of a figure is drawn in ``color(n)`` and ``linestyle(n)``, so
#: that lines are told apart without colour (WCAG 1.4.1). Dotted (":") is kept for
#: reference lines (expected values, defaults), so it is not in this list.
LINESTYLES = ("-", "--", "-.", (0, (6, 1.5, 1, 1.5, 1, 1.5)), (0, (10, 3)), (0, (3, 1, 1, 1)))
#: Grey of secondary marks (each batch's statistics, reference lines): 4.0:1 on white.
GREY = "0.5"

#: Computer Modern for math in every figure: γ and y, ν and v look different in it.
STYLE = {"mathtext.fontset": "cm", "axes.prop_cycle": cycler(color=PALETTE)}


def color(index: int) -> str:
    """The ``index``-th colour of :data:`PALETTE` (cycling)."""
    return PALETTE[index % len(PALETTE)]


def linestyle(index: int):
    """The ``index``-th line style of :data:`LINESTYLES` (cycling)."""
    return LINESTYLES[index % len(LINESTYLES)]


def figure_style():
    """A context in which figures get the book's style: ``with figure_style(): ...``."""
    return matplotlib.rc_context(STYLE)


def styled(draw: F) -> F:
    """Decorate a function that draws a figure, so that it draws in :func:`figure_style`."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        with figure_style():
            return draw(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
