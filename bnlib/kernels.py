r"""The fast kernels behind ``bnlib.batch_norm`` and ``BatchNorm2d``, on every core.

The functions of :mod:`bnlib.reference` with the same signatures and the same numbers up
to rounding (the tests hold kernels, reference and PyTorch equal): :func:`batch_stats`,
:func:`update_running_stats`, :func:`normalize`, :func:`forward`, :func:`backward_reduce`,
:func:`backward_elemt`, :func:`backward`; and :func:`native_batch_norm`, the forward with
the running statistics, as PyTorch's ``native_batch_norm``. Inputs are assumed checked
(C-contiguous, ``dy`` in ``x``'s dtype, statistics float64). What makes them fast:

- the input is viewed as ``(N, C, L)``, ``L = H·W``, and per-channel sums are ``np.einsum``
  and ``np.vecdot`` over rows of at most ``ROW_PIECE`` values, added up in float64:
  NumPy's fastest reductions here (as fast as a matrix-vector product with a vector of
  ones, and less per call on small tiles), with float32 rounding that does not grow with L;
- the work goes a tile at a time: a block of batch rows and consecutive channels small
  enough (:func:`bnlib.parallel.tile_bytes`) that its arrays stay in cache while the
  several passes over it run, so main memory sees each array about once; every pass
  writes into the output's own memory (``out=``, in-place operators), no temporaries;
- per-channel vectors are laid out as contiguous ``(C, L)`` blocks, so that NumPy runs its
  loops for two contiguous operands;
- an input of one tile or less (8×16×32×32 is 0.5 MiB) runs whole, in this thread, in as
  few NumPy calls as the formula allows: at that size each call's overhead counts;
- a larger input is shared among threads, one per core this process may use
  (``os.sched_getaffinity``; the environment variable ``BNLIB_NUM_THREADS`` overrides),
  tile by tile, as :mod:`bnlib.parallel` splits it. NumPy releases the GIL inside its
  loops.
"""

from __future__ import annotations

import numpy as np

from bnlib import parallel
from bnlib.parallel import Tile
from bnlib.stats import chan_merge

# Per-row sums in the input's dtype run over at most this many values, then add up in
# float64: float32 rounding then does not grow with the size of a feature map.
ROW_PIECE = 4096

# --------------------------------------------------------------------------------------
# The passes over one tile
# --------------------------------------------------------------------------------------


def _channels_view(x: np.ndarray) -> np.ndarray:
    """View a C-contiguous ``(N, C, *)`` array as ``(N, C, L)`` without copying."""
    return x.reshape(x.shape[0], x.shape[1], -1)


def _channel_sum(a: np.ndarray) -> np.ndarray:
    """Σ over rows and space of ``a`` (rows, C, L), per channel, in float64.

    Each row's sum runs in ``a``'s dtype (``np.einsum``) over at most ``ROW_PIECE`` values
    at a time; the rest adds up in float64.
    """
    length = a.shape[2]
    if length > ROW_PIECE:
        pieces = range(0, length, ROW_PIECE)
        return sum(_channel_sum(a[:, :, i : i + ROW_PIECE]) for i in pieces)
    return np.einsum("ncl->nc", a).sum(axis=0, dtype=np.float64)


def _channel_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Σ over rows and space of ``a·b`` (both (rows, C, L)), per channel, in float64."""
    length = a.shape[2]
    if length > ROW_PIECE:
        pieces = range(0, length, ROW_PIECE)
        return sum(
            _channel_dot(a[:, :, i : i + ROW_PIECE], b[:, :, i : i + ROW_PIECE]) for i in pieces
        )
    return np.vecdot(a, b).sum(axis=0, dtype=np.float64)


def _per_channel(v, like: np.ndarray) -> np.ndarray:
    """A ``(C,)`` vector spread along each channel's values: a ``(C, L)`` block.

    It broadcasts over the rows of ``like`` (rows, C, L) and has its dtype. Several
    vectors at once (a tuple of k of them) give k blocks in one ``(k, C, L)`` array: at
    small sizes each NumPy call counts.
    """
    columns = np.asarray(v, dtype=like.dtype)[..., np.newaxis]
    return columns.repeat(like.shape[2], axis=-1)


def _centre(xg: np.ndarray, mean: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out = x − μ per channel, with μ rounded to x's dtype; returns the rounding, μ minus
    the rounded μ (float64), which the caller takes away again from the per-channel
    constants: float32 results then lose nothing to a mean far from zero."""
    centre = np.asarray(mean, dtype=xg.dtype)
    np.subtract(xg, _per_channel(centre, xg), out=out)
    return mean - centre


