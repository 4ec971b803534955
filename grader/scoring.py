"""Points for one part, from the arrays the sandbox handed back, by the rubric.

Runs in the grader's own process, never in the sandbox: :func:`assess` compares what came
back with the references (:func:`bnlib.check.assess`: expected values from the grader's own
copies of the inputs, the tolerance from the input's dtype and the case, never from what the
student returned), then :func:`score` gives the points. Per part:

    credit = points × (hidden cases whose values are right, or wrong by a diagnosed
                       mistake) / hidden cases
             − Σ deductions[mistake] over the diagnosed mistakes
             − deductions[DTYPE] if any output had another dtype than the input's
             − deductions[IN_PLACE] if any input was changed in place,

floored at 0. Diagnoses, dtype and in-place changes are judged on every case, public and
hidden; the share of cases right counts the hidden ones only, as outputs copied for the
public cases are worth nothing (and flagged). So a function that is right but for one
diagnosed mistake loses that mistake's points, whatever number of cases the mistake shows
in; wrong values that no classic mistake explains, raises, wrong shapes and time-outs lose
their cases' share.

The rubric is configurable without editing code: ``--rubric FILE`` reads a TOML file::

    [05_homework.forward]
    points = 5
    deductions = { eps_outside_sqrt = 2, dtype = 0.25 }
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bnlib import check
from bnlib.check import Returned, Trial
from grader.homeworks import DTYPE, HOMEWORKS, IN_PLACE, UNKNOWN, Homework, Part


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


def assess(
    part: Part,
    trials: list[Trial],
    returned: list[Returned],
    points: float,
    deductions: Mapping[str, float],
) -> PartScore:
    """The part's grade: :func:`bnlib.check.assess` on what came back, then :func:`score`."""
    result = check.assess(part.check, trials, returned)
    return score(part, result, points, deductions, public=len(part.check.public()))


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
    for key, names, message, default in (
        (DTYPE, [c.dtype_wrong for c in result.cases], "{} not in the input's dtype", points / 8),
        (IN_PLACE, [c.modified for c in result.cases], "changes its input {} in place", points / 4),
    ):
        found = sorted({n for case in names for n in case})
        if found:
            lost = deductions.get(key, default)
            text = message.format(", ".join(found))
            out.deductions.append({"key": key, "points": lost, "message": text})
            credit -= lost
    out.points = round(max(0.0, credit), 2)
    return out


# --------------------------------------------------------------------------------------
# The rubric: the registry's points and deductions, a TOML file's entries over them
# --------------------------------------------------------------------------------------


def load_rubric(path: Path | None) -> dict:
    """``{homework: {part: {"points": p, "deductions": {key: points}}}}`` from a TOML file,
    every name checked against the registry (a typo would never apply)."""
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


def effective_rubric(homework: Homework, rubric: Mapping) -> dict:
    """``{part: {"points", "deductions"}}``: what a grading run of ``homework`` used."""
    return {
        p.name: dict(zip(("points", "deductions"), rubric_for(p, homework, rubric), strict=True))
        for p in homework.parts
    }
