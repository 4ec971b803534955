"""bnlib: batch normalization in NumPy, checked against PyTorch.

- :mod:`bnlib.functional`: the math, each forward beside its backward.
- :mod:`bnlib.module`: :class:`BatchNorm2d`, the stateful module.
- :mod:`bnlib.fold`: :func:`fold_conv_bn`, batch norm folded into the layer before it.
- :mod:`bnlib.check`: checks for a student's own batch norm, with diagnoses.
- :mod:`bnlib.simulate`, :mod:`bnlib.plots`, :mod:`bnlib.widgets`: the book's experiments,
  figures and explorers (import them explicitly; they need matplotlib and ipywidgets).
"""

from bnlib import check
from bnlib.fold import fold_conv_bn
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
    "check",
    "fold_conv_bn",
    "batch_norm",
    "batch_norm_backward",
    "batch_norm_backward_staged",
    "batch_norm_eval_backward",
    "batch_stats",
]
