"""The reports of a grading run: one per submission, the student's feedback page, and the
summaries, all in ``OUT`` (a regrade replaces only its submissions' reports; the summaries
are rebuilt from every report there).

- ``OUT/reports/<id>.json``: everything about one submission;
- ``OUT/feedback/<id>.md``: the page for the student: points, deductions, diagnoses;
- ``OUT/summary.csv`` (and ``.json``, ``.md``): one row per submission, with ``submission``,
  ``id``, ``homework``, ``score``, ``max_score``, ``status``, ``flags``, ``reason`` and the
  points of each part;
- ``OUT/answers.csv``: the written answers, one row per submission and question;
- ``OUT/rubric.json``: the points and deductions used.

Everything here treats what came from a submission as text to show, never to follow: a
name or an answer is escaped for Markdown (:func:`plain`, :func:`block`), for spreadsheets
(:func:`spreadsheet_safe`: a CSV cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return is prefixed with ``'``, so that no spreadsheet runs it as a formula) and for
UTF-8 (:func:`clean`: lone surrogates escaped).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path
from urllib.parse import quote

from grader.notebook import GRADED, escape

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def clean(value):
    """A report made safe to write as UTF-8: every string's lone surrogates escaped."""
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, dict):
        return {clean(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def spreadsheet_safe(value):
    """A CSV cell that no spreadsheet reads as a formula (OWASP's CSV injection advice)."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def block(text: str) -> str:
    """Text from a submission, safe inside a fenced block of a Markdown page."""
    return "```text\n" + str(text).replace("```", "'''") + "\n```"


def plain(text: str) -> str:
    """Text from a submission, safe in a Markdown table cell or line."""
    return re.sub(r"([\\`*_\[\]<>|#])", r"\\\1", str(text)).replace("\n", " ")


def points(value) -> str:
    """A score as the reports show it: ``8.5``, or ``-`` when there is none (not graded)."""
    return "-" if value is None else f"{value:g}"


def feedback(report: dict) -> str:
    """The student's page: score, each part's points and why, the check reports."""
    lines = [
        f"# Feedback: {plain(report['submission'])}",
        "",
        f"**Score: {points(report['score'])} / {points(report['max_score'])}**",
        "",
    ]
    for note in report.get("notes", []):
        lines += [f"Note: {plain(note)}.", ""]
    if report["status"] != GRADED:
        why = f"Not graded ({plain(report['status'])}): {plain(report['reason'])}."
        return "\n".join([*lines, why, ""])
    lines += ["| function | points | what cost points |", "| --- | --- | --- |"]
    for part in report["parts"].values():
        lost = [f"{d['message']} (−{d['points']:g})" for d in part["deductions"]]
        why = part["reason"] or "; ".join(lost) or "-"
        lines.append(
            f"| `{part['function']}` | {part['points']:g} / {part['max_points']:g} | {plain(why)} |"
        )
    lines.append("")
    if report["cells"]:
        lines += [
            "Cells that did not run to the end (an error, a time-out or a crash; the cells "
            "after them still ran):",
            "",
        ]
        for cell in report["cells"]:
            detail = f": {cell['detail']}" if cell["detail"] else ""
            lines.append(
                f"- cell {cell['cell']} ({plain(cell['first_line'])}): "
                f"{cell['status']}{plain(detail)}"
            )
        lines.append("")
    for part in report["parts"].values():
        lines += [f"## {part['function']}", ""]
        if part["report"]:
            lines += [block(part["report"]), ""]
        elif part["reason"]:
            lines += [plain(part["reason"]), ""]
    return "\n".join(lines)


def write_atomic(path: Path, text: str) -> None:
    """``path`` written whole or not at all (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def save(out: Path, report: dict) -> dict:
    """The report and the feedback page of one submission; the report as saved."""
    report = clean(report)
    text = json.dumps(report, indent=1, ensure_ascii=False)
    write_atomic(out / "reports" / f"{report['id']}.json", text)
    write_atomic(out / "feedback" / f"{report['id']}.md", feedback(report))
    return report


def load_reports(out: Path) -> list[dict]:
    reports = []
    for path in sorted((out / "reports").glob("*.json")):
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            continue
        if isinstance(report, dict) and "submission" in report:
            reports.append(report)
    return sorted(reports, key=lambda r: r["submission"])


def csv_text(rows: list[list]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerows([[spreadsheet_safe(v) for v in row] for row in rows])
    return buffer.getvalue()


def write_summary(out: Path) -> list[dict]:
    """summary.{csv,json,md} and answers.csv from every report in OUT (the merge)."""
    reports = load_reports(out)
    part_names = []
    for report in reports:
        for name in report.get("parts", {}):
            if name not in part_names:
                part_names.append(name)
    columns = ["submission", "id", "homework", "score", "max_score", "status", "flags"]
    columns += ["reason", *part_names]
    rows = []
    for r in reports:
        row = {
            "submission": r["submission"],
            "id": r["id"],
            "homework": r.get("homework", ""),
            "score": r["score"],
            "max_score": r["max_score"],
            "status": r["status"],
            "flags": "; ".join(r.get("flags", [])),
            "reason": r.get("reason", ""),
        }
        for name in part_names:
            row[name] = r.get("parts", {}).get(name, {}).get("points", "")
        rows.append(row)
    write_atomic(out / "summary.json", json.dumps(rows, indent=1, ensure_ascii=False))
    table = [columns] + [["" if row[c] is None else row[c] for c in columns] for row in rows]
    write_atomic(out / "summary.csv", csv_text(table))
    lines = [
        "# Homework grades",
        "",
        "| submission | homework | score | flags | status |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        status = row["status"] if row["status"] == GRADED else f"{row['status']}: {row['reason']}"
        link = "feedback/" + quote(row["id"]) + ".md"
        lines.append(
            f"| [{plain(row['submission'])}]({link}) | {row['homework']} | "
            f"{points(row['score'])} / {points(row['max_score'])} | {plain(row['flags'])} | "
            f"{plain(status)} |"
        )
    write_atomic(out / "summary.md", "\n".join(lines) + "\n")
    answers = [["submission", "homework", "question", "title", "cell", "answer"]]
    for r in reports:
        for a in r.get("answers", []):
            answers.append(
                [r["submission"], r["homework"], a["question"], a["title"], a["cell"], a["answer"]]
            )
    write_atomic(out / "answers.csv", csv_text(answers))
    return rows
