r"""Synchronized batch norm, the algorithm in NumPy, with array shards as the ranks.

A batch split over R ranks (devices, processes), rank r holding ``x_r`` of shape
``(N_r, C, H, W)``: batch norm over the *global* batch needs, per channel, the global
mean and variance, and its backward the global sums Σdy and Σdy·x̂. Each rank computes
its own partial statistics, the ranks exchange them (a few numbers per channel, never
the data), and every rank finishes the same computation on the same totals:

1. :func:`bnlib.stats.moments` on each rank: (m_r, μ_r, M₂,r), M₂ = Σ (x − μ_r)², in
   float64 (an empty shard gives (0, 0, 0), which adds nothing).
2. Exchange (an all-gather), then :func:`merge_moments`: Chan's merge, in rank order,
   gives the global (m, μ, M₂), σ² = M₂/m, on every rank alike.
3. Normalize each rank's own shard with the global μ and ρ = 1/√(σ² + ε)
   (:func:`bnlib.reference.normalize`, the same as one batch norm).
4. Backward: :func:`bnlib.reference.backward_reduce` (Σdy, Σdy·x̂ over the shard),
   exchanged and added up, then :func:`bnlib.reference.backward_elemt` with the global
   sums and the global count m: the dx of one batch norm over the whole batch.

:func:`sync_batch_norm` and :func:`sync_batch_norm_backward` run the four steps on a
list of shards in one process; :class:`bnlib.distributed.SyncBatchNorm2d` runs the same
functions on real processes, with ``torch.distributed`` doing the exchange.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bnlib.reference import backward_elemt, backward_reduce, normalize
from bnlib.stats import chan_merge, moments

#: The axes batch norm pools, for a shard (N, C, H, W): all but the channels'
AXES = (0, 2, 3)


def merge_moments(per_rank: Sequence[tuple]) -> tuple[int, np.ndarray, np.ndarray]:
    """Merge every rank's ``(count, mean, M2)`` with :func:`bnlib.stats.chan_merge`.

    Always in rank order, so every rank, merging the same gathered list, gets
    bit-identical global statistics (and so identical running statistics).
    """
    count, mean, m2 = per_rank[0]
    for other in per_rank[1:]:
        count, mean, m2 = chan_merge(count, mean, m2, *other)
    return int(count), mean, m2


def invstd_of(count: int, m2: np.ndarray, eps: float) -> np.ndarray:
    """1/√(σ² + ε) with the biased variance σ² = M₂/count."""
    return 1.0 / np.sqrt(m2 / count + eps)


def sync_batch_norm(
    shards: Sequence[np.ndarray],
    weight: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    eps: float = 1e-5,
) -> tuple[list[np.ndarray], tuple[int, np.ndarray, np.ndarray]]:
    """Training-mode batch norm of the batch ``concatenate(shards)``, shard by shard.

    Returns each shard's output and the global ``(count, mean, invstd)``.
    """
    local = [moments(x, axis=AXES, dtype=np.float64) for x in shards]  # on each rank
    count, mean, m2 = merge_moments(local)  # all-gather, then the same merge everywhere
    invstd = invstd_of(count, m2, eps)
    return [normalize(x, mean, invstd, weight, bias) for x in shards], (count, mean, invstd)


def sync_batch_norm_backward(
    dys: Sequence[np.ndarray],
    shards: Sequence[np.ndarray],
    stats: tuple[int, np.ndarray, np.ndarray],
    weight: np.ndarray | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Each shard's ∂L/∂x, and each rank's share of ∂L/∂γ = Σdy·x̂ and ∂L/∂β = Σdy.

    The shares add up (over ranks) to the gradients of the whole batch. Each ∂L/∂x is in
    its shard's dtype, the shares in the weight's (the shards' when there is no weight).
    """
    count, mean, invstd = stats
    sums = [backward_reduce(dy, x, mean, invstd) for dy, x in zip(dys, shards, strict=True)]
    sum_dy = np.sum([s[0] for s in sums], axis=0)  # all-reduce
    sum_dy_xhat = np.sum([s[1] for s in sums], axis=0)
    dxs = [
        backward_elemt(dy, x, mean, invstd, weight, sum_dy, sum_dy_xhat, count)
        for dy, x in zip(dys, shards, strict=True)
    ]
    dtype = shards[0].dtype if weight is None else weight.dtype
    return dxs, [s[1].astype(dtype) for s in sums], [s[0].astype(dtype) for s in sums]
