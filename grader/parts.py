"""The registry of graded homework: for each homework notebook, its graded parts.

A **part** is one function the student writes, graded on its own:

- ``function``: the name the grader looks up in the notebook (``bn_forward``);
- ``points``: what the part is worth;
- ``check``: a :class:`bnlib.check.Check`, which holds the function's argument and output
  names, the reference (expected values), the classic mistakes (each a wrong reference, for
  diagnoses), ``check.public()`` (the fixed cases the notebook's check cell shows) and
  ``check.hidden(rng)`` (fresh random cases, drawn anew for every grading run);
- ``deductions``: the rubric, points lost per diagnosed mistake (keyed by
  :class:`bnlib.check.Mistake` ``key``), plus :data:`DTYPE` (an output in the wrong dtype),
  :data:`IN_PLACE` (an input modified in place) and :data:`UNKNOWN` (a mistake without an
  entry; default half the part's points);
- ``assess``: the assessor, ``assess(part, trials, returned, points, deductions) ->
  PartScore``; :func:`assess_part` by default. It runs in the grader's own process, on the
  arrays the sandboxed kernel handed back.

A **homework** is a notebook: ``name`` (the stem of its student notebook, e.g.
``05_homework``, which ``grader/homework.py`` also stamps into the notebook's metadata),
``source`` (its MyST Markdown, with the solutions) and ``parts``.

To add a homework: write its checks as :class:`bnlib.check.Check` objects (reference,
mistakes, public and hidden trials), then add a :class:`Homework` to :data:`HOMEWORKS`.
``make homework`` then builds its editions and its Gradescope zip, and ``make grade``
grades its notebooks.

Scoring (:func:`score`), per part:

    credit = points × (hidden cases whose values are right, or wrong by a diagnosed
                       mistake) / hidden cases
             − Σ deductions[mistake] over the diagnosed mistakes
             − deductions[DTYPE] if any output had the wrong dtype
             − deductions[IN_PLACE] if any input was changed in place,

floored at 0. Diagnoses, dtype and in-place changes are judged on every case, public and
hidden; the share of cases right counts the hidden ones only, as outputs copied for the
public cases are worth nothing (and flagged). So a function that is right but for one
diagnosed mistake loses that mistake's points, whatever number of cases the mistake shows
in; wrong values that no classic mistake explains, raises, wrong shapes and time-outs lose
their cases' share.

The rubric is configurable without editing code: ``grader/grade.py --rubric FILE`` reads a
TOML file such as::

    [05_homework.forward]
    points = 5
    deductions = { eps_outside_sqrt = 2, dtype = 0.25 }
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bnlib import check
from bnlib.check import Check, Returned, Trial

ROOT = Path(__file__).resolve().parent.parent
DTYPE = "dtype"
IN_PLACE = "in_place"
UNKNOWN = "unknown_mistake"


@dataclass
class PartScore:
    """The grade of one part: points, and every reason a point was lost."""

    name: str
    function: str
    points: float
    max_points: float
    deductions: list[dict] = field(default_factory=list)  # {"key", "points", "message"}
    cases_total: int = 0
    cases_right: int = 0  # values right (a dtype slip or an in-place change aside)
    reason: str = ""  # when nothing could be graded: missing, never returned, ...
    report: str = ""  # the check's report, as a student reads it
    diagnoses: list[dict] = field(default_factory=list)
    public_only: bool = False  # right on the public cases, wrong on all hidden: copied?

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def assess_part(
    part: Part,
    trials: list[Trial],
    returned: list[Returned],
    points: float,
    deductions: Mapping[str, float],
) -> PartScore:
    """The default assessor: :func:`bnlib.check.assess`, then :func:`score`."""
    result = check.assess(part.check, trials, returned)
    return score(part, result, points, deductions, public=len(part.check.public()))


@dataclass(frozen=True)
class Part:
    """One graded function of a homework (see the module's docstring)."""

    name: str
    function: str
    points: float
    check: Check
    deductions: Mapping[str, float] = field(default_factory=dict)
    assess: Callable[..., PartScore] = assess_part


@dataclass(frozen=True)
class Homework:
    """A homework notebook: its name (the student notebook's stem), source and parts."""

    name: str
    source: Path
    parts: tuple[Part, ...]

    @property
    def max_score(self) -> float:
        return sum(p.points for p in self.parts)


def score(
    part: Part,
    result: check.CheckResult,
    points: float,
    deductions: Mapping[str, float],
    public: int = 0,
) -> PartScore:
    """Points for one part from its check result, by the rubric (module docstring).

    The share of cases right counts the hidden cases only (those after the first
    ``public``): the public ones are known in advance, so outputs copied for them earn
    nothing. Diagnoses, dtype and in-place changes come from every case."""
    counted = result.cases[public:] or result.cases
    total = len(counted)
    right = sum(c.values_ok or c.explained for c in counted)
    public_right = all(c.values_ok for c in result.cases[:public])
    out = PartScore(
        part.name,
        part.function,
        0.0,
        points,
        cases_total=total,
        cases_right=sum(c.values_ok for c in result.cases),
        report=str(result),
        diagnoses=[
            {"mistake": d.key, "outputs": d.outputs, "message": d.message} for d in result.diagnoses
        ],
    )
    if total == 0 or right == 0:
        out.reason = result.summary or "no case gave the right values"
        if public and public_right:
            out.reason = "right on the public cases only, wrong on every hidden one"
            out.public_only = True
        return out
    credit = points * right / total
    if right < total:
        out.deductions.append(
            {
                "key": "cases",
                "points": round(points - credit, 2),
                "message": f"{total - right} of {total} hidden cases wrong, unexplained",
            }
        )
    for d in result.diagnoses:
        lost = deductions.get(d.key, deductions.get(UNKNOWN, points / 2))
        out.deductions.append({"key": d.key, "points": lost, "message": d.message})
        credit -= lost
    if any(c.dtype_wrong for c in result.cases):
        names = sorted({n for c in result.cases for n in c.dtype_wrong})
        lost = deductions.get(DTYPE, points / 8)
        message = f"{', '.join(names)} not in the input's dtype"
        out.deductions.append({"key": DTYPE, "points": lost, "message": message})
        credit -= lost
    if any(c.modified for c in result.cases):
        names = sorted({n for c in result.cases for n in c.modified})
        lost = deductions.get(IN_PLACE, points / 4)
        message = f"changes its input {', '.join(names)} in place"
        out.deductions.append({"key": IN_PLACE, "points": lost, "message": message})
        credit -= lost
    out.points = round(max(0.0, credit), 2)
    return out


def load_rubric(path: Path | None) -> dict:
    """``{homework: {part: {"points": p, "deductions": {key: points}}}}`` from a TOML file."""
    if path is None:
        return {}
    rubric = tomllib.loads(Path(path).read_text())
    for hw_name, parts in rubric.items():
        homework = HOMEWORKS.get(hw_name)
        if homework is None:
            raise SystemExit(f"rubric {path}: no homework {hw_name!r} (have {list(HOMEWORKS)})")
        by_name = {p.name: p for p in homework.parts}
        for part_name, entry in parts.items():
            part = by_name.get(part_name)
            if part is None:
                raise SystemExit(
                    f"rubric {path}: {hw_name} has no part {part_name!r} (have {sorted(by_name)})"
                )
            unknown = set(entry) - {"points", "deductions"}
            points = entry.get("points", part.points)
            if unknown or not isinstance(points, (int, float)) or points < 0:
                raise SystemExit(
                    f"rubric {path}: [{hw_name}.{part_name}] takes points = a number ≥ 0 and "
                    f"deductions = {{ key = points }}; got {entry}"
                )
            keys = {m.key for m in part.check.mistakes} | {DTYPE, IN_PLACE, UNKNOWN}
            bad = set(entry.get("deductions", {})) - keys
            if bad:
                raise SystemExit(
                    f"rubric {path}: [{hw_name}.{part_name}] deductions {sorted(bad)} are not "
                    f"mistakes of this part; its keys: {sorted(keys)}"
                )
    return rubric


def rubric_for(part: Part, homework: Homework, rubric: Mapping) -> tuple[float, dict]:
    """The part's points and deductions, the rubric file's entries over the defaults."""
    entry = rubric.get(homework.name, {}).get(part.name, {})
    deductions = {**part.deductions, **entry.get("deductions", {})}
    return float(entry.get("points", part.points)), deductions


def draw_trials(part: Part, rng: np.random.Generator) -> list[Trial]:
    """The trials a grading run makes: the public cases, then fresh hidden ones."""
    return [*part.check.public(), *part.check.hidden(rng)]


# --------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------


def deductions(check: Check, dtype: float, in_place: float) -> dict[str, float]:
    """The part's default rubric: each classic mistake's own deduction (it carries it), and
    the points a wrong dtype and an in-place change cost."""
    return {**{m.key: m.deduction for m in check.mistakes}, DTYPE: dtype, IN_PLACE: in_place}


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
            4,
            check.GROUP_NORM,
            deductions(check.GROUP_NORM, 0.5, 1),
        ),
        Part(
            "merge_stats",
            "merge_stats",
            3,
            check.MERGE_STATS,
            deductions(check.MERGE_STATS, 0.25, 0.5),
        ),
        Part("fold_bn", "fold_bn", 3, check.FOLD_BN, deductions(check.FOLD_BN, 0.25, 0.5)),
    ),
)

HOMEWORKS: dict[str, Homework] = {hw.name: hw for hw in (HOMEWORK_05, HOMEWORK_09)}
