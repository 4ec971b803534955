"""Grading throughput: submissions per minute with JOBS parallel sandboxes; and fairness:
honest notebooks graded beside a CPU hog.

    python benchmarks/bench_grade.py [--jobs 2] [--count 20] [--hog-only]

Grades ``--count`` copies of a solved student edition (the stubs replaced by the
solutions) and as many partial ones (ε outside the square root in the forward) in one run,
as ``make grade JOBS=n`` would, and reports the wall time per submission, the submissions
per minute, and what a class of 300 would take. Also times one sandbox start with an empty
notebook (the fixed cost of a submission) and the grader's own work on one submission
(assessing the returned arrays, outside the sandbox).
CPU-time figures (user+sys: the grader's own, plus what each sandbox's runner reports for
everything it ran) sit beside the wall times, as the machine may be shared.

The hog: a notebook whose cell starts 200 spinning processes, each in a session of its own
(what made honest neighbours time out before cgroups bounded each submission's CPU),
graded with JOBS=2 beside ``--count`` honest notebooks whose cell limit is tight (10 s):
every honest one must keep full marks, and the table says how much slower they ran.
"""

from __future__ import annotations

import argparse
import copy
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import jupytext  # noqa: E402
import nbformat  # noqa: E402
import numpy as np  # noqa: E402

from bnlib import check  # noqa: E402
from bnlib.check import homework_1  # noqa: E402
from grader import grade, rewrite, scoring  # noqa: E402
from grader import homeworks as registry  # noqa: E402
from grader.sandbox import Limits, Sandbox  # noqa: E402

HOG = """
import os, time
for _ in range(200):
    try:
        if os.fork() == 0:
            os.setsid()
            while True:
                pass
    except OSError:
        break
time.sleep(120)
"""

PARTIAL_FORWARD = """
def bn_forward(x, gamma, beta, eps):
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    std = x.std(axis=(0, 2, 3), keepdims=True)
    return gamma.reshape(1, -1, 1, 1) * (x - mean) / (std + eps) + beta.reshape(1, -1, 1, 1)
"""


def cpu() -> float:
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--count", type=int, default=20, help="honest and as many partial")
    parser.add_argument("--hog-only", action="store_true", help="only the CPU-hog scenario")
    args = parser.parse_args()
    hw = registry.HOMEWORKS["05_homework"]
    nb = jupytext.read(hw.source)
    # what a student hands in: the student edition, each stub replaced by the solution
    solved = {
        c.source.split("(")[0]: c.source
        for c in nb.cells
        if c.cell_type == "code" and c.source.startswith("def bn_")
    }
    solutions = rewrite.plain_markdown(rewrite.student_edition(nb, hw.name))
    for cell in solutions.cells:
        if cell.cell_type == "code" and cell.source.split("(")[0] in solved:
            cell.source = solved[cell.source.split("(")[0]]
    partial = copy.deepcopy(solutions)
    for cell in partial.cells:
        if cell.cell_type == "code" and cell.source.startswith("def bn_forward("):
            cell.source = PARTIAL_FORWARD

    if args.hog_only:
        return hog(solutions, args)
    with Sandbox() as box:
        start, cpu0 = time.perf_counter(), cpu()
        run = box.run([], [], {})
        empty = time.perf_counter() - start, cpu() - cpu0
    assert run.finished, run.error

    rng = np.random.default_rng(0)
    trials = {p.name: p.trials(rng) for p in hw.parts}
    returned = {}
    for p in hw.parts:
        fn = {
            "forward": homework_1.reference_forward,
            "backward": homework_1.reference_backward,
        }.get(p.name, homework_1.reference_running_stats)
        returned[p.name] = [check.call(fn, t, p.check.outputs) for t in trials[p.name]]
    start = time.perf_counter()
    for p in hw.parts:
        scoring.assess(p, trials[p.name], returned[p.name], *scoring.rubric_for(p, hw, {}))
    assess_seconds = time.perf_counter() - start

    with tempfile.TemporaryDirectory() as tmp:
        subs = Path(tmp) / "subs"
        subs.mkdir()
        for k in range(args.count):
            nbformat.write(solutions, subs / f"honest_{k:03d}.ipynb")
            nbformat.write(partial, subs / f"partial_{k:03d}.ipynb")
        total = 2 * args.count
        start, cpu0 = time.perf_counter(), cpu()
        reports = grade.grade_all(subs, Path(tmp) / "out", jobs=args.jobs, quiet=True)
        reports = [r for r in reports if r["status"] == "graded"]
        wall = time.perf_counter() - start
        used = cpu() - cpu0 + sum(r["cpu_seconds"] or 0 for r in reports)
    scores = sorted({r["score"] for r in reports})
    assert scores == [9.0, 10.0], scores
    per = wall / total
    print(f"grading {total} submissions with JOBS={args.jobs} on {os.cpu_count()} cores")
    print("| measure | wall | CPU (user+sys) |")
    print("| --- | --- | --- |")
    print(f"| one sandbox start, empty notebook | {empty[0]:.2f} s | {run.cpu:.2f} s |")
    print(f"| assessing one submission (grader side) | {assess_seconds:.3f} s | - |")
    print(f"| per submission, in the run | {per:.2f} s | {used / total:.2f} s |")
    print(f"| submissions per minute | {60 / per:.1f} | - |")
    print(f"| a class of 300 | {300 * per / 60:.1f} min | - |")
    hog(solutions, args)


def hog(solutions, args) -> None:
    """Honest notebooks with JOBS=2, alone and beside the hog: their scores, their time."""
    limits = Limits(total=150, cell=10, part=10)
    seconds = {}
    for beside in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            subs = Path(tmp) / "subs"
            subs.mkdir()
            for k in range(args.count // 4 or 1):
                nbformat.write(solutions, subs / f"honest_{k:03d}.ipynb")
            if beside:
                hogging = copy.deepcopy(solutions)
                hogging.cells.insert(1, nbformat.v4.new_code_cell(HOG))
                nbformat.write(hogging, subs / "aaa_hog.ipynb")  # graded first
            start = time.perf_counter()
            reports = grade.grade_all(subs, Path(tmp) / "out", jobs=2, limits=limits, quiet=True)
            honest = [r for r in reports if r["submission"].startswith("honest")]
            seconds[beside] = sum(r["seconds"] for r in honest) / len(honest)
            scores = sorted({r["score"] for r in honest})
            print(
                f"honest beside the hog: {beside}; their scores {scores}; "
                f"{seconds[beside]:.2f} s each; run {time.perf_counter() - start:.1f} s; "
                f"sandbox {reports[0]['sandbox']['bounds']}"
            )
            assert scores == [10.0], scores
    print(f"| honest notebook beside a CPU hog / alone | {seconds[True] / seconds[False]:.2f} |")


if __name__ == "__main__":
    main()
