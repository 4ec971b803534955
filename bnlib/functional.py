r"""Batch normalization as plain NumPy functions, each forward beside its backward.

For an input ``x`` of shape ``(N, C, *)`` (for images ``(N, C, H, W)``), channel ``c``
pools the ``m = N·H·W`` values ``x[:, c, ...]`` ("per channel, over batch and space"):

.. math::

    \mu_c = \frac{1}{m}\sum x, \qquad
    \sigma^2_c = \frac{1}{m}\sum (x - \mu_c)^2, \qquad
    \hat x = \frac{x - \mu_c}{\sqrt{\sigma^2_c + \varepsilon}}, \qquad
    y = \gamma_c \hat x + \beta_c .

Every function takes and returns NumPy arrays and keeps the input's dtype (float32 or
float64). Statistics are accumulated in float64, so float32 results agree with PyTorch.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


# --------------------------------------------------------------------------------------
# Input checks: bad input gets a clear error, never silent garbage.
# --------------------------------------------------------------------------------------


def to_numpy(value) -> np.ndarray:
    """``value`` as a NumPy array; a torch tensor is detached and copied to the CPU first."""
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def as_input(x, name: str = "input") -> np.ndarray:
    """Return ``x`` as a C-contiguous float32/float64 array of shape ``(N, C, *)``."""
    x = to_numpy(x)
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name} must be a floating-point array of dtype float32 or float64, "
            f"got dtype {x.dtype}; convert it first, e.g. x.astype(np.float32)"
        )
    if x.ndim < 2:
        raise ValueError(
            f"{name} must have shape (N, C, *) with at least 2 dimensions, "
            f"got shape {x.shape} ({x.ndim}D)"
        )
    return np.ascontiguousarray(x)


def check_eps(eps: float) -> None:
    """ε must be a positive number: it keeps √(σ² + ε) away from zero."""
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating)):
        raise TypeError(f"eps must be a positive number, got {type(eps).__name__}")
    if not eps > 0 or not math.isfinite(eps):
        raise ValueError(
            f"eps must be a positive finite number (default 1e-5), got {eps}; "
            "it is added to the variance under the square root to avoid division by zero"
        )


def check_momentum(momentum: float | None, allow_none: bool = False) -> None:
    """Momentum is the weight of the new batch statistic, a number in [0, 1]."""
    if momentum is None and allow_none:
        return
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float, np.floating)):
        expected = "a number in [0, 1] or None" if allow_none else "a number in [0, 1]"
        raise TypeError(f"momentum must be {expected}, got {type(momentum).__name__}")
    if not 0.0 <= momentum <= 1.0:
        raise ValueError(
            f"momentum must be in [0, 1] (PyTorch's default is 0.1), got {momentum}; "
            "a Keras momentum of 0.99 is PyTorch's 1 - 0.99 = 0.01"
        )


def check_channel_vector(v, num_channels: int, name: str) -> np.ndarray | None:
    """A per-channel parameter or buffer: ``None`` or an array of shape ``(C,)``."""
    if v is None:
        return None
    v = to_numpy(v)  # the same array for an ndarray, so in-place updates reach the caller
    if v.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be a float32 or float64 array, got dtype {v.dtype}")
    if v.shape != (num_channels,):
        raise ValueError(
            f"{name} must have shape ({num_channels},), one value per channel of the "
            f"input, got shape {v.shape}"
        )
    return v


def require_running_stats(running_mean, running_var) -> None:
    """Evaluation mode normalizes with the running statistics, so both must be given."""
    if running_mean is None or running_var is None:
        raise ValueError(
            "running_mean and running_var must be given in evaluation mode "
            "(training=False normalizes with them); pass training=True to use batch statistics"
        )


def check_batch_size(
    x: np.ndarray, advice: str = ", or normalize with running statistics (training=False)"
) -> None:
    """Batch statistics need at least two values per channel, or the variance is 0."""
    if x.size // x.shape[1] <= 1:
        raise ValueError(
            "Expected more than 1 value per channel when training, got input size "
            f"{x.shape}; use a batch with N*H*W > 1{advice}"
        )


# --------------------------------------------------------------------------------------
# Per-channel reductions. The input is viewed as (N, C, L) with L = H·W.
# --------------------------------------------------------------------------------------


def channels_view(x: np.ndarray) -> np.ndarray:
    """View a C-contiguous ``(N, C, *)`` array as ``(N, C, L)`` without copying."""
    return x.reshape(x.shape[0], x.shape[1], -1)


def channel_sum(a: np.ndarray) -> np.ndarray:
    """Σ over batch and space of ``a`` (N, C, L), per channel, accumulated in float64."""
    row_sums = a @ np.ones(a.shape[2], dtype=a.dtype)  # matrix-vector: a fast contiguous sum
    return row_sums.sum(axis=0, dtype=np.float64)


def channel_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Σ over batch and space of ``a·b`` (both (N, C, L)), per channel, in float64."""
    return np.vecdot(a, b).sum(axis=0, dtype=np.float64)


