r"""A deep residual network with or without batch norm, and SkipInit (De & Smith 2020,
arXiv:2002.10444): a residual branch scaled by one learnable scalar α that starts at 0.

Without normalization, a residual block ``x + f(x)`` adds the branch's variance to the
stream's: with He et al.'s initialisation f(x) has about the variance of x, so the stream's
variance doubles at every block, 2^depth over the network. Batch norm at the end of each
branch makes Var f(x) = γ² = 1, so the stream's variance grows by 1 per block (linearly).
SkipInit removes the normalization and writes the block as ``x + α·f(x)`` with α = 0 at
initialisation: every block starts as the identity, whatever the depth.

- :func:`make_deep_resnet`: the network, ``variant`` one of :data:`VARIANTS`;
- :class:`BranchScale`: α·x, the one scalar (widened by ``bnbook.wide`` to one per copy);
- :func:`stream_variance`: the residual stream's variance after each block.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from bnbook.models import NUM_CLASSES, Residual

VARIANTS = ("batch norm", "no norm", "SkipInit")


class BranchScale(nn.Module):
    """``α·x`` with one learnable scalar α (``alpha``, shape (1,)), at first ``init``.

    ``channels`` is the width of x: a wide copy of K of these (``bnbook.wide``) holds K
    scalars and multiplies copy k's ``channels`` channels by α_k."""

    def __init__(self, channels: int, init: float = 0.0) -> None:
        super().__init__()
        self.channels = channels
        self.alpha = nn.Parameter(torch.full((1,), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.alpha.repeat_interleave(self.channels)  # one value per channel
        return x * alpha.view(1, -1, *([1] * (x.dim() - 2)))

    @staticmethod
    def widen(layers: Sequence[BranchScale]) -> BranchScale:
        """K of these as one: K scalars, each on its copy's channels."""
        wide = BranchScale(layers[0].channels)
        wide.alpha = nn.Parameter(torch.cat([layer.alpha.detach() for layer in layers]))
        return wide


def make_deep_resnet(
    variant: str = "batch norm", depth: int = 16, width: int = 8, seed: int = 0
) -> nn.Sequential:
    """``depth`` residual blocks of ``width`` channels on 4×4 maps, for 8×8 digits.

    ::

        (N, 1, 8, 8) → conv3×3 → [BN] → ReLU → maxpool 2               → (N, w, 4, 4)
        depth × block: x + branch(x), then ReLU
        → average over the map → linear                                → (N, 10) logits

    The branch is conv3×3 → BN → ReLU → conv3×3 → BN for ``"batch norm"`` (as
    ``bnbook.models.make_resnet``); conv3×3 → ReLU → conv3×3 (with biases) for
    ``"no norm"``; and the same times α = 0 (:class:`BranchScale`) for ``"SkipInit"``.
    Convolutions start with He et al.'s initialisation (``kaiming_normal_``, fan in,
    ReLU gain √2), the setting of De and Smith's paper; biases at 0.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    torch.manual_seed(seed)
    norm = variant == "batch norm"

    def conv() -> nn.Conv2d:
        return nn.Conv2d(width, width, 3, padding=1, bias=not norm)

    def bn() -> list[nn.Module]:
        return [nn.BatchNorm2d(width)] if norm else []

    layers: list[nn.Module] = [nn.Conv2d(1, width, 3, padding=1, bias=not norm), *bn()]
    layers += [nn.ReLU(), nn.MaxPool2d(2)]
    for _ in range(depth):
        branch = [conv(), *bn(), nn.ReLU(), conv(), *bn()]
        if variant == "SkipInit":
            branch.append(BranchScale(width, 0.0))
        layers += [Residual(*branch), nn.ReLU()]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, NUM_CLASSES)]
    model = nn.Sequential(*layers)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                if module.bias is not None:
                    module.bias.zero_()
    return model


@torch.no_grad()
def stream_variance(model: nn.Sequential, x: torch.Tensor) -> list[float]:
    """The variance of the residual stream (every value of the batch) after each residual
    block of ``model``, on ``x``, in training mode (batch statistics), without changing the
    model's running statistics."""
    variances = []
    hooks = [
        layer.register_forward_hook(lambda mod, inp, out: variances.append(out.var().item()))
        for layer in model
        if isinstance(layer, Residual)
    ]
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    was_training = model.training
    try:
        model.train()(x)
    finally:
        for hook in hooks:
            hook.remove()
        model.load_state_dict(saved)
        model.train(was_training)
    return variances
