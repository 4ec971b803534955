"""bnlib: batch normalization in NumPy, checked against PyTorch.

- :mod:`bnlib.functional`: the math, each forward beside its backward.
- :mod:`bnlib.module`: :class:`BatchNorm2d`, the stateful module.
"""

from bnlib.functional import (
    batch_norm,
    batch_norm_backward,
    batch_norm_backward_staged,
    batch_norm_eval_backward,
    batch_stats,
)
from bnlib.module import BatchNorm2d

__all__ = [
    "BatchNorm2d",
    "batch_norm",
    "batch_norm_backward",
    "batch_norm_backward_staged",
    "batch_norm_eval_backward",
    "batch_stats",
]