def per_channel(v: np.ndarray, like: np.ndarray) -> np.ndarray:
    """A ``(C,)`` vector spread along each channel's values: a ``(C, L)`` block.

    It broadcasts over the batch axis of ``like`` (N, C, L) and has its dtype.
    A contiguous block rather than a ``(C, 1)`` column: NumPy's loops are
    fastest when both operands are contiguous (about twice as fast here).
    """
    column = np.asarray(v, dtype=like.dtype).reshape(-1, 1)
    return np.repeat(column, like.shape[2], axis=1)


# Starting threads costs about half a millisecond here; they pay off from a few million
# elements (benchmarks/bench_bnlib.py: 32×64×56×56 runs in about half the time on 2 cores).
PARALLEL_MIN_SIZE = 1 << 22


def for_each_channel_group(fn: Callable[[slice], None], num_channels: int, size: int) -> None:
    """Call ``fn(group)`` on groups of channels (slices) that together cover all of them.

    Batch norm treats every channel on its own, so a large input is split into one group
    of channels per core, and the groups run in threads at the same time: NumPy releases
    the GIL inside its loops. A small input is a single group, run in this thread.
    """
    workers = min(os.cpu_count() or 1, num_channels) if size >= PARALLEL_MIN_SIZE else 1
    bounds = [round(i * num_channels / workers) for i in range(workers + 1)]
    groups = [slice(bounds[i], bounds[i + 1]) for i in range(workers)]
    if workers == 1:
        fn(groups[0])
        return
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(fn, groups))  # list(): re-raise what a group raised


# --------------------------------------------------------------------------------------
# Forward
# --------------------------------------------------------------------------------------


