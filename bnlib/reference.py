r"""Batch normalization in plain NumPy: the reference, each forward beside its backward.

For an input ``x`` of shape ``(N, C, *)`` (for images ``(N, C, H, W)``), channel ``c``
pools the ``m = N·H·W`` values ``x[:, c, ...]`` ("per channel, over batch and space"):

.. math::

    \mu_c = \frac{1}{m}\sum x, \qquad
    \sigma^2_c = \frac{1}{m}\sum (x - \mu_c)^2, \qquad
    \rho_c = \frac{1}{\sqrt{\sigma^2_c + \varepsilon}}, \qquad
    \hat x = (x - \mu_c)\,\rho_c, \qquad
    y = \gamma_c \hat x + \beta_c .

ρ, the inverse standard deviation, is ``invstd`` in the code, PyTorch's name. These are
the functions the chapters show: short NumPy axis reductions, one contract per operation,
as PyTorch's decompositions (``torch/_decomp``) have them. Like ``native_batch_norm``, the
training forward returns the batch mean μ and ρ, and the backward takes the μ and ρ that
normalized. Statistics are computed in float64, so float32 results agree with PyTorch;
outputs keep the input's dtype, and the gradients of γ and β the parameter's (x's when
there is none), as PyTorch's do.

Last, ``fold_conv_bn``: an evaluation-mode batch norm folded into the layer before it.

The functions assume checked input (:mod:`bnlib.functional` checks it, then runs the
fast :mod:`bnlib.kernels`, which have the same signatures and are tested equal to these).
"""

from __future__ import annotations

import numpy as np


def _axes(x: np.ndarray) -> tuple[int, ...]:
    """Every axis but the channel's: ``(0, 2, 3)`` for ``(N, C, H, W)``."""
    return (0, *range(2, x.ndim))


def _col(v, x: np.ndarray) -> np.ndarray:
    """A per-channel vector ``(C,)`` shaped ``(1, C, 1, 1)`` to broadcast against ``x``."""
    return np.reshape(v, (1, -1) + (1,) * (x.ndim - 2))


# --------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------


def batch_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""Per-channel mean and *biased* variance (divide by m), in float64.

    μ_c = (1/m) Σ x,   σ²_c = (1/m) Σ (x − μ_c)²,   m = N·H·W.
    """
    mean = x.mean(axis=_axes(x), dtype=np.float64, keepdims=True)  # μ
    var = ((x - mean) ** 2).mean(axis=_axes(x))  # σ², two passes: no cancellation
    return mean.ravel(), var


def update_running_stats(
    running_mean: np.ndarray | None,
    running_var: np.ndarray | None,
    mean: np.ndarray,
    var: np.ndarray,
    m: int,
    momentum: float,
) -> None:
    r"""PyTorch's update, in place, with p = momentum:

        running ← (1 − p)·running + p·batch_statistic

    ``var`` is the biased batch variance (divide by m); the running variance
    takes the *unbiased* one, σ²·m/(m − 1). Either buffer may be None.
    """
    # A Python float, whatever number type came in: NumPy computes a Python number in the
    # buffer's dtype (float32 for PyTorch's default buffers), as PyTorch does, where a
    # NumPy float64 momentum would turn the update into float64 arithmetic.
    p = float(momentum)
    if running_mean is not None:
        running_mean[...] = (1 - p) * running_mean + p * mean
    if running_var is not None:
        unbiased_var = var * m / (m - 1)
        running_var[...] = (1 - p) * running_var + p * unbiased_var


# --------------------------------------------------------------------------------------
# Forward
# --------------------------------------------------------------------------------------


def normalize(
    x: np.ndarray,
    mean: np.ndarray,
    invstd: np.ndarray,
    weight: np.ndarray | None,
    bias: np.ndarray | None,
) -> np.ndarray:
    r"""y = (x − μ)·ρ·γ + β per channel, with ρ = 1/√(σ² + ε) given as ``invstd``.

    Training passes the batch's μ and ρ, evaluation the running ones. ``weight`` γ and
    ``bias`` β may be None (γ = 1, β = 0). Returns y in x's dtype.
    """
    y = (x - _col(mean, x)) * _col(invstd, x)  # x̂ = (x − μ)·ρ
    if weight is not None:
        y = y * _col(weight, x)  # γx̂
    if bias is not None:
        y = y + _col(bias, x)  # + β
    return y.astype(x.dtype)


def forward(
    x: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None, eps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Training-mode forward: normalize with the batch's own statistics.

        μ, σ² = batch_stats(x),   ρ = 1/√(σ² + ε),   y = (x − μ)·ρ·γ + β

    Returns ``(y, mean, invstd)``: μ and ρ (float64) are what the backward needs.
    """
    mean, var = batch_stats(x)
    invstd = 1.0 / np.sqrt(var + eps)  # ε inside the square root
    return normalize(x, mean, invstd, weight, bias), mean, invstd


