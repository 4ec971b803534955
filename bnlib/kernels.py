r"""The fast kernels behind ``bnlib.batch_norm`` and ``BatchNorm2d``.

Same inputs and outputs as the reference functions of :mod:`bnlib.functional`
(``_forward``, ``_normalize``, ``_backward``, ``_eval_backward``, and ``_batch_stats`` for
:func:`bnlib.functional.batch_stats`), and the same numbers up to rounding: the tests hold
kernels, reference and PyTorch equal. What makes them fast:

- the input is viewed as ``(N, C, L)``, ``L = H·W``, and per-channel sums are
  matrix–vector products (``a @ ones``) and ``np.vecdot``: NumPy's fastest reductions;
- the work goes a chunk of channels at a time, small enough that the chunk's arrays stay
  in cache while the several passes over it run, so main memory sees each array about once;
- the forward and the backward write every pass into the output's own memory (``out=``,
  in-place operators): no temporaries; the backward folds s = 1/√(σ² + ε) into its
  per-channel coefficients;
- per-channel vectors are laid out as contiguous ``(C, L)`` blocks, so that NumPy runs its
  loops for two contiguous operands;
- an input of one chunk or less (8×16×32×32 is 0.5 MiB) runs whole, in this thread, in as
  few NumPy calls as the formula allows: at that size each call's overhead counts;
- on inputs of a few million values, the chunks are shared among threads, one per core
  (NumPy releases the GIL inside its loops; channels never interact).

Inputs are assumed checked (C-contiguous, ``dy`` in ``x``'s dtype; statistics float64).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# Handing work to the other cores costs tens of microseconds, and more on a busy machine;
# it pays off from a few million elements (32×64×56×56 in benchmarks/bench_bnlib.py).
PARALLEL_MIN_SIZE = 1 << 22

# Work goes through the input a chunk of channels at a time, each chunk about this many
# bytes of input, so that a chunk's input, output and dy stay in cache (the 32 MiB L3
# here) while the several passes over it run: main memory sees each array about once.
# Chunks much smaller cost more than they save: NumPy's loops over a chunk's strided
# (N, channels, L) view are slower per value than over a whole contiguous array.
CHUNK_BYTES = 1 << 21

_POOLS: dict[int, ThreadPoolExecutor] = {}
if hasattr(os, "register_at_fork"):  # a forked child has none of the parent's threads
    os.register_at_fork(after_in_child=_POOLS.clear)


def _channels_view(x: np.ndarray) -> np.ndarray:
    """View a C-contiguous ``(N, C, *)`` array as ``(N, C, L)`` without copying."""
    return x.reshape(x.shape[0], x.shape[1], -1)


@functools.lru_cache(maxsize=64)
def _ones(length: int, dtype: np.dtype) -> np.ndarray:
    """A read-only vector of ``length`` ones, kept for the 64 latest lengths and dtypes."""
    ones = np.ones(length, dtype=dtype)
    ones.flags.writeable = False
    return ones


def _channel_sum(a: np.ndarray) -> np.ndarray:
    """Σ over batch and space of ``a`` (N, C, L), per channel, accumulated in float64."""
    row_sums = a @ _ones(a.shape[2], a.dtype)  # matrix-vector: a fast contiguous sum
    return row_sums.sum(axis=0, dtype=np.float64)


def _channel_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Σ over batch and space of ``a·b`` (both (N, C, L)), per channel, in float64."""
    return np.vecdot(a, b).sum(axis=0, dtype=np.float64)


def _per_channel(v, like: np.ndarray) -> np.ndarray:
    """A ``(C,)`` vector spread along each channel's values: a ``(C, L)`` block.

    It broadcasts over the batch axis of ``like`` (N, C, L) and has its dtype. Several
    vectors at once (a tuple of k of them) give k blocks in one ``(k, C, L)`` array: at
    small sizes each NumPy call counts.
    """
    columns = np.asarray(v, dtype=like.dtype)[..., np.newaxis]
    return columns.repeat(like.shape[2], axis=-1)