def batch_stats(x) -> tuple[np.ndarray, np.ndarray]:
    r"""Per-channel mean and *biased* variance (divide by m), in float64.

    μ_c = (1/m) Σ x,   σ²_c = (1/m) Σ (x − μ_c)²,   m = N·H·W.
    """
    x3 = channels_view(as_input(x))
    m = x3.shape[0] * x3.shape[2]
    mean = channel_sum(x3) / m
    centered = x3 - per_channel(mean, x3)
    return mean, channel_dot(centered, centered) / m


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
    takes the *unbiased* one, σ²·m/(m − 1).
    """
    p = momentum
    if running_mean is not None:
        running_mean[...] = (1 - p) * running_mean + p * mean
    if running_var is not None:
        unbiased_var = var * m / (m - 1)
        running_var[...] = (1 - p) * running_var + p * unbiased_var


def forward(
    x3: np.ndarray,
    weight: np.ndarray | None,
    bias: np.ndarray | None,
    eps: float,
    mean: np.ndarray | None = None,
    var: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Normalize ``x3`` (N, C, L) per channel:

        y = (x − μ)/√(σ² + ε)·γ + β

    Without ``mean`` and ``var`` (training), μ and σ² are the batch's mean
    and biased variance; with them (evaluation), those are used. Returns
    ``(y, mean, var)``, the statistics in float64. Inputs are assumed
    checked.
    """
    n, c, length = x3.shape
    m = n * length
    use_batch_stats = mean is None
    if use_batch_stats:
        mean, var = np.empty(c), np.empty(c)
    else:
        mean, var = np.asarray(mean, np.float64), np.asarray(var, np.float64)
    y = np.empty_like(x3)

    def normalize_group(g: slice) -> None:
        xg, yg = x3[:, g], y[:, g]
        if use_batch_stats:
            mean[g] = channel_sum(xg) / m  # μ
        np.subtract(xg, per_channel(mean[g], xg), out=yg)  # y = x − μ
        if use_batch_stats:
            var[g] = channel_dot(yg, yg) / m  # σ² = mean of (x − μ)²
        scale = 1.0 / np.sqrt(var[g] + eps)  # ε inside the square root
        if weight is not None:
            scale = scale * weight[g]
        yg *= per_channel(scale, xg)  # y = (x − μ)·γ/√(σ² + ε)
        if bias is not None:
            yg += per_channel(bias[g], xg)  # y += β

    for_each_channel_group(normalize_group, c, x3.size)
    return y, mean, var


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
    running_mean = check_channel_vector(running_mean, c, "running_mean")
    running_var = check_channel_vector(running_var, c, "running_var")
    weight = check_channel_vector(weight, c, "weight")
    bias = check_channel_vector(bias, c, "bias")
    check_eps(eps)
    check_momentum(momentum)
    x3 = channels_view(x)
    if training:
        check_batch_size(x)
        y, mean, var = forward(x3, weight, bias, eps)
        m = x3.shape[0] * x3.shape[2]
        update_running_stats(
            running_mean,
            running_var,
            mean,
            var,
            m,
            momentum,
        )
    else:
        require_running_stats(running_mean, running_var)
        y, _, _ = forward(x3, weight, bias, eps, running_mean, running_var)
    return y.reshape(x.shape)


# --------------------------------------------------------------------------------------
# Backward (training mode: μ and σ² depend on x)
# --------------------------------------------------------------------------------------


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

    Returns ``(dx, dweight, dbias)``. ``dweight`` and ``dbias`` are always
    computed (with ``weight`` None, they are the gradients for γ = 1, β = 0).
    """
    dy, x, weight = check_backward_inputs(dy, x, weight, eps)
    check_batch_size(x)
    x3, dy3 = channels_view(x), channels_view(dy)
    mean, var = batch_stats(x3)
    dx, dweight, dbias = backward(dy3, x3, mean, var, weight, eps)
    return dx.reshape(x.shape), dweight.astype(x.dtype), dbias.astype(x.dtype)


def check_backward_inputs(
    dy, x, weight: np.ndarray | None, eps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The checks every backward makes.

    Returns ``dy`` (in ``x``'s dtype), ``x`` and ``weight``, checked.
    """
    x = as_input(x, "x")
    dy = as_input(dy, "dy")
    if dy.shape != x.shape:
        raise ValueError(f"dy must have the shape of x {x.shape}, got {dy.shape}")
    weight = check_channel_vector(weight, x.shape[1], "weight")
    check_eps(eps)
    return dy.astype(x.dtype, copy=False), x, weight


