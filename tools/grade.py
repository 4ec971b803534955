"""Grade submitted homework notebooks: run each in a fresh kernel, check it, report.

    python tools/grade.py SUBMISSIONS [--out _build/grades] [--cell-timeout 60]
                                      [--timeout 300]

SUBMISSIONS is a directory of notebooks: ``alice.ipynb``, or one folder per student
(``alice/05_homework.ipynb``); every ``*.ipynb`` below it is one submission, named by its
path. For each, a separate worker process executes the notebook top to bottom in a fresh
python3 kernel (each cell limited to --cell-timeout seconds, the whole submission to
--timeout), then, in the same kernel, runs ``bnlib.check`` on the student's
``bn_forward``, ``bn_backward`` and ``bn_running_stats``. A submission that crashes the
kernel, raises (an import of a missing module, say), runs out of time, or is not a notebook
scores zero with the reason; the run goes on.

Writes OUT/<student>.json and OUT/<student>.md (score, each check's report and diagnoses,
and notes), and OUT/summary.{json,md,csv}.

Scores: each function earns its points times the fraction of check cases it passes.
This is not a sandbox: submissions run with your permissions. Grade untrusted notebooks
inside a container or a throwaway account.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PARTS = (  # (bnlib.check function, the student's function, points)
    ("forward", "bn_forward", 4),
    ("backward", "bn_backward", 4),
    ("running_stats", "bn_running_stats", 2),
)
MAX_SCORE = sum(points for _, _, points in PARTS)
MARKER = "@@bnbook-grade@@"

# The cell appended to every submission. It reloads bnlib's modules first, so a notebook
# that replaced bnlib.check's functions is graded by the real ones.
GRADING_CELL = f"""
import importlib as _g_importlib, inspect as _g_inspect, json as _g_json, re as _g_re
import bnlib.functional as _g_functional
import bnlib.check as _g_check
_g_importlib.reload(_g_functional)
_g_importlib.reload(_g_check)

def _g_grade():
    results = {{}}
    for check_name, fn_name, _ in {PARTS!r}:
        fn = globals().get(fn_name)
        if fn is None:
            results[check_name] = {{"missing": fn_name}}
            continue
        result = getattr(_g_check, check_name)(fn)
        entry = result.to_dict()
        try:
            source = _g_inspect.getsource(fn)
        except (OSError, TypeError):
            source = ""
        entry["uses_library"] = bool(_g_re.search(r"\\b(bnlib|torch)\\b", source))
        results[check_name] = entry
    return results

print({MARKER!r} + _g_json.dumps(_g_grade()))
"""


# --------------------------------------------------------------------------------------
# The worker: one submission, in its own process
# --------------------------------------------------------------------------------------


def grade_one(path: Path, cell_timeout: int) -> dict:
    """Execute one notebook with the grading cell appended; the raw result as a dict."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except Exception as exc:  # anything unreadable is a zero, with the reason
        return {"status": "error", "reason": f"not a valid Jupyter notebook: {exc}"}
    nb.cells = [c for c in nb.cells if c.cell_type in ("code", "markdown", "raw")]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nb.cells.append(nbformat.v4.new_code_cell(GRADING_CELL))
    current = {"index": 0}

    def on_cell_execute(cell, cell_index):
        current["index"] = cell_index

    def cell_name(index: int) -> str:
        """``cell 7 (`def bn_backward(dy, x, gamma, eps):`)``: its number and first line."""
        lines = [line.strip() for line in nb.cells[index].source.splitlines() if line.strip()]
        first = lines[0] if lines else ""
        first = first if len(first) <= 60 else first[:57] + "..."
        return f"cell {index + 1}" + (f" (`{first}`)" if first else "")

    with tempfile.TemporaryDirectory(prefix="bnbook-grade-") as tmp:
        client = NotebookClient(
            nb,
            timeout=cell_timeout,
            kernel_name="python3",
            allow_errors=False,  # a cell that raises ends the run: zero, with the error
            resources={"metadata": {"path": tmp}},
            on_cell_execute=on_cell_execute,
        )
        try:
            client.execute()
        except CellTimeoutError:
            where = current["index"] + 1
            what = "the grading checks" if where == len(nb.cells) else cell_name(where - 1)
            return {
                "status": "error",
                "reason": f"{what} ran longer than {cell_timeout} s (an endless loop?)",
            }
        except CellExecutionError as exc:
            where = current["index"] + 1
            if where == len(nb.cells):
                return {"status": "error", "reason": f"the grading checks failed: {exc.ename}"}
            return {
                "status": "error",
                "reason": f"{cell_name(where - 1)} raised {exc.ename}: {exc.evalue}",
            }
        except DeadKernelError:
            return {
                "status": "error",
                "reason": f"the kernel died (crashed) while running {cell_name(current['index'])}",
            }
        except Exception as exc:
            return {"status": "error", "reason": f"the notebook could not run: {exc}"}
    grading = nb.cells[-1]
    for output in grading.get("outputs", []):
        if output.get("output_type") == "stream" and MARKER in output.get("text", ""):
            line = next(t for t in output["text"].splitlines() if t.startswith(MARKER))
            return {"status": "graded", "checks": json.loads(line[len(MARKER) :])}
    return {"status": "error", "reason": "the grading checks printed no result"}


