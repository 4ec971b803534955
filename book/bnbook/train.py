r"""Training small networks on real digits, with and without batch norm (needs torch, sklearn).

The book's training chapter and the chapters after it share this module. It is imported
explicitly (``from bnbook import train``), never by ``import bnlib``, which needs NumPy only.

- **Data**: :func:`load_digits_split`, scikit-learn's 1,797 handwritten 8×8 digits (they ship
  inside the package: nothing is downloaded), split once into fixed, stratified train and
  test sets, as float32 tensors of shape ``(N, 1, 8, 8)``.
- **Models**: :func:`make_cnn`, three conv → norm → ReLU blocks and a linear head, with
  ``norm="batch"`` (``BatchNorm2d``), ``"group"`` (``GroupNorm``), ``"layer"``
  (``GroupNorm`` with one group: LayerNorm over each image's ``C·H·W`` values) or ``"none"``;
  :func:`make_mlp`, the same idea with linear layers and ``BatchNorm1d``/``LayerNorm``.
- **Training**: :func:`train` (one model) and :func:`train_many` (several models, each with
  its own seed, learning rate and batches, in one pass), SGD with momentum on the
  cross-entropy; :func:`evaluate` for loss and accuracy.

How :func:`train_many` is fast: a tiny network on 8×8 images spends most of its time in
PyTorch's per-call overhead, not in arithmetic. So :func:`stack` lays K models side by side
as *one* wide model whose convolutions have ``groups=K`` (copy k's channels only see copy
k's channels), whose ``BatchNorm2d`` has K·C channels (batch norm is per channel, so the
copies' statistics never mix), and whose ``GroupNorm`` has K times the groups. Copy k gets
its own images in input channel k. Its outputs, gradients and updates are exactly those of
model k trained alone (up to float rounding; ``tests/test_train.py`` checks it), and
:func:`unstack` takes model k back out.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

#: The normalizations :func:`make_cnn` and :func:`make_mlp` know.
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


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Digits:
    """A fixed split of scikit-learn's digits: images ``(N, 1, 8, 8)`` float32, labels int64.

    Pixels (0 … 16 in the data set) are standardized with the training set's mean and
    standard deviation (one number each, ``pixel_mean`` and ``pixel_std``).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    pixel_mean: float
    pixel_std: float


