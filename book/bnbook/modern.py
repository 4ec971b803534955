"""Networks of the chapter on batch norm in modern networks: a deep residual network for
the digits (:func:`make_residual_net`, with or without a zero-initialised γ), an MLP with
dropout before or after batch norm (:func:`make_dropout_mlp`), training with weight decay
(:func:`train_with_decay`), and the helpers that look inside them. Every network is an
``nn.Sequential`` of layers :func:`bnbook.wide.stack` knows, so
:func:`bnbook.train.train_many` trains several at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from bnbook.digits import Digits, batch_indices
from bnbook.models import MOMENTUM, NUM_CLASSES, Residual, norm_layer
from bnbook.train import _evaluate_wide, sgd_step
from bnbook.wide import NORM_TYPES, stack, unstack_into

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

        (N, 1, 8, 8) → conv3×3 → norm → ReLU → maxpool 2        → (N, width, 4, 4)
        depth times: x → ReLU(x + norm(conv(ReLU(norm(conv(x))))))
                                                                → (N, width, 4, 4)
                     → average over the map → linear             → (N, 10) logits

    Each block is He et al.'s (2016) basic block, a :class:`~bnbook.models.Residual`
    then a ReLU. ``zero_gamma=True`` sets γ of each block's *last* normalization to 0
    (Goyal et al. 2017): the block's branch then outputs β = 0, and
    ``ReLU(x + 0) = x`` because ``x`` came out of a ReLU, so every block starts as the
    identity. ``norm`` is one of :data:`bnbook.models.NORMS`; without a normalization
    (``"none"``) the convolutions keep their bias and there is no γ to zero
    (``zero_gamma`` must be False).
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


def make_dropout_mlp(
    place: str,
    p: float = 0.5,
    hidden: int = 128,
    seed: int = 0,
) -> nn.Sequential:
    """An MLP on the 64 pixels with two hidden layers, each linear → batch norm → ReLU,
    and dropout (probability ``p``) in one of :data:`DROPOUT_PLACES`::

        "before": linear → BN → ReLU → dropout → linear → BN → ReLU → linear
        "after":  linear → BN → ReLU → linear → BN → ReLU → dropout → linear
        "none":   linear → BN → ReLU → linear → BN → ReLU → linear

    "before" puts a batch norm after a dropout, the order Li et al. (2019) find
    harmful; "after" is their remedy: dropout only after the last batch norm.
    """
    if place not in DROPOUT_PLACES:
        raise ValueError(f"place must be one of {DROPOUT_PLACES}, got {place!r}")
    torch.manual_seed(seed)
    before = [nn.Dropout(p)] if place == "before" else []
    after = [nn.Dropout(p)] if place == "after" else []
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(64, hidden, bias=False),
        nn.BatchNorm1d(hidden),
        nn.ReLU(),
        *before,
        nn.Linear(hidden, hidden, bias=False),
        nn.BatchNorm1d(hidden),
        nn.ReLU(),
        *after,
        nn.Linear(hidden, NUM_CLASSES),
    )


@dataclass
class DecayRuns:
    """What :func:`train_with_decay` recorded for K models.

    ``train_loss`` ``(steps, K)``: each step's batch loss. ``weight_norms``
    ``(steps + 1, K, layers)``: ‖w‖ of each convolution's weight before each step and at
    the end. ``test_accuracy`` ``(K,)``: at the end, in eval mode.
    """

    train_loss: np.ndarray
    weight_norms: np.ndarray
    test_accuracy: np.ndarray


def _per_copy_rows(wide: nn.Sequential, values: Sequence[float], norm_values: Sequence[float]):
    """For each parameter of ``wide``, a tensor giving each copy's rows that copy's value
    (``norm_values`` for the normalizations' γ and β, ``values`` for the rest)."""
    rows = []
    for module in wide.modules():
        if not hasattr(module, "copy_range"):
            continue
        first, end = module.copy_range
        chosen = norm_values if isinstance(module, NORM_TYPES) else values
        per_copy = torch.tensor(chosen[first:end], dtype=torch.float32)
        for p in module.parameters(recurse=False):
            per_row = per_copy.repeat_interleave(p.shape[0] // (end - first))
            rows.append(per_row.view(-1, *([1] * (p.dim() - 1))))
    return rows


def train_with_decay(
    models: Sequence[nn.Sequential],
    data: Digits,
    lr: float,
    decays: Sequence[float],
    decay_norms: Sequence[bool],
    steps: int,
    batch_size: int,
    seeds: Sequence[int],
) -> DecayRuns:
    r"""Train each ``models[k]`` with SGD, momentum and weight decay ``decays[k]`` (on γ and
    β of its normalizations too when ``decay_norms[k]``), as ``torch.optim.SGD(lr,
    momentum, weight_decay)`` does: with ``g`` the gradient of the batch loss,

    .. math:: b \leftarrow \mu\, b + g + \lambda\,\theta, \qquad
              \theta \leftarrow \theta - \text{lr}\cdot b .

    All models at once, as :func:`bnbook.train.train_many` (batches from ``seeds[k]``);
    the models are updated in place. Records the norm of every convolution's weight.
    """
    k = len(models)
    if not (len(decays) == len(decay_norms) == len(seeds) == k):
        raise ValueError("need one decay, one decay_norms and one seed per model")
    n = data.x_train.shape[0]
    indices = torch.stack([batch_indices(n, batch_size, steps, s) for s in seeds], dim=2)
    wide = stack(models).train()
    params = list(wide.parameters())
    norm_decays = [d if include else 0.0 for d, include in zip(decays, decay_norms, strict=True)]
    rates = _per_copy_rows(wide, list(decays), norm_decays)
    buffers = [torch.zeros_like(p) for p in params]
    convs = [layer for layer in wide if isinstance(layer, nn.Conv2d)]
    losses = np.zeros((steps, k))
    norms = np.zeros((steps + 1, k, len(convs)))
    for step in range(steps + 1):
        with torch.no_grad():
            for j, conv in enumerate(convs):
                norms[step, :, j] = conv.weight.view(k, -1).norm(dim=1).numpy()
        if step == steps:
            break
        idx = indices[step]
        x = data.x_train[idx].view(batch_size, k, *data.x_train.shape[2:])
        logits = wide(x).view(batch_size, k, NUM_CLASSES)
        loss = F.cross_entropy(logits.transpose(1, 2), data.y_train[idx], reduction="none")
        per_copy = loss.mean(0)
        losses[step] = per_copy.detach().numpy()
        for p in params:
            p.grad = None
        per_copy.sum().backward()
        with torch.no_grad():
            for p, rate in zip(params, rates, strict=True):
                p.grad.add_(rate * p)  # g ← g + λθ
        sgd_step(params, buffers, [lr] * len(params), MOMENTUM)
    _, accuracy = _evaluate_wide(wide, data.x_test, data.y_test, k)
    for j in range(k):
        unstack_into(wide, j, models[j])
    return DecayRuns(losses, norms, accuracy)
