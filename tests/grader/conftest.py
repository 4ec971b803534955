"""The grader's tests' shared fixture: one grading run of every crafted submission
(tests/grader/crafted.py), shared by test_grade.py, test_grade_tricks.py and
test_grade_reports.py (test_grade_hw2.py has its own ``graded``, for homework 2)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import nbformat
import pytest

from grader import grade
from tests.grader.crafted import (
    BACKWARD_HANG,
    FORGER,
    FORK_BOMB,
    FORWARD_EPS_OUTSIDE,
    FORWARD_EXIT,
    FORWARD_FLOAT64,
    FORWARD_HUGE,
    FORWARD_IN_PLACE,
    FORWARD_LIAR,
    FORWARD_NAN,
    FORWARD_TORCH,
    FULL_MARKS,
    HOOK,
    HW,
    LIMITS,
    OLD_MARKER,
    PATCHER,
    PROTECTED,
    RUNNING_KERAS,
    SNOOP,
    TOKEN,
    digest,
    hardcoded,
    hw_editions,
    replace_function,
    with_cell,
    write_odd_notebooks,
)


@pytest.fixture(scope="session")
def graded(tmp_path_factory):
    """Every crafted submission, graded in one run; the reports by name."""
    base = tmp_path_factory.mktemp("grading")
    subs, out = base / "submissions", base / "grades"
    student, solutions = hw_editions()
    honest_path = subs / "honest.ipynb"
    summary = out / "summary.csv"
    code = (
        "import os, time\n"
        "time.sleep(3)\n"
        f"for path in ({str(summary)!r}, {str(base / 'survived')!r}):\n"
        "    try:\n"
        "        os.makedirs(os.path.dirname(path), exist_ok=True)\n"
        "        with open(path, 'a') as f:\n"
        "            f.write('survivor.ipynb,survivor,05_homework,10,10,graded,,\\n')\n"
        "    except OSError:\n"
        "        pass\n"
    )
    survivor = (
        "import subprocess, sys\n"
        f"child = subprocess.Popen([sys.executable, '-c', {code!r}, {TOKEN!r}],"
        " start_new_session=True)\n"
        "import time\n"
        "time.sleep(0.5)\n"
        "assert child.poll() is None  # alive in the sandbox (the report shows no error)"
    )
    writer = "\n".join(
        f"try:\n    open({str(p)!r}, 'a').write('# hacked\\n')\nexcept OSError:\n    pass"
        for p in [
            *PROTECTED,
            Path("/opt/bnbook/bnlib/check/engine.py"),
            honest_path,
            summary,
            out / "reports" / "honest.json",
        ]
    )
    reader = f"""
    import re
    for path in ({str(honest_path)!r}, {str(HW.source)!r}):
        try:
            text = open(path).read()
        except OSError:
            continue
        import json
        cells = json.loads(text)["cells"] if path.endswith(".ipynb") else []
        for cell in cells:
            source = "".join(cell["source"])
            if "def bn_" in source:
                exec(source, globals())
    """
    partial = replace_function(student, "bn_forward", FORWARD_EPS_OUTSIDE)
    partial = replace_function(partial, "bn_running_stats", RUNNING_KERAS)
    for cell in solutions.cells:
        if cell.cell_type == "code" and "def bn_backward(" in cell.source:
            partial = replace_function(partial, "bn_backward", cell.source)
    answer = next(
        c for c in partial.cells if c.metadata.get("bnbook", {}).get("answer") == "hw-unbiased"
    )
    answer.source = "**Your answer:** every x̂ shrinks by √(7/8) in the 1×1 case."
    submissions = {
        "honest.ipynb": solutions,
        "stub.ipynb": student,
        "partial.ipynb": partial,
        "marker_hook.ipynb": with_cell(student, HOOK, at=1),
        "marker_print.ipynb": with_cell(
            student, f"print({OLD_MARKER!r} + {json.dumps(FULL_MARKS)!r})"
        ),
        "patcher.ipynb": with_cell(student, PATCHER),
        "snoop.ipynb": with_cell(student, SNOOP),
        "hardcoded.ipynb": with_cell(student, hardcoded()),
        "forger.ipynb": with_cell(student, FORGER),
        "survivor.ipynb": with_cell(solutions, survivor),
        "writer.ipynb": with_cell(solutions, writer),
        "reader.ipynb": with_cell(student, reader),
        "huge_output.ipynb": with_cell(
            solutions, "import sys\nfor _ in range(300):\n    sys.stdout.write('x' * 10**6)"
        ),
        "fork_bomb.ipynb": with_cell(solutions, FORK_BOMB, at=3),
        "loop_cell.ipynb": with_cell(solutions, "while True:\n    pass", at=3),
        "error_cells.ipynb": with_cell(
            with_cell(solutions, "1 / 0", at=2), "import os\nos._exit(1)", at=5
        ),
        "liar.ipynb": replace_function(solutions, "bn_forward", FORWARD_LIAR),
        "nan.ipynb": replace_function(solutions, "bn_forward", FORWARD_NAN),
        "dtype.ipynb": replace_function(solutions, "bn_forward", FORWARD_FLOAT64),
        "in_place.ipynb": replace_function(solutions, "bn_forward", FORWARD_IN_PLACE),
        "hang.ipynb": replace_function(solutions, "bn_backward", BACKWARD_HANG),
        "exit.ipynb": replace_function(solutions, "bn_forward", FORWARD_EXIT),
        "huge_return.ipynb": replace_function(solutions, "bn_forward", FORWARD_HUGE),
        "memory_hog.ipynb": with_cell(solutions, "hog = bytearray(16 * 2**30)", at=3),
        "torch.ipynb": replace_function(solutions, "bn_forward", FORWARD_TORCH),
        "alice/05_homework.ipynb": solutions,
        "alice__05_homework.ipynb": student,
        "李雷/05_homework.ipynb": solutions,
        "韩梅梅.ipynb": partial,
    }
    for name, nb in submissions.items():
        (subs / name).parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, subs / name)
    (subs / "garbage.ipynb").write_text("{this is not a notebook")
    (subs / "link.ipynb").symlink_to(honest_path)
    write_odd_notebooks(subs, student, solutions)
    before = {p: digest(p) for p in PROTECTED}
    honest_before = digest(honest_path)
    reports = grade.grade_all(subs, out, jobs=2, limits=LIMITS, quiet=True)
    time.sleep(4)  # the survivor's moment, had it survived (its process is gone: see below)
    return {
        "reports": {r["submission"]: r for r in reports},
        "out": out,
        "subs": subs,
        "base": base,
        "before": before,
        "honest_before": honest_before,
    }
