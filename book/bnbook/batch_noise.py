r"""How noisy a batch's statistics are, and why: the between-image share of the variance.

Batch norm normalizes channel c of a batch of N images with the batch's mean and variance
over its N·H·W values. How far those land from the channel's statistics over all images
depends on N and on how the values are spread. Write :math:`m_i` for the mean of image i's
H·W values in the channel. The batch mean is the mean of its N images' means,
:math:`\mu_B = \frac1N\sum_i m_i`, so over batches of images drawn at random

.. math:: \operatorname{sd}(\mu_B) = \frac{\operatorname{sd}(m_i)}{\sqrt N}
          = \sigma\,\sqrt{\frac{s}{N}}, \qquad s = \frac{\operatorname{Var}(m_i)}{\sigma^2},

with σ² the channel's variance over all values and s its **between-image share**: the part
of the variance that lies between the images' means rather than within each image.
Independent pixels give s = 1/(H·W), and the familiar 1/√(N·H·W); pixels that move together
(an image brighter as a whole) give s up to 1, and 1/√N: then H·W buys nothing. So "batch
norm pools m = N·H·W values" holds for the mean only when s is 1/(H·W); in general the
batch mean is as precise as N/s independent values.

- :func:`gain_and_offset`: the digits, each image given its own gain and offset (images that
  differ as wholes, as photographs differ in exposure);
- :func:`between_image_share`: s per channel of a stack of activations;
- :func:`batch_spread`: the spread of the batch mean and variance over random batches of N
  images, measured;
- :func:`block_inputs`: what reaches each normalization layer of a trained network;
- :func:`batch_size_sweep`: train at several batch sizes, the same number of images each,
  every normalization at its own best learning rate of a grid, over seeds;
- :class:`PerDeviceBatchNorm2d` and :func:`per_device`: batch norm with statistics over k
  groups of the batch, as data-parallel training computes it on k devices.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from torch import nn

from bnbook import train
from bnbook.train import Digits, History, norm_layers

#: The spread of the images' gains (log scale) and offsets (in the standardized pixels'
#: units) of :func:`gain_and_offset`.
GAIN_STD, OFFSET_STD = 0.5, 1.0


def gain_and_offset(
    data: Digits, gain_std: float = GAIN_STD, offset_std: float = OFFSET_STD, seed: int = 0
) -> Digits:
    """The digits with every image ``x`` replaced by ``g·x + b``, its own gain and offset.

    ``g = exp(gain_std·z₁)`` and ``b = offset_std·z₂``, with z₁, z₂ standard normal, drawn
    once per image (training and test images alike) from a generator seeded by ``seed``:
    a fixed data set whose images differ as wholes, as photographs differ in exposure.
    """
    if gain_std < 0 or offset_std < 0:
        raise ValueError(f"gain_std and offset_std must be >= 0, got {gain_std}, {offset_std}")
    generator = torch.Generator().manual_seed(seed)

    def transform(x: torch.Tensor) -> torch.Tensor:
        z = torch.randn(2, x.shape[0], 1, 1, 1, generator=generator)
        return torch.exp(gain_std * z[0]) * x + offset_std * z[1]

    return replace(data, x_train=transform(data.x_train), x_test=transform(data.x_test))


def between_image_share(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """Per channel of ``x`` ``(M, C, H, W)``: the variance of the M images' means over the
    channel's variance over all M·H·W values (both biased): a number in [0, 1]."""
    x = torch.as_tensor(x, dtype=torch.float64)
    image_means = x.mean(dim=(2, 3))  # (M, C)
    total = x.transpose(0, 1).reshape(x.shape[1], -1).var(dim=1, unbiased=False)
    return (image_means.var(dim=0, unbiased=False) / total).numpy()


