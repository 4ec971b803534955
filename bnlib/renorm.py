r"""Batch renormalization (Ioffe 2017, arXiv:1702.03275), forward beside backward, in NumPy.

Batch norm normalizes with the batch's μ_B and σ_B = √(σ²_B + ε) in training, and with the
running μ and σ = √(running_var + ε) in evaluation: with small or non-random batches the two
differ, and the network is trained for the one it will not see. Batch renorm corrects the
batch's normalization towards the running one, per channel:

.. math::

    r = \operatorname{clip}_{[1/r_{max},\, r_{max}]}\!\left(\frac{\sigma_B}{\sigma}\right),
    \qquad
    d = \operatorname{clip}_{[-d_{max},\, d_{max}]}\!\left(\frac{\mu_B - \mu}{\sigma}\right),
    \qquad
    \hat x = \frac{x - \mu_B}{\sigma_B}\, r + d, \qquad y = \gamma \hat x + \beta .

Unclipped, x̂ = (x − μ)/σ: the running statistics' normalization. r and d are treated as
constants in the backward pass (the paper's "stop_gradient"), so the gradient is batch
norm's with γ·r in place of γ. r_max = 1, d_max = 0 is batch norm. Evaluation is batch
norm's with the running statistics (:func:`bnlib.batch_norm` with ``training=False``).

The running statistics follow PyTorch's ``BatchNorm2d`` buffers (the paper keeps a running
σ instead of a running variance): ``running_var`` is updated with the unbiased batch
variance, and σ = √(running_var + ε). r and d use the buffers *before* this batch's update.
Statistics in float64, outputs in x's dtype, the gradients of γ and β in the weight's.
"""

from __future__ import annotations

import numpy as np

from bnlib import reference
from bnlib._validate import (
    as_input,
    backward_inputs,
    channel_vector,
    require_batch_size,
    require_clip,
    require_eps,
    require_momentum,
)
from bnlib.reference import _col

__all__ = ["batch_renorm_backward", "batch_renorm_forward"]


def _checked(x, running_mean, running_var, weight, bias, r_max, d_max, momentum, eps):
    x = as_input(x)
    c = x.shape[1]
    if running_mean is None or running_var is None:
        raise ValueError(
            "batch renorm needs running_mean and running_var: r and d compare the batch's "
            "statistics with them (start them at 0 and 1, as BatchNorm2d does)"
        )
    running_mean = channel_vector(running_mean, c, "running_mean")
    running_var = channel_vector(running_var, c, "running_var")
    weight, bias = channel_vector(weight, c, "weight"), channel_vector(bias, c, "bias")
    require_clip(r_max, d_max)
    require_momentum(momentum)
    require_eps(eps)
    require_batch_size(x, advice="; batch renorm needs the batch's variance")
    return x, running_mean, running_var, weight, bias


def _cache(c: int, **arrays) -> list[np.ndarray]:
    """The forward's per-channel results, as float64 arrays of shape (C,)."""
    if any(v is None for v in arrays.values()):
        raise ValueError(f"{', '.join(arrays)} are required: pass what the forward returned")
    return [channel_vector(v, c, k).astype(np.float64) for k, v in arrays.items()]


def batch_renorm_forward(
    x,
    running_mean: np.ndarray,
    running_var: np.ndarray,
    weight: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    r_max: float = 3.0,
    d_max: float = 5.0,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r"""Training-mode batch renorm of ``x`` ``(N, C, *)``; updates the running buffers.

        σ_B = √(σ²_B + ε),  σ = √(running_var + ε),
        r = clip(σ_B/σ, 1/r_max, r_max),  d = clip((μ_B − μ)/σ, −d_max, d_max),
        y = γ·((x − μ_B)/σ_B·r + d) + β

    then ``running ← (1 − momentum)·running + momentum·batch`` (unbiased variance),
    in place. Returns ``(y, mean, invstd, r, d)``: μ_B, 1/σ_B, r and d (float64, shape
    (C,)) are what :func:`batch_renorm_backward` needs.
    """
    x, running_mean, running_var, weight, bias = _checked(
        x, running_mean, running_var, weight, bias, r_max, d_max, momentum, eps
    )
    mean, var = reference.batch_stats(x)  # μ_B and the biased σ²_B
    invstd = 1.0 / np.sqrt(var + eps)  # 1/σ_B
    sigma = np.sqrt(running_var.astype(np.float64) + eps)  # the running σ
    r = np.clip(np.sqrt(var + eps) / sigma, 1.0 / r_max, r_max)
    d = np.clip((mean - running_mean) / sigma, -d_max, d_max)
    xtilde = (x - _col(mean, x)) * _col(invstd, x)  # x̃ = (x − μ_B)/σ_B, batch norm's
    y = xtilde * _col(r, x) + _col(d, x)  # x̂ = x̃·r + d
    if weight is not None:
        y = y * _col(weight, x)  # γx̂
    if bias is not None:
        y = y + _col(bias, x)  # + β
    m = x.size // x.shape[1]
    reference.update_running_stats(running_mean, running_var, mean, var, m, momentum)
    return y.astype(x.dtype), mean, invstd, r, d


def batch_renorm_backward(
    dy,
    x,
    mean: np.ndarray,
    invstd: np.ndarray,
    r: np.ndarray,
    d: np.ndarray,
    weight: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Batch renorm's backward, r and d constants, given the forward's μ_B, 1/σ_B, r, d

    With x̃ = (x − μ_B)/σ_B, x̂ = x̃·r + d and m = N·H·W, per channel:

        dβ = Σ dy,   dγ = Σ dy·x̂ = r·Σ dy·x̃ + d·Σ dy,
        dx = γr/σ_B·(dy − Σdy/m − x̃·Σdy·x̃/m)   (batch norm's, with γ·r for γ)

    Returns ``(dx, dweight, dbias)``: dx in x's dtype, dweight and dbias in the weight's
    (x's when there is no weight: the gradients for γ = 1, β = 0).
    """
    dy, x, weight = backward_inputs(dy, x, weight, eps=1.0)  # (no ε: σ_B is in invstd)
    c = x.shape[1]
    mean, invstd, r, d = _cache(c, mean=mean, invstd=invstd, r=r, d=d)
    require_batch_size(x)
    sums = reference.backward_reduce(dy, x, mean, invstd)  # Σ dy, Σ dy·x̃
    gamma_r = r if weight is None else weight.astype(np.float64) * r  # γ·r for γ
    m = x.size // c
    dx = reference.backward_elemt(dy, x, mean, invstd, gamma_r, *sums, m)
    dtype = x.dtype if weight is None else weight.dtype
    sum_dy, sum_dy_xtilde = sums
    dweight = r * sum_dy_xtilde + d * sum_dy  # Σ dy·(x̃·r + d)
    return dx, dweight.astype(dtype), sum_dy.astype(dtype)
