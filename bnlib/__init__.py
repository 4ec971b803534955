"""bnlib: batch normalization in NumPy, checked against PyTorch.

The core needs NumPy only:

- :mod:`bnlib.reference`: the math the chapters show, each forward beside its backward,
  one contract per operation (``forward``, ``backward``, ...), in plain NumPy.
- :mod:`bnlib.functional`: the public functions ``batch_norm``, ``batch_norm_backward``,
  ...: they check their input, then run the kernels.
- :mod:`bnlib.kernels`: the fast kernels, with the reference's signatures, on every core
  (``BNLIB_NUM_THREADS`` sets the thread count).
- :mod:`bnlib.module`: :class:`BatchNorm2d`, the stateful module.
- :mod:`bnlib.fold`: :func:`fold_conv_bn`, batch norm folded into the layer before it;
  :mod:`bnlib.norms`: group norm and layer norm; :mod:`bnlib.stats`: mean and variance
  four ways; :mod:`bnlib.sharded`, :mod:`bnlib.distributed`: synchronized batch norm.
- :mod:`bnlib.check`: checks for a student's own batch norm, with diagnoses.
- :mod:`bnlib.gradcheck`: finite-difference gradients.

:mod:`bnlib.distributed` alone needs PyTorch (``pip install "bnbook-bnlib[torch]"``). The
book's experiments, figures and explorers are not in this package: they are the book's own
package, ``bnbook`` (``book/`` in the repository).
"""

from bnlib import check, gradcheck, kernels, reference
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
    "kernels",
    "reference",
    "fold_conv_bn",
    "batch_norm",
    "batch_norm_backward",
    "batch_norm_backward_staged",
    "batch_norm_eval_backward",
    "batch_stats",
]