def _channel_chunks(x3: np.ndarray) -> list[slice]:
    """Slices of consecutive channels of ``x3`` (N, C, L), each about ``CHUNK_BYTES``."""
    n, c, length = x3.shape
    per_chunk = max(1, CHUNK_BYTES // max(1, n * length * x3.itemsize))
    return [slice(i, min(i + per_chunk, c)) for i in range(0, c, per_chunk)]


def _pool(workers: int) -> ThreadPoolExecutor:
    """A thread pool kept for the life of the process (its idle threads sleep)."""
    if workers not in _POOLS:
        _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="bnlib")
    return _POOLS[workers]


def _for_each_chunk(fn: Callable[[slice], None], x3: np.ndarray) -> None:
    """Call ``fn(chunk)`` on chunks of channels (slices) that together cover all of them.

    Batch norm treats every channel on its own. A large input's chunks are split into one
    run of consecutive chunks per core, and the runs go in threads at the same time: NumPy
    releases the GIL inside its loops. A small input's chunks run in this thread.
    """
    if x3.nbytes <= CHUNK_BYTES:  # one chunk: all channels at once
        fn(slice(None))
        return
    chunks = _channel_chunks(x3)
    workers = min(os.cpu_count() or 1, len(chunks)) if x3.size >= PARALLEL_MIN_SIZE else 1
    if workers == 1:
        for chunk in chunks:
            fn(chunk)
        return
    bounds = [round(i * len(chunks) / workers) for i in range(workers + 1)]
    runs = [chunks[bounds[i] : bounds[i + 1]] for i in range(workers)]
    list(_pool(workers).map(lambda run: [fn(chunk) for chunk in run], runs))  # re-raises


def _batch_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and biased variance in float64, as ``functional.batch_stats``."""
    x3 = _channels_view(x)
    n, c, length = x3.shape
    m = n * length
    mean, var = np.empty(c), np.empty(c)

    def stats_chunk(g: slice) -> None:
        xg = x3[:, g]
        mean[g] = _channel_sum(xg) / m  # μ
        centered = np.subtract(xg, _per_channel(mean[g], xg))  # x − μ
        var[g] = _channel_dot(centered, centered) / m  # σ², two passes

    _for_each_chunk(stats_chunk, x3)
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
    a = invstd if weight is None else invstd * weight  # s·γ
    b = -mean * a if bias is None else bias - mean * a  # β − μ·s·γ
    y = np.empty_like(x3)

    def normalize_chunk(g: slice) -> None:
        yg = y[:, g]
        scale, shift = _per_channel((a[g], b[g]), yg)
        np.multiply(x3[:, g], scale, out=yg)
        yg += shift

    _for_each_chunk(normalize_chunk, x3)
    return y.reshape(x.shape)


def _train_forward(
    x: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None, eps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_forward` in one sweep, chunk by chunk; returns ``(y, mean, var, invstd)``.

    Per chunk: μ = Σx/m; y = x − μ; σ² = Σy²/m; y ← y·γs; y ← y + β: five passes over
    data in cache. The biased variance σ² is returned too, for the running statistics.
    """
    x3 = _channels_view(x)
    n, c, length = x3.shape
    m = n * length
    mean, var, invstd = np.empty(c), np.empty(c), np.empty(c)
    y = np.empty_like(x3)

    def forward_chunk(g: slice) -> None:
        xg, yg = x3[:, g], y[:, g]
        mean[g] = mu = _channel_sum(xg) / m  # μ
        np.subtract(xg, _per_channel(mu, xg), out=yg)  # y = x − μ
        var[g] = sigma2 = _channel_dot(yg, yg) / m  # σ² = mean of (x − μ)²
        invstd[g] = s = 1.0 / np.sqrt(sigma2 + eps)  # ε inside the square root
        a = s if weight is None else s * weight[g]  # γs
        if bias is None:
            yg *= _per_channel(a, yg)  # (x − μ)·γs
        else:
            scale, shift = _per_channel((a, bias[g]), yg)
            yg *= scale  # (x − μ)·γs
            yg += shift  # + β

    _for_each_chunk(forward_chunk, x3)
    return y.reshape(x.shape), mean, var, invstd


