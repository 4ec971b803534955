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

F = TypeVar("F", bound=Callable)

#: Computer Modern for math in every figure: γ and y, ν and v look different in it.
STYLE = {"mathtext.fontset": "cm"}


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