def _tile_moments(xg: np.ndarray, scratch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The tile's mean and M₂ = Σ (x − mean)² per channel, in float64, by two passes;
    ``scratch`` (the tile of the output) receives x − mean, and the third value is what
    :func:`_centre` returns. (M₂ is taken about the rounded mean: it differs by the count
    times that rounding squared, under 1e-9 of M₂ unless the mean is 3·10⁴ standard
    deviations from zero.)"""
    mean = _channel_sum(xg) / (xg.shape[0] * xg.shape[2])
    offset = _centre(xg, mean, scratch)
    return mean, _channel_dot(scratch, scratch), offset


def _tile_grad_sums(
    dyg: np.ndarray, xg: np.ndarray, mean: np.ndarray, scratch: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The tile's Σ dy and Σ dy·(x − μ) per channel, in float64; ``scratch`` (the tile of
    dx) receives x − μ, and the third value is what :func:`_centre` returns."""
    offset = _centre(xg, mean, scratch)
    sum_dy = _channel_sum(dyg)
    return sum_dy, _channel_dot(dyg, scratch) - offset * sum_dy, offset


def _tile_input_grad(dyg: np.ndarray, dxg: np.ndarray, k, dy_mean, scale) -> None:
    """dx = scale·(xc·k + dy − dy_mean) per channel, in place: ``dxg`` holds xc."""
    k, dy_mean, scale = _per_channel((k, dy_mean, scale), dxg)
    dxg *= k
    dxg += dyg
    dxg -= dy_mean
    dxg *= scale


def _add_blocks(partial: np.ndarray) -> np.ndarray:
    """The row blocks' partial sums (blocks, C) added up, block after block."""
    return partial[0] if len(partial) == 1 else partial.sum(axis=0)


def _merge_moments(count_per_block, means, m2s) -> tuple[np.ndarray, np.ndarray]:
    """Chan's merge of the row blocks' (count, mean, M₂), block after block: ``(mean, M2)``."""
    count, mean, m2 = count_per_block[0], means[0], m2s[0]
    for b in range(1, len(means)):
        count, mean, m2 = chan_merge(count, mean, m2, count_per_block[b], means[b], m2s[b])
    return mean, m2


# --------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------


def _moments(x3, blocks, runs, scratch=None) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and M₂ of ``x3`` (N, C, L), in float64: each tile's, then Chan's
    merge of the row blocks'. ``scratch`` (x3's shape) receives x − mean, if given."""
    length, c = x3.shape[2], x3.shape[1]
    means, m2s = np.empty((blocks, c)), np.empty((blocks, c))
    row_counts = [0] * blocks

    def stats_tile(tile: Tile) -> None:
        block, rows, g = tile
        xg = x3[rows, g]
        row_counts[block] = xg.shape[0] * length
        out = np.empty_like(xg) if scratch is None else scratch[rows, g]
        means[block, g], m2s[block, g], _ = _tile_moments(xg, out)

    parallel.each_tile(stats_tile, runs)
    return _merge_moments(row_counts, means, m2s)


def batch_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and biased variance in float64, as ``reference.batch_stats``."""
    x3 = _channels_view(x)
    mean, m2 = _moments(x3, *parallel.plan(x3))
    return mean, m2 / (x3.shape[0] * x3.shape[2])


