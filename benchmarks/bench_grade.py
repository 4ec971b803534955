"""Grading throughput: submissions per minute with JOBS parallel sandboxes.

    python benchmarks/bench_grade.py [--jobs 2] [--count 20]

Grades ``--count`` copies of a solved student edition (the stubs replaced by the
solutions) and as many partial ones (ε outside the square root in the forward) in one run,
as ``make grade JOBS=n`` would, and reports the wall time per submission, the submissions
per minute, and what a class of 300 would take. Also times one sandbox start with an empty
notebook (the fixed cost of a submission) and the grader's own work on one submission
(assessing the returned arrays, outside the sandbox).
CPU-time figures (user+sys: the grader's own, plus what each sandbox's runner reports for
everything it ran) sit beside the wall times, as the machine may be shared.
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
from grader import grade, homework, sandbox  # noqa: E402
from grader import parts as registry  # noqa: E402

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
    args = parser.parse_args()
    hw = registry.HOMEWORKS["05_homework"]
    nb = jupytext.read(hw.source)
    # what a student hands in: the student edition, each stub replaced by the solution
    solved = {
        c.source.split("(")[0]: c.source
        for c in nb.cells
        if c.cell_type == "code" and c.source.startswith("def bn_")
    }
    solutions = homework.plain_markdown(homework.student_edition(nb, hw.name))
    for cell in solutions.cells:
        if cell.cell_type == "code" and cell.source.split("(")[0] in solved:
            cell.source = solved[cell.source.split("(")[0]]
    partial = copy.deepcopy(solutions)
    for cell in partial.cells:
        if cell.cell_type == "code" and cell.source.startswith("def bn_forward("):
            cell.source = PARTIAL_FORWARD

    limits = sandbox.Limits()
    start, cpu0 = time.perf_counter(), cpu()
    run = sandbox.run([], [], {}, limits)
    empty = time.perf_counter() - start, cpu() - cpu0
    assert run.finished, run.error

    rng = np.random.default_rng(0)
    trials = {p.name: registry.draw_trials(p, rng) for p in hw.parts}
    returned = {}
    for p in hw.parts:
        fn = {
            "forward": homework_1.reference_forward,
            "backward": homework_1.reference_backward,
        }.get(p.name, homework_1.reference_running_stats)
        returned[p.name] = [check.call(fn, t, p.check.outputs) for t in trials[p.name]]
    start = time.perf_counter()
    for p in hw.parts:
        p.assess(p, trials[p.name], returned[p.name], *registry.rubric_for(p, hw, {}))
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


if __name__ == "__main__":
    main()
