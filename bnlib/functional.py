r"""Batch normalization in plain NumPy: the math, each forward beside its backward.

For an input ``x`` of shape ``(N, C, *)`` (for images ``(N, C, H, W)``), channel ``c``
pools the ``m = N·H·W`` values ``x[:, c, ...]`` ("per channel, over batch and space"):

.. math::

    \mu_c = \frac{1}{m}\sum x, \qquad
    \sigma^2_c = \frac{1}{m}\sum (x - \mu_c)^2, \qquad
    s_c = \frac{1}{\sqrt{\sigma^2_c + \varepsilon}}, \qquad
    \hat x = (x - \mu_c)\,s_c, \qquad
    y = \gamma_c \hat x + \beta_c .

The private functions (``_forward``, ``_backward``, ...) are the reference: short NumPy
axis reductions that assume checked input. Like PyTorch's ``native_batch_norm``, the
training forward returns the batch mean μ and the inverse standard deviation ρ, and the
backward takes them. Statistics are computed in float64, so float32 results agree with
PyTorch; outputs keep the input's dtype.

The public functions (``batch_norm``, ``batch_norm_backward``, ...) check their inputs and
run the fast kernels of :mod:`bnlib.kernels`, which compute the same numbers (the tests
hold kernels, reference and PyTorch equal).
"""

from __future__ import annotations

import numpy as np

from bnlib import kernels
from bnlib._validate import (
    as_input,
    backward_inputs,
    channel_vector,
    require_batch_size,
    require_eps,
    require_momentum,
    require_running_stats,
)


def _axes(x: np.ndarray) -> tuple[int, ...]:
    """Every axis but the channel's: ``(0, 2, 3)`` for ``(N, C, H, W)``."""
    return (0, *range(2, x.ndim))


def _col(v: np.ndarray, x: np.ndarray) -> np.ndarray:
    """A per-channel vector ``(C,)`` shaped ``(1, C, 1, 1)`` to broadcast against ``x``."""
    return np.reshape(v, (1, -1) + (1,) * (x.ndim - 2))


# --------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------


def batch_stats(x) -> tuple[np.ndarray, np.ndarray]:
    r"""Per-channel mean and *biased* variance (divide by m), in float64.

    μ_c = (1/m) Σ x,   σ²_c = (1/m) Σ (x − μ_c)²,   m = N·H·W.
    """
    x = as_input(x)
    mean = x.mean(axis=_axes(x), dtype=np.float64, keepdims=True)  # μ
    var = ((x - mean) ** 2).mean(axis=_axes(x))  # σ², two passes: no cancellation
    return mean.ravel(), var


