r"""The fast kernels behind ``bnlib.batch_norm`` and ``BatchNorm2d``.

Same inputs and outputs as the reference functions of :mod:`bnlib.functional`
(``_forward``, ``_normalize``, ``_backward``, ``_eval_backward``, and ``_batch_stats`` for
:func:`bnlib.functional.batch_stats`), and the same numbers up to rounding: the tests hold
kernels, reference and PyTorch equal. What makes them fast:

- the input is viewed as ``(N, C, L)``, ``L = H·W``, and per-channel sums are
  matrix–vector products (``a @ ones``) and ``np.vecdot``: NumPy's fastest reductions;
- few passes over memory, written into preallocated arrays (``out=``), with the
  per-channel factors folded together (γ·s, β − μ·γ·s, ...) so that each pass does one
  multiply or add;
- per-channel vectors laid out as contiguous ``(C, L)`` blocks, so that NumPy runs its
  loops for two contiguous operands;
- on inputs of a few million values, groups of channels run in threads on every core
  (NumPy releases the GIL in its loops; channels never interact).

Inputs are assumed checked (C-contiguous, ``dy`` in ``x``'s dtype; statistics float64).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# Starting threads costs about half a millisecond here; they pay off from a few million
# elements (benchmarks/bench_bnlib.py: 32×64×56×56 runs in about half the time on 2 cores).
PARALLEL_MIN_SIZE = 1 << 22


def _channels_view(x: np.ndarray) -> np.ndarray:
    """View a C-contiguous ``(N, C, *)`` array as ``(N, C, L)`` without copying."""
    return x.reshape(x.shape[0], x.shape[1], -1)


def _channel_sum(a: np.ndarray) -> np.ndarray:
    """Σ over batch and space of ``a`` (N, C, L), per channel, accumulated in float64."""
    row_sums = a @ np.ones(a.shape[2], dtype=a.dtype)  # matrix-vector: a fast contiguous sum
    return row_sums.sum(axis=0, dtype=np.float64)


def _channel_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Σ over batch and space of ``a·b`` (both (N, C, L)), per channel, in float64."""
    return np.vecdot(a, b).sum(axis=0, dtype=np.float64)


def _per_channel(v: np.ndarray, like: np.ndarray) -> np.ndarray:
    """A ``(C,)`` vector spread along each channel's values: a ``(C, L)`` block.

    It broadcasts over the batch axis of ``like`` (N, C, L) and has its dtype.
    """
    column = np.asarray(v, dtype=like.dtype).reshape(-1, 1)
    return np.repeat(column, like.shape[2], axis=1)


def _for_each_channel_group(fn: Callable[[slice], None], num_channels: int, size: int) -> None:
    """Call ``fn(group)`` on groups of channels (slices) that together cover all of them.

    A large input is split into one group of channels per core, run in threads at the
    same time; a small input is a single group, run in this thread.
    """
    workers = min(os.cpu_count() or 1, num_channels) if size >= PARALLEL_MIN_SIZE else 1
    bounds = [round(i * num_channels / workers) for i in range(workers + 1)]
    groups = [slice(bounds[i], bounds[i + 1]) for i in range(workers)]
    if workers == 1:
        fn(groups[0])
        return
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(fn, groups))  # list(): re-raise what a group raised


