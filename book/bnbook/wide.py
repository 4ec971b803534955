"""Several models as one: :func:`stack` lays K small models side by side as one wide model,
:func:`unstack` takes model k back out (``bnbook.train.train_many`` trains them this way).

A tiny network on 8×8 images spends most of its time in PyTorch's per-call overhead, not in
arithmetic. So the wide model's convolutions have ``groups=K`` (copy k's channels only see
copy k's channels), its ``BatchNorm2d`` has K·C channels (batch norm is per channel, so the
copies' statistics never mix), and its ``GroupNorm`` has K times the groups. Copy k gets its
own images in input channel k. Its outputs, gradients and updates are exactly those of model
k trained alone (up to float rounding; ``tests/book/test_train.py`` checks it).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from bnbook.models import Residual


class GroupedLinear(nn.Module):
    """K independent linear layers: input ``(N, K·in)``, output ``(N, K·out)``.

    ``weight`` has shape ``(K, out, in)``, ``bias`` ``(K, out)``; copy k computes
    ``x_k @ weight[k].T + bias[k]`` on its own slice ``x_k`` of the features.
    """

    def __init__(self, copies: int, in_features: int, out_features: int, bias: bool) -> None:
        super().__init__()
        self.copies, self.in_features, self.out_features = copies, in_features, out_features
        self.weight = nn.Parameter(torch.empty(copies, out_features, in_features))
        self.bias = nn.Parameter(torch.empty(copies, out_features)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view(x.shape[0], self.copies, self.in_features)
        y = torch.einsum("nki,koi->nko", x, self.weight)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(x.shape[0], self.copies * self.out_features)


def _cat(tensors: list[torch.Tensor | None]) -> torch.Tensor | None:
    return None if tensors[0] is None else torch.cat([t.detach() for t in tensors])


NORM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)


class ChannelBlocks(nn.Module):
    """Different layers for consecutive blocks of channels (dim 1), e.g. K₁ copies with
    batch norm, then K₂ with group norm: :func:`stack` uses it to widen models whose
    normalizations differ. ``sizes[b]`` channels go through ``blocks[b]``."""

    def __init__(self, blocks: Sequence[nn.Module], sizes: Sequence[int]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.sizes = list(sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(x, self.sizes, dim=1)
        return torch.cat([block(part) for block, part in zip(self.blocks, parts, strict=True)], 1)


def _channels(layer: nn.Module) -> int:
    if isinstance(layer, nn.GroupNorm):
        return layer.num_channels
    if isinstance(layer, nn.LayerNorm):
        return layer.normalized_shape[0]
    return layer.num_features


def _kind(layer: nn.Module) -> tuple:
    """Layers of one kind widen into one layer (GroupNorms only with the same groups, batch
    norm's variants only with the same ``widen_options``)."""
    options = tuple(sorted(getattr(layer, "widen_options", {}).items()))
    return (
        type(layer),
        getattr(layer, "num_groups", None),
        getattr(layer, "devices", None),
        options,
    )


def _wide_layer(layers: list[nn.Module], first_copy: int = 0) -> nn.Module:
    """One layer of the wide model from the same layer of K models (copies ``first_copy``,
    ``first_copy + 1``, ...; each wide layer remembers them in ``copy_range``)."""
    first, k = layers[0], len(layers)
    if not all(_kind(layer) == _kind(first) for layer in layers):
        if not all(isinstance(layer, NORM_TYPES) for layer in layers):
            raise ValueError("stack needs models with the same layers (norms may differ)")
        runs: list[list[nn.Module]] = []  # consecutive copies with the same kind of norm
        for layer in layers:
            if runs and _kind(runs[-1][0]) == _kind(layer):
                runs[-1].append(layer)
            else:
                runs.append([layer])
        blocks, start = [], first_copy
        for run in runs:
            blocks.append(_wide_layer(run, start))
            start += len(run)
        wide = ChannelBlocks(blocks, [len(run) * _channels(run[0]) for run in runs])
        wide.copy_range = (first_copy, first_copy + k)
        return wide
    if isinstance(first, Residual):  # widen the body, layer by layer
        if len({len(r.body) for r in layers}) != 1:
            raise ValueError("stack needs residual blocks with the same layers")
        wide = Residual(
            *[_wide_layer(list(same), first_copy) for same in zip(*layers, strict=True)]
        )
    else:
        wide = _same_wide_layer(layers)
    wide.copy_range = (first_copy, first_copy + k)
    return wide


def _same_wide_layer(layers: list[nn.Module]) -> nn.Module:
    first, k = layers[0], len(layers)
    if hasattr(first, "widen"):  # a layer that widens itself (bnbook.skipinit.BranchScale)
        return first.widen(layers)
    shapes = {tuple((n, tuple(p.shape)) for n, p in layer.named_parameters()) for layer in layers}
    if len(shapes) != 1:
        raise ValueError(f"stack needs layers of the same shapes, got {sorted(shapes)}")
    if isinstance(first, nn.Conv2d):
        wide = nn.Conv2d(
            k * first.in_channels,
            k * first.out_channels,
            first.kernel_size,
            stride=first.stride,
            padding=first.padding,
            bias=first.bias is not None,
            groups=k * first.groups,
        )
        wide.weight.data = _cat([layer.weight for layer in layers])
        if first.bias is not None:
            wide.bias.data = _cat([layer.bias for layer in layers])
        return wide
    if isinstance(first, (nn.Linear, GroupedLinear)):
        wide = GroupedLinear(k, first.in_features, first.out_features, first.bias is not None)
        wide.weight.data = torch.stack([layer.weight.detach() for layer in layers])
        if first.bias is not None:
            wide.bias.data = torch.stack([layer.bias.detach() for layer in layers])
        return wide
    if isinstance(first, (nn.BatchNorm1d, nn.BatchNorm2d)):
        options = {"devices": first.devices} if hasattr(first, "devices") else {}
        options.update(getattr(first, "widen_options", {}))  # e.g. bnbook.variants' modules
        wide = type(first)(
            k * first.num_features, eps=first.eps, momentum=first.momentum, **options
        )
        for name in ("weight", "bias"):
            getattr(wide, name).data = _cat([getattr(layer, name) for layer in layers])
        for name in ("running_mean", "running_var"):
            setattr(wide, name, _cat([getattr(layer, name) for layer in layers]))
        wide.num_batches_tracked = first.num_batches_tracked.clone()
        return wide
    if isinstance(first, nn.GroupNorm):
        wide = nn.GroupNorm(k * first.num_groups, k * first.num_channels, eps=first.eps)
        wide.weight.data = _cat([layer.weight for layer in layers])
        wide.bias.data = _cat([layer.bias for layer in layers])
        return wide
    if isinstance(first, nn.LayerNorm):  # over each copy's features: a GroupNorm of K groups
        (features,) = first.normalized_shape
        wide = nn.GroupNorm(k, k * features, eps=first.eps)
        wide.weight.data = _cat([layer.weight for layer in layers])
        wide.bias.data = _cat([layer.bias for layer in layers])
        return wide
    elementwise = (nn.ReLU, nn.MaxPool2d, nn.AdaptiveAvgPool2d, nn.Flatten, nn.Identity, nn.Dropout)
    if isinstance(first, elementwise):
        return copy.deepcopy(first)  # acts on each channel (or copies' blocks) alone
    raise ValueError(f"stack does not know how to widen {type(first).__name__}")


def stack(models: Sequence[nn.Sequential]) -> nn.Sequential:
    """K models with the same layers as one wide model (see the module's docstring).

    The wide model takes ``(N, K, 8, 8)`` (copy k's images in channel k) and returns
    ``(N, K·10)`` (copy k's logits in columns ``10k … 10k+9``).
    """
    if len(models) == 0:
        raise ValueError("stack needs at least one model")
    if len({len(m) for m in models}) != 1:
        raise ValueError("stack needs models with the same layers")
    wide = nn.Sequential(*[_wide_layer(list(layers)) for layers in zip(*models, strict=True)])
    wide.train(models[0].training)
    return wide


def _unstack_layer(wide_layer: nn.Module, k: int, layer: nn.Module) -> None:
    """Copy the parameters and buffers of copy ``k`` of ``wide_layer`` into ``layer``."""
    if isinstance(wide_layer, ChannelBlocks):
        block = next(b for b in wide_layer.blocks if b.copy_range[0] <= k < b.copy_range[1])
        return _unstack_layer(block, k, layer)
    if isinstance(wide_layer, Residual):
        for wide_inner, inner in zip(wide_layer.body, layer.body, strict=True):
            _unstack_layer(wide_inner, k, inner)
        return None
    first, end = wide_layer.copy_range
    j, copies = k - first, end - first
    if isinstance(wide_layer, GroupedLinear):
        layer.weight.copy_(wide_layer.weight[j])
        if layer.bias is not None:
            layer.bias.copy_(wide_layer.bias[j])
        return None
    tensors = [*layer.named_parameters(recurse=False), *layer.named_buffers(recurse=False)]
    for name, value in tensors:
        source = getattr(wide_layer, name).detach()
        if name == "num_batches_tracked":
            value.copy_(source)
        else:
            size = source.shape[0] // copies
            value.copy_(source[j * size : (j + 1) * size].view_as(value))
    return None


@torch.no_grad()
def unstack_into(wide: nn.Sequential, k: int, model: nn.Sequential) -> nn.Sequential:
    """Copy the parameters and buffers of copy ``k`` of ``wide`` into ``model``, in place."""
    for wide_layer, layer in zip(wide, model, strict=True):
        _unstack_layer(wide_layer, k, layer)
    model.train(wide.training)
    return model


def unstack(wide: nn.Sequential, k: int, template: nn.Sequential) -> nn.Sequential:
    """Copy ``k`` of ``wide`` as a model of its own (a copy of ``template`` with its state)."""
    return unstack_into(wide, k, copy.deepcopy(template))
