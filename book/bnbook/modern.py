"""Networks of the chapter on batch norm in modern networks: a deep residual network for
the digits (:func:`make_residual_net`, with or without a zero-initialised γ), an MLP with
dropout before or after batch norm (:func:`make_dropout_mlp`), and the helpers that look
inside them. Every network is an ``nn.Sequential`` of layers :func:`bnbook.wide.stack`
knows, so :func:`bnbook.train.train_many` trains several at once.
"""

from __future__ import annotations

import torch
from torch import nn

from bnbook.models import NUM_CLASSES, Residual, norm_layer

#: Channels of every block of :func:`make_residual_net`.
RESNET_WIDTH = 8
#: Where :func:`make_dropout_mlp` puts its dropout.
DROPOUT_PLACES = ("before", "after", "none")


def make_residual_net(
    depth: int,
    width: int = RESNET_WIDTH,
    norm: str = "batch",
    zero_gamma: bool = False,
    seed: int = 0,
) -> nn.Sequential:
    """A residual network for 8×8 digits with ``depth`` blocks of ``width`` channels.

    ::

        (N, 1, 8, 8) → conv3×3 → norm → ReLU → maxpool 2          → (N, width, 4, 4)
        depth times: x → ReLU(x + norm(conv(ReLU(norm(conv(x))))))  → (N, width, 4, 4)
                     → average over the map → linear               → (N, 10) logits

    Each block is He et al.'s (2016) basic block, a :class:`~bnbook.models.Residual` then a
    ReLU. ``zero_gamma=True`` sets γ of each block's *last* normalization to 0 (Goyal et al.
    2017): the block's branch then outputs β = 0, and ``ReLU(x + 0) = x`` because ``x``
    came out of a ReLU, so every block starts as the identity. ``norm`` is one of
    :data:`bnbook.models.NORMS`; without a normalization (``"none"``) the convolutions keep
    their bias and there is no γ to zero (``zero_gamma`` must be False).
    """
    if depth < 0:
        raise ValueError(f"depth must be at least 0, got {depth}")
    if zero_gamma and norm == "none":
        raise ValueError("zero_gamma needs a normalization (norm='none' has no γ)")
    torch.manual_seed(seed)
    bias = norm == "none"
    layers: list[nn.Module] = [
        nn.Conv2d(1, width, 3, padding=1, bias=bias),
        norm_layer(norm, width),
        nn.ReLU(),
        nn.MaxPool2d(2),
    ]
    for _ in range(depth):
        block = Residual(
            nn.Conv2d(width, width, 3, padding=1, bias=bias),
            norm_layer(norm, width),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1, bias=bias),
            norm_layer(norm, width),
        )
        if zero_gamma:
            nn.init.zeros_(block.body[-1].weight)
        layers += [block, nn.ReLU()]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, NUM_CLASSES)]
    return nn.Sequential(*layers)


def residual_blocks(model: nn.Sequential) -> list[Residual]:
    """The residual blocks of ``model``, in order."""
    return [layer for layer in model if isinstance(layer, Residual)]


@torch.no_grad()
def stream_variances(model: nn.Sequential, x: torch.Tensor) -> list[float]:
    """The variance of the residual stream entering each block and leaving the last:
    ``depth + 1`` numbers, each the mean over channels of the variance over the batch and
    the positions (``(N, C, H, W)`` → per channel over N·H·W). Runs ``model`` on ``x``
    in its current mode, on a copy of nothing: in training mode the running statistics
    of its batch norms are updated as in any forward pass."""
    variances = []
    for layer in model:
        if isinstance(layer, nn.AdaptiveAvgPool2d):
            variances.append(float(x.var(dim=(0, 2, 3), unbiased=False).mean()))
            break
        if isinstance(layer, Residual):
            variances.append(float(x.var(dim=(0, 2, 3), unbiased=False).mean()))
        x = layer(x)
    return variances
