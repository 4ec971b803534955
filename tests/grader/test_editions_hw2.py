"""The second homework (chapters/09_homework_2.md): its reference solutions pass their
checks, its student edition holds no solution and prints none of the formulas it asks for,
keeps the stubs and check cells, asks for a written answer only where a question is asked,
links the chapter sections that derive the formulas, states the registry's points, and
runs with the stubs."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import jupytext
import nbformat
import numpy as np
import pytest

from bnlib import check
from bnlib.check.homework_2 import folding, recalibration
from grader import homeworks as registry
from grader import rewrite

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "chapters" / "09_homework_2.md"
HW = registry.HOMEWORKS["09_homework_2"]
FUNCTIONS = {p.check.name: p.function for p in HW.parts}  # the check -> the student's function
CALLERS = {"recalibrate": recalibration.call_recalibrate, "fold_orders": folding.call_fold_orders}
WRITTEN_QUESTIONS = ("hw2-fold-orders", "hw2-gap-small-batches", "hw2-freeze-batch-2")
# The formulas the homework asks for, as the solutions or a careless page would print them:
# none may appear in what the student gets.
FORMULAS = (
    "delta**2",
    "δ²",
    "\\delta^2",
    "n_A n_B",
    "n_a n_b",
    "n_a·n_b",
    "M_{2,A} + M_{2,B}",
    "m2_a + m2_b +",
    "W'_c",
    "b'_c",
    "\\sqrt{\\hat\\sigma",
    "gamma / np.sqrt",
    "scale * (bias - running_mean)",
    "(b - \\hat\\mu",
    "reset_running_stats",
    "dxhat",
    "\\sum \\hat x",
    "x̂·Σ",
    "frac{\\gamma",
)


@pytest.fixture(scope="module")
def source():
    return jupytext.read(SOURCE)


@pytest.fixture(scope="module")
def student_notebook_text(source, tmp_path_factory):
    """The student notebook as ``make homework`` writes it (plain Markdown), read back."""
    path = tmp_path_factory.mktemp("student") / "09_homework_2.ipynb"
    nbformat.write(rewrite.plain_markdown(rewrite.student_edition(source, HW.name)), path)
    return path.read_text(encoding="utf-8")


def graded_cells(nb):
    """The namespace of the cells that define the graded functions."""
    namespace: dict = {}
    exec("import numpy as np\nimport torch", namespace)
    for cell in nb.cells:
        if cell.cell_type == "code" and any(f"def {f}(" in cell.source for f in FUNCTIONS.values()):
            exec(cell.source, namespace)
    return namespace


def text_of(nb) -> str:
    return "\n".join(c.source for c in nb.cells)


@pytest.mark.parametrize("part", HW.parts, ids=lambda p: p.name)
def test_reference_solutions_pass_public_and_hidden_cases(source, part):
    fn = graded_cells(source)[part.function]
    caller = CALLERS.get(part.check.name, check.call)
    trials = part.trials(np.random.default_rng(3))
    result = check.assess(part.check, trials, [caller(fn, t, part.check.outputs) for t in trials])
    assert result and result.score == 1.0 and not result.diagnoses, str(result)
    assert getattr(check, part.check.name)(fn), part.name  # the notebook's check cell


def test_student_edition_contains_no_solution_and_no_asked_for_formula(
    source, student_notebook_text
):
    student = rewrite.student_edition(source)
    text = text_of(student)
    secret = rewrite.solution_lines(source)
    assert len(secret) > 40
    assert [line for line in secret if line in text] == []
    assert [line for line in secret if line in student_notebook_text] == []
    for snippet in (  # independent of solution_lines: distinctive lines of the solutions
        "rows = x.reshape(x.shape[0], num_groups, -1)",
        "through_var = xhat * (dxhat * xhat).mean(axis=2, keepdims=True)",
        "m2 = m2_a + m2_b + delta**2",
        "bn.reset_running_stats()",
        "weight = conv_w * scale.reshape(-1, 1, 1, 1)",
        "return True, False, True",
        "assert recalibrate_check",
        "overlaps the padding (unless every shift is zero)",
        "Freeze the statistics",
    ):
        assert snippet in text_of(source), snippet
        assert snippet not in text, snippet
        assert snippet not in student_notebook_text, snippet
    leaked = [f for f in FORMULAS if f in text or f in student_notebook_text]
    assert leaked == []
    for marker in ("{solution}", "{solution-start}", "{solution-end}", "<!--", "hide-input"):
        assert marker not in text, marker


def test_the_page_links_the_sections_that_derive_the_formulas(source, student_notebook_text):
    """Each link to another chapter's section names a label that exists; in the student
    notebook (which has no other chapter) the links are plain text."""
    labels = re.findall(r"\]\(#(sec-[\w-]+)\)", text_of(source))
    assert len(set(labels)) >= 8
    chapters = "\n".join(p.read_text() for p in (ROOT / "chapters").glob("*.md"))
    for label in labels:
        assert f"\n({label})=\n" in chapters, label
    assert "](#sec-" not in student_notebook_text
    assert "*node by node*" in student_notebook_text


# A points cell of the table: "3" (automatic), "1 + 1 by hand" (1 automatic and 1 by hand)
# or "4 by hand"; a row: | part | what you write | points |.
POINTS_CELL = r"(?:(\d+)(?: \+ (\d+) by hand)?|(\d+) by hand)"
TABLE_ROW = re.compile(rf"^\| (\d)([a-z]?) \| (.+?) \| {POINTS_CELL} \|", re.M)
HEADING = re.compile(r"^## Part (\d): .*\((\d+) points?(?:, (\d+|by hand)(?: by hand)?)?\)$", re.M)
EXERCISE = re.compile(r"\*\*\((\d+) points?(?:, and (\d+) points? by hand)?\)\*\*")


def table_points(text: str) -> dict[str, tuple[int, int]]:
    """Each row's (automatic, by hand) points, keyed by its part ("1a", "5")."""
    points = {}
    for number, letter, _, auto, extra, hand in TABLE_ROW.findall(text):
        points[number + letter] = (0, int(hand)) if hand else (int(auto), int(extra or 0))
    return points


