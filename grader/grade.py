"""Grade a class: every submitted notebook of one homework, each in a sandbox, with partial
credit by rubric. One bad notebook never stops the run.

    python -m grader.grade SUBMISSIONS [--homework 05_homework] [--out DIR] [--jobs 2]
        [--rubric FILE] [--timeout 300] [--cell-timeout 60] [--part-timeout 30]
        [--memory-mb 4096] [--isolation auto|bwrap|process] [--seed N]

SUBMISSIONS is a directory: every ``*.ipynb`` below it is one submission (``alice.ipynb``,
or one folder per student, ``alice/05_homework.ipynb``), named by its path relative to
SUBMISSIONS. Every notebook is graded as the run's homework: ``--homework``, else the one
most of the notebooks are (by their stamp, file name or the functions they define). A
notebook stamped for another homework is graded as the run's all the same, flagged
``stamped <other>``: the stamp is the student's to change, the homework is the
instructor's choice. OUT is ``_build/grades/<homework>`` unless given, and holds one
homework's grades only.

For each submission, ``--jobs`` at a time:

1. Its notebook is read in a bounded process of its own (:mod:`grader.notebook`): a file
   too large, or one that is not a notebook, gets a row with the status ``too large`` or
   ``unreadable`` and a zero; its code is flagged (:mod:`grader.flags`).
2. Its code cells run in the sandbox (:mod:`grader.sandbox`), each with its own time limit;
   a cell that raises, hangs or crashes is skipped and the next one runs. Each graded
   function is then called on the public cases of its check cell and on hidden cases drawn
   afresh for this run; the sandbox hands back the returned arrays, and nothing else counts.
3. Here, the arrays are compared with the references, the classic mistakes diagnosed and the
   points given by the rubric (:mod:`grader.scoring`); the reports are written
   (:mod:`grader.reports`).

Any failure of the grader or of the machine on one submission (the sandbox did not start,
an error in the grader's code) is that row's status, ``grader error: ...``, with no score:
never a student's zero; the command then exits with status 1. Without any isolation for
student code (no bubblewrap and not root) nothing runs, and the command says how to fix it.
"""

from __future__ import annotations

import argparse
import datetime
import fcntl
import json
import secrets
import sys
import time
import traceback
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: python grader/grade.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from grader import flags, homeworks, notebook, reports, scoring  # noqa: E402
from grader.homeworks import HOMEWORKS, Homework  # noqa: E402
from grader.notebook import GRADED, GRADER_ERROR, Notebook  # noqa: E402
from grader.sandbox import Limits, Sandbox, SandboxUnavailable  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GRADES = ROOT / "_build" / "grades"
ANSWER_PREFIX = notebook.ANSWER_PREFIX


def identify(nb: Notebook, path: Path) -> str:
    """The homework a notebook looks like: its stamp, its file name, or the functions it
    defines ("" when none). Only to choose a run's homework, or to flag a mismatch."""
    if nb.stamp in HOMEWORKS:
        return nb.stamp
    if path.stem in HOMEWORKS:
        return path.stem
    scores = {hw.name: len(hw.functions & set(nb.defined)) for hw in HOMEWORKS.values()}
    best = max(scores, key=scores.get, default="")
    return best if scores.get(best) else ""


def class_homework(read: dict[Path, Notebook], chosen: str | None) -> Homework:
    """The run's homework: ``chosen``, else the one most of the readable notebooks are."""
    if chosen:
        return homeworks.find(chosen)
    votes = Counter(identify(nb, path) for path, nb in read.items() if nb.status == GRADED)
    votes.pop("", None)
    if not votes:
        raise SystemExit(
            "cannot tell which homework these notebooks are: give it, e.g. "
            f"--homework {next(iter(HOMEWORKS))} (make grade HOMEWORK=...)"
        )
    return HOMEWORKS[votes.most_common(1)[0][0]]


def first_line(source: str) -> str:
    lines = [line.strip() for line in source.splitlines() if line.strip()]
    first = lines[0] if lines else ""
    return first if len(first) <= 60 else first[:57] + "..."


def empty_report(relative: str, homework: Homework) -> dict:
    return {
        "id": notebook.submission_id(relative),
        "submission": notebook.escape(relative),
        "homework": homework.name,
        "score": 0.0,
        "max_score": 0.0,
        "status": GRADED,
        "reason": "",
        "flags": [],
        "notes": [],
        "parts": {},
        "cells": [],
        "answers": [],
        "graded_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def grade_notebook(
    path: Path,
    relative: str,
    homework: Homework,
    sandbox: Sandbox,
    rubric: dict | None = None,
    seed: int | None = None,
    nb: Notebook | None = None,
) -> dict:
    """The report of one submission, graded as ``homework`` (see the module docstring);
    never raises: a failure of the grader is the report's status. The hidden cases are
    drawn from ``seed``, a fresh random one unless given (the report keeps it, so that a
    disputed grade can be re-run)."""
    report = empty_report(relative, homework)
    try:
        return grade(path, report, homework, sandbox, rubric or {}, seed, nb)
    except Exception as exc:  # the grader's own failure: this row says so, the run goes on
        report.update(score=None, max_score=None, parts={})
        report["status"] = f"{GRADER_ERROR}: {type(exc).__name__}: {exc}"[:300]
        report["reason"] = "the grader failed on this notebook; it is not the student's zero"
        report["traceback"] = traceback.format_exc()[-4000:]
        return report