# --------------------------------------------------------------------------------------
# Scoring and reports
# --------------------------------------------------------------------------------------


def score(raw: dict, student: str, source: str) -> dict:
    """The report for one student from the worker's raw result."""
    report = {
        "student": student,
        "submission": source,
        "score": 0.0,
        "max_score": MAX_SCORE,
        "status": raw.get("status", "error"),
        "reason": raw.get("reason", ""),
        "parts": {},
        "notes": [],
    }
    if report["status"] != "graded":
        return report
    for check_name, fn_name, points in PARTS:
        entry = raw["checks"].get(check_name, {})
        part = {"function": fn_name, "max_points": points, "points": 0.0}
        if "missing" in entry:
            part["reason"] = f"{fn_name} is not defined"
        else:
            total = entry["cases_total"] or 1
            part.update(
                points=round(points * entry["cases_passed"] / total, 2),
                passed=entry["passed"],
                cases_passed=entry["cases_passed"],
                cases_total=entry["cases_total"],
                diagnoses=entry["diagnoses"],
                summary=entry.get("summary", ""),
                report=entry["report"],
            )
            if entry.get("uses_library"):
                report["notes"].append(
                    f"{fn_name} mentions bnlib or torch in its code: check by hand that it "
                    "does not just call a library"
                )
        report["parts"][check_name] = part
    report["score"] = round(sum(p["points"] for p in report["parts"].values()), 2)
    return report


def markdown(report: dict) -> str:
    lines = [
        f"# Homework grade: {report['student']}",
        "",
        f"Submission: `{report['submission']}`",
        "",
        f"**Score: {report['score']:g} / {report['max_score']}**",
        "",
    ]
    if report["status"] != "graded":
        lines += [f"Not graded, zero: {report['reason']}.", ""]
    else:
        lines += ["| function | points | cases passed | diagnosis |", "| --- | --- | --- | --- |"]
        for part in report["parts"].values():
            if "reason" in part:
                lines.append(
                    f"| `{part['function']}` | 0 / {part['max_points']} | - | {part['reason']} |"
                )
                continue
            diagnoses = "; ".join(d["mistake"] for d in part["diagnoses"]) or (
                "-" if part["passed"] else part.get("summary") or "see report"
            )
            lines.append(
                f"| `{part['function']}` | {part['points']:g} / {part['max_points']} | "
                f"{part['cases_passed']} / {part['cases_total']} | {diagnoses} |"
            )
        lines.append("")
        for name, part in report["parts"].items():
            if "report" in part:
                lines += [f"## {name}", "", "```text", part["report"], "```", ""]
    if report["notes"]:
        lines += ["## Notes", ""] + [f"- {note}" for note in report["notes"]] + [""]
    return "\n".join(lines)


def safe_name(relative: Path) -> str:
    name = "__".join(relative.with_suffix("").parts)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "submission"


# --------------------------------------------------------------------------------------
# The run: every submission in a worker process, never stopping on one
# --------------------------------------------------------------------------------------


