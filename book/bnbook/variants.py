r"""Batch renorm and ghost batch norm as torch modules, for training (autograd does the
backward): the formulas of ``bnlib.renorm`` and ``bnlib.ghost`` written in torch ops.

- :func:`batch_renorm`: Ioffe's (2017) batch renormalization, r and d detached (constants
  in the backward pass, the paper's stop_gradient); :class:`BatchRenorm2d` uses it in
  training, with the paper's schedule: plain batch norm (r_max = 1, d_max = 0) for
  ``warmup`` steps, then r_max and d_max growing linearly to their final values over
  ``ramp`` steps;
- :func:`ghost_batch_norm`: Hoffer et al.'s (2017) ghost batch norm, each ghost batch of
  ``ghost_size`` images normalized with its own statistics, the running statistics updated
  once per ghost batch; :class:`GhostBatchNorm2d` uses it in training;
- :func:`replace_batch_norm`: a copy of a network with every ``BatchNorm2d`` replaced.

Both modules are ``BatchNorm2d`` in evaluation mode, and per channel in training, so
``bnbook.train.train_many`` widens them like ``BatchNorm2d`` (``widen_options``).
``tests/book/test_variants.py`` holds them equal to ``bnlib``'s NumPy functions.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def _col(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A per-channel vector ``(C,)`` shaped ``(1, C, 1, 1)`` to broadcast against ``x``."""
    return v.view(1, -1, *([1] * (x.dim() - 2)))


def batch_renorm(
    x: torch.Tensor,
    running_mean: torch.Tensor,
    running_var: torch.Tensor,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    r_max: float,
    d_max: float,
    momentum: float,
    eps: float,
) -> torch.Tensor:
    """Training-mode batch renorm (``bnlib.batch_renorm_forward``'s formula); updates the
    running buffers in place (unbiased variance, as ``BatchNorm2d``)."""
    dims = [0, *range(2, x.dim())]
    mean = x.mean(dims)  # μ_B
    var = x.var(dims, unbiased=False)  # σ²_B
    sigma_b = torch.sqrt(var + eps)
    sigma = torch.sqrt(running_var + eps)  # the running σ
    r = (sigma_b / sigma).clamp(1 / r_max, r_max).detach()
    d = ((mean - running_mean) / sigma).clamp(-d_max, d_max).detach()
    xhat = (x - _col(mean, x)) / _col(sigma_b, x) * _col(r, x) + _col(d, x)
    y = xhat if weight is None else xhat * _col(weight, x)
    y = y if bias is None else y + _col(bias, x)
    with torch.no_grad():
        m = x.numel() // x.shape[1]
        running_mean.lerp_(mean, momentum)  # (1 − p)·running + p·batch
        running_var.lerp_(var * m / (m - 1), momentum)
    return y


def ghost_batch_norm(
    x: torch.Tensor,
    ghost_size: int,
    running_mean: torch.Tensor | None,
    running_var: torch.Tensor | None,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    momentum: float,
    eps: float,
) -> torch.Tensor:
    """Training-mode ghost batch norm (``bnlib.ghost_batch_norm_forward``'s formula): the
    batch's consecutive ghost batches of ``ghost_size`` images as one tensor
    ``(G, ghost_size, C, H, W)``, statistics over each; the running buffers, if given,
    updated once per ghost batch, in order."""
    n, c = x.shape[:2]
    if n % ghost_size:
        raise ValueError(f"ghost_size {ghost_size} does not divide the batch of {n}")
    ghosts = x.view(n // ghost_size, ghost_size, *x.shape[1:])
    dims = [1, *range(3, ghosts.dim())]
    mean = ghosts.mean(dims, keepdim=True)  # (G, 1, C, 1, 1)
    var = ghosts.var(dims, unbiased=False, keepdim=True)
    y = ((ghosts - mean) / torch.sqrt(var + eps)).view_as(x)
    y = y if weight is None else y * _col(weight, x)
    y = y if bias is None else y + _col(bias, x)
    if running_mean is not None:
        with torch.no_grad():  # G updates in turn: running·q^G + Σ_g p·q^(G−1−g)·stat_g
            g, q, m = mean.shape[0], 1 - momentum, ghosts[0].numel() // c
            weights = momentum * q ** torch.arange(g - 1, -1, -1, dtype=x.dtype)
            running_mean.mul_(q**g).add_(weights @ mean.view(g, c))
            running_var.mul_(q**g).add_(weights @ var.view(g, c) * m / (m - 1))
    return y


class BatchRenorm2d(nn.BatchNorm2d):
    """``BatchNorm2d`` that trains with batch renorm: r_max and d_max are 1 and 0 (batch
    norm) for the first ``warmup`` training steps, then grow linearly to ``r_max`` and
    ``d_max`` over ``ramp`` steps (the paper's schedule, shortened). Eval mode is
    ``BatchNorm2d``'s. ``momentum`` must be a number (no cumulative average)."""

    def __init__(
        self,
        num_features: int,
        r_max: float = 3.0,
        d_max: float = 5.0,
        warmup: int = 0,
        ramp: int = 0,
        **kwargs,
    ) -> None:
        super().__init__(num_features, **kwargs)
        self.r_max, self.d_max, self.warmup, self.ramp = r_max, d_max, warmup, ramp

    @property
    def widen_options(self) -> dict:
        """What a wide copy (``bnbook.wide``) needs besides ``BatchNorm2d``'s arguments."""
        return {"r_max": self.r_max, "d_max": self.d_max, "warmup": self.warmup,
                "ramp": self.ramp}  # fmt: skip

    def clips(self) -> tuple[float, float]:
        """(r_max, d_max) at the current step (``num_batches_tracked``)."""
        t = int(self.num_batches_tracked) - self.warmup
        f = 0.0 if t < 0 else min(1.0, (t + 1) / max(1, self.ramp))
        return 1 + f * (self.r_max - 1), f * self.d_max

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        r_max, d_max = self.clips()
        self.num_batches_tracked.add_(1)
        return batch_renorm(
            x, self.running_mean, self.running_var, self.weight, self.bias,
            r_max, d_max, self.momentum, self.eps,
        )  # fmt: skip


class GhostBatchNorm2d(nn.BatchNorm2d):
    """``BatchNorm2d`` that trains with ghost batch norm over ghost batches of
    ``ghost_size`` images. Eval mode is ``BatchNorm2d``'s."""

    def __init__(self, num_features: int, ghost_size: int, **kwargs) -> None:
        super().__init__(num_features, **kwargs)
        if ghost_size < 1:
            raise ValueError(f"ghost_size must be at least 1, got {ghost_size}")
        self.ghost_size = ghost_size

    @property
    def widen_options(self) -> dict:
        return {"ghost_size": self.ghost_size}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        self.num_batches_tracked.add_(1)
        return ghost_batch_norm(
            x, self.ghost_size, self.running_mean, self.running_var, self.weight, self.bias,
            self.momentum, self.eps,
        )  # fmt: skip


def replace_batch_norm(model: nn.Module, make) -> nn.Module:
    """A copy of ``model`` with every ``BatchNorm2d`` replaced by ``make(num_features)``
    (e.g. ``functools.partial(BatchRenorm2d, r_max=3.0)``), parameters and buffers kept."""
    model = copy.deepcopy(model)
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if type(child) is nn.BatchNorm2d:
                layer = make(child.num_features)
                layer.load_state_dict(child.state_dict())
                setattr(parent, name, layer)
    return model
