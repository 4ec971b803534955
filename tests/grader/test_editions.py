"""The homework: its reference solutions, the student edition (no solution anywhere), the
solutions edition, and the grader on planted submissions."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import jupytext
import nbformat
import pytest
import yaml

from bnlib import check
from grader import editions, rewrite
from grader import homeworks as registry

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "chapters" / "05_homework.md"
FUNCTIONS = {
    "forward": "bn_forward",
    "backward": "bn_backward",
    "running_stats": "bn_running_stats",
}


@pytest.fixture(scope="module")
def source():
    return jupytext.read(SOURCE)


def define(nb) -> dict:
    """Run the notebook's cells that define the homework functions; their namespace."""
    namespace: dict = {}
    exec("import numpy as np", namespace)
    for cell in nb.cells:
        if cell.cell_type == "code" and "def bn_" in cell.source:
            exec(cell.source, namespace)
    return namespace


def code_of(nb) -> str:
    return "\n".join(c.source for c in nb.cells if c.cell_type == "code")


# --------------------------------------------------------------------------------------
# The source and its editions (no build)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FUNCTIONS)
def test_reference_solutions_pass_every_check_with_full_marks(source, name):
    fn = define(source)[FUNCTIONS[name]]
    result = getattr(check, name)(fn)
    assert result, str(result)
    assert result.score == 1.0 and not result.diagnoses


def test_student_edition_contains_no_solution(source):
    student = rewrite.student_edition(source)
    text = "\n".join(c.source for c in student.cells)
    secret = rewrite.solution_lines(source)
    assert len(secret) > 30  # the solutions are really there to be hidden
    assert [line for line in secret if line in text] == []
    # independent of solution_lines: distinctive lines of the three reference solutions
    for snippet in (
        "xhat = (x - mean) / np.sqrt(var + eps)",
        "var_unbiased = x.var(",
        "new_var = (1 - momentum) * running_var",
        "dx = scale * (m * dy",
        "dgamma = (dy * xhat).sum(",
        "assert forward_check",
        "within 1% after",
    ):
        assert snippet in "\n".join(c.source for c in source.cells)
        assert snippet not in text, snippet
    for marker in ("{solution}", "{solution-start}", "{solution-end}", "<!--"):
        assert marker not in text
    assert all(c.get("outputs", []) == [] for c in student.cells if c.cell_type == "code")


def test_student_edition_keeps_stubs_and_check_cells(source):
    student = rewrite.student_edition(source)
    code = code_of(student)
    for name, fn_name in FUNCTIONS.items():
        assert f"def {fn_name}(" in code
        assert f"bnlib.check.{name}({fn_name})" in code
    assert code.count("raise NotImplementedError") == 3
    assert code.count("# YOUR CODE HERE") >= 7  # 3 stubs + the questions' code cells
    assert "**Your answer:**" in "\n".join(c.source for c in student.cells)
    stubs = define(student)
    for name, fn_name in FUNCTIONS.items():
        result = getattr(check, name)(stubs[fn_name])
        assert not result and "Not implemented yet" in str(result)


def test_notebooks_for_jupyter_have_plain_markdown(source):
    """Jupyter shows MyST directives as code blocks: the notebooks get plain Markdown."""
    for edition in (rewrite.student_edition(source), rewrite.solutions_edition(source)):
        plain = rewrite.plain_markdown(edition)
        markdown = "\n".join(c.source for c in plain.cells if c.cell_type == "markdown")
        markdown = rewrite.HTML_COMMENT.sub("", markdown)  # notes to the instructor, unseen
        for directive in ("{exercise}", "{solution", ":label:", ":class:"):
            assert directive not in markdown, directive
        for k in range(1, source_exercises(source) + 1):
            assert f"**Exercise {k}.**" in markdown
        assert code_of(plain) == code_of(edition)  # code cells untouched
    student = rewrite.student_edition(source)
    answers = [c for c in student.cells if rewrite.ANSWER in c.source]
    assert all(c.source == rewrite.ANSWER for c in answers)  # a cell of its own, to edit


def test_answer_cells_only_where_a_written_answer_is_asked(source):
    """The written questions get a "Your answer" cell; an exercise whose answer is a graded
    function gets its stub instead (nothing to write in prose)."""
    student = rewrite.student_edition(source, "05_homework")
    answered = [c.metadata["bnbook"]["answer"] for c in student.cells if "bnbook" in c.metadata]
    assert answered == ["hw-unbiased", "hw-warmup", "hw-sums", "hw-eps"]
    stubs = "\n".join(c.source for c in student.cells if c.cell_type == "code")
    for function in ("bn_forward", "bn_running_stats", "bn_backward"):
        assert f"def {function}(" in stubs


def source_exercises(nb) -> int:
    return sum(c.source.count("{exercise}") for c in nb.cells if c.cell_type == "markdown")


def test_editions_are_stamped_for_the_grader(source):
    """The grader knows the homework from the notebook, and each answer cell's question."""
    student = rewrite.student_edition(source, "05_homework")
    assert student.metadata["bnbook"] == {"homework": "05_homework"}
    stamps = [c.metadata["bnbook"] for c in student.cells if "bnbook" in c.metadata]
    labels = [s["answer"] for s in stamps]
    assert labels == ["hw-unbiased", "hw-warmup", "hw-sums", "hw-eps"]
    assert stamps[0]["title"] == "Exercise 2"
    plain = rewrite.plain_markdown(student)
    assert [c.metadata.get("bnbook") for c in plain.cells if "bnbook" in c.metadata] == stamps
    assert rewrite.solutions_edition(source, "05_homework").metadata["bnbook"]["homework"]