def load_digits_split(test_fraction: float = 0.25, seed: int = 0) -> Digits:
    """scikit-learn's ``load_digits`` (1,797 images, 10 classes), split once, stratified.

    ``train_test_split(..., stratify=labels, random_state=seed)`` keeps each digit's share
    equal in both parts; the same ``seed`` always gives the same split.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    digits = load_digits()
    images = digits.images.astype(np.float32)  # (1797, 8, 8), values 0 … 16
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target, test_size=test_fraction, stratify=digits.target, random_state=seed
    )
    mean, std = float(x_train.mean()), float(x_train.std())

    def tensor(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy((x - mean) / std).unsqueeze(1)  # (N, 1, 8, 8)

    return Digits(
        tensor(x_train),
        torch.from_numpy(y_train.astype(np.int64)),
        tensor(x_test),
        torch.from_numpy(y_test.astype(np.int64)),
        mean,
        std,
    )


def batch_indices(n: int, batch_size: int, steps: int, seed: int) -> torch.Tensor:
    """Which training images each step uses: ``(steps, batch_size)`` indices into ``n``.

    Each epoch is a fresh random order of all ``n`` images (``torch.randperm`` with a
    generator seeded by ``seed``), cut into batches; the last, incomplete batch of an epoch
    is dropped (as ``DataLoader(..., shuffle=True, drop_last=True)``).
    """
    if not 1 <= batch_size <= n:
        raise ValueError(f"batch_size must be between 1 and the {n} training images")
    generator = torch.Generator().manual_seed(seed)
    per_epoch = n // batch_size
    epochs = math.ceil(steps / per_epoch)
    used = per_epoch * batch_size
    orders = [torch.randperm(n, generator=generator)[:used] for _ in range(epochs)]
    return torch.cat(orders).view(-1, batch_size)[:steps]


# --------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------


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
            if isinstance(module, (nn.Conv2d, nn.Linear, GroupedLinear)):
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


# --------------------------------------------------------------------------------------
# Several models as one: stack and unstack
# --------------------------------------------------------------------------------------


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
    """Layers of one kind widen into one layer (GroupNorms only with the same groups)."""
    return (type(layer), getattr(layer, "num_groups", None), getattr(layer, "devices", None))


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
    if isinstance(first, (nn.ReLU, nn.MaxPool2d, nn.AdaptiveAvgPool2d, nn.Flatten, nn.Identity)):
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


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------


@dataclass
class History:
    """What one training run recorded.

    ``train_loss[t]``: the cross-entropy of the batch at step t (before its update).
    ``eval_steps``, ``test_loss``, ``test_accuracy``: measured in eval mode on the test set
    after those many steps (0 = before training). ``diverged``: the loss became NaN or
    infinite (training of that run stops counting; its later losses are NaN).
    ``activations``: per pre-activation layer, ``(records, C, 3)`` percentiles (15, 50, 85)
    of each channel over the training batch at steps ``activation_steps``.
    ``checkpoints``: step → a copy of the model's state dict at that step.
    """

    lr: float
    batch_size: int
    seed: int
    steps: int
    train_loss: np.ndarray
    eval_steps: np.ndarray
    test_loss: np.ndarray
    test_accuracy: np.ndarray
    diverged: bool
    activation_steps: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    activations: list[np.ndarray] = field(default_factory=list)
    checkpoints: dict[int, dict] = field(default_factory=dict)

    @property
    def final_accuracy(self) -> float:
        """Test accuracy at the end (0 for a run that diverged)."""
        return 0.0 if self.diverged else float(self.test_accuracy[-1])

    def final_loss(self, last: int = 20) -> float:
        """Mean training loss over the last ``last`` steps (inf for a run that diverged)."""
        return math.inf if self.diverged else float(np.mean(self.train_loss[-last:]))


def _learning_rates(wide: nn.Sequential, lrs: Sequence[float]) -> list[tuple]:
    """``(parameter, learning rate)`` for every parameter of ``wide``; the rate is a tensor
    that gives each copy's rows (dim 0 holds the copies) that copy's rate."""
    pairs = []
    for module in wide.modules():
        if not hasattr(module, "copy_range"):
            continue
        first, end = module.copy_range
        rates = torch.tensor(lrs[first:end], dtype=torch.float32)
        for p in module.parameters(recurse=False):
            per_row = rates.repeat_interleave(p.shape[0] // (end - first))
            pairs.append((p, per_row.view(-1, *([1] * (p.dim() - 1)))))
    return pairs


@torch.no_grad()
def _evaluate_wide(wide: nn.Sequential, x: torch.Tensor, y: torch.Tensor, copies: int):
    """Test loss and accuracy of each copy, in eval mode: two arrays of shape (K,)."""
    was_training = wide.training
    wide.eval()
    logits = wide(x.expand(-1, copies, -1, -1).contiguous() if x.dim() == 4 else x)
    logits = logits.view(x.shape[0], copies, NUM_CLASSES)
    labels = y.view(-1, 1).expand(-1, copies)
    loss = F.cross_entropy(logits.transpose(1, 2), labels, reduction="none").mean(0)
    accuracy = (logits.argmax(2) == labels).float().mean(0)
    wide.train(was_training)
    return loss.numpy().astype(np.float64), accuracy.numpy().astype(np.float64)


def train_many(
    models: Sequence[nn.Sequential],
    data: Digits,
    lrs: Sequence[float],
    steps: int,
    batch_size: int,
    seeds: Sequence[int],
    eval_every: int | None = None,
    record_activations_every: int | None = None,
    checkpoint_steps: Sequence[int] = (),
) -> list[History]:
    r"""Train each ``models[k]`` with learning rate ``lrs[k]`` on batches drawn with
    ``seeds[k]``, all at once (:func:`stack`); the models are updated in place.

    Each step, for every model: a batch of ``batch_size`` training images
    (:func:`batch_indices`), the mean cross-entropy, its gradient ``g``, and SGD with
    momentum :data:`MOMENTUM` (μ), exactly as ``torch.optim.SGD(lr, momentum=μ)``:

    .. math:: b \leftarrow \mu\, b + g, \qquad \theta \leftarrow \theta - \text{lr}\cdot b .

    The model is in training mode (batch norm uses batch statistics and updates its running
    statistics). Every ``eval_every`` steps (and at 0 and the end) each model is evaluated
    on the test set in eval mode.
    """
    k = len(models)
    if not (len(lrs) == len(seeds) == k):
        raise ValueError(
            f"need one lr and one seed per model: {k} models, {len(lrs)} lrs, {len(seeds)} seeds"
        )
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    n = data.x_train.shape[0]
    indices = torch.stack([batch_indices(n, batch_size, steps, s) for s in seeds], dim=2)
    eval_every = eval_every or steps
    eval_at = sorted({0, steps, *range(eval_every, steps, eval_every)})
    wide = stack(models).train()
    params, lr_per_param = zip(*_learning_rates(wide, list(lrs)), strict=True)
    if len(params) != len(list(wide.parameters())):
        raise RuntimeError("stack left a parameter without a copy range")  # a bug, not input
    buffers = [torch.zeros_like(p) for p in params]

    recorded = pre_activations(models[0]) if record_activations_every else []
    captured: dict[int, torch.Tensor] = {}
    hooks = [
        wide[i].register_forward_hook(lambda mod, inp, out, i=i: captured.__setitem__(i, out))
        for i in recorded
    ]
    activation_steps, activations = [], []
    losses = np.full((steps, k), np.nan)
    evals = []
    checkpoints: dict[int, list[dict]] = {}
    for step in range(steps + 1):
        if step in eval_at:
            evals.append(_evaluate_wide(wide, data.x_test, data.y_test, k))
        if step in checkpoint_steps:
            checkpoints[step] = [unstack(wide, j, models[j]).state_dict() for j in range(k)]
        if step == steps:
            break
        idx = indices[step]  # (batch_size, K)
        x = data.x_train[idx].view(batch_size, k, *data.x_train.shape[2:])
        logits = wide(x).view(batch_size, k, NUM_CLASSES)
        loss = F.cross_entropy(logits.transpose(1, 2), data.y_train[idx], reduction="none")
        per_copy = loss.mean(0)  # (K,)
        losses[step] = per_copy.detach().numpy()
        if record_activations_every and step % record_activations_every == 0:
            activation_steps.append(step)
            activations.append([_channel_percentiles(captured[i], k) for i in recorded])
        for p in params:
            p.grad = None
        per_copy.sum().backward()  # copies share no parameter: each gets its own gradient
        sgd_step(params, buffers, lr_per_param)
    for hook in hooks:
        hook.remove()
    for j in range(k):
        unstack_into(wide, j, models[j])

    histories = []
    for j in range(k):
        diverged = not np.all(np.isfinite(losses[:, j]))
        histories.append(
            History(
                lr=float(lrs[j]),
                batch_size=batch_size,
                seed=int(seeds[j]),
                steps=steps,
                train_loss=losses[:, j].copy(),
                eval_steps=np.array(eval_at),
                test_loss=np.array([e[0][j] for e in evals]),
                test_accuracy=np.array([e[1][j] for e in evals]),
                diverged=diverged,
                activation_steps=np.array(activation_steps, dtype=int),
                activations=[
                    np.stack([rec[layer][j] for rec in activations])
                    for layer in range(len(recorded))
                ]
                if activations
                else [],
                checkpoints={s: states[j] for s, states in checkpoints.items()},
            )
        )
    return histories


@torch.no_grad()
def sgd_step(params, buffers, lrs, momentum: float = MOMENTUM) -> None:
    """One step of SGD with momentum, as ``torch.optim.SGD(lr, momentum)`` takes it: for
    each parameter p, its gradient g, its momentum buffer b and its learning rate lr
    (a number, or a tensor that gives each copy's rows their own rate)."""
    for p, b, lr in zip(params, buffers, lrs, strict=True):
        b.mul_(momentum).add_(p.grad)  # b ← μ·b + g
        p.sub_(lr * b)  # p ← p − lr·b


def _channel_percentiles(out: torch.Tensor, copies: int) -> list[np.ndarray]:
    """Per copy, the (15, 50, 85) percentiles of each channel of ``out`` ``(N, K·C, ...)``."""
    out = out.detach()
    kc = out.shape[1]
    per_channel = out.transpose(0, 1).reshape(kc, -1)  # (K·C, N·H·W)
    q = torch.quantile(per_channel, torch.tensor([0.15, 0.5, 0.85]), dim=1).T  # (K·C, 3)
    return list(q.view(copies, kc // copies, 3).numpy().astype(np.float64))


def train(
    model: nn.Sequential,
    data: Digits,
    lr: float,
    steps: int,
    batch_size: int,
    seed: int = 0,
    **options,
) -> History:
    """Train one model in place (:func:`train_many` with one model); returns its history."""
    return train_many([model], data, [lr], steps, batch_size, [seed], **options)[0]


@torch.no_grad()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int | None = None
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``(x, y)``, in the model's current mode.

    ``batch_size=None`` passes all of ``x`` at once; otherwise in consecutive batches of
    that size (which matters in training mode, where batch norm uses each batch's
    statistics). In training mode batch norm's running statistics are updated, as in any
    forward pass: pass a copy (``copy.deepcopy(model)``) to keep them.
    """
    batch_size = batch_size or x.shape[0]
    total_loss, correct = 0.0, 0
    for start in range(0, x.shape[0], batch_size):
        logits = model(x[start : start + batch_size])
        labels = y[start : start + batch_size]
        total_loss += float(F.cross_entropy(logits, labels, reduction="sum"))
        correct += int((logits.argmax(1) == labels).sum())
    return total_loss / x.shape[0], correct / x.shape[0]


# --------------------------------------------------------------------------------------
# The loss landscape along the gradient (Santurkar et al. 2018)
# --------------------------------------------------------------------------------------


def loss_and_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    """The training-mode loss of ``model`` on ``(x, y)`` and its gradient (one tensor per
    parameter). Works on a copy: the model, and its running statistics, stay as they are."""
    probe = copy.deepcopy(model).train()
    for layer in norm_layers(probe):
        if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
            layer.momentum = 0.0  # running = (1 − 0)·running + 0·batch: unchanged
    loss = F.cross_entropy(probe(x), y)
    grads = torch.autograd.grad(loss, list(probe.parameters()))
    return float(loss.detach()), [g.detach() for g in grads]


@dataclass
class AlongGradient:
    """What happens when ``model`` steps ``η`` along its negative gradient ``g``.

    ``loss[i]``: L(θ − η_i g); ``gradient_change[i]``: ‖∇L(θ − η_i g) − g‖;
    ``smoothness[i]``: gradient_change / ‖η_i g‖, how fast the gradient changes per unit
    of distance moved. Its maximum is what Santurkar et al. call the "effective
    β-smoothness" (a Lipschitz constant of the gradient; no relation to batch norm's β).
    """

    etas: np.ndarray
    loss0: float
    grad_norm: float
    loss: np.ndarray
    gradient_change: np.ndarray
    smoothness: np.ndarray


def along_gradient(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, etas: Sequence[float]
) -> AlongGradient:
    """Loss and gradient at θ − η·∇L(θ) for each η, on the fixed batch ``(x, y)``."""
    loss0, g = loss_and_gradient(model, x, y)
    grad_norm = math.sqrt(sum(float((gi**2).sum()) for gi in g))
    losses, changes = [], []
    for eta in etas:
        moved = copy.deepcopy(model)
        with torch.no_grad():
            for p, gi in zip(moved.parameters(), g, strict=True):
                p.sub_(eta * gi)
        loss, g_moved = loss_and_gradient(moved, x, y)
        losses.append(loss)
        pairs = zip(g_moved, g, strict=True)
        changes.append(math.sqrt(sum(float(((a - b) ** 2).sum()) for a, b in pairs)))
    etas = np.asarray(etas, dtype=float)
    changes = np.asarray(changes)
    return AlongGradient(
        etas, loss0, grad_norm, np.asarray(losses), changes, changes / (etas * grad_norm)
    )
