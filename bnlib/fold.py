r"""Folding an evaluation-mode batch norm into the convolution (or linear layer) before it.

In evaluation mode batch norm uses its running statistics, so for each output channel
``c`` it is a fixed affine map of the convolution's output ``z``:

.. math::

    \mathrm{BN}(z)_c = \gamma_c \frac{z_c - \hat\mu_c}{\sqrt{\hat\sigma^2_c + \varepsilon}}
    + \beta_c = a_c z_c + (\beta_c - a_c \hat\mu_c),
    \qquad a_c = \frac{\gamma_c}{\sqrt{\hat\sigma^2_c + \varepsilon}} .

a_c, the slope of channel c's line, is γ times the running inverse standard deviation
(ρ = 1/√(σ̂² + ε) in :mod:`bnlib.reference`). A convolution is linear in its weights, so
scaling output channel ``c`` of the weight by ``a_c`` scales that output channel, and the
whole of ``BN(conv(x))`` is one convolution:

.. math::

    W'_c = a_c W_c, \qquad b'_c = a_c (b_c - \hat\mu_c) + \beta_c .

This module needs NumPy only.
"""

from __future__ import annotations

import numpy as np

from bnlib import reference
from bnlib._validate import folding_stats, layer_weight, output_channel_vector, require_eps


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

    With :math:`a_c = \gamma_c / \sqrt{\hat\sigma^2_c + \varepsilon}` per output channel
    ``c`` (running variance :math:`\hat\sigma^2`, running mean :math:`\hat\mu`):

        W'[c] = a_c · W[c],    b'[c] = a_c · (b[c] − μ̂_c) + β_c,

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
    weight = layer_weight(conv_w)
    out_channels = weight.shape[0]
    bias = output_channel_vector(conv_b, out_channels, "conv_b")
    running_mean = output_channel_vector(bn_rm, out_channels, "bn_rm")
    running_var = output_channel_vector(bn_rv, out_channels, "bn_rv")
    gamma = output_channel_vector(bn_w, out_channels, "bn_w")
    beta = output_channel_vector(bn_b, out_channels, "bn_b")
    require_eps(bn_eps, "bn_eps", allow_zero=True)
    folding_stats(running_mean, running_var, bn_eps)
    return reference.fold_conv_bn(weight, bias, running_mean, running_var, bn_eps, gamma, beta)
