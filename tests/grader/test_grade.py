"""The grader on crafted submissions (tests/grader/crafted.py): honest work scores full marks,
partial work keeps what is right, and another homework plugs in.

One grading run (two jobs, the ``graded`` fixture of conftest.py) grades every crafted
submission at once: each costs a sandbox start, so they are batched."""

from __future__ import annotations

import nbformat
import numpy as np
import pytest

from bnlib import check
from grader import grade, sandbox
from grader import homeworks as registry
from tests.grader.crafted import (
    LIMITS,
)

# one pytest-xdist worker grades them all (make test runs --dist loadgroup): one grading run
pytestmark = pytest.mark.xdist_group("grader")


# --------------------------------------------------------------------------------------
# Honest and partial work
# --------------------------------------------------------------------------------------


def test_hidden_cases_are_drawn_afresh_for_every_submission(graded):
    seeds = [r["seed"] for r in graded["reports"].values() if "seed" in r]
    assert len(seeds) > 20 and len(set(seeds)) == len(seeds)


def test_honest_work_scores_full_marks(graded):
    report = graded["reports"]["honest.ipynb"]
    assert report["status"] == "graded" and report["score"] == report["max_score"] == 10
    assert report["flags"] == [] and report["cells"] == []
    for part in report["parts"].values():
        assert part["deductions"] == [] and part["cases_total"] == 8


def test_stubs_score_zero(graded):
    report = graded["reports"]["stub.ipynb"]
    assert report["score"] == 0 and report["status"] == "graded"
    assert all("Not implemented yet" in p["reason"] for p in report["parts"].values())


def test_partial_work_keeps_what_is_right_and_loses_by_mistake(graded):
    parts = graded["reports"]["partial.ipynb"]["parts"]
    assert parts["forward"]["points"] == 3  # ε outside the root: −1 of 4
    assert [d["key"] for d in parts["forward"]["deductions"]] == ["eps_outside_sqrt"]
    assert parts["backward"]["points"] == 4
    assert parts["running_stats"]["points"] == 1  # Keras's momentum: −1 of 2
    assert [d["key"] for d in parts["running_stats"]["deductions"]] == ["keras_momentum"]
    page = (graded["out"] / "feedback" / "partial.md").read_text()
    assert "ε is outside the square root" in page and "Keras way round" in page
    assert "3 / 4" in page and "**Score: 8 / 10**" in page


@pytest.mark.parametrize(
    ("name", "expected", "part", "key"),
    [
        ("dtype.ipynb", 9.5, "forward", "dtype"),  # a dtype slip: −0.5, not the part
        ("in_place.ipynb", 9, "forward", "in_place"),  # right values, x -= mean: −1
    ],
)
def test_dtype_and_in_place_are_deductions_of_their_own(graded, name, expected, part, key):
    report = graded["reports"][name]
    assert report["score"] == expected
    assert [d["key"] for d in report["parts"][part]["deductions"]] == [key]


@pytest.mark.parametrize(
    ("name", "lost"),
    [
        ("loop_cell.ipynb", None),  # an endless loop in an ungraded cell: skipped
        ("error_cells.ipynb", None),  # a cell that raises, a cell that os._exit()s
        ("huge_output.ipynb", None),  # 300 MB printed: discarded
        ("fork_bomb.ipynb", None),  # bounded by the process limit, killed with its cell
        ("liar.ipynb", "forward"),  # an ndarray subclass whose == says True
        ("nan.ipynb", "forward"),
        ("hang.ipynb", "backward"),  # a function that never returns: that part only
        ("exit.ipynb", "forward"),  # os._exit() inside the graded function
        ("huge_return.ipynb", "forward"),  # 240 MB returned, per case: refused, not sent
        ("memory_hog.ipynb", None),  # 16 GB asked for: MemoryError, its cell skipped
    ],
)
def test_a_failure_costs_only_its_own_part(graded, name, lost):
    report = graded["reports"][name]
    assert report["status"] == "graded"
    for part_name, part in report["parts"].items():
        expected = 0 if part_name == lost else part["max_points"]
        assert part["points"] == expected, (name, part_name, part)


def test_skipped_cells_are_reported(graded):
    bomb = graded["reports"]["fork_bomb.ipynb"]["cells"]
    assert [(c["status"], c["first_line"]) for c in bomb] == [("timeout", "import os")]
    cells = graded["reports"]["loop_cell.ipynb"]["cells"]
    assert [(c["status"], c["first_line"]) for c in cells] == [("timeout", "while True:")]
    statuses = [c["status"] for c in graded["reports"]["error_cells.ipynb"]["cells"]]
    assert statuses == ["error", "crashed"]
    hang = graded["reports"]["hang.ipynb"]["parts"]["backward"]
    assert "longer than 3 s" in hang["reason"]


def test_another_homework_plugs_in(tmp_path):
    """A homework of another shape (a number among the arguments, a 0-d output, its own
    mistakes) needs only a Check and a Part: the same sandbox, assessor and rubric."""

    def trials(rng, n):
        return [
            check.Trial(f"case {k}", (rng.standard_normal((2, 3)), float(k + 2)), np.float64)
            for k in range(n)
        ]

    toy = check.Check(
        name="scale",
        arg_names=("x", "k"),
        outputs=("scaled", "total"),
        reference=lambda x, k: (x * k, np.asarray((x * k).sum())),
        public=lambda: trials(np.random.default_rng(0), 2),
        hidden=lambda rng: trials(rng, 3),
        variant=lambda x, k, forgot_k=False: (x, np.asarray(x.sum())) if forgot_k else None,
        mistakes=(check.Mistake("forgot_k", "k is not applied.", {"forgot_k": True}),),
    )
    homework_toy = registry.Homework(
        "toy_homework",
        tmp_path / "toy.md",
        (registry.Part("scale", "scale", 2, toy, {"forgot_k": 1.5}),),
    )
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("def scale(x, k):\n    return x, x.sum()")]
    path = tmp_path / "toy.ipynb"
    nbformat.write(nb, path)
    with sandbox.Sandbox("auto", LIMITS) as box:
        report = grade.grade_notebook(path, "toy.ipynb", homework_toy, box)
        part = report["parts"]["scale"]
        assert report["max_score"] == 2 and part["points"] == 0.5
        assert [d["key"] for d in part["deductions"]] == ["forgot_k"]
        # the report's seed draws the same hidden cases again: a disputed grade can be re-run
        again = grade.grade_notebook(path, "toy.ipynb", homework_toy, box, seed=report["seed"])
    assert again["parts"] == report["parts"]
