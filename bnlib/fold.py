r"""Folding an evaluation-mode batch norm into the convolution (or linear layer) before it.

In evaluation mode batch norm uses its running statistics, so for each output channel
``c`` it is a fixed affine map of the convolution's output ``z``:

.. math::

    \mathrm{BN}(z)_c = \gamma_c \frac{z_c - \hat\mu_c}{\sqrt{\hat\sigma^2_c + \varepsilon}}
    + \beta_c = s_c z_c + (\beta_c - s_c \hat\mu_c),
    \qquad s_c = \frac{\gamma_c}{\sqrt{\hat\sigma^2_c + \varepsilon}} .

A convolution is linear in its weights, so scaling output channel ``c`` of the weight by
``s_c`` scales that output channel, and the whole of ``BN(conv(x))`` is one convolution:

.. math::

    W'_c = s_c W_c, \qquad b'_c = s_c (b_c - \hat\mu_c) + \beta_c .

This module needs NumPy only.
"""

from __future__ import annotations

import math

import numpy as np

from bnlib._validate import float_array


def _channel_vector(value, out_channels: int, name: str) -> np.ndarray | None:
    """``None``, or a float array of shape ``(out_channels,)``."""
    if value is None:
        return None
    vector = float_array(value, name)
    if vector.shape != (out_channels,):
        raise ValueError(
            f"{name} must have shape ({out_channels},), one value per output channel of the "
            f"convolution (conv_w.shape[0] = {out_channels}), got shape {vector.shape}; "
            "is this batch norm the one right after this layer?"
        )
    return vector


def fold_conv_bn(
    conv_w,
    conv_b,
    bn_rm,
    bn_rv,
    bn_eps: float,
    bn_w,
    bn_b,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Fold an evaluation-mode batch norm into the convolution or linear layer before it.

    With :math:`s_c = \gamma_c / \sqrt{\hat\sigma^2_c + \varepsilon}` per output channel
    ``c`` (running variance :math:`\hat\sigma^2`, running mean :math:`\hat\mu`):

        W'[c] = s_c · W[c],    b'[c] = s_c · (b[c] − μ̂_c) + β_c,

    so that ``conv(x, W', b') == BN_eval(conv(x, W, b))``. The arguments are those of
    ``torch.nn.utils.fusion.fuse_conv_bn_weights``, in its order.

    Args:
        conv_w: the weight, ``(C_out, C_in / groups, *kernel)`` for a convolution or
            ``(C_out, C_in)`` for a linear layer. Not a transposed convolution (whose
            weight has its output channels on axis 1).
        conv_b: the layer's bias, shape ``(C_out,)``, or ``None`` (no bias: taken as 0).
        bn_rm, bn_rv: batch norm's running mean and running variance, shape ``(C_out,)``;
            the variance must be ≥ 0.
        bn_eps: batch norm's ε, a number ≥ 0 (with ``bn_rv + bn_eps > 0``).
        bn_w, bn_b: γ and β, shape ``(C_out,)``, or ``None`` for ``affine=False``
            (taken as 1 and 0).

    Returns:
        ``(weight, bias)``: new NumPy arrays (the inputs are not modified). ``weight`` has
        ``conv_w``'s shape and dtype; ``bias`` has shape ``(C_out,)`` and ``conv_b``'s dtype,
        or ``conv_w``'s when ``conv_b`` is ``None`` (as torch does). The arithmetic is done
        in float64 and rounded once to that dtype.
    """
    weight = float_array(conv_w, "conv_w")
    if weight.ndim < 2:
        raise ValueError(
            "conv_w must have shape (C_out, C_in / groups, *kernel) for a convolution or "
            f"(C_out, C_in) for a linear layer, at least 2 dimensions; got shape {weight.shape}"
        )
    out_channels = weight.shape[0]
    bias = _channel_vector(conv_b, out_channels, "conv_b")
    running_mean = _channel_vector(bn_rm, out_channels, "bn_rm")
    running_var = _channel_vector(bn_rv, out_channels, "bn_rv")
    gamma = _channel_vector(bn_w, out_channels, "bn_w")
    beta = _channel_vector(bn_b, out_channels, "bn_b")
    if running_mean is None or running_var is None:
        raise ValueError(
            "bn_rm and bn_rv (the running mean and variance) are required: folding uses the "
            "evaluation-mode statistics; a batch norm with track_running_stats=False "
            "normalizes with batch statistics and cannot be folded"
        )
    if isinstance(bn_eps, bool) or not isinstance(bn_eps, (int, float, np.floating)):
        raise TypeError(f"bn_eps must be a number (batch norm's eps), got {type(bn_eps).__name__}")
    if not (bn_eps >= 0 and math.isfinite(bn_eps)):
        raise ValueError(f"bn_eps must be a finite number >= 0 (default 1e-5), got {bn_eps}")
    bad = np.flatnonzero(~(running_var >= 0))  # also catches NaN
    if bad.size:
        raise ValueError(
            "bn_rv is a variance and must be >= 0, but channel(s) "
            f"{bad.tolist()} hold {running_var[bad].tolist()}; the running statistics are "
            "corrupt (check how they were computed or loaded)"
        )
    if np.any(running_var + bn_eps == 0):
        raise ValueError(
            "bn_rv + bn_eps is 0 for some channel, so 1/sqrt(bn_rv + bn_eps) is infinite; "
            "use batch norm's eps > 0"
        )

    return _fold_conv_bn(weight, bias, running_mean, running_var, bn_eps, gamma, beta)


def _fold_conv_bn(
    conv_w: np.ndarray,
    conv_b: np.ndarray | None,
    bn_rm: np.ndarray,
    bn_rv: np.ndarray,
    bn_eps: float,
    bn_w: np.ndarray | None,
    bn_b: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The arithmetic of fold_conv_bn, in float64, without its input checks."""
    var = bn_rv.astype(np.float64)
    scale = 1.0 / np.sqrt(var + bn_eps)  # s = γ / √(σ̂² + ε)
    if bn_w is not None:
        scale = scale * bn_w
    shift = -bn_rm.astype(np.float64)  # b − μ̂
    if conv_b is not None:
        shift = shift + conv_b
    bias = scale * shift  # s·(b − μ̂) + β
    if bn_b is not None:
        bias = bias + bn_b
    column = scale.reshape((-1,) + (1,) * (conv_w.ndim - 1))
    weight = conv_w.astype(np.float64) * column  # W'[c] = s_c·W[c]
    bias_dtype = conv_b.dtype if conv_b is not None else conv_w.dtype
    return weight.astype(conv_w.dtype), bias.astype(bias_dtype)
