r"""Homework 2's checks (chapters/09_homework_2.md), one module per part, each a
:class:`~bnlib.check.engine.Check` with its cases (public, and hidden ones drawn afresh),
the wrong references of its classic mistakes (each with its deduction) and its reference:

- :mod:`.gn_forward`: :func:`group_norm`, ``fn(x, num_groups, gamma, beta, eps) -> y``;
- :mod:`.gn_backward`: :func:`group_norm_backward`, ``fn(dy, x, num_groups, gamma,
  eps) -> (dx, dgamma, dbeta)``;
- :mod:`.merging`: :func:`merge_stats`, ``fn(count_a, mean_a, m2_a, count_b, mean_b, m2_b) ->
  (count, mean, m2)``;
- :mod:`.recalibration`: :func:`recalibrate`, ``fn(model, batches) -> model`` (torch), and
  :func:`recalibration_problem`, the stale model the homework gives;
- :mod:`.folding`: :func:`fold_bn`, ``fn(conv_w, conv_b, running_mean, running_var, eps,
  gamma, beta) -> (weight, bias)``, and :func:`fold_orders`, ``fn() -> (conv_bn,
  bn_conv_zero_pad, bn_conv_no_pad)``.
"""

from bnlib.check.homework_2.folding import FOLD_BN, FOLD_ORDERS, fold_bn, fold_orders
from bnlib.check.homework_2.gn_backward import GROUP_NORM_BACKWARD, group_norm_backward
from bnlib.check.homework_2.gn_forward import GROUP_NORM, group_norm
from bnlib.check.homework_2.merging import MERGE_STATS, merge_stats
from bnlib.check.homework_2.recalibration import (
    RECALIBRATE,
    recalibrate,
    recalibration_problem,
)

__all__ = [
    "FOLD_BN",
    "FOLD_ORDERS",
    "GROUP_NORM",
    "GROUP_NORM_BACKWARD",
    "MERGE_STATS",
    "RECALIBRATE",
    "fold_bn",
    "fold_orders",
    "group_norm",
    "group_norm_backward",
    "merge_stats",
    "recalibrate",
    "recalibration_problem",
]
