"""Checks of a student's own functions, with diagnoses of the classic mistakes.

Each check takes the student's function, runs it on a battery of cases and compares it
with bnlib. It returns a :class:`CheckResult`: ``bool(result)`` is True on a pass and
``str(result)`` is a report a student can act on (a function that raises, or returns the
wrong type, shape or dtype, gets a report saying so; the checker itself never raises)::

    import bnlib.check
    print(bnlib.check.forward(my_forward))

- :mod:`bnlib.check.engine`: the machinery (:class:`Check`, :class:`Mistake`, :func:`call`,
  :func:`assess`), the same for every homework;
- :mod:`bnlib.check.homework_1`: :func:`forward`, :func:`backward`, :func:`running_stats`;
- :mod:`bnlib.check.homework_2`: :func:`group_norm`, :func:`group_norm_backward`,
  :func:`merge_stats`, :func:`recalibrate` (torch), :func:`fold_bn`, :func:`fold_orders`.

Adding a homework: a module beside these with its :class:`Check` objects (reference,
classic mistakes each with its key, message and deduction, public and hidden cases), and
its registration in ``grader/homeworks.py``.
"""

from bnlib.check.engine import (
    CaseResult,
    Check,
    CheckResult,
    Diagnosis,
    Mistake,
    Returned,
    Trial,
    assess,
    call,
)
from bnlib.check.homework_1 import (
    BACKWARD,
    CASES,
    FORWARD,
    RUNNING_STATS,
    backward,
    forward,
    running_stats,
)
from bnlib.check.homework_2 import (
    FOLD_BN,
    FOLD_ORDERS,
    GROUP_NORM,
    GROUP_NORM_BACKWARD,
    MERGE_STATS,
    RECALIBRATE,
    fold_bn,
    fold_orders,
    group_norm,
    group_norm_backward,
    merge_stats,
    recalibrate,
    recalibration_problem,
)

__all__ = [
    "BACKWARD",
    "CASES",
    "FOLD_BN",
    "FOLD_ORDERS",
    "FORWARD",
    "GROUP_NORM",
    "GROUP_NORM_BACKWARD",
    "MERGE_STATS",
    "RECALIBRATE",
    "RUNNING_STATS",
    "CaseResult",
    "Check",
    "CheckResult",
    "Diagnosis",
    "Mistake",
    "Returned",
    "Trial",
    "assess",
    "backward",
    "call",
    "fold_bn",
    "fold_orders",
    "forward",
    "group_norm",
    "group_norm_backward",
    "merge_stats",
    "recalibrate",
    "recalibration_problem",
    "running_stats",
]