def batch_spread(
    x: torch.Tensor | np.ndarray, batch_sizes: Sequence[int], draws: int = 400, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """How far a batch's statistics land from the whole set's, against the batch size.

    From ``x`` ``(M, C, H, W)`` (M images), draw ``draws`` batches of N distinct images for
    each N of ``batch_sizes``; per channel, the standard deviation over the draws of the
    batch mean, in units of the channel's standard deviation σ, and of the batch's
    (biased) variance, in units of σ². Returns two arrays ``(len(batch_sizes),)``: the
    root mean square over the channels.
    """
    x = torch.as_tensor(x, dtype=torch.float64)
    m = x.shape[0]
    if not all(1 <= n <= m for n in batch_sizes):
        raise ValueError(f"batch sizes must be between 1 and the {m} images, got {batch_sizes}")
    generator = torch.Generator().manual_seed(seed)
    flat = x.transpose(0, 1).reshape(x.shape[1], -1)
    sigma2 = flat.var(dim=1, unbiased=False)  # (C,)
    mean_spread, var_spread = [], []
    for n in batch_sizes:
        picks = torch.stack([torch.randperm(m, generator=generator)[:n] for _ in range(draws)])
        batches = x[picks]  # (draws, N, C, H, W)
        means = batches.mean(dim=(1, 3, 4))  # (draws, C)
        variances = batches.var(dim=(1, 3, 4), unbiased=False)
        mean_spread.append(torch.sqrt((means.var(dim=0) / sigma2).mean()).item())
        var_spread.append(torch.sqrt((variances.var(dim=0) / sigma2**2).mean()).item())
    return np.array(mean_spread), np.array(var_spread)


@torch.no_grad()
def block_inputs(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """What reaches each normalization layer of ``model`` when it reads ``x`` in eval mode
    (the running statistics, not the batch's, normalize the layers before): one tensor
    ``(M, C, H, W)`` per layer, in order."""
    captured: list[torch.Tensor] = []
    hooks = [
        layer.register_forward_hook(lambda mod, inp, out: captured.append(inp[0].detach()))
        for layer in norm_layers(model)
    ]
    was_training = model.training
    try:
        model.eval()(x)
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()
    return captured


class PerDeviceBatchNorm2d(nn.BatchNorm2d):
    """``BatchNorm2d`` as data-parallel training runs it on ``devices`` devices, in one
    process: in training, the batch is cut into ``devices`` equal, consecutive groups and
    each group is normalized with its own statistics, as each device normalizes its slice.

    The running statistics follow device 0's group: under ``DistributedDataParallel``'s
    default ``broadcast_buffers=True`` every forward pass copies rank 0's buffers to the
    other ranks. With ``devices=1`` this is ``BatchNorm2d`` (synchronized batch norm, whose
    statistics are the whole batch's). Eval mode is ``BatchNorm2d``'s.
    """

    def __init__(self, num_features: int, devices: int = 1, **kwargs) -> None:
        super().__init__(num_features, **kwargs)
        if devices < 1:
            raise ValueError(f"devices must be at least 1, got {devices}")
        self.devices = devices

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.devices == 1:
            return super().forward(x)
        k, (n, c) = self.devices, x.shape[:2]
        if n % k:
            raise ValueError(f"a batch of {n} does not split over {k} devices")
        # device d's images as channels d·C … d·C + C − 1 of a batch of n/k: one call
        # normalizes every device's slice with its own statistics
        rest = x.shape[2:]
        slices = x.reshape(k, n // k, c, *rest).transpose(0, 1).reshape(n // k, k * c, *rest)
        weight = None if self.weight is None else self.weight.repeat(k)
        bias = None if self.bias is None else self.bias.repeat(k)
        y = nn.functional.batch_norm(slices, None, None, weight, bias, True, 0.0, self.eps)
        y = y.reshape(n // k, k, c, *rest).transpose(0, 1).reshape(x.shape)
        with torch.no_grad():  # the buffers: device 0's slice, as BatchNorm2d updates them
            super().forward(x[: n // k].detach())
        return y


def per_device(model: nn.Module, devices: int) -> nn.Module:
    """A copy of ``model`` whose ``BatchNorm2d`` layers are :class:`PerDeviceBatchNorm2d` over
    ``devices`` devices, with the same parameters and buffers."""
    model = copy.deepcopy(model)
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if type(child) is nn.BatchNorm2d:
                layer = PerDeviceBatchNorm2d(
                    child.num_features, devices, eps=child.eps, momentum=child.momentum
                )
                layer.load_state_dict(child.state_dict())
                setattr(parent, name, layer)
    return model


# --------------------------------------------------------------------------------------
# Training at several batch sizes
# --------------------------------------------------------------------------------------


@dataclass
class Sweep:
    """What :func:`batch_size_sweep` ran: for every (norm, batch size, c, seed) the run's
    history and trained model; ``chosen[norm, batch size]`` is the c of the lowest mean
    final training loss over the seeds (the test set plays no part in the choice)."""

    batch_sizes: tuple[int, ...]
    norms: tuple[str, ...]
    c_grid: tuple[float, ...]
    seeds: tuple[int, ...]
    samples: int
    runs: dict[tuple, tuple[History, nn.Module]] = field(default_factory=dict)
    chosen: dict[tuple[str, int], float] = field(default_factory=dict)

    def run(self, norm: str, batch_size: int, seed: int) -> tuple[History, nn.Module]:
        """The run of ``norm`` at ``batch_size`` and its chosen learning rate, for ``seed``."""
        return self.runs[norm, batch_size, self.chosen[norm, batch_size], seed]

    def accuracy(self, norm: str) -> np.ndarray:
        """Final test accuracy at the chosen learning rate: ``(batch sizes, seeds)``."""
        return np.array(
            [[self.run(norm, n, s)[0].final_accuracy for s in self.seeds] for n in self.batch_sizes]
        )


def batch_size_sweep(
    make: Callable[..., nn.Module],
    data: Digits,
    norms: Sequence[str],
    batch_sizes: Sequence[int],
    c_grid: Sequence[float],
    seeds: Sequence[int],
    samples: int,
) -> Sweep:
    """Train ``make(norm, seed=s)`` at every batch size N, on ``samples`` training images
    each (``samples // N`` steps), with learning rate ``c·N/32`` (the linear scaling rule
    of Goyal et al. 2017) for every c of ``c_grid`` and every seed; then choose, for each
    normalization and N, the c whose runs end with the lowest training loss (mean over
    the seeds, over the last tenth of the steps). All runs of one norm and N train at once
    (:func:`bnbook.train.train_many`)."""
    sweep = Sweep(tuple(batch_sizes), tuple(norms), tuple(c_grid), tuple(seeds), samples)
    for norm in norms:
        for n in batch_sizes:
            settings = [(c, s) for c in c_grid for s in seeds]
            models = [make(norm, seed=s) for _, s in settings]
            histories = train.train_many(
                models, data, [c * n / 32 for c, _ in settings], samples // n, n,
                [s for _, s in settings],
            )  # fmt: skip
            for (c, s), history, model in zip(settings, histories, models, strict=True):
                sweep.runs[norm, n, c, s] = (history, model)
            last = max(1, samples // n // 10)
            loss = {
                c: np.mean([sweep.runs[norm, n, c, s][0].final_loss(last) for s in seeds])
                for c in c_grid
            }
            sweep.chosen[norm, n] = min(loss, key=loss.get)
    return sweep