# --------------------------------------------------------------------------------------
# Backward
# --------------------------------------------------------------------------------------


def backward_reduce(
    dy: np.ndarray, x: np.ndarray, mean: np.ndarray, invstd: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    r"""The backward's two per-channel sums, in float64: ``(Σ dy, Σ dy·x̂)``.

    They are dβ and dγ, and the two sums that dx needs. PyTorch's SyncBatchNorm
    computes them on each rank (``batch_norm_backward_reduce``) and adds them up over
    the ranks before :func:`backward_elemt`.
    """
    xhat = (x - _col(mean, x)) * _col(invstd, x)  # x̂ = (x − μ)·ρ
    sum_dy = dy.sum(axis=_axes(x), dtype=np.float64)  # Σ dy
    sum_dy_xhat = (dy * xhat).sum(axis=_axes(x), dtype=np.float64)  # Σ dy·x̂
    return sum_dy, sum_dy_xhat


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
    r"""dx, given the sums of :func:`backward_reduce` over the channel's ``count`` values:

        dx = γρ·(dy − Σdy/m − x̂·Σdy·x̂/m),   m = count

    The two subtracted terms are the paths through μ and σ², which depend on x. With
    zero sums (evaluation mode: μ and σ² are constants) it is γρ·dy. In SyncBatchNorm
    (``batch_norm_backward_elemt``) the sums and the count are those of every rank.
    Returns dx in x's dtype.
    """
    xhat = (x - _col(mean, x)) * _col(invstd, x)  # x̂ = (x − μ)·ρ
    gamma = 1.0 if weight is None else weight.astype(np.float64)
    mean_dy, mean_dy_xhat = sum_dy / count, sum_dy_xhat / count
    dx = _col(gamma * invstd, x) * (dy - _col(mean_dy, x) - xhat * _col(mean_dy_xhat, x))
    return dx.astype(x.dtype)


def backward(
    dy: np.ndarray,
    x: np.ndarray,
    mean: np.ndarray,
    invstd: np.ndarray,
    weight: np.ndarray | None,
    training: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Batch norm's backward, given the μ and ρ = 1/√(σ² + ε) that normalized.

    In training those are the batch's (from :func:`forward`), in evaluation the running
    statistics'. With x̂ = (x − μ)·ρ and m = N·H·W, per channel:

        dβ = Σ dy,   dγ = Σ dy·x̂,
        dx = γρ·(dy − Σdy/m − x̂·Σdy·x̂/m)   in training,
        dx = γρ·dy                          in evaluation (μ, σ² constants).

    Returns ``(dx, dweight, dbias)``: dx in x's dtype, dweight and dbias in the weight's
    dtype (x's when there is no weight), as PyTorch's ``native_batch_norm_backward``.
    """
    sum_dy, sum_dy_xhat = backward_reduce(dy, x, mean, invstd)
    m = x.size // x.shape[1]
    if training:
        dx = backward_elemt(dy, x, mean, invstd, weight, sum_dy, sum_dy_xhat, m)
    else:  # no path through μ and σ²: the sums do not reach dx
        zero = np.zeros_like(sum_dy)
        dx = backward_elemt(dy, x, mean, invstd, weight, zero, zero, m)
    dtype = x.dtype if weight is None else weight.dtype
    return dx, sum_dy_xhat.astype(dtype), sum_dy.astype(dtype)


def backward_staged(
    dy: np.ndarray, x: np.ndarray, weight: np.ndarray | None, eps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""The training-mode gradients of :func:`backward`, node by node.

    Forward graph, per channel (Σ over the channel's m = N·H·W values)::

        μ = Σx/m → xc = x − μ → σ² = Σxc²/m → ρ = (σ² + ε)^(-1/2)
          → x̂ = xc·ρ → y = γx̂ + β

    The backward walks it in reverse, one chain-rule step per node;
    ``d<name>`` means ∂L/∂<name>. A node used twice (x feeds μ and xc; xc
    feeds σ² and x̂) adds up the gradients from both uses. Computed in
    float64 for clarity; returns ``(dx, dweight, dbias)`` with the dtypes of
    :func:`backward`.
    """
    dtype, c = x.dtype, x.shape[1]
    grad_dtype = dtype if weight is None else weight.dtype
    x, dy = x.astype(np.float64), dy.astype(np.float64)
    m = x.size // c
    axes = (0, *range(2, x.ndim))  # every axis but the channel's

    def csum(a: np.ndarray) -> np.ndarray:
        """Σ over each channel's m values, kept as shape (1, C, 1, 1)."""
        return a.sum(axis=axes, keepdims=True)

    gamma = np.ones(c) if weight is None else weight.astype(np.float64)
    gamma = gamma.reshape(1, c, *[1] * (x.ndim - 2))  # (1, C, 1, 1)

    # forward, keeping every intermediate the backward needs
    mu = csum(x) / m  # μ = Σx/m
    xc = x - mu  # xc = x − μ
    var = csum(xc**2) / m  # σ² = Σxc²/m
    rho = (var + eps) ** -0.5  # ρ = (σ² + ε)^(-1/2)
    xhat = xc * rho  # x̂ = xc·ρ

    # backward, one node at a time, last node first
    # (1) y = γx̂ + β; γ and β are shared by the channel: sums
    dbeta = csum(dy)
    dgamma = csum(dy * xhat)
    dxhat = gamma * dy
    # (2) x̂ = xc·ρ; ρ is shared: a sum
    drho = csum(dxhat * xc)
    dxc = rho * dxhat  # the first of xc's two uses
    # (3) ρ = (σ² + ε)^(-1/2)
    dvar = -0.5 * (var + eps) ** -1.5 * drho
    # (4) σ² = Σxc²/m
    dxc = dxc + 2 * xc / m * dvar  # xc's second use: add
    # (5) xc = x − μ; μ is shared: a sum
    dmu = -csum(dxc)
    # (6) μ = Σx/m
    dx = dxc + dmu / m  # x's two uses: through xc, and through μ
    dgamma, dbeta = dgamma.ravel(), dbeta.ravel()  # shape (C,)
    return dx.astype(dtype), dgamma.astype(grad_dtype), dbeta.astype(grad_dtype)


def fold_conv_bn(
    conv_w: np.ndarray,
    conv_b: np.ndarray | None,
    bn_rm: np.ndarray,
    bn_rv: np.ndarray,
    bn_eps: float,
    bn_w: np.ndarray | None,
    bn_b: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """An eval-mode batch norm folded into the layer before it: ``(W', b')`` with
    ``W'[c] = a_c·W[c]`` and ``b'[c] = a_c·(b[c] − μ̂_c) + β_c``, ``a_c = γ_c/√(σ̂²_c + ε)``,
    computed in float64 and rounded once to the inputs' dtypes (``bnlib.fold_conv_bn``
    checks the inputs, then calls this)."""
    var = bn_rv.astype(np.float64)
    scale = 1.0 / np.sqrt(var + bn_eps)  # a = γ / √(σ̂² + ε)
    if bn_w is not None:
        scale = scale * bn_w
    shift = -bn_rm.astype(np.float64)  # b − μ̂
    if conv_b is not None:
        shift = shift + conv_b
    bias = scale * shift  # a·(b − μ̂) + β
    if bn_b is not None:
        bias = bias + bn_b
    column = scale.reshape((-1,) + (1,) * (conv_w.ndim - 1))
    weight = conv_w.astype(np.float64) * column  # W'[c] = a_c·W[c]
    bias_dtype = conv_b.dtype if conv_b is not None else conv_w.dtype
    return weight.astype(conv_w.dtype), bias.astype(bias_dtype)
