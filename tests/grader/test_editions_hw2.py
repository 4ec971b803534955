"""The second homework (chapters/09_homework_2.md): its reference solutions pass their checks,
its student edition holds no solution, keeps the stubs and check cells, asks for a written
answer only where a question is asked, and runs with the stubs."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import jupytext
import numpy as np
import pytest

from bnlib import check
from grader import editions

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "chapters" / "09_homework_2.md"
FUNCTIONS = {  # bnlib.check's check -> the student's function
    "group_norm": "group_norm_forward",
    "merge_stats": "merge_stats",
    "fold_bn": "fold_bn",
}
WRITTEN_QUESTIONS = ("hw2-special-cases", "hw2-merge-why", "hw2-fold-when")


@pytest.fixture(scope="module")
def source():
    return jupytext.read(SOURCE)


def graded_cells(nb):
    """The namespace of the cells that define the graded functions."""
    namespace: dict = {}
    exec("import numpy as np", namespace)
    for cell in nb.cells:
        if cell.cell_type == "code" and any(f"def {f}(" in cell.source for f in FUNCTIONS.values()):
            exec(cell.source, namespace)
    return namespace


def text_of(nb) -> str:
    return "\n".join(c.source for c in nb.cells)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_reference_solutions_pass_public_and_hidden_cases(source, name):
    fn = graded_cells(source)[FUNCTIONS[name]]
    spec = {"group_norm": check.GROUP_NORM, "merge_stats": check.MERGE_STATS}.get(
        name, check.FOLD_BN
    )
    trials = spec.hidden(np.random.default_rng(3))
    hidden = check.assess(spec, trials, [check.call(fn, t, spec.outputs) for t in trials])
    for result in (getattr(check, name)(fn), hidden):
        assert result, str(result)
        assert result.score == 1.0 and not result.diagnoses


def test_student_edition_contains_no_solution(source):
    student = editions.student_edition(source)
    text = text_of(student)
    secret = editions.solution_lines(source)
    assert len(secret) > 30
    assert [line for line in secret if line in text] == []
    for snippet in (  # independent of solution_lines: distinctive lines of the solutions
        "rows = x.reshape(x.shape[0], num_groups, -1)",
        "m2 = m2_a + m2_b + delta**2",
        "weight = conv_w * scale.reshape(-1, 1, 1, 1)",
        "assert group_norm_check",
        "spread *between* the shards' means",
        "hw2-fold-diff",
        "import torch",
    ):
        assert snippet in text_of(source), snippet
        assert snippet not in text, snippet
    for marker in ("{solution}", "{solution-start}", "{solution-end}", "<!--", "hide-input"):
        assert marker not in text, marker


def test_student_edition_keeps_stubs_checks_and_asks_only_the_questions(source):
    student = editions.student_edition(source)
    code = "\n".join(c.source for c in student.cells if c.cell_type == "code")
    for name, fn_name in FUNCTIONS.items():
        assert code.count(f"def {fn_name}(") == 1
        assert f"bnlib.check.{name}({fn_name})" in code
    answers = [c for c in student.cells if editions.ANSWER in c.source]
    assert len(answers) == len(WRITTEN_QUESTIONS)  # none where the answer is a function
    assert all(c.source == editions.ANSWER for c in answers)
    for label in WRITTEN_QUESTIONS:
        assert f":label: {label}" in text_of(source)
    plain = editions.plain_markdown(student)
    markdown = "\n".join(c.source for c in plain.cells if c.cell_type == "markdown")
    for k in range(1, 7):
        assert f"**Exercise {k}.**" in markdown
    assert "{exercise}" not in markdown and ":label:" not in markdown


def test_student_edition_runs_with_the_stubs_and_only_numpy_and_bnlib(source):
    """Every code cell of the student edition, in order: the checks report "Not implemented
    yet", nothing raises, and no cell imports torch or myst_nb."""
    student = editions.student_edition(source)
    namespace: dict = {}
    shown = []
    for cell in student.cells:
        if cell.cell_type != "code":
            continue
        assert "torch" not in cell.source and "myst_nb" not in cell.source
        lines = cell.source.strip().splitlines()
        with contextlib.redirect_stdout(io.StringIO()):
            exec(cell.source, namespace)
        if lines and lines[-1].isidentifier():  # a cell that displays its last name
            shown.append(str(namespace[lines[-1]]))
    assert len(shown) == 3
    assert all("Not implemented yet" in report for report in shown)


def test_graded_solutions_are_hidden_in_the_book(source):
    """In the book, each graded function's code is collapsed, its explanation in a dropdown."""
    for fn_name in FUNCTIONS.values():
        (cell,) = [c for c in source.cells if f"def {fn_name}(" in c.source]
        assert {"solution", "hide-input"} <= set(cell.metadata.get("tags", []))
    dropdowns = [
        c
        for c in source.cells
        if c.cell_type == "markdown" and "solution" in c.metadata.get("tags", [])
    ]
    assert sum("````{solution} hw2-" in c.source for c in dropdowns) == 3
