r"""bnlib's public functions: check the inputs, then run the kernels.

Each function checks its arguments through :mod:`bnlib._validate` (bad input gets an
error that says what to do) and runs :mod:`bnlib.kernels`, which compute what
:mod:`bnlib.reference` computes, the math the chapters show (the tests hold kernels,
reference and PyTorch equal):

- :func:`batch_stats`: per-channel mean and biased variance;
- :func:`batch_norm`: as ``torch.nn.functional.batch_norm``;
- :func:`batch_norm_backward`, :func:`batch_norm_eval_backward`: the gradients in training
  and in evaluation mode;
- :func:`batch_norm_backward_staged`: the training gradients node by node (chapter 4's
  teaching version, :func:`bnlib.reference.backward_staged`).

Gradients follow PyTorch's dtype rule: dx in x's dtype, dweight and dbias in the weight's
(x's when there is no weight).
"""

from __future__ import annotations

import numpy as np

from bnlib import kernels, reference
from bnlib._validate import (
    as_input,
    backward_inputs,
    channel_vector,
    require_batch_size,
    require_eps,
    require_momentum,
    require_running_stats,
)


def batch_stats(x) -> tuple[np.ndarray, np.ndarray]:
    r"""Per-channel mean and *biased* variance (divide by m), in float64.

    μ_c = (1/m) Σ x,   σ²_c = (1/m) Σ (x − μ_c)²,   m = N·H·W.
    """
    return kernels.batch_stats(as_input(x))


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
    y, _, _ = kernels.native_batch_norm(
        x, weight, bias, running_mean, running_var, training, momentum, eps
    )
    return y


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
    backward that ``BatchNorm2d`` runs. Returns ``(dx, dweight, dbias)``: dx in x's
    dtype, dweight and dbias in the weight's (x's when ``weight`` is None: they are
    then the gradients for γ = 1, β = 0).
    """
    dy, x, weight = backward_inputs(dy, x, weight, eps)
    require_batch_size(x)
    mean, var = kernels.batch_stats(x)
    invstd = 1.0 / np.sqrt(var + eps)
    return kernels.backward(dy, x, mean, invstd, weight, training=True)


def batch_norm_eval_backward(
    dy,
    x,
    running_mean,
    running_var,
    weight: np.ndarray | None = None,
    eps: float = 1e-5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Gradients of evaluation-mode batch norm (running statistics fixed).

    dx = γ·dy/√(running_var + ε),   dγ = Σ dy·x̂,   dβ = Σ dy, with the dtypes of
    :func:`batch_norm_backward`.
    """
    dy, x, weight = backward_inputs(dy, x, weight, eps)
    c = x.shape[1]
    running_mean = channel_vector(running_mean, c, "running_mean")
    running_var = channel_vector(running_var, c, "running_var")
    require_running_stats(running_mean, running_var)
    mean = running_mean.astype(np.float64)
    invstd = 1.0 / np.sqrt(running_var.astype(np.float64) + eps)
    return kernels.backward(dy, x, mean, invstd, weight, training=False)


def batch_norm_backward_staged(
    dy, x, weight: np.ndarray | None = None, eps: float = 1e-5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""The gradients of :func:`batch_norm_backward`, node by node, in float64.

    :func:`bnlib.reference.backward_staged` on checked input: chapter 4's teaching
    version, one chain-rule step per node of the forward graph. The same dtypes as
    :func:`batch_norm_backward`.
    """
    dy, x, weight = backward_inputs(dy, x, weight, eps)
    require_batch_size(x)
    return reference.backward_staged(dy, x, weight, eps)
