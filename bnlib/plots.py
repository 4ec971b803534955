"""Figures for the book, drawn with matplotlib from bnlib's own computations.

Each function returns a ``matplotlib.figure.Figure`` and draws nothing it did not compute.
Functions are grouped by the chapter that first uses them.
"""

from __future__ import annotations

import matplotlib.pyplot as plt  # noqa: F401
import numpy as np  # noqa: F401
