"""The grader's reports on crafted submissions (tests/grader/crafted.py): ids, summary,
feedback, answers, regrade; and one bad notebook never stops the run (issue 21)."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil

import nbformat
import pytest

from grader import confine, grade, sandbox
from grader import homeworks as registry
from grader.reports import spreadsheet_safe
from tests.grader.crafted import (
    GBK_DISPLAY,
    LIMITS,
    hw_editions,
)

# one pytest-xdist worker grades them all (make test runs --dist loadgroup): one grading run
pytestmark = pytest.mark.xdist_group("grader")


# --------------------------------------------------------------------------------------
# Reports: ids, summary, feedback, answers, regrade
# --------------------------------------------------------------------------------------


def test_every_submission_has_its_own_report(graded):
    out, reports = graded["out"], graded["reports"]
    ids = [r["id"] for r in reports.values()]
    assert len(ids) == len(set(ids)) == len(list(graded["subs"].rglob("*.ipynb")))
    assert reports["alice/05_homework.ipynb"]["id"] == "alice%2F05_homework"
    assert reports["alice__05_homework.ipynb"]["id"] == "alice__05_homework"
    assert reports["李雷/05_homework.ipynb"]["id"] == "李雷%2F05_homework"
    assert reports["韩梅梅.ipynb"]["score"] == 8
    for report in reports.values():
        assert (out / "reports" / f"{report['id']}.json").is_file()
        assert (out / "feedback" / f"{report['id']}.md").is_file()
    assert reports["garbage.ipynb"]["status"] == "unreadable"
    assert reports["garbage.ipynb"]["reason"].startswith("not a Jupyter notebook")
    assert reports["link.ipynb"]["reason"].startswith("not a regular file")


def test_summary_has_paths_scores_and_flags(graded):
    rows = list(csv.DictReader(io.StringIO((graded["out"] / "summary.csv").read_text())))
    assert {"submission", "score", "max_score", "flags", "homework", "id"} <= set(rows[0])
    by_path = {row["submission"]: row for row in rows}
    assert set(by_path) == {spreadsheet_safe(name) for name in graded["reports"]}
    assert float(by_path["honest.ipynb"]["score"]) == 10.0
    assert float(by_path["alice__05_homework.ipynb"]["score"]) == 0.0
    assert by_path["torch.ipynb"]["flags"] == "calls torch"
    assert float(by_path["partial.ipynb"]["forward"]) == 3.0
    rubric = json.loads((graded["out"] / "rubric.json").read_text())
    assert rubric["05_homework"]["running_stats"]["deductions"]["keras_momentum"] == 1


def test_written_answers_are_exported(graded):
    rows = list(csv.DictReader(io.StringIO((graded["out"] / "answers.csv").read_text())))
    mine = [r for r in rows if r["submission"] == "partial.ipynb"]
    questions = [r["question"] for r in mine]
    assert questions == ["hw-unbiased", "hw-warmup", "hw-sums", "hw-eps"]
    assert [r["title"] for r in mine[:2]] == ["Exercise 2", "Exercise 4"]
    assert mine[0]["answer"] == "every x̂ shrinks by √(7/8) in the 1×1 case."
    assert all(r["answer"] == "" for r in mine if r["question"] != "hw-unbiased")


def test_a_regrade_merges_with_what_is_there(graded, tmp_path):
    # on a copy of the run's OUT: the other tests (in other files too) read the run's own
    out = tmp_path / "grades"
    shutil.copytree(graded["out"], out)
    other = (out / "reports" / "stub.json").read_text()
    _, solutions = hw_editions()
    late = tmp_path / "late"
    late.mkdir()
    nbformat.write(solutions, late / "partial.ipynb")
    grade.grade_all(late, out, jobs=1, limits=LIMITS, quiet=True)
    rows = list(csv.DictReader(io.StringIO((out / "summary.csv").read_text())))
    assert len(rows) == len(graded["reports"])
    assert float(next(r for r in rows if r["submission"] == "partial.ipynb")["score"]) == 10
    assert (out / "reports" / "stub.json").read_text() == other


# --------------------------------------------------------------------------------------
# Issue 21: one bad notebook never stops the run; judging does not depend on the student
# --------------------------------------------------------------------------------------


def test_every_odd_notebook_gets_a_row_and_a_page(graded):
    reports, out = graded["reports"], graded["out"]
    expected = {
        "sum_chain.ipynb": ("graded", 10),  # 1+1+…+1: RecursionError in the old flag scan
        "minus.ipynb": ("graded", 10),  # ------…1: MemoryError there
        "string_stamp.ipynb": ("graded", 10),  # "bnbook": "05_homework": AttributeError
        "surrogate.ipynb": ("graded", 10),  # a lone surrogate in an answer
        GBK_DISPLAY: ("graded", 10),  # a GBK file name, as a Chinese Windows zip leaves it
        "scratch_300.ipynb": ("graded", 10),  # 300 scratch cells: no process held per cell
        "huge_cell.ipynb": ("too large", 0),  # 2 MB of code
        "oversize.ipynb": ("too large", 0),  # a file past the limit: refused unread
    }
    for name, (status, score) in expected.items():
        report = reports[name]
        assert (report["status"], report["score"]) == (status, score), (name, report["reason"])
        assert (out / "feedback" / f"{report['id']}.md").is_file()
    assert reports[GBK_DISPLAY]["id"] == "%C0%EE%C0%D7"
    assert "code too deep to read" in reports["sum_chain.ipynb"]["flags"]
    page = (out / "feedback" / "oversize.md").read_text()
    assert "Not graded (too large)" in page and "at most 16 MB" in page
    answers = (out / "answers.csv").read_text(encoding="utf-8")
    assert "\\ud800" in answers


def test_a_notebook_stamped_for_another_homework_is_graded_as_the_runs(graded):
    reports = graded["reports"]
    trick = reports["stamped_hw2.ipynb"]  # homework 2's answers, handed in for homework 1
    assert trick["homework"] == "05_homework" and trick["score"] == 0
    assert "stamped 09_homework_2" in trick["flags"]
    honest = reports["mis_stamped.ipynb"]  # homework 1's answers, the wrong stamp
    assert honest["score"] == 10 and "stamped 09_homework_2" in honest["flags"]
    assert any("graded as 05_homework" in note for note in honest["notes"])


@pytest.mark.parametrize(
    ("name", "flag"),
    [
        ("alias_check.ipynb", "calls bnlib.check"),  # from bnlib import check as ref
        ("import_alias.ipynb", "calls bnlib.check"),  # import bnlib.check as c
        ("dynamic_torch.ipynb", "dynamic import"),  # vars(__builtins__)["__imp"+"ort__"]
    ],
)
def test_calling_the_library_is_flagged_through_any_alias(graded, name, flag):
    report = graded["reports"][name]
    assert flag in report["flags"], report["flags"]


def test_returning_float16_gains_nothing(graded):
    low = graded["reports"]["float16.ipynb"]["parts"]["forward"]
    cast = graded["reports"]["float16_cast.ipynb"]["parts"]["forward"]
    assert low["points"] <= cast["points"] < 4


def test_csv_cells_are_escaped(graded):
    summary = list(csv.reader(io.StringIO((graded["out"] / "summary.csv").read_text())))
    assert '\'=HYPERLINK("x","y").ipynb' in [row[0] for row in summary]
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in summary for cell in row)
    answers = list(csv.reader(io.StringIO((graded["out"] / "answers.csv").read_text())))
    assert any(row[-1] == "'=1+2" for row in answers)


def test_the_run_says_which_sandbox_graded(graded):
    report = graded["reports"]["honest.ipynb"]
    assert report["sandbox"]["mode"] in ("bwrap", "process")
    if os.getuid() == 0:
        assert report["sandbox"]["ran_as"]["uid"] >= confine.SANDBOX_UID_BASE


def test_reports_of_two_homeworks_never_mix(graded, tmp_path):
    """A homework-2 run into homework 1's OUT is refused; the default OUT is per homework."""
    other = tmp_path / "hw2"
    other.mkdir()
    student, _ = hw_editions(registry.HOMEWORKS["09_homework_2"])
    nbformat.write(student, other / "09_homework_2.ipynb")
    with pytest.raises(SystemExit, match="holds grades of 05_homework"):
        grade.grade_all(other, graded["out"], homework="09_homework_2", limits=LIMITS, quiet=True)
    assert grade.GRADES.name == "grades"  # the default: _build/grades/<homework>
    with pytest.raises(SystemExit, match="which homework"):
        empty = tmp_path / "none"
        empty.mkdir()
        (empty / "x.ipynb").write_text('{"cells": []}')
        grade.grade_all(empty, tmp_path / "o", limits=LIMITS, quiet=True)


def test_a_grader_failure_is_no_students_zero(graded, tmp_path, monkeypatch):
    """The sandbox breaking on one notebook (here: the grader's own code raising) gives that
    row a status and no score; the run goes on and the command exits 1."""
    subs = tmp_path / "subs"
    subs.mkdir()
    _, solutions = hw_editions()
    for name in ("a.ipynb", "b.ipynb"):
        nbformat.write(solutions, subs / name)
    original = sandbox.Sandbox.run

    def flaky(self, cells, parts, trials):
        if parts and self.slot == 1:  # the first notebook's run (slot 0 is the probe)
            self.slot += 1
            raise OSError("disk full")
        return original(self, cells, parts, trials)

    monkeypatch.setattr(sandbox.Sandbox, "run", flaky)
    code = grade.main([str(subs), "--out", str(tmp_path / "out"), "--timeout", "60"])
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "summary.csv").read_text())))
    by_name = {row["submission"]: row for row in rows}
    assert code == 1
    failed = [r for r in rows if r["status"].startswith("grader error")]
    assert len(failed) == 1 and failed[0]["score"] == "" and "disk full" in failed[0]["status"]
    assert {float(r["score"]) for r in by_name.values() if r not in failed} == {10.0}