def kill_tree(pid: int) -> None:
    """Kill a worker and everything it started (its kernel runs in a session of its own)."""
    try:
        import psutil
    except ImportError:  # psutil comes with ipykernel; without it, kill the worker only
        subprocess.run(["kill", "-9", str(pid)], check=False)
        return
    try:
        parent = psutil.Process(pid)
        procs = parent.children(recursive=True) + [parent]
    except psutil.NoSuchProcess:
        return
    for proc in procs:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=10)


def run_worker(path: Path, cell_timeout: int, timeout: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        result_file = Path(tmp) / "result.json"
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--one",
            str(path),
            "--result",
            str(result_file),
            "--cell-timeout",
            str(cell_timeout),
        ]
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
        )
        try:
            _, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_tree(proc.pid)
            proc.communicate()
            return {"status": "error", "reason": f"took longer than {timeout} s in total"}
        if result_file.exists():
            return json.loads(result_file.read_text())
        tail = " ".join(stderr.strip().splitlines()[-3:])
        return {"status": "error", "reason": f"the grading worker failed: {tail}"}


def grade_all(submissions: Path, out: Path, cell_timeout: int, timeout: int) -> list[dict]:
    notebooks = sorted(
        p
        for p in submissions.rglob("*.ipynb")
        if ".ipynb_checkpoints" not in p.parts and p.is_file()
    )
    if not notebooks:
        raise SystemExit(f"no *.ipynb found under {submissions}")
    out.mkdir(parents=True, exist_ok=True)
    remove_previous_reports(out)
    reports = []
    for path in notebooks:
        student = safe_name(path.relative_to(submissions))
        start = time.monotonic()
        raw = run_worker(path, cell_timeout, timeout)
        report = score(raw, student, str(path))
        report["seconds"] = round(time.monotonic() - start, 1)
        (out / f"{student}.json").write_text(json.dumps(report, indent=2, ensure_ascii=False))
        (out / f"{student}.md").write_text(markdown(report))
        reports.append(report)
        print(
            f"{student}: {report['score']:g} / {MAX_SCORE}"
            + ("" if report["status"] == "graded" else f" ({report['reason']})")
        )
    write_summary(reports, out)
    return reports


def remove_previous_reports(out: Path) -> None:
    """Delete the reports a previous run wrote to ``out`` (and only those)."""
    summary = out / "summary.json"
    if not summary.exists():
        return
    try:
        students = [s["student"] for s in json.loads(summary.read_text())]
    except (ValueError, KeyError, TypeError):
        return
    for name in [f"{s}.{ext}" for s in students for ext in ("json", "md")] + [
        "summary.json",
        "summary.md",
        "summary.csv",
    ]:
        (out / name).unlink(missing_ok=True)


def write_summary(reports: list[dict], out: Path) -> None:
    names = [name for name, _, _ in PARTS]
    summary = [
        {
            "student": r["student"],
            "score": r["score"],
            "max_score": r["max_score"],
            "status": r["status"],
            "reason": r["reason"],
            **{n: r["parts"].get(n, {}).get("points", 0.0) for n in names},
        }
        for r in reports
    ]
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    with open(out / "summary.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(summary[0]))
        writer.writeheader()
        writer.writerows(summary)
    lines = [
        "# Homework grades",
        "",
        "| student | score | " + " | ".join(names) + " | status |",
        "| --- | --- | " + " | ".join("---" for _ in names) + " | --- |",
    ]
    for s in summary:
        status = "graded" if s["status"] == "graded" else f"zero: {s['reason']}"
        status = status.replace("|", "\\|")  # a table cell
        lines.append(
            f"| [{s['student']}]({s['student']}.md) | {s['score']:g} / {s['max_score']} | "
            + " | ".join(f"{s[n]:g}" for n in names)
            + f" | {status} |"
        )
    (out / "summary.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("submissions", nargs="?", type=Path, help="directory of notebooks")
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "grades")
    parser.add_argument("--cell-timeout", type=int, default=60, help="seconds per cell")
    parser.add_argument("--timeout", type=int, default=300, help="seconds per submission")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # worker mode
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        args.result.write_text(json.dumps(grade_one(args.one, args.cell_timeout)))
        return 0
    if args.submissions is None or not args.submissions.is_dir():
        parser.error("give the directory of submitted notebooks, e.g. make grade SUBMISSIONS=dir")
    grade_all(args.submissions, args.out, args.cell_timeout, args.timeout)
    print(f"reports: {args.out}/summary.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
