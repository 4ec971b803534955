"""bnlib: batch normalization in NumPy, checked against PyTorch.

The core needs NumPy only:

- :mod:`bnlib.functional`: the math, each forward beside its backward (the reference), and
  the public functions ``batch_norm``, ``batch_norm_backward``, ...
- :mod:`bnlib.kernels`: the fast kernels the public functions run.
- :mod:`bnlib.module`: :class:`BatchNorm2d`, the stateful module.
- :mod:`bnlib.fold`: :func:`fold_conv_bn`, batch norm folded into the layer before it.
- :mod:`bnlib.check`: checks for a student's own batch norm, with diagnoses.
- :mod:`bnlib.gradcheck`: finite-difference gradients.

The book's experiments, figures and explorers (:mod:`bnbook.simulate`, :mod:`bnbook.plots`,
:mod:`bnbook.widgets`) need matplotlib and ipywidgets (``pip install "bnlib[book]"``);
import them explicitly.
"""

from bnlib import check, gradcheck
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
    "gradcheck",
    "fold_conv_bn",
    "batch_norm",
    "batch_norm_backward",
    "batch_norm_backward_staged",
    "batch_norm_eval_backward",
    "batch_stats",
]
