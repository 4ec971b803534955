r"""Ghost batch norm (Hoffer et al. 2017, arXiv:1705.08741), forward beside backward, NumPy.

A large batch of N images is cut into G = N/``ghost_size`` consecutive *ghost batches* of
``ghost_size`` images, and each is batch-normalized with its own statistics, as if it were
a batch of its own:

.. math::

    y_{g} = \gamma\,\frac{x_{g} - \mu_{g}}{\sqrt{\sigma^2_{g} + \varepsilon}} + \beta,
    \qquad g = 1, \dots, G,

μ_g and the biased σ²_g per channel over ghost batch g's ``ghost_size``·H·W values. The
gradient step still averages over all N images; only the statistics are those of small
batches. (Data-parallel batch norm computes the same thing with one ghost batch per device;
chapter 8 simulates it with ``bnbook.batch_noise.PerDeviceBatchNorm2d``.) The backward is
batch norm's within each ghost batch; γ's and β's gradients add up over the ghosts.

The running statistics take every ghost batch in turn, as the paper's Algorithm 1:
G updates ``running ← (1 − momentum)·running + momentum·ghost statistic`` (unbiased
variance, PyTorch's rule), ghost 1 first. Evaluation is batch norm's with them
(:func:`bnlib.batch_norm` with ``training=False``). Statistics in float64, outputs in x's
dtype, the gradients of γ and β in the weight's.
"""

from __future__ import annotations

import numpy as np

from bnlib import reference
from bnlib._validate import (
    as_input,
    backward_inputs,
    channel_vector,
    ghost_count,
    ghost_stats,
    require_eps,
    require_momentum,
)

__all__ = ["ghost_batch_norm_backward", "ghost_batch_norm_forward"]


def ghost_batch_norm_forward(
    x,
    ghost_size: int,
    running_mean: np.ndarray | None = None,
    running_var: np.ndarray | None = None,
    weight: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Training-mode ghost batch norm of ``x`` ``(N, C, *)``, ghost batches of
    ``ghost_size`` images.

    Ghost batch g is images g·ghost_size … (g + 1)·ghost_size − 1; each is normalized by
    batch norm's forward with its own μ_g and ρ_g = 1/√(σ²_g + ε). The running
    buffers, if given, are updated in place once per ghost batch, in order. Returns
    ``(y, mean, invstd)``, ``mean`` and ``invstd`` of shape (G, C) (float64): what
    :func:`ghost_batch_norm_backward` needs. ``ghost_size = N`` is batch norm.
    """
    x = as_input(x)
    g = ghost_count(ghost_size, x)
    c = x.shape[1]
    running_mean = channel_vector(running_mean, c, "running_mean")
    running_var = channel_vector(running_var, c, "running_var")
    weight, bias = channel_vector(weight, c, "weight"), channel_vector(bias, c, "bias")
    require_momentum(momentum)
    require_eps(eps)
    y, means, invstds = [], [], []
    for ghost in np.split(x, g):  # G consecutive ghost batches of ghost_size images
        mean_g, var_g = reference.batch_stats(ghost)  # this ghost batch's μ_g, σ²_g
        invstd_g = 1.0 / np.sqrt(var_g + eps)  # ρ_g
        y_g = reference.normalize(ghost, mean_g, invstd_g, weight, bias)
        m = ghost.size // c  # values per channel in a ghost batch
        running = running_mean, running_var
        reference.update_running_stats(*running, mean_g, var_g, m, momentum)
        y.append(y_g), means.append(mean_g), invstds.append(invstd_g)
    return np.concatenate(y), np.stack(means), np.stack(invstds)


def ghost_batch_norm_backward(
    dy, x, mean: np.ndarray, invstd: np.ndarray, weight: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Ghost batch norm's backward, given the forward's μ_g and ρ_g, shape (G, C).

    Within ghost batch g (m = ghost_size·H·W values per channel, x̂ = (x − μ_g)·ρ_g):

        dx = γρ_g·(dy − Σ_g dy/m − x̂·Σ_g dy·x̂/m)   (batch norm's, per ghost batch),
        dγ = Σ_g (Σ dy·x̂),   dβ = Σ_g (Σ dy)       (over all N images).

    Returns ``(dx, dweight, dbias)``, the dtypes of :func:`bnlib.reference.backward`.
    """
    dy, x, weight = backward_inputs(dy, x, weight, eps=1.0)  # (no ε: σ_g is in invstd)
    mean, invstd, g = ghost_stats(mean, invstd, x)
    ghost_count(x.shape[0] // g, x)  # more than one value a channel in each ghost batch
    dx, dweight, dbias = [], 0.0, 0.0
    for k, (dy_g, x_g) in enumerate(zip(np.split(dy, g), np.split(x, g), strict=True)):
        sums = reference.backward_reduce(dy_g, x_g, mean[k], invstd[k])  # Σdy, Σdy·x̂
        m = x_g.size // x.shape[1]
        dx_g = reference.backward_elemt(dy_g, x_g, mean[k], invstd[k], weight, *sums, m)
        dx.append(dx_g)
        dbias, dweight = dbias + sums[0], dweight + sums[1]
    dtype = x.dtype if weight is None else weight.dtype
    return np.concatenate(dx), dweight.astype(dtype), dbias.astype(dtype)