def _update_running_stats(
    running_mean: np.ndarray | None,
    running_var: np.ndarray | None,
    mean: np.ndarray,
    var: np.ndarray,
    m: int,
    momentum: float,
) -> None:
    """``functional._update_running_stats`` in place, in fewer NumPy calls.

    running ← running·(1 − p) (in the buffer's dtype, as the reference), then
    running += p·statistic (added in float64, rounded once into the buffer), with the
    unbiased variance σ²·m/(m − 1). The same numbers as the reference, up to rounding.
    """
    p = float(momentum)  # a Python float, as in the reference, whatever number type came in
    if running_mean is not None:
        running_mean *= 1 - p
        running_mean += p * mean
    if running_var is not None:
        running_var *= 1 - p
        running_var += var * (p * m / (m - 1))  # p·σ²·m/(m − 1), the unbiased variance


def _forward(
    x: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None, eps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training-mode forward, as ``functional._forward``: ``(y, mean, invstd)``."""
    y, mean, _, invstd = _train_forward(x, weight, bias, eps)
    return y, mean, invstd


def _backward(
    dy: np.ndarray,
    x: np.ndarray,
    mean: np.ndarray,
    invstd: np.ndarray,
    weight: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Training-mode backward, as ``functional._backward``.

    With xc = x − μ (so x̂ = xc·s), the closed form
    dx = γs/m · (m·dy − Σdy − x̂·Σdy·x̂) is, with s folded into the coefficients,

        dx = γs · (dy − Σdy/m − xc·s²·Σ(dy·xc)/m)

    computed chunk by chunk in dx's own memory, with no temporary: dx = x − μ, the
    two sums, then dx ← dx·(−s²·Σ(dy·xc)/m) + dy − Σdy/m, and dx ← dx·γs.
    """
    x3, dy3 = _channels_view(x), _channels_view(dy)
    n, c, length = x3.shape
    m = n * length
    scale = invstd if weight is None else invstd * weight  # γs
    dx = np.empty_like(x3)
    dweight, dbias = np.empty(c), np.empty(c)

    def backward_chunk(g: slice) -> None:
        dyg, dxg, xg = dy3[:, g], dx[:, g], x3[:, g]
        s = invstd[g]
        np.subtract(xg, _per_channel(mean[g], xg), out=dxg)  # xc = x − μ
        dbias[g] = _channel_sum(dyg)  # Σ dy
        dot = _channel_dot(dyg, dxg)  # Σ dy·xc
        dweight[g] = dot * s  # Σ dy·x̂
        k, dy_mean, scale_g = _per_channel((-s * s * dot / m, dbias[g] / m, scale[g]), dxg)
        dxg *= k  # − xc·s²·Σ(dy·xc)/m
        dxg += dyg  # + dy
        dxg -= dy_mean  # − Σdy/m
        dxg *= scale_g  # · γs

    _for_each_chunk(backward_chunk, x3)
    return dx.reshape(x.shape), dweight, dbias


def _eval_backward(
    dy: np.ndarray,
    x: np.ndarray,
    mean: np.ndarray,
    invstd: np.ndarray,
    weight: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluation-mode backward, as ``functional._eval_backward``: dx = γs·dy.

    x − μ, needed only for Σ dy·x̂, goes into dx's memory before dx is written.
    """
    x3, dy3 = _channels_view(x), _channels_view(dy)
    c = x3.shape[1]
    scale = invstd if weight is None else invstd * weight  # γs
    dx = np.empty_like(x3)
    dweight, dbias = np.empty(c), np.empty(c)

    def eval_backward_chunk(g: slice) -> None:
        dyg, dxg, xg = dy3[:, g], dx[:, g], x3[:, g]
        np.subtract(xg, _per_channel(mean[g], xg), out=dxg)  # xc = x − μ
        dbias[g] = _channel_sum(dyg)  # Σ dy
        dweight[g] = _channel_dot(dyg, dxg) * invstd[g]  # Σ dy·x̂
        np.multiply(dyg, _per_channel(scale[g], dxg), out=dxg)  # γs·dy

    _for_each_chunk(eval_backward_chunk, x3)
    return dx.reshape(x.shape), dweight, dbias