def update_running_stats(
    running_mean: np.ndarray | None,
    running_var: np.ndarray | None,
    mean: np.ndarray,
    var: np.ndarray,
    m: int,
    momentum: float,
) -> None:
    """``reference.update_running_stats`` in place, in fewer NumPy calls.

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


# --------------------------------------------------------------------------------------
# Forward
# --------------------------------------------------------------------------------------


def _scale_and_shift(invstd, mean, weight, bias) -> tuple[np.ndarray, np.ndarray]:
    """y = (x − μ)·ρ·γ + β as y = x·a + b: ``(a, b)`` = (ργ, β − μ·ργ)."""
    a = invstd if weight is None else invstd * weight
    return a, (-mean * a if bias is None else bias - mean * a)


def _scale_and_shift_tiles(x3, y, a, b, runs) -> None:
    """y = x·a + b per channel, tile by tile (a, b per-channel vectors)."""

    def normalize_tile(tile: Tile) -> None:
        _, rows, g = tile
        yg = y[rows, g]
        scale, shift = _per_channel((a[g], b[g]), yg)
        np.multiply(x3[rows, g], scale, out=yg)
        yg += shift

    parallel.each_tile(normalize_tile, runs)


def normalize(
    x: np.ndarray,
    mean: np.ndarray,
    invstd: np.ndarray,
    weight: np.ndarray | None,
    bias: np.ndarray | None,
) -> np.ndarray:
    """y = (x − μ)·ρ·γ + β, as ``reference.normalize``, computed as y = x·a + b."""
    x3 = _channels_view(x)
    y = np.empty_like(x3)
    _scale_and_shift_tiles(
        x3, y, *_scale_and_shift(invstd, mean, weight, bias), parallel.plan(x3)[1]
    )
    return y.reshape(x.shape)


def _train_forward(
    x: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None, eps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`forward`, returning the biased variance too: ``(y, mean, var, invstd)``.

    A tile of whole channels is finished in one sweep while it is in cache: μ = Σx/m;
    y = x − μ; σ² = Σy²/m; y ← y·γρ; y ← y + β. Tiles of some rows get their partial
    statistics first; then those are merged, and a second sweep writes y = x·γρ + β − μγρ
    (as PyTorch's CPU kernel does; in float32 that rounds β − μγρ, so the sweep in cache
    is the more accurate when the mean is far from zero).
    """
    x3 = _channels_view(x)
    n, c, length = x3.shape
    m = n * length
    blocks, runs = parallel.plan(x3)
    y = np.empty_like(x3)
    if blocks == 1:
        mean, var, invstd = np.empty(c), np.empty(c), np.empty(c)

        def forward_tile(tile: Tile) -> None:
            _, _, g = tile
            xg, yg = x3[:, g], y[:, g]
            mean[g], m2, offset = _tile_moments(xg, yg)  # μ, and y = x − μ
            var[g] = sigma2 = m2 / m
            invstd[g] = rho = 1.0 / np.sqrt(sigma2 + eps)  # ε inside the square root
            a = rho if weight is None else rho * weight[g]  # γρ
            shift = -offset * a if bias is None else bias[g] - offset * a  # β
            if not shift.any():  # float64 without β: nothing to add
                yg *= _per_channel(a, yg)  # (x − μ)·γρ
                return
            scale, shift = _per_channel((a, shift), yg)
            yg *= scale  # (x − μ)·γρ
            yg += shift  # + β

        parallel.each_tile(forward_tile, runs)
        return y.reshape(x.shape), mean, var, invstd

    mean, m2 = _moments(x3, blocks, runs, scratch=y)
    var = m2 / m
    invstd = 1.0 / np.sqrt(var + eps)
    _scale_and_shift_tiles(x3, y, *_scale_and_shift(invstd, mean, weight, bias), runs)
    return y.reshape(x.shape), mean, var, invstd


