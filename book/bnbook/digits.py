"""The digits: scikit-learn's 1,797 handwritten 8×8 digits (they ship inside the package:
nothing is downloaded), split once into fixed, stratified train and test sets, and the
batches drawn from them. ``bnbook.train`` re-exports these names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


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
