"""The registry of graded homework: for each homework notebook, its graded parts.

A **part** is one function the student writes, graded on its own:

- ``function``: the name the grader looks up in the notebook (``bn_forward``);
- ``points``: what the part is worth;
- ``check``: a :class:`bnlib.check.Check`, which holds the function's argument and output
  names, the reference (expected values), the classic mistakes (each a wrong reference, for
  diagnoses, each with its own ``deduction``), ``check.public()`` (the fixed cases the
  notebook's check cell shows) and ``check.hidden(rng)`` (fresh random cases, drawn anew for
  every grading run);
- ``deductions``: the rubric, points lost per diagnosed mistake (keyed by
  :class:`bnlib.check.Mistake` ``key``; :func:`deductions` takes each mistake's own), plus
  :data:`DTYPE` (an output in another dtype than the input's), :data:`IN_PLACE` (an input
  modified in place) and :data:`UNKNOWN` (a mistake without an entry; default half the
  part's points);
- ``caller``: the function, ``"module:name"`` of a module the sandbox can import (bnlib's),
  that calls the student's function on one :class:`bnlib.check.Trial` inside the sandbox
  and hands back a :class:`bnlib.check.Returned` of plain arrays; :func:`bnlib.check.call`
  by default. A part whose arguments or result are not arrays (a torch model built from the
  trial's arrays, a module whose buffers are the result) names its own caller; the runner,
  the frames and the judging stay the same (``grader/runner.py``).

A **homework** is a notebook: ``name`` (the stem of its student notebook, e.g.
``05_homework``, which ``grader/editions.py`` also stamps into the notebook's metadata),
``source`` (its MyST Markdown, with the solutions) and ``parts``; ``expected_flags``, the
flags every honest notebook of it raises (homework 2 builds a torch model: ``calls torch``),
left out of its reports (with ``torch_functions``, the only functions that may use torch:
torch in any other graded function is flagged ``calls torch in a NumPy part``);
``helpers``, the names of ``bnlib.check`` its notebook calls that are not checks
(``recalibration_problem``), not flagged.

To add a homework: write its checks as :class:`bnlib.check.Check` objects (reference,
mistakes with their deductions, public and hidden trials) in a module of ``bnlib/check/``,
then add a :class:`Homework` to :data:`HOMEWORKS`. ``make homework`` then builds its
editions and its Gradescope zip, and ``make grade HOMEWORK=name`` grades its notebooks.
How points are given is :mod:`grader.scoring`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bnlib import check
from bnlib.check import Check, Trial

ROOT = Path(__file__).resolve().parent.parent
DTYPE = "dtype"
IN_PLACE = "in_place"
UNKNOWN = "unknown_mistake"
DEFAULT_CALLER = "bnlib.check:call"


@dataclass(frozen=True)
class Part:
    """One graded function of a homework (see the module's docstring)."""

    name: str
    function: str
    points: float
    check: Check
    deductions: Mapping[str, float] = field(default_factory=dict)
    caller: str = DEFAULT_CALLER

    def trials(self, rng: np.random.Generator) -> list[Trial]:
        """The trials a grading run makes: the public cases, then fresh hidden ones."""
        return [*self.check.public(), *self.check.hidden(rng)]


@dataclass(frozen=True)
class Homework:
    """A homework notebook: its name (the student notebook's stem), source and parts."""

    name: str
    source: Path
    parts: tuple[Part, ...]
    expected_flags: frozenset[str] = frozenset()  # flags every honest notebook raises
    helpers: frozenset[str] = frozenset()  # bnlib.check names its notebook uses, not checks
    torch_functions: frozenset[str] = frozenset()  # the functions that may use torch
    packages: tuple[str, ...] = ()  # what its notebooks need besides NumPy (Gradescope's pins)

    @property
    def max_score(self) -> float:
        return sum(p.points for p in self.parts)

    @property
    def functions(self) -> set[str]:
        return {p.function for p in self.parts}


def deductions(check: Check, dtype: float, in_place: float) -> dict[str, float]:
    """The part's default rubric: each classic mistake's own deduction (it carries it), and
    the points a wrong dtype and an in-place change cost."""
    return {**{m.key: m.deduction for m in check.mistakes}, DTYPE: dtype, IN_PLACE: in_place}


def check_functions() -> set[str]:
    """The names in ``bnlib.check`` a notebook's check cells may use: the checks of every
    registered part (``bnlib.check.forward(...)``) and the battery ``CASES``. Anything else
    there (the references, the mistakes, the engine) is the answer key: flagged."""
    names = {"CASES"} | {p.check.name for hw in HOMEWORKS.values() for p in hw.parts}
    return names | {name for hw in HOMEWORKS.values() for name in hw.helpers}


HOMEWORK_05 = Homework(
    name="05_homework",
    source=ROOT / "chapters" / "05_homework.md",
    parts=(
        Part("forward", "bn_forward", 4, check.FORWARD, deductions(check.FORWARD, 0.5, 1)),
        Part("backward", "bn_backward", 4, check.BACKWARD, deductions(check.BACKWARD, 0.5, 1)),
        Part(
            "running_stats",
            "bn_running_stats",
            2,
            check.RUNNING_STATS,
            deductions(check.RUNNING_STATS, 0.25, 0.5),
        ),
    ),
)

HOMEWORK_09 = Homework(  # the second homework (its checks: bnlib.check.homework_2)
    name="09_homework_2",
    source=ROOT / "chapters" / "09_homework_2.md",
    parts=(
        Part(
            "group_norm",
            "group_norm_forward",
            3,
            check.GROUP_NORM,
            deductions(check.GROUP_NORM, 0.25, 0.5),
        ),
        Part(
            "group_norm_backward",
            "group_norm_backward",
            6,
            check.GROUP_NORM_BACKWARD,
            deductions(check.GROUP_NORM_BACKWARD, 0.5, 1),
        ),
        Part(
            "merge_stats",
            "merge_stats",
            3,
            check.MERGE_STATS,
            deductions(check.MERGE_STATS, 0.25, 0.5),
        ),
        Part(
            "recalibrate",
            "recalibrate",
            4,
            check.RECALIBRATE,
            deductions(check.RECALIBRATE, 0.25, 0.5),  # the caller hands back float32 only
            caller="bnlib.check.homework_2.recalibration:call_recalibrate",
        ),
        Part("fold_bn", "fold_bn", 3, check.FOLD_BN, deductions(check.FOLD_BN, 0.25, 0.5)),
        Part(
            "fold_orders",
            "foldable_orders",
            1,
            check.FOLD_ORDERS,
            deductions(check.FOLD_ORDERS, 0.25, 0.25),  # never applies: no array input
            caller="bnlib.check.homework_2.folding:call_fold_orders",
        ),
    ),
    expected_flags=frozenset({"calls torch"}),  # part 3 is torch: every notebook imports it
    helpers=frozenset({"recalibration_problem"}),
    torch_functions=frozenset({"recalibrate"}),  # the others: NumPy only, or flagged
    packages=("torch",),
)

HOMEWORKS: dict[str, Homework] = {hw.name: hw for hw in (HOMEWORK_05, HOMEWORK_09)}


def find(name: str) -> Homework:
    """The homework called ``name``, or SystemExit naming those there are."""
    if name not in HOMEWORKS:
        raise SystemExit(f"no homework {name!r}: the homework are {', '.join(HOMEWORKS)}")
    return HOMEWORKS[name]