def forward(
    x: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None, eps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training-mode forward, as ``reference.forward``: ``(y, mean, invstd)``."""
    y, mean, _, invstd = _train_forward(x, weight, bias, eps)
    return y, mean, invstd


def native_batch_norm(
    x: np.ndarray,
    weight: np.ndarray | None,
    bias: np.ndarray | None,
    running_mean: np.ndarray | None,
    running_var: np.ndarray | None,
    training: bool,
    momentum: float,
    eps: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Batch norm's forward as PyTorch's ``native_batch_norm``: ``(y, mean, invstd)``.

    In training, the batch's statistics normalize and the running buffers (if given) are
    updated in place; in evaluation the running statistics normalize. Either way the
    returned μ and ρ (float64) are those that normalized, what :func:`backward` takes.
    """
    if not training:
        mean = running_mean.astype(np.float64)
        invstd = 1.0 / np.sqrt(running_var.astype(np.float64) + eps)
        return normalize(x, mean, invstd, weight, bias), mean, invstd
    y, mean, var, invstd = _train_forward(x, weight, bias, eps)
    update_running_stats(running_mean, running_var, mean, var, x.size // x.shape[1], momentum)
    return y, mean, invstd


# --------------------------------------------------------------------------------------
# Backward
# --------------------------------------------------------------------------------------


def _grad_sums(dy3, x3, mean, blocks, runs, scratch) -> tuple[np.ndarray, np.ndarray]:
    """Σ dy and Σ dy·(x − μ) per channel over every tile, the blocks' added in order;
    ``scratch`` receives x − μ (μ rounded to x's dtype)."""
    c = x3.shape[1]
    sum_dy, sum_dy_xc = np.empty((blocks, c)), np.empty((blocks, c))

    def sums_tile(tile: Tile) -> None:
        block, rows, g = tile
        sums = _tile_grad_sums(dy3[rows, g], x3[rows, g], mean[g], scratch[rows, g])
        sum_dy[block, g], sum_dy_xc[block, g], _ = sums

    parallel.each_tile(sums_tile, runs)
    return _add_blocks(sum_dy), _add_blocks(sum_dy_xc)


def backward_reduce(
    dy: np.ndarray, x: np.ndarray, mean: np.ndarray, invstd: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(Σ dy, Σ dy·x̂)`` per channel in float64, as ``reference.backward_reduce``."""
    x3, dy3 = _channels_view(x), _channels_view(dy)
    blocks, runs = parallel.plan(x3)
    sum_dy, sum_dy_xc = _grad_sums(dy3, x3, mean, blocks, runs, np.empty_like(x3))
    return sum_dy, sum_dy_xc * invstd


def backward_elemt(
    dy: np.ndarray,
    x: np.ndarray,
    mean: np.ndarray,
    invstd: np.ndarray,
    weight: np.ndarray | None,
    sum_dy: np.ndarray,
    sum_dy_xhat: np.ndarray,
    count: int,
) -> np.ndarray:
    r"""dx = γρ·(dy − Σdy/m − x̂·Σdy·x̂/m), m = count, as ``reference.backward_elemt``.

    With xc = x − μ (so x̂ = xc·ρ), it is γρ·(xc·k + dy − Σdy/m) with k = −ρ·Σdy·x̂/m,
    computed tile by tile in dx's own memory: dx = x − μ, then dx ← dx·k + dy − Σdy/m,
    and dx ← dx·γρ (the rounding of μ in x − μ taken away from Σdy/m).
    """
    x3, dy3 = _channels_view(x), _channels_view(dy)
    scale = invstd if weight is None else invstd * weight  # γρ
    k, dy_mean = -invstd * sum_dy_xhat / count, sum_dy / count
    dx = np.empty_like(x3)

    def elemt_tile(tile: Tile) -> None:
        _, rows, g = tile
        dxg = dx[rows, g]
        offset = _centre(x3[rows, g], mean[g], dxg)  # xc = x − μ, but for μ's rounding
        _tile_input_grad(dy3[rows, g], dxg, k[g], dy_mean[g] + offset * k[g], scale[g])

    parallel.each_tile(elemt_tile, parallel.plan(x3)[1])
    return dx.reshape(x.shape)


def backward(
    dy: np.ndarray,
    x: np.ndarray,
    mean: np.ndarray,
    invstd: np.ndarray,
    weight: np.ndarray | None,
    training: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Batch norm's backward, as ``reference.backward``: ``(dx, dweight, dbias)``.

    dx in x's dtype; dweight = Σ dy·x̂ and dbias = Σ dy in the weight's dtype (x's when
    there is no weight). A tile of whole channels is finished in one sweep while in
    cache: xc = x − μ into dx's memory, the two sums, then dx from them (in evaluation,
    dx = γρ·dy, which needs no sum). Tiles of some rows get their partial sums first, the
    sums are added up, and a second sweep writes dx.
    """
    x3, dy3 = _channels_view(x), _channels_view(dy)
    n, c, length = x3.shape
    m = n * length
    scale = invstd if weight is None else invstd * weight  # γρ
    blocks, runs = parallel.plan(x3)
    dx = np.empty_like(x3)
    if blocks == 1 or not training:
        sum_dy, sum_dy_xc = np.empty((blocks, c)), np.empty((blocks, c))

        def backward_tile(tile: Tile) -> None:
            block, rows, g = tile
            dyg, dxg = dy3[rows, g], dx[rows, g]
            sums = _tile_grad_sums(dyg, x3[rows, g], mean[g], dxg)  # dx ← x − μ
            sum_dy[block, g], sum_dy_xc[block, g], offset = sums
            if training:  # whole channels: the sums are the channel's
                rho = invstd[g]
                k = -rho * rho * sums[1] / m
                _tile_input_grad(dyg, dxg, k, sums[0] / m + offset * k, scale[g])
            else:  # no path through μ and σ²
                np.multiply(dyg, _per_channel(scale[g], dxg), out=dxg)

        parallel.each_tile(backward_tile, runs)
        sum_dy, sum_dy_xhat = _add_blocks(sum_dy), _add_blocks(sum_dy_xc) * invstd
    else:
        sum_dy, sum_dy_xc = _grad_sums(dy3, x3, mean, blocks, runs, dx)
        sum_dy_xhat = sum_dy_xc * invstd
        k = -invstd * sum_dy_xhat / m
        offset = mean - mean.astype(x.dtype)  # what _centre returned for each tile
        dy_mean = sum_dy / m + offset * k

        def elemt_tile(tile: Tile) -> None:
            _, rows, g = tile  # dx holds x − μ from the first sweep
            _tile_input_grad(dy3[rows, g], dx[rows, g], k[g], dy_mean[g], scale[g])

        parallel.each_tile(elemt_tile, runs)
    dtype = x.dtype if weight is None else weight.dtype
    return dx.reshape(x.shape), sum_dy_xhat.astype(dtype), sum_dy.astype(dtype)
