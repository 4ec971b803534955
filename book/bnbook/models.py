"""The small networks of Part II: :func:`make_cnn`, :func:`make_mlp` and :func:`make_resnet`,
each with a choice of normalization (:data:`NORMS`), and the helpers that look inside them.
``bnbook.train`` re-exports these names.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

NORMS = ("batch", "group", "layer", "none")
#: Channels of the three conv blocks, and the hidden widths of the MLP.
CNN_CHANNELS = (8, 16, 16)
MLP_HIDDEN = (64, 64)
#: Channels of the three stages of :func:`make_resnet`.
RESNET_CHANNELS = (8, 16, 32, 64)
#: Groups of ``norm="group"`` (channels per group: 4 with the default channels).
GROUP_SIZE = 4
#: SGD's momentum in :func:`train_many`.
MOMENTUM = 0.9
NUM_CLASSES = 10


def norm_layer(norm: str, channels: int, dims: int = 2) -> nn.Module:
    """The normalization after a convolution (``dims=2``) or a linear layer (``dims=1``).

    ``"batch"``: ``BatchNorm2d``/``BatchNorm1d``, statistics over the batch (and pixels).
    ``"group"``: ``GroupNorm`` with groups of :data:`GROUP_SIZE` channels, per image.
    ``"layer"``: per image over all its features; ``GroupNorm(1, C)`` after a convolution
    (per-channel γ, β), ``LayerNorm(C)`` after a linear layer. ``"none"``: nothing.
    """
    if norm == "batch":
        return nn.BatchNorm2d(channels) if dims == 2 else nn.BatchNorm1d(channels)
    if norm == "group":
        if channels % GROUP_SIZE:
            raise ValueError(f"group norm needs channels divisible by {GROUP_SIZE}, got {channels}")
        return nn.GroupNorm(channels // GROUP_SIZE, channels)
    if norm == "layer":
        return nn.GroupNorm(1, channels) if dims == 2 else nn.LayerNorm(channels)
    if norm == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")


def make_cnn(
    norm: str = "batch",
    channels: Sequence[int] = CNN_CHANNELS,
    init_scale: float = 1.0,
    seed: int = 0,
) -> nn.Sequential:
    """A small CNN for 8×8 digits: three conv → norm → ReLU blocks (a 2×2 max-pool after
    the first), then a linear layer on the flattened maps.

    ::

        (N, 1, 8, 8) → conv3×3 → norm → ReLU → maxpool 2     → (N, c1, 4, 4)
                     → conv3×3 → norm → ReLU                 → (N, c2, 4, 4)
                     → conv3×3 → norm → ReLU                 → (N, c3, 4, 4)
                     → flatten → linear                      → (N, 10) logits

    With a normalization the convolutions have no bias (``bias=False``): the norm subtracts
    each channel's (or group's) mean right after, which removes any constant the conv adds,
    and its own β takes the bias's role. Without one (``norm="none"``) they keep their bias.
    Weights start as PyTorch's defaults (seeded by ``seed``), times ``init_scale``.
    """
    if len(channels) != 3:
        raise ValueError(f"channels must give the 3 blocks' widths, got {tuple(channels)}")
    torch.manual_seed(seed)
    bias = norm == "none"
    c1, c2, c3 = channels
    model = nn.Sequential(
        nn.Conv2d(1, c1, 3, padding=1, bias=bias),
        norm_layer(norm, c1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1, bias=bias),
        norm_layer(norm, c2),
        nn.ReLU(),
        nn.Conv2d(c2, c3, 3, padding=1, bias=bias),
        norm_layer(norm, c3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(c3 * 4 * 4, NUM_CLASSES),
    )
    scale_weights(model, init_scale)
    return model


def make_mlp(
    norm: str = "batch", hidden: Sequence[int] = MLP_HIDDEN, init_scale: float = 1.0, seed: int = 0
) -> nn.Sequential:
    """An MLP on the 64 pixels: (linear → norm → ReLU) per hidden width, then linear.

    Here ``BatchNorm1d`` pools over the batch alone: m = N values per feature (a conv
    layer's batch norm pools N·H·W). Linear layers before a norm have no bias (as in
    :func:`make_cnn`).
    """
    torch.manual_seed(seed)
    bias = norm == "none"
    layers: list[nn.Module] = [nn.Flatten()]
    width = 64
    for h in hidden:
        layers += [nn.Linear(width, h, bias=bias), norm_layer(norm, h, dims=1), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, NUM_CLASSES))
    model = nn.Sequential(*layers)
    scale_weights(model, init_scale)
    return model


class Residual(nn.Module):
    """A residual block: ``x + body(x)``, its body a :class:`torch.nn.Sequential`."""

    def __init__(self, *layers: nn.Module) -> None:
        super().__init__()
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)

    def __iter__(self):  # its layers, as a Sequential's (stack widens them one by one)
        return iter(self.body)

    def __len__(self) -> int:
        return len(self.body)


def make_resnet(
    norm: str = "batch", channels: Sequence[int] = RESNET_CHANNELS, seed: int = 0
) -> nn.Sequential:
    """A small residual network for 8×8 digits whose feature maps halve at every stage.

    ::

        (N, 1, 8, 8) → conv3×3 → norm → ReLU                              → (N, c1, 8, 8)
        each further stage, c channels:
                     → conv3×3 stride 2 → norm → ReLU → residual → ReLU  → (N, c, H/2, W/2)
                     → average over the map → linear                      → (N, 10) logits

    Each residual block is ``x + norm(conv(ReLU(norm(conv(x)))))`` (:class:`Residual`), as
    in He et al.'s ResNet. With the default four widths the maps go 8×8, 4×4, 2×2, 1×1: the
    last stage's normalizations pool N·1·1 values per channel in a batch of N, as an
    ImageNet ResNet-50's last stage pools N·7·7; with three widths the network ends at
    2×2. The normalization and the bias rule are :func:`make_cnn`'s.
    """
    if len(channels) < 1:
        raise ValueError(f"channels must give each stage's width, got {tuple(channels)}")
    torch.manual_seed(seed)
    bias = norm == "none"
    c = channels[0]
    layers: list[nn.Module] = [nn.Conv2d(1, c, 3, padding=1, bias=bias), norm_layer(norm, c)]
    layers.append(nn.ReLU())
    for width, c in zip(channels[:-1], channels[1:], strict=True):
        layers += [nn.Conv2d(width, c, 3, 2, padding=1, bias=bias), norm_layer(norm, c)]
        layers.append(nn.ReLU())
        block = Residual(
            nn.Conv2d(c, c, 3, padding=1, bias=bias),
            norm_layer(norm, c),
            nn.ReLU(),
            nn.Conv2d(c, c, 3, padding=1, bias=bias),
            norm_layer(norm, c),
        )
        layers += [block, nn.ReLU()]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels[-1], NUM_CLASSES)]
    return nn.Sequential(*layers)


def scale_weights(model: nn.Module, scale: float) -> None:
    """Multiply the weights of every convolution and linear layer by ``scale``, in place."""
    if not scale > 0:
        raise ValueError(f"init_scale must be positive, got {scale}")
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                module.weight.mul_(scale)


def norm_layers(model: nn.Module) -> list[nn.Module]:
    """The normalization layers of ``model``, in order (empty for ``norm="none"``)."""
    kinds = (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)
    return [m for m in model.modules() if isinstance(m, kinds)]


def pre_activations(model: nn.Sequential) -> list[int]:
    """Indices in ``model`` of the layers whose output feeds each ReLU (norm, or conv/linear
    when there is no norm): where the book measures activation statistics."""
    indices = []
    for i, layer in enumerate(model):
        if isinstance(layer, nn.ReLU):
            before = i - 1
            if isinstance(model[before], nn.Identity):
                before -= 1
            indices.append(before)
    return indices
