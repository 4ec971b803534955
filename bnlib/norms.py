r"""Group norm and layer norm: batch norm's formula with other axes (NumPy only).

Batch norm, group norm and layer norm all compute

.. math:: y = \gamma\,\frac{x - \mu}{\sqrt{\sigma^2 + \varepsilon}} + \beta

with the mean μ and the *biased* variance σ² (divide by the count m) of a set of values;
they differ only in which values pool into one (μ, σ²). For ``x`` of shape ``(N, C, *)``:

- batch norm: per channel, over the batch and space (axes 0, 2, 3, ...);
- :func:`group_norm`: per sample and group of C/G *contiguous* channels, over those
  channels and space; G = 1 pools a whole sample, G = C is instance norm;
- :func:`layer_norm`: per sample, over the trailing ``normalized_shape`` axes.

Neither group norm nor layer norm pools the batch axis, so each sample is normalized on
its own: the same in training and evaluation, at any batch size. Both compute in float64
and return ``x``'s dtype; they match ``torch.nn.functional.group_norm`` and
``torch.nn.functional.layer_norm``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bnlib._validate import (
    as_input,
    float_array,
    group_count,
    require_eps,
    shaped_array,
    trailing_shape,
)

__all__ = ["group_norm", "layer_norm"]


def _standardize(values: np.ndarray, axes: tuple[int, ...], eps: float) -> np.ndarray:
    """(x − μ)/√(σ² + ε) in float64, μ and the biased σ² over ``axes``."""
    values = values.astype(np.float64)
    mean = values.mean(axis=axes, keepdims=True)
    var = ((values - mean) ** 2).mean(axis=axes, keepdims=True)
    return (values - mean) / np.sqrt(var + eps)


def group_norm(x, num_groups: int, weight=None, bias=None, eps: float = 1e-5) -> np.ndarray:
    r"""Group normalization of ``x`` of shape ``(N, C, *)``, like ``F.group_norm``.

    The C channels split into ``num_groups`` = G groups of C/G consecutive channels
    (group g holds channels g·C/G, ..., (g + 1)·C/G − 1). For each sample n and group g,
    μ and the biased σ² pool the m = (C/G)·H·W values of those channels:

    .. math::

        y_{n,c} = \gamma_c\,\frac{x_{n,c} - \mu_{n,g(c)}}
                  {\sqrt{\sigma^2_{n,g(c)} + \varepsilon}} + \beta_c

    ``weight`` (γ) and ``bias`` (β) have one value per *channel*, shape ``(C,)``, or are
    ``None`` (1 and 0). G = 1 normalizes each sample over all of (C, H, W) (layer norm with
    a per-channel affine); G = C normalizes each (sample, channel) over space (instance
    norm). A group of a single value normalizes to 0, so its output is β (torch raises
    instead when N·(C/G)·H·W = 1). Returns an array of ``x``'s shape and dtype.
    """
    x = as_input(x, "x")
    num_groups = group_count(num_groups, x)
    c = x.shape[1]
    what = "one value per channel of x"
    weight = shaped_array(weight, (c,), "weight", what)
    bias = shaped_array(bias, (c,), "bias", what)
    require_eps(eps)
    if x.size == 0:
        return x.copy()
    groups = x.reshape(x.shape[0], num_groups, -1)  # (N, G, (C/G)·H·W): a group, in a row
    y = _standardize(groups, (2,), eps).reshape(x.shape)
    per_channel = (1, c) + (1,) * (x.ndim - 2)
    if weight is not None:
        y = y * weight.reshape(per_channel)
    if bias is not None:
        y = y + bias.reshape(per_channel)
    return y.astype(x.dtype)


def layer_norm(
    x, normalized_shape: int | Sequence[int], weight=None, bias=None, eps: float = 1e-5
) -> np.ndarray:
    r"""Layer normalization over the trailing ``normalized_shape`` axes, like ``F.layer_norm``.

    With k = len(normalized_shape), the last k axes of ``x`` must equal
    ``normalized_shape``; μ and the biased σ² pool those m = prod(normalized_shape) values,
    once for every index of the leading axes:

    .. math:: y = \gamma\,\frac{x - \mu}{\sqrt{\sigma^2 + \varepsilon}} + \beta

    ``weight`` (γ) and ``bias`` (β) are elementwise, of shape ``normalized_shape``, or
    ``None``. For ``(N, C, H, W)`` and ``normalized_shape = (C, H, W)`` the statistics are
    group norm's with one group, but γ and β hold one value per (c, h, w), not per channel.
    Returns an array of ``x``'s shape and dtype.
    """
    x = float_array(x, "x")
    shape = trailing_shape(normalized_shape, x)
    k = len(shape)
    what = "the shape normalized over (normalized_shape)"
    weight = shaped_array(weight, shape, "weight", what)
    bias = shaped_array(bias, shape, "bias", what)
    require_eps(eps)
    if x.size == 0:
        return x.copy()
    y = _standardize(x, tuple(range(x.ndim - k, x.ndim)), eps)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y.astype(x.dtype)