def backward(
    dy3: np.ndarray,
    x3: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    weight: np.ndarray | None,
    eps: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""The compact backward, given the forward's batch statistics.

    With s = 1/√(σ² + ε) and x̂ = (x − μ)·s, per channel::

        dx = γs/m · (m·dy − Σdy − x̂·Σ(dy·x̂))
        dγ = Σ dy·x̂,   dβ = Σ dy

    computed as dx = a·dy − b·x̂ − c. Arrays are (N, C, L); returns
    ``(dx, dweight, dbias)``, the last two in float64. Inputs are assumed
    checked.
    """
    n, c, length = x3.shape
    m = n * length
    invstd = 1.0 / np.sqrt(var + eps)  # s
    gamma = np.ones(c) if weight is None else weight.astype(np.float64)
    dx = np.empty_like(x3)
    dweight, dbias = np.empty(c), np.empty(c)

    def backward_group(g: slice) -> None:
        dyg, dxg = dy3[:, g], dx[:, g]
        xg = x3[:, g]
        xhat = xg - per_channel(mean[g], xg)
        xhat *= per_channel(invstd[g], xg)  # x̂ = (x − μ)·s
        dbias[g] = channel_sum(dyg)  # Σ dy
        dweight[g] = channel_dot(dyg, xhat)  # Σ dy·x̂
        k = gamma[g] * invstd[g] / m  # γs/m
        np.multiply(dyg, per_channel(k * m, dyg), out=dxg)  # dx = γs·dy
        xhat *= per_channel(k * dweight[g], dyg)
        dxg -= xhat  # − γs/m · x̂·Σ(dy·x̂)
        dxg -= per_channel(k * dbias[g], dyg)  # − γs/m · Σdy

    for_each_channel_group(backward_group, c, x3.size)
    return dx, dweight, dbias


def batch_norm_backward_staged(
    dy, x, weight: np.ndarray | None = None, eps: float = 1e-5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""The gradients of :func:`batch_norm_backward`, node by node.

    Forward graph, per channel (Σ over the channel's m = N·H·W values)::

        μ = Σx/m → xc = x − μ → σ² = Σxc²/m → s = (σ² + ε)^(-1/2)
          → x̂ = xc·s → y = γx̂ + β

    The backward walks it in reverse, one chain-rule step per node;
    ``d<name>`` means ∂L/∂<name>. A node used twice (x feeds μ and xc; xc
    feeds σ² and x̂) adds up the gradients from both uses. Computed in
    float64 for clarity; returns ``(dx, dweight, dbias)`` in x's dtype.
    """
    dy, x, weight = check_backward_inputs(dy, x, weight, eps)
    check_batch_size(x)
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
    s = (var + eps) ** -0.5  # s = (σ² + ε)^(-1/2)
    xhat = xc * s  # x̂ = xc·s

    # backward, one node at a time, last node first
    # (1) y = γx̂ + β; γ and β are shared by the channel: sums
    dbeta = csum(dy)
    dgamma = csum(dy * xhat)
    dxhat = gamma * dy
    # (2) x̂ = xc·s; s is shared: a sum
    ds = csum(dxhat * xc)
    dxc = s * dxhat  # the first of xc's two uses
    # (3) s = (σ² + ε)^(-1/2)
    dvar = -0.5 * (var + eps) ** -1.5 * ds
    # (4) σ² = Σxc²/m
    dxc = dxc + 2 * xc / m * dvar  # xc's second use: add
    # (5) xc = x − μ; μ is shared: a sum
    dmu = -csum(dxc)
    # (6) μ = Σx/m
    dx = dxc + dmu / m  # x's two uses: through xc, and through μ
    dgamma, dbeta = dgamma.ravel(), dbeta.ravel()  # shape (C,)
    return dx.astype(dtype), dgamma.astype(dtype), dbeta.astype(dtype)


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
    dy, x, weight = check_backward_inputs(dy, x, weight, eps)
    c = x.shape[1]
    running_mean = check_channel_vector(running_mean, c, "running_mean")
    running_var = check_channel_vector(running_var, c, "running_var")
    require_running_stats(running_mean, running_var)
    dy3, x3 = channels_view(dy), channels_view(x)
    dx, dweight, dbias = eval_backward(
        dy3,
        x3,
        running_mean,
        running_var,
        weight,
        eps,
    )
    return dx.reshape(x.shape), dweight.astype(x.dtype), dbias.astype(x.dtype)


def eval_backward(
    dy3: np.ndarray,
    x3: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    weight: np.ndarray | None,
    eps: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""The backward with constant statistics μ and σ² (arrays (N, C, L)).

    dx = γ·dy/√(σ² + ε),   dγ = Σ dy·x̂,   dβ = Σ dy.

    Inputs are assumed checked.
    """
    invstd = 1.0 / np.sqrt(np.asarray(var, np.float64) + eps)
    xhat = x3 - per_channel(mean, x3)
    xhat *= per_channel(invstd, x3)
    gamma = 1.0 if weight is None else weight.astype(np.float64)
    dx = dy3 * per_channel(gamma * invstd, x3)
    return dx, channel_dot(dy3, xhat), channel_sum(dy3)