def test_every_registered_homework_has_its_source_and_stubs():
    for hw in registry.HOMEWORKS.values():
        nb = jupytext.read(hw.source)
        code = code_of(rewrite.student_edition(nb, hw.name))
        for part in hw.parts:
            assert f"def {part.function}(" in code, (hw.name, part.function)


def test_solutions_edition_keeps_everything(source):
    solutions = rewrite.solutions_edition(source)
    assert len(solutions.cells) == len(source.cells)
    assert "xhat = (x - mean) / np.sqrt(var + eps)" in code_of(solutions)


def test_markdown_stripping_handles_fences_and_gates():
    text = "\n".join(
        [
            "Question.",
            "````{solution} q1",
            ":class: dropdown",
            "```python",
            "secret_inner = 1",
            "```",
            "secret text",
            "````",
            "Between.",
            ":::{solution-start} q2",
            ":::",
            "gated secret",
        ]
    )
    kept, open_gate = rewrite.strip_solution_markdown(text, False)
    assert open_gate
    assert "secret" not in kept and "Question." in kept and "Between." in kept
    kept, open_gate = rewrite.strip_solution_markdown(
        "more secret\n```{solution-end}\n```\nAfter.", True
    )
    assert not open_gate and kept.strip() == "After."


def test_unclosed_gate_is_an_error_not_a_leak():
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("```{solution-start} q\n```\nsecret"),
        nbformat.v4.new_code_cell("secret_code = 42"),
    ]
    with pytest.raises(ValueError, match="solution-end"):
        rewrite.student_edition(nb)


def test_stub_keeps_signatures_and_docstrings_only():
    code = (
        'import os\n\n\ndef f(a,\n      b):\n    """Doc."""\n    return a + b\n\n\n'
        "def g(x):\n    return x\n"
    )
    stub = rewrite.stub(code)
    assert 'def f(a,\n      b):\n    """Doc."""' in stub and "def g(x):" in stub
    assert "return" not in stub and "import os" not in stub
    assert stub.count("raise NotImplementedError") == 2
    assert rewrite.stub("x = 1") == "# YOUR CODE HERE"


# --------------------------------------------------------------------------------------
# make homework: the files, the student site, no leak
# --------------------------------------------------------------------------------------


def test_make_homework_writes_editions_without_leaks(source, tmp_path):
    run = subprocess.run(
        [sys.executable, str(ROOT / "grader" / "editions.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    student_dir = tmp_path / "student"
    student_nb = student_dir / "05_homework.ipynb"
    page = student_dir / "html" / "chapters" / "05_homework.html"
    solutions_nb = tmp_path / "solutions" / "05_homework.ipynb"
    for path in (student_nb, page, solutions_nb):
        assert path.is_file(), path
    # bnlib for the students: the library and nothing else
    (wheel,) = student_dir.glob("bnbook_bnlib-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()}
    assert "bnlib" in tops and all(t == "bnlib" or t.endswith(".dist-info") for t in tops)
    assert "{exercise}" not in student_nb.read_text()  # plain Markdown for Jupyter
    secret = rewrite.solution_lines(source)
    # no solution anywhere in the student edition: notebook, pages, _sources/, downloads
    assert editions.leaks(student_dir, secret) == []
    sources = list((student_dir / "html" / "_sources").rglob("*"))
    assert any(p.is_file() for p in sources)
    # and no link from its pages to where the solutions are: the repository, Colab, Binder
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repo_url = (config.get("repository") or {}).get("url") or "github.com/"
    for html_file in (student_dir / "html").rglob("*.html"):
        text = html_file.read_text()
        for target in (repo_url, "colab.research.google.com", "mybinder.org"):
            assert target not in text, (html_file, target)
    # the detector does find solutions where they are (a control for the assertion above)
    assert len(editions.leaks(tmp_path / "solutions", secret)) > 30
    html = page.read_text()
    assert "bn_forward" in html and "Not implemented yet" in html and "Exercise" in html
    assert "Solution to" not in html
    # the solutions edition ran, and its checks passed
    solved = nbformat.read(solutions_nb, as_version=4)
    outputs = json.dumps([c.get("outputs", []) for c in solved.cells])
    assert outputs.count("passed all 7 cases") == 3
    # the Gradescope autograder, and the grader's own check of both editions
    with zipfile.ZipFile(tmp_path / "gradescope" / "05_homework.zip") as archive:
        assert {"setup.sh", "run_autograder"} <= set(archive.namelist())
    assert "grader self-check: solutions 10/10, stubs 0" in run.stdout


def test_student_stubs_keep_their_signatures(source):
    """The stub cells start with the signatures the grader calls (issue 15, item 8)."""
    cells = [c.source for c in rewrite.student_edition(source).cells if c.cell_type == "code"]
    for signature in (
        "def bn_forward(x, gamma, beta, eps):",
        "def bn_backward(dy, x, gamma, eps):",
        "def bn_running_stats(running_mean, running_var, x, momentum):",
    ):
        assert any(c.startswith(signature) for c in cells), signature
    assert any("(dx, dgamma, dbeta)" in c for c in cells if "def bn_backward" in c)
    assert any("(new_mean, new_var)" in c for c in cells if "def bn_running_stats" in c)