def grade(path, report, homework, sandbox, rubric, seed, nb) -> dict:
    start = time.monotonic()
    points = {p.name: scoring.rubric_for(p, homework, rubric) for p in homework.parts}
    report["max_score"] = sum(pts for pts, _ in points.values())
    nb = nb or notebook.read(path, homeworks.check_functions())
    report["flags"], report["answers"] = list(nb.flags), nb.answers
    if homework.expected_flags:  # raised by every honest notebook of this homework
        report["flags"] = [f for f in report["flags"] if f not in homework.expected_flags]
        numpy_only = homework.functions - homework.torch_functions
        if homework.torch_functions and flags.torch_in_functions(
            [source for _, source in nb.cells], numpy_only
        ):
            report["flags"] = sorted({*report["flags"], flags.TORCH_IN_NUMPY_PART})
    if nb.status != GRADED:
        report["status"], report["reason"] = nb.status, nb.reason
        if nb.status.startswith(GRADER_ERROR):
            report["score"] = report["max_score"] = None
        return report
    if nb.stamp and nb.stamp != homework.name:
        report["flags"] = sorted({*report["flags"], f"stamped {nb.stamp}"})
        report["notes"].append(
            f"this notebook is stamped for {nb.stamp}; it was graded as {homework.name}, "
            "the homework of this grading run"
        )
    seed = secrets.randbits(64) if seed is None else seed  # fresh hidden cases, every run
    report["seed"] = seed
    rng = np.random.default_rng(seed)
    trials = {p.name: p.trials(rng) for p in homework.parts}
    specs = [
        {"name": p.name, "function": p.function, "outputs": list(p.check.outputs)}
        | {"caller": p.caller}
        for p in homework.parts
    ]
    run = sandbox.run([source for _, source in nb.cells], specs, trials)
    report["sandbox"] = sandbox.describe() | {"ran_as": run.ready, "cgroup": run.bounds}
    if run.error:
        report.update(score=None, max_score=None)
        report["status"] = f"{GRADER_ERROR}: {run.error}"[:500]
        report["reason"] = "the sandbox failed on this machine; it is not the student's zero"
        return report
    for k, (number, source) in enumerate(nb.cells):
        cell = run.cells.get(k, {"status": "not run", "detail": ""})
        if cell["status"] != "ok":
            report["cells"].append({"cell": number, "first_line": first_line(source), **cell})
    notes = report["notes"]
    limits = sandbox.limits
    if run.timed_out:
        notes.append(f"the submission ran out of time ({limits.total:g} s in total)")
    if run.out_of_memory:
        notes.append(f"the submission went past its memory ({limits.memory_mb} MB in total)")
    if run.overflow:
        notes.append(f"the submission sent back more than {limits.output_mb} MB")
    for part in homework.parts:
        result = score_part(part, trials[part.name], run, points[part.name], limits, notes)
        report["parts"][part.name] = result.to_dict()
        if result.public_only:
            report["flags"] = sorted({*report["flags"], "right on public cases only"})
    report["score"] = round(sum(p["points"] for p in report["parts"].values()), 2)
    report["seconds"] = round(time.monotonic() - start, 2)
    report["cpu_seconds"] = run.cpu
    return report


def score_part(part, trials, run, points, limits, notes) -> scoring.PartScore:
    """One part's grade from what the sandbox returned, its status saying why not."""
    returned = run.returned[part.name]
    status = run.parts.get(part.name, "not run")
    why = {
        "timeout": f"the function ran longer than {limits.part:g} s (an endless loop?)",
        "crashed": "the process ended during the call (os._exit? a crash? out of memory?)",
        "not run": "the notebook did not get this far: " + ("; ".join(notes) or "?"),
    }.get(status)
    if why:
        for k, back in enumerate(returned):
            if back.outputs is None and back.problem == "no result (it did not finish)":
                returned[k] = type(back)(problem=why)
    max_points, deductions = points
    if status == "missing":
        result = scoring.PartScore(part.name, part.function, 0.0, max_points)
        result.reason = f"{part.function} is not defined (after running every cell)"
        return result
    result = scoring.assess(part, trials, returned, max_points, deductions)
    if status in ("timeout", "crashed") and result.points == 0:
        result.reason = why
    return result


# --------------------------------------------------------------------------------------
# A class: every submission, JOBS at a time, never stopping on one
# --------------------------------------------------------------------------------------


