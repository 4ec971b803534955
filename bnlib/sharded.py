r"""Synchronized batch norm, the algorithm in NumPy, with array shards as the ranks.

A batch split over R ranks (devices, processes), rank r holding ``x_r`` of shape
``(N_r, C, H, W)``: batch norm over the *global* batch needs, per channel, the global
mean and variance, and its backward the global sums Σdy and Σdy·x̂. Each rank computes
its own partial statistics, the ranks exchange them (a few numbers per channel, never
the data), and every rank finishes the same computation on the same totals:

1. :func:`local_moments` on each rank: (m_r, μ_r, M₂,r), M₂ = Σ (x − μ_r)².
2. Exchange (an all-gather), then :func:`merge_moments`: Chan's merge, in rank order,
   gives the global (m, μ, M₂), σ² = M₂/m, on every rank alike.
3. normalize each rank's own shard with the global μ and 1/√(σ² + ε)
   (:func:`bnlib.functional._normalize`, the same as one batch norm).
4. Backward: :func:`local_grad_sums` (Σdy, Σdy·x̂ over the shard), exchanged and added up,
   then :func:`input_grad` with the global sums and the global count m.

:func:`sync_batch_norm` and :func:`sync_batch_norm_backward` run the four steps on a
list of shards in one process; :class:`bnlib.distributed.SyncBatchNorm2d` runs the same
functions on real processes, with ``torch.distributed`` doing the exchange.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bnlib.functional import _normalize as normalize
from bnlib.stats import chan_merge


def local_moments(x: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    r"""This shard's ``(count, mean, M2)`` per channel of ``x`` (N, C, H, W), in float64.

    count = N·H·W, mean = Σx/count, M₂ = Σ (x − mean)² (two passes). An empty shard
    (N = 0) gives count 0, mean 0, M₂ 0: it adds nothing to the merge.
    """
    n, c = x.shape[:2]
    x3 = x.reshape(n, c, -1) if x.size else np.zeros((0, c, 1))
    count = x3.shape[0] * x3.shape[2]
    if count == 0:
        return 0, np.zeros(c), np.zeros(c)
    mean = x3.sum(axis=(0, 2), dtype=np.float64) / count
    centered = x3 - mean[:, None]  # float64: x is promoted
    return count, mean, np.einsum("ncl,ncl->c", centered, centered)


def merge_moments(moments: Sequence[tuple]) -> tuple[int, np.ndarray, np.ndarray]:
    """Merge every rank's ``(count, mean, M2)`` with :func:`bnlib.stats.chan_merge`.

    Always in rank order, so every rank, merging the same gathered list, gets
    bit-identical global statistics (and so identical running statistics).
    """
    count, mean, m2 = moments[0]
    for other in moments[1:]:
        count, mean, m2 = chan_merge(count, mean, m2, *other)
    return int(count), mean, m2


def invstd_of(count: int, m2: np.ndarray, eps: float) -> np.ndarray:
    """1/√(σ² + ε) with the biased variance σ² = M₂/count."""
    return 1.0 / np.sqrt(m2 / count + eps)


def local_grad_sums(
    dy: np.ndarray, x: np.ndarray, mean: np.ndarray, invstd: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    r"""This shard's Σdy and Σdy·x̂ per channel (x̂ = (x − μ)·invstd, global μ), in float64."""
    n, c = x.shape[:2]
    if n == 0:
        return np.zeros(c), np.zeros(c)
    x3, dy3 = x.reshape(n, c, -1), dy.reshape(n, c, -1).astype(np.float64)
    xhat = (x3 - mean[:, None]) * invstd[:, None]
    return dy3.sum(axis=(0, 2)), np.einsum("ncl,ncl->c", dy3, xhat)


def input_grad(
    dy: np.ndarray,
    x: np.ndarray,
    mean: np.ndarray,
    invstd: np.ndarray,
    weight: np.ndarray | None,
    count: int,
    sum_dy: np.ndarray,
    sum_dy_xhat: np.ndarray,
) -> np.ndarray:
    r"""∂L/∂x on this shard from the *global* sums and count m:

    .. math::

        \frac{\partial L}{\partial x} = \frac{\gamma\,\mathrm{invstd}}{m}
            \Big(m\,dy - \sum dy - \hat x \sum dy\,\hat x\Big)

    the formula of :func:`bnlib.batch_norm_backward`, where the sums run over every
    rank's values. In ``x``'s dtype.
    """
    shape = (1, -1) + (1,) * (x.ndim - 2)
    gamma = np.ones_like(invstd) if weight is None else np.asarray(weight, np.float64)
    k = (gamma * invstd).reshape(shape)  # γ·invstd
    xhat = (x - mean.reshape(shape)) * invstd.reshape(shape)
    dx = k * (dy - sum_dy.reshape(shape) / count - xhat * (sum_dy_xhat.reshape(shape) / count))
    return dx.astype(x.dtype)


def sync_batch_norm(
    shards: Sequence[np.ndarray],
    weight: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    eps: float = 1e-5,
) -> tuple[list[np.ndarray], tuple[int, np.ndarray, np.ndarray]]:
    """Training-mode batch norm of the batch ``concatenate(shards)``, shard by shard.

    Returns each shard's output and the global ``(count, mean, invstd)``.
    """
    moments = [local_moments(x) for x in shards]  # on each rank
    count, mean, m2 = merge_moments(moments)  # all-gather, then the same merge everywhere
    invstd = invstd_of(count, m2, eps)
    return [normalize(x, mean, invstd, weight, bias) for x in shards], (count, mean, invstd)


def sync_batch_norm_backward(
    dys: Sequence[np.ndarray],
    shards: Sequence[np.ndarray],
    stats: tuple[int, np.ndarray, np.ndarray],
    weight: np.ndarray | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Each shard's ∂L/∂x, and each rank's share of ∂L/∂γ = Σdy·x̂ and ∂L/∂β = Σdy.

    The shares add up (over ranks) to the gradients of the whole batch.
    """
    count, mean, invstd = stats
    sums = [local_grad_sums(dy, x, mean, invstd) for dy, x in zip(dys, shards, strict=True)]
    sum_dy = np.sum([s[0] for s in sums], axis=0)  # all-reduce
    sum_dy_xhat = np.sum([s[1] for s in sums], axis=0)
    dxs = [
        input_grad(dy, x, mean, invstd, weight, count, sum_dy, sum_dy_xhat)
        for dy, x in zip(dys, shards, strict=True)
    ]
    return dxs, [s[1] for s in sums], [s[0] for s in sums]
