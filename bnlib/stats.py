r"""Mean and variance, four ways: what each costs in accuracy (NumPy only).

Every function reduces ``x`` over ``axis`` (``None``: all of it; for an ``(N, C, H, W)``
batch, ``axis=(0, 2, 3)`` gives one value per channel) and computes in ``dtype``
(default: ``x``'s own floating dtype), so that float32 arithmetic can be compared with a
float64 reference. Variances are *biased* (divide by the count m), as batch norm
normalizes with.

- :func:`one_pass_var`: σ² = E[x²] − E[x]². One sweep, but a difference of two large,
  nearly equal numbers when the mean is large against the spread (catastrophic
  cancellation): it can even come out negative.
- :func:`two_pass_var`: μ first, then σ² = E[(x − μ)²]. Two sweeps, accurate.
- :func:`welford_update` / :func:`welford_var`: one sweep, one value at a time, keeping
  (count, mean, M2) with M2 = Σ (x − mean)².
- :func:`chan_merge` / :func:`pairwise_var`: Chan, Golub & LeVeque's exact merge of two
  partial (count, mean, M2), applied along a binary tree; the same merge combines the
  statistics of shards held by different processes (:mod:`bnlib.distributed`).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.array_utils import normalize_axis_tuple

Axis = int | tuple[int, ...] | None


def _as_float(x, dtype) -> np.ndarray:
    """``x`` as a floating array of ``dtype`` (default: its own floating dtype)."""
    x = np.asarray(x)
    if dtype is None:
        if x.dtype.kind != "f":
            raise TypeError(
                f"x must be a floating-point array, got dtype {x.dtype}; "
                "pass dtype=np.float64 (or convert x) to choose the arithmetic"
            )
        dtype = x.dtype
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"dtype must be a floating-point dtype, got {dtype}")
    return x.astype(dtype, copy=False)


def _rows(
    x: np.ndarray, axis: Axis, allow_empty: bool = False
) -> tuple[np.ndarray, tuple[int, ...]]:
    """``x`` as an ``(m, K)`` array: the reduced axes first (flattened), the kept ones after.

    Raises for an empty reduction (a mean of nothing is undefined), unless ``allow_empty``.
    """
    if axis is None:
        axis = tuple(range(x.ndim))
    axes = normalize_axis_tuple(axis, x.ndim)
    kept = [a for a in range(x.ndim) if a not in axes]
    moved = np.transpose(x, (*axes, *kept))
    m = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    if m == 0 and not allow_empty:
        raise ValueError(f"cannot reduce over no values: x has shape {x.shape}, axis={axis}")
    kept_shape = tuple(x.shape[a] for a in kept)
    return moved.reshape(m, math.prod(kept_shape)), kept_shape


def one_pass_var(x, axis: Axis = None, dtype=None) -> np.ndarray:
    r"""Biased variance by the one-pass formula, in ``dtype``:

    .. math:: \sigma^2 = \mathrm{E}[x^2] - \mathrm{E}[x]^2 = \frac{1}{m}\sum x^2
              - \Big(\frac{1}{m}\sum x\Big)^2

    Both terms are about μ² when |μ| ≫ σ; their difference keeps only the last digits
    of each, so the relative error grows like (μ/σ)²·(the dtype's rounding unit), and
    the result can be negative (√ of it: NaN). Shown for what it teaches, not for use.
    """
    x = _as_float(x, dtype)
    mean = np.mean(x, axis=axis, dtype=x.dtype)
    mean_sq = np.mean(x * x, axis=axis, dtype=x.dtype)
    return mean_sq - mean * mean


def two_pass_var(x, axis: Axis = None, dtype=None) -> np.ndarray:
    r"""Biased variance in two sweeps, in ``dtype``: the mean first, then the squares.

    .. math:: \mu = \frac{1}{m}\sum x, \qquad \sigma^2 = \frac{1}{m}\sum (x - \mu)^2

    The deviations x − μ are of the size of σ, so nothing large cancels.
    """
    x = _as_float(x, dtype)
    mean = np.mean(x, axis=axis, dtype=x.dtype, keepdims=True)
    centered = x - mean
    return np.mean(centered * centered, axis=axis, dtype=x.dtype)


def welford_update(count, mean, m2, value) -> tuple:
    r"""Welford's online update: add one value (per channel) to (count, mean, M2).

    .. math::

        n' = n + 1, \qquad \delta = v - \bar x, \qquad
        \bar x' = \bar x + \frac{\delta}{n'}, \qquad
        M_2' = M_2 + \delta\,(v - \bar x')

    where M₂ = Σ (x − x̄)², so the biased variance is M₂/n. Each step adds a small
    correction to a running mean; no large sums are formed. Returns the new
    ``(count, mean, m2)``.
    """
    count = count + 1
    delta = value - mean
    mean = mean + delta / count
    m2 = m2 + delta * (value - mean)
    return count, mean, m2


def welford_var(x, axis: Axis = None, dtype=None) -> np.ndarray:
    """Biased variance by :func:`welford_update`, one value at a time, in ``dtype``.

    The values of each reduction run one after another (a Python loop over them, the
    kept axes vectorized): slow, but one sweep and accurate.
    """
    x = _as_float(x, dtype)
    rows, kept = _rows(x, axis)
    count = 0
    mean = np.zeros(rows.shape[1], x.dtype)
    m2 = np.zeros(rows.shape[1], x.dtype)
    for value in rows:
        count, mean, m2 = welford_update(count, mean, m2, value)
    return (m2 / x.dtype.type(count)).reshape(kept)


def chan_merge(count_a, mean_a, m2_a, count_b, mean_b, m2_b) -> tuple:
    r"""Merge the statistics of two disjoint sets A and B (Chan, Golub & LeVeque, 1979).

    With M₂ = Σ (x − x̄)² over each set:

    .. math::

        n = n_A + n_B, \qquad \delta = \bar x_B - \bar x_A, \qquad
        \bar x = \bar x_A + \delta\,\frac{n_B}{n}, \qquad
        M_2 = M_{2,A} + M_{2,B} + \delta^2\,\frac{n_A n_B}{n}

    Exact in exact arithmetic: (n, x̄, M₂) are those of A ∪ B, whatever the split.
    Counts may be 0 (an empty set contributes nothing). Arguments may be scalars or
    per-channel vectors (they broadcast); means and M₂ keep their floating dtype, the
    count comes back as given (int or array). Returns ``(count, mean, m2)``.
    """
    count_a, count_b = np.asarray(count_a), np.asarray(count_b)
    if np.any(count_a < 0) or np.any(count_b < 0):
        raise ValueError(
            f"counts must be non-negative numbers of values, got {count_a} and {count_b}"
        )
    mean_a, m2_a = np.asarray(mean_a), np.asarray(m2_a)
    mean_b, m2_b = np.asarray(mean_b), np.asarray(m2_b)
    dtype = np.result_type(mean_a, mean_b, m2_a, m2_b, np.float16)
    if dtype.kind != "f":
        raise TypeError(f"means and M2 must be floating point, got dtype {dtype}")
    count = count_a + count_b
    safe = np.where(count > 0, count, 1)  # an empty merge stays empty: 0/1, not 0/0
    fraction_b = (count_b / safe).astype(dtype)  # n_B/n
    weight = (count_a * (count_b / safe)).astype(dtype)  # n_A·n_B/n
    delta = mean_b - mean_a
    mean = (mean_a + delta * fraction_b).astype(dtype)
    m2 = (m2_a + m2_b + delta * delta * weight).astype(dtype)
    return count, mean, m2


def moments(x, axis: Axis = None, dtype=None) -> tuple:
    """``(count, mean, M2)`` of ``x`` over ``axis`` by two passes, in ``dtype``.

    The partial statistics :func:`chan_merge` combines: M₂ = Σ (x − mean)² = m·σ². No
    values (a shard with no samples, say) give count 0, mean 0 and M₂ 0, which add nothing
    to a merge.
    """
    x = _as_float(x, dtype)
    rows, kept = _rows(x, axis, allow_empty=True)
    if rows.shape[0] == 0:
        return 0, np.zeros(kept, x.dtype), np.zeros(kept, x.dtype)
    mean = np.mean(rows, axis=0, dtype=x.dtype)
    centered = rows - mean
    m2 = np.sum(centered * centered, axis=0, dtype=x.dtype)
    return rows.shape[0], mean.reshape(kept), m2.reshape(kept)


def pairwise_var(x, axis: Axis = None, dtype=None) -> np.ndarray:
    """Biased variance by :func:`chan_merge` along a binary tree, in ``dtype``.

    Every value starts as its own set (count 1, mean x, M₂ 0); neighbouring sets merge
    level by level until one is left, about log₂ m levels, each vectorized.
    """
    x = _as_float(x, dtype)
    rows, kept = _rows(x, axis)
    count = np.ones(rows.shape[0], np.int64)[:, None]
    mean = rows
    m2 = np.zeros_like(rows)
    while mean.shape[0] > 1:
        even = mean.shape[0] // 2 * 2  # an odd one out waits for the next level
        merged = chan_merge(
            count[0:even:2], mean[0:even:2], m2[0:even:2],
            count[1:even:2], mean[1:even:2], m2[1:even:2],
        )  # fmt: skip
        count = np.concatenate([merged[0], count[even:]])
        mean = np.concatenate([merged[1], mean[even:]])
        m2 = np.concatenate([merged[2], m2[even:]])
    return (m2[0] / x.dtype.type(count[0, 0])).reshape(kept)