def _batch_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and biased variance in float64, as ``functional.batch_stats``."""
    x3 = _channels_view(x)
    n, c, length = x3.shape
    m = n * length
    mean, var = np.empty(c), np.empty(c)

    def stats_group(g: slice) -> None:
        xg = x3[:, g]
        mean[g] = _channel_sum(xg) / m  # μ
        centered = np.subtract(xg, _per_channel(mean[g], xg))  # x − μ
        var[g] = _channel_dot(centered, centered) / m  # σ², two passes

    _for_each_channel_group(stats_group, c, x3.size)
    return mean, var


def _normalize(
    x: np.ndarray,
    mean: np.ndarray,
    invstd: np.ndarray,
    weight: np.ndarray | None,
    bias: np.ndarray | None,
) -> np.ndarray:
    """y = (x − μ)·s·γ + β, as ``functional._normalize``, computed as y = x·a + b."""
    x3 = _channels_view(x)
    c = x3.shape[1]
    a = invstd if weight is None else invstd * weight  # s·γ
    b = -mean * a if bias is None else bias - mean * a  # β − μ·s·γ
    y = np.empty_like(x3)

    def normalize_group(g: slice) -> None:
        yg = y[:, g]
        np.multiply(x3[:, g], _per_channel(a[g], yg), out=yg)
        yg += _per_channel(b[g], yg)

    _for_each_channel_group(normalize_group, c, x3.size)
    return y.reshape(x.shape)


def _forward(
    x: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None, eps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training-mode forward, as ``functional._forward``: ``(y, mean, invstd)``."""
    mean, var = _batch_stats(x)
    invstd = 1.0 / np.sqrt(var + eps)
    return _normalize(x, mean, invstd, weight, bias), mean, invstd


def _backward(
    dy: np.ndarray,
    x: np.ndarray,
    mean: np.ndarray,
    invstd: np.ndarray,
    weight: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Training-mode backward, as ``functional._backward``.

    With xc = x − μ (x̂ = xc·s), the closed form
    dx = γs/m · (m·dy − Σdy − x̂·Σdy·x̂) is computed as dx = a·dy − b·xc − c with
    a = γs, b = γs³/m · Σdy·xc, c = γs/m · Σdy: s folded into the coefficients.
    """
    x3, dy3 = _channels_view(x), _channels_view(dy)
    n, c, length = x3.shape
    m = n * length
    gamma = 1.0 if weight is None else weight.astype(np.float64)
    dx = np.empty_like(x3)
    dweight, dbias = np.empty(c), np.empty(c)

    def backward_group(g: slice) -> None:
        dyg, dxg, xg = dy3[:, g], dx[:, g], x3[:, g]
        s = invstd[g]
        k = (gamma if weight is None else gamma[g]) * s  # γs
        xc = np.subtract(xg, _per_channel(mean[g], xg))  # x − μ
        dbias[g] = _channel_sum(dyg)  # Σ dy
        dot = _channel_dot(dyg, xc)  # Σ dy·xc
        dweight[g] = dot * s  # Σ dy·x̂
        np.multiply(dyg, _per_channel(k, dyg), out=dxg)  # a·dy
        xc *= _per_channel(k * s * s * dot / m, dyg)  # b·xc
        dxg -= xc
        dxg -= _per_channel(k * dbias[g] / m, dyg)  # c

    _for_each_channel_group(backward_group, c, x3.size)
    return dx.reshape(x.shape), dweight, dbias


def _eval_backward(
    dy: np.ndarray,
    x: np.ndarray,
    mean: np.ndarray,
    invstd: np.ndarray,
    weight: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluation-mode backward, as ``functional._eval_backward``: dx = γs·dy."""
    x3, dy3 = _channels_view(x), _channels_view(dy)
    c = x3.shape[1]
    a = invstd if weight is None else invstd * weight  # γs
    dx = np.empty_like(x3)
    dweight, dbias = np.empty(c), np.empty(c)

    def eval_backward_group(g: slice) -> None:
        dyg, xg = dy3[:, g], x3[:, g]
        xc = np.subtract(xg, _per_channel(mean[g], xg))  # x − μ
        dbias[g] = _channel_sum(dyg)  # Σ dy
        dweight[g] = _channel_dot(dyg, xc) * invstd[g]  # Σ dy·x̂
        np.multiply(dyg, _per_channel(a[g], dyg), out=dx[:, g])

    _for_each_channel_group(eval_backward_group, c, x3.size)
    return dx.reshape(x.shape), dweight, dbias