def test_the_page_states_the_registry_points(source):
    """The table, the section headings and the exercises state the registry's points, and
    add up to the same total."""
    text = text_of(source)
    rows = re.findall(r"^\| \w+ \| `(\w+)`: .*? \| (\d+)(?: \+ \d+ by hand)? \|$", text, re.M)
    assert {function: int(points) for function, points in rows} == {
        p.function: p.points for p in HW.parts
    }
    table = table_points(text)
    assert sorted(table) == ["1a", "1b", "2", "3", "4a", "4b", "5"]
    automatic = sum(auto for auto, _ in table.values())
    by_hand = sum(hand for _, hand in table.values())
    assert automatic == HW.max_score
    total = f"**{automatic + by_hand}** ({automatic} automatic, {by_hand} by hand)"
    assert total in text

    headings = HEADING.findall(text)
    assert [number for number, *_ in headings] == ["1", "2", "3", "4", "5"]
    sections = re.split(r"^## ", text, flags=re.M)
    for number, points, hand in headings:
        rows_of_part = [v for k, v in table.items() if k[0] == number]
        want_auto = sum(a for a, _ in rows_of_part)
        want_hand = sum(h for _, h in rows_of_part)
        hand_points = int(points) if hand == "by hand" else int(hand or 0)
        assert (int(points), hand_points) == (want_auto + want_hand, want_hand), number
        (section,) = [s for s in sections if s.startswith(f"Part {number}:")]
        exercises = EXERCISE.findall(section)
        assert exercises, number
        assert sum(int(p) + int(h or 0) for p, h in exercises) == int(points), number
    assert sum(int(points) for _, points, _ in headings) == automatic + by_hand


def test_the_readme_states_the_pages_points():
    """The README's table for instructors gives each part the page's points."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("**The second homework**")
    section = readme[start : readme.index("**Changing the homework.**", start)]
    assert table_points(section) == table_points(SOURCE.read_text(encoding="utf-8"))
    assert f"{HW.max_score:g} points are graded automatically" in " ".join(section.split())


def test_student_edition_keeps_stubs_checks_and_asks_only_the_questions(source):
    student = rewrite.student_edition(source)
    code = "\n".join(c.source for c in student.cells if c.cell_type == "code")
    for name, fn_name in FUNCTIONS.items():
        assert code.count(f"def {fn_name}(") == 1
        assert f"bnlib.check.{name}({fn_name})" in code
    answers = [c for c in student.cells if rewrite.ANSWER in c.source]
    assert len(answers) == len(WRITTEN_QUESTIONS)  # none where the answer is a function
    for label in WRITTEN_QUESTIONS:
        assert f":label: {label}" in text_of(source)
    plain = rewrite.plain_markdown(student)
    markdown = "\n".join(c.source for c in plain.cells if c.cell_type == "markdown")
    for k in range(1, 9):
        assert f"**Exercise {k}.**" in markdown
    assert "{exercise}" not in markdown and ":label:" not in markdown
    assert '[homework]"' in markdown  # the install line with the extra part 3 needs


def test_student_edition_runs_with_the_stubs(source):
    """Every code cell of the student edition, in order: the checks report "Not implemented
    yet", nothing raises; torch is imported only for part 3, myst_nb never."""
    student = rewrite.student_edition(source)
    namespace: dict = {}
    shown = []
    first_torch = None
    for k, cell in enumerate(c for c in student.cells if c.cell_type == "code"):
        assert "myst_nb" not in cell.source
        if "torch" in cell.source and first_torch is None:
            first_torch = k
            assert "recalibration_problem" in cell.source
        lines = cell.source.strip().splitlines()
        with contextlib.redirect_stdout(io.StringIO()):
            exec(cell.source, namespace)
        last = lines[-1] if lines else ""
        if last.isidentifier() or last.startswith("bnlib.check."):
            shown.append(str(eval(last, namespace)))
    assert len(shown) == len(HW.parts)
    assert all("Not implemented yet" in report for report in shown), shown


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
    assert sum("````{solution} hw2-" in c.source for c in dropdowns) == 5