def check_out(out: Path, homework: Homework) -> None:
    """OUT holds one homework's grades: refuse to mix another's into it."""
    for report in reports.load_reports(out):
        if report.get("homework") not in (homework.name, "", None):
            raise SystemExit(
                f"{out} holds grades of {report['homework']}; grade {homework.name} into "
                f"another folder (the default is {GRADES / homework.name})"
            )


def grade_all(
    submissions: Path,
    out: Path | None = None,
    homework: str | None = None,
    jobs: int = 1,
    limits: Limits | None = None,
    rubric: dict | None = None,
    isolation: str = "auto",
    quiet: bool = False,
    seed: int | None = None,
) -> list[dict]:
    """Grade every notebook below ``submissions`` into ``out`` (module docstring); the
    reports. SystemExit, before any report is written, where no sandbox works here."""
    limits = limits or Limits()
    paths = notebook.discover(submissions)
    if not paths:
        raise SystemExit(f"no *.ipynb found under {submissions}")
    checks = homeworks.check_functions()
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        read = dict(zip(paths, pool.map(lambda p: notebook.read(p, checks), paths), strict=True))
    chosen = class_homework(read, homework)
    out = out or GRADES / chosen.name
    out.mkdir(parents=True, exist_ok=True)
    check_out(out, chosen)
    say = (lambda text: None) if quiet else print
    try:
        sandbox = Sandbox(isolation, limits)
    except (SandboxUnavailable, OSError) as exc:
        raise SystemExit(f"not grading: {exc}") from None
    with sandbox, open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one grading run at a time writes to OUT
        probe = sandbox.run([], [], {})
        if probe.error:
            raise SystemExit(f"not grading: the sandbox does not work here: {probe.error}")
        running = sandbox.jobs(jobs)
        described = sandbox.describe()
        say(
            f"grading {len(paths)} notebooks as {chosen.name}, {running} at a time; sandbox: "
            + ", ".join(f"{k} {v}" for k, v in described.items() if k != "limits")
        )
        if running < jobs:
            say(
                f"  (JOBS={jobs} asked: without cgroups here, one at a time, so that no "
                "submission can slow another)"
            )
        private = [submissions, out, *(hw.source for hw in HOMEWORKS.values())]
        private.append(ROOT / "_build" / "homework" / "solutions")

        def one(path: Path) -> dict:
            relative = str(path.relative_to(submissions))
            report = grade_notebook(path, relative, chosen, sandbox, rubric, seed, read[path])
            report = reports.save(out, report)
            status = report["status"]
            status = "" if status == GRADED else f" ({status}: {report['reason']})"
            say(
                f"{report['submission']}: {reports.points(report['score'])} / "
                f"{reports.points(report['max_score'])}{status}"
            )
            return report

        with sandbox.protect(private), ThreadPoolExecutor(max_workers=running) as pool:
            graded = list(pool.map(one, paths))
        reports.write_summary(out)
        rubric_used = {chosen.name: scoring.effective_rubric(chosen, rubric or {})}
        reports.write_atomic(out / "rubric.json", json.dumps(rubric_used, indent=1))
    return graded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("submissions", type=Path, help="directory of notebooks")
    parser.add_argument("--homework", choices=sorted(HOMEWORKS), help="default: the notebooks'")
    parser.add_argument("--out", type=Path, help="default: _build/grades/<homework>")
    parser.add_argument("--jobs", type=int, default=1, help="submissions at once")
    parser.add_argument("--rubric", type=Path, help="TOML: points and deductions")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per submission")
    parser.add_argument("--cell-timeout", type=float, default=60, help="seconds per cell")
    parser.add_argument("--part-timeout", type=float, default=30, help="seconds per function")
    parser.add_argument("--memory-mb", type=int, default=4096, help="per submission, in all")
    parser.add_argument("--cpus", type=float, default=1.0, help="cores per submission")
    parser.add_argument(
        "--seed", type=int, help="the hidden cases' seed (a report's), to re-run a grade"
    )
    parser.add_argument(
        "--isolation",
        choices=("auto", "bwrap", "process"),
        default="auto",
        help="auto (default): bubblewrap where it works, else a uid of its own (root only)",
    )
    args = parser.parse_args(argv)
    if not args.submissions.is_dir():
        parser.error(f"{args.submissions} is not a directory of submitted notebooks")
    limits = Limits(
        total=args.timeout,
        cell=args.cell_timeout,
        part=args.part_timeout,
        memory_mb=args.memory_mb,
        cpus=args.cpus,
    )
    graded = grade_all(
        args.submissions.resolve(),
        args.out.resolve() if args.out else None,
        args.homework,
        max(1, args.jobs),
        limits,
        scoring.load_rubric(args.rubric),
        args.isolation,
        seed=args.seed,
    )
    out = args.out or GRADES / graded[0]["homework"]
    print(f"summary: {out / 'summary.csv'}")
    failed = [r["submission"] for r in graded if r["status"].startswith(GRADER_ERROR)]
    if failed:
        print(
            f"{len(failed)} not graded because the grader failed (see their status): "
            + ", ".join(failed),
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