def _update_running_stats(
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
    takes the *unbiased* one, σ²·m/(m − 1).
    """
    p = float(momentum)  # a plain Python float, whatever type was given
    if running_mean is not None:
        running_mean[...] = (1 - p) * running_mean + p * mean
    if running_var is not None:
        unbiased_var = var * m / (m - 1)
        running_var[...] = (1 - p) * running_var + p * unbiased_var


# --------------------------------------------------------------------------------------
# Forward
# --------------------------------------------------------------------------------------


def _normalize(
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


def _forward(
    x: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None, eps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Training-mode forward: normalize with the batch's own statistics.

        μ, σ² = batch_stats(x),   ρ = 1/√(σ² + ε),   y = (x − μ)·ρ·γ + β

    Returns ``(y, mean, invstd)``: μ and ρ (float64) are what the backward needs.
    """
    mean, var = batch_stats(x)
    invstd = 1.0 / np.sqrt(var + eps)  # ε inside the square root
    return _normalize(x, mean, invstd, weight, bias), mean, invstd


# --------------------------------------------------------------------------------------
# Backward
# --------------------------------------------------------------------------------------


def _backward(
    dy: np.ndarray,
    x: np.ndarray,
    mean: np.ndarray,
    invstd: np.ndarray,
    weight: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Training-mode backward, given the forward's μ and ρ = 1/√(σ² + ε).

    With x̂ = (x − μ)·ρ and m = N·H·W, per channel:

        dβ = Σ dy,   dγ = Σ dy·x̂,   dx = γρ/m · (m·dy − Σdy − x̂·Σdy·x̂)

    The two subtracted terms are the paths through μ and σ², which depend on x.
    Returns ``(dx, dweight, dbias)``: dx in x's dtype, the sums in float64.
    """
    m = x.size // x.shape[1]
    xhat = (x - _col(mean, x)) * _col(invstd, x)
    dbias = dy.sum(axis=_axes(x), dtype=np.float64)  # Σ dy
    dweight = (dy * xhat).sum(axis=_axes(x))  # Σ dy·x̂
    gamma = 1.0 if weight is None else weight.astype(np.float64)
    k = gamma * invstd / m  # γρ/m
    dx = _col(k, x) * (m * dy - _col(dbias, x) - xhat * _col(dweight, x))
    return dx.astype(x.dtype), dweight, dbias


def _eval_backward(
    dy: np.ndarray,
    x: np.ndarray,
    mean: np.ndarray,
    invstd: np.ndarray,
    weight: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Evaluation-mode backward: μ and ρ come from the running statistics, constants.

        dβ = Σ dy,   dγ = Σ dy·x̂,   dx = γρ·dy

    Returns ``(dx, dweight, dbias)``: dx in x's dtype, the sums in float64.
    """
    xhat = (x - _col(mean, x)) * _col(invstd, x)
    dbias = dy.sum(axis=_axes(x), dtype=np.float64)  # Σ dy
    dweight = (dy * xhat).sum(axis=_axes(x))  # Σ dy·x̂
    gamma = 1.0 if weight is None else weight.astype(np.float64)
    dx = _col(gamma * invstd, x) * dy  # no path through μ and σ²
    return dx.astype(x.dtype), dweight, dbias


# --------------------------------------------------------------------------------------
# The public functions: check the inputs, then run the kernels
# --------------------------------------------------------------------------------------


def batch_norm(
    x,
    running_mean: np.ndarray | None = None,
    running_var: np.ndarray | None = None,
    weight: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> np.ndarray:
    r"""Batch normalization, as ``torch.nn.functional.batch_norm``.

    .. math::

        y = \frac{x - \mu_c}{\sqrt{\sigma^2_c + \varepsilon}}\,\gamma_c
            + \beta_c

    In training, μ and σ² are the batch's mean and biased variance, and
    the running buffers (if given) are updated in place with the unbiased
    variance. In evaluation (``training=False``), μ and σ² are
    ``running_mean`` and ``running_var``.
    """
    x = as_input(x)
    c = x.shape[1]
    running_mean = channel_vector(running_mean, c, "running_mean")
    running_var = channel_vector(running_var, c, "running_var")
    weight = channel_vector(weight, c, "weight")
    bias = channel_vector(bias, c, "bias")
    require_eps(eps)
    require_momentum(momentum)
    if training:
        require_batch_size(x)
    else:
        require_running_stats(running_mean, running_var)
    y, _, _ = _batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)
    return y


def _batch_norm(
    x: np.ndarray,
    running_mean: np.ndarray | None,
    running_var: np.ndarray | None,
    weight: np.ndarray | None,
    bias: np.ndarray | None,
    training: bool,
    momentum: float,
    eps: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`batch_norm` on checked inputs, with the kernels; also ``BatchNorm2d``'s forward.

    Returns ``(y, mean, invstd)``, the statistics that normalized (the batch's in
    training, the running ones in evaluation), for the backward.
    """
    if not training:
        mean = running_mean.astype(np.float64)
        invstd = 1.0 / np.sqrt(running_var.astype(np.float64) + eps)
        return kernels._normalize(x, mean, invstd, weight, bias), mean, invstd
    y, mean, var, invstd = kernels._train_forward(x, weight, bias, eps)
    m = x.size // x.shape[1]
    kernels._update_running_stats(running_mean, running_var, mean, var, m, momentum)
    return y, mean, invstd


def batch_norm_backward(
    dy, x, weight: np.ndarray | None = None, eps: float = 1e-5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Gradients of training-mode batch norm, in the compact closed form.

    With x̂ = (x − μ)/√(σ² + ε) and m = N·H·W, per channel:

    .. math::

        \frac{\partial L}{\partial \beta} = \sum dy, \qquad
        \frac{\partial L}{\partial \gamma} = \sum dy\,\hat x, \qquad
        \frac{\partial L}{\partial x}
            = \frac{\gamma}{m\sqrt{\sigma^2+\varepsilon}}
            \Big(m\,dy - \sum dy - \hat x \sum dy\,\hat x\Big).

    The standalone form: it finds μ and ρ = 1/√(σ² + ε) of ``x`` and runs the
    backward that ``BatchNorm2d`` runs. Returns ``(dx, dweight, dbias)`` in x's
    dtype; ``dweight`` and ``dbias`` are always computed (with ``weight`` None,
    they are the gradients for γ = 1, β = 0).
    """
    dy, x, weight = backward_inputs(dy, x, weight, eps)
    require_batch_size(x)
    mean, var = kernels._batch_stats(x)
    invstd = 1.0 / np.sqrt(var + eps)
    dx, dweight, dbias = kernels._backward(dy, x, mean, invstd, weight)
    return dx, dweight.astype(x.dtype), dbias.astype(x.dtype)


def batch_norm_eval_backward(
    dy,
    x,
    running_mean,
    running_var,
    weight: np.ndarray | None = None,
    eps: float = 1e-5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Gradients of evaluation-mode batch norm (running statistics fixed).

    dx = γ·dy/√(running_var + ε),   dγ = Σ dy·x̂,   dβ = Σ dy.
    """
    dy, x, weight = backward_inputs(dy, x, weight, eps)
    c = x.shape[1]
    running_mean = channel_vector(running_mean, c, "running_mean")
    running_var = channel_vector(running_var, c, "running_var")
    require_running_stats(running_mean, running_var)
    mean = running_mean.astype(np.float64)
    invstd = 1.0 / np.sqrt(running_var.astype(np.float64) + eps)
    dx, dweight, dbias = kernels._eval_backward(dy, x, mean, invstd, weight)
    return dx, dweight.astype(x.dtype), dbias.astype(x.dtype)


def batch_norm_backward_staged(
    dy, x, weight: np.ndarray | None = None, eps: float = 1e-5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""The gradients of :func:`batch_norm_backward`, node by node.

    Forward graph, per channel (Σ over the channel's m = N·H·W values)::

        μ = Σx/m → xc = x − μ → σ² = Σxc²/m → ρ = (σ² + ε)^(-1/2)
          → x̂ = xc·ρ → y = γx̂ + β

    The backward walks it in reverse, one chain-rule step per node;
    ``d<name>`` means ∂L/∂<name>. A node used twice (x feeds μ and xc; xc
    feeds σ² and x̂) adds up the gradients from both uses. Computed in
    float64 for clarity; returns ``(dx, dweight, dbias)`` in x's dtype.
    """
    dy, x, weight = backward_inputs(dy, x, weight, eps)
    require_batch_size(x)
    dtype, c = x.dtype, x.shape[1]
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
    return dx.astype(dtype), dgamma.astype(dtype), dbeta.astype(dtype)
