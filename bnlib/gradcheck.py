r"""Central finite differences: the slow, obvious gradient that checks the fast ones.

For a scalar function f of an array x, entry i of the gradient is approximated by

.. math:: \frac{\partial f}{\partial x_i} \approx \frac{f(x + h\,e_i) - f(x - h\,e_i)}{2h},

whose error is O(h²) (the truncation) plus O(u·|f|/h) (rounding, u the unit roundoff):
in float64, h ≈ 1e-6 balances the two and leaves roughly 8 to 10 correct digits.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def numerical_gradient(
    f: Callable[[np.ndarray], float],
    x,
    h: float = 1e-6,
) -> np.ndarray:
    """∂f/∂x by central differences, one entry of x at a time.

    ``f`` maps an array shaped like ``x`` to a scalar; it is called 2·x.size
    times, so keep ``x`` small. ``x`` is copied to float64, never modified.
    """
    if not (isinstance(h, (int, float, np.floating)) and h > 0):
        message = f"h must be a positive step size (e.g. 1e-6), got {h!r}"
        raise ValueError(message)
    x = np.array(x, dtype=np.float64)  # a private float64 copy
    grad = np.empty_like(x)
    flat, grad_flat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        original = flat[i]
        flat[i] = original + h
        f_plus = float(f(x))
        flat[i] = original - h
        f_minus = float(f(x))
        flat[i] = original
        grad_flat[i] = (f_plus - f_minus) / (2 * h)
    return grad


def relative_error(got, expected) -> float:
    """max |got − expected| / max |expected|: one number for how far an array is off."""
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if got.shape != expected.shape:
        raise ValueError(f"shapes differ: got {got.shape}, expected {expected.shape}")
    scale = np.abs(expected).max()
    if scale == 0:
        raise ValueError("expected is all zeros: a relative error is undefined, compare directly")
    return float(np.abs(got - expected).max() / scale)
