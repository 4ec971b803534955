"""Reports: what a submission wrote is shown, never followed: escaped for spreadsheets,
Markdown and UTF-8; a grader error is no score, not a zero."""

from __future__ import annotations

import csv
import io
import json

from grader import grade, homeworks, reports


def report(submission: str, **changes) -> dict:
    """A graded submission's report, as the grader starts it, with ``changes``."""
    base = grade.empty_report(submission, homeworks.HOMEWORKS["05_homework"])
    return base | {"score": 10.0, "max_score": 10.0} | changes


def rows(path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text())))


def test_csv_cells_are_never_formulas(tmp_path):
    answer = {"question": "q", "title": "+t", "cell": 3, "answer": '=HYPERLINK("x","y")'}
    for r in (
        report("=cmd|' /C calc'!A0.ipynb", answers=[answer]),
        report("@sum.ipynb", flags=["-x"]),
        report("plain.ipynb", reason="\tTab"),
    ):
        reports.save(tmp_path, r)
    reports.write_summary(tmp_path)
    for name in ("summary.csv", "answers.csv"):
        for row in rows(tmp_path / name)[1:]:
            assert not any(cell.startswith(reports.FORMULA_START) for cell in row), row
    summary = {row[0]: row for row in rows(tmp_path / "summary.csv")[1:]}
    assert "'=cmd|' /C calc'!A0.ipynb" in summary and "'@sum.ipynb" in summary
    answers = rows(tmp_path / "answers.csv")
    assert answers[1][3:] == ["'+t", "3", '\'=HYPERLINK("x","y")']
    # the JSON keeps the text as it was: it is data, not a spreadsheet
    assert json.loads((tmp_path / "summary.json").read_text())[0]["submission"].startswith("=")


def test_lone_surrogates_are_written_escaped(tmp_path):
    answer = {"question": "q", "title": "", "cell": 1, "answer": "a \ud800 b"}
    saved = reports.save(tmp_path, report("x\udcc0.ipynb", answers=[answer]))
    assert saved["answers"][0]["answer"] == "a \\ud800 b" and saved["submission"] == "x\\xc0.ipynb"
    reports.write_summary(tmp_path)
    assert "a \\ud800 b" in (tmp_path / "answers.csv").read_text(encoding="utf-8")


def test_a_grader_error_has_no_score(tmp_path):
    failed = report(
        "a.ipynb",
        score=None,
        max_score=None,
        status="grader error: the sandbox did not start",
        reason="the sandbox failed on this machine; it is not the student's zero",
    )
    reports.save(tmp_path, failed)
    reports.write_summary(tmp_path)
    (row,) = csv.DictReader(io.StringIO((tmp_path / "summary.csv").read_text()))
    assert row["score"] == "" and row["status"].startswith("grader error")
    page = (tmp_path / "feedback" / "a.md").read_text()
    assert "**Score: - / -**" in page and "not the student's zero" in page
    assert "| - / - |" in (tmp_path / "summary.md").read_text()


def test_markdown_from_a_submission_is_plain_text():
    assert reports.plain("[x](http://e) <b>|#") == "\\[x\\](http://e) \\<b\\>\\|\\#"
    assert "```" not in reports.block("```\nrm -rf /\n```")[3:-3]
