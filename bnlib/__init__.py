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
- :mod:`bnlib.renorm`: batch renormalization (Ioffe 2017); :mod:`bnlib.ghost`: ghost batch
  norm (Hoffer et al. 2017), statistics per sub-batch of a large batch.
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
from bnlib.ghost import ghost_batch_norm_backward, ghost_batch_norm_forward
from bnlib.module import BatchNorm2d
from bnlib.renorm import batch_renorm_backward, batch_renorm_forward

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
    "batch_renorm_forward",
    "batch_renorm_backward",
    "ghost_batch_norm_forward",
    "ghost_batch_norm_backward",
]
