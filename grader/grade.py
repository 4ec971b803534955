"""Grade submitted homework notebooks, each in a sandbox, with partial credit by rubric.

    python -m grader.grade SUBMISSIONS [--out _build/grades] [--jobs 2] [--rubric FILE]
        [--timeout 300] [--cell-timeout 60] [--part-timeout 30]

SUBMISSIONS is a directory: every ``*.ipynb`` below it is one submission (``alice.ipynb``,
or one folder per student, ``alice/05_homework.ipynb``), named by its path relative to
SUBMISSIONS. Which homework a notebook is comes from its metadata (the student edition is
stamped), else its file name, else the functions it defines (:mod:`grader.parts`).

For each submission, in parallel (``--jobs``):

1. Its code cells run in a bubblewrap sandbox (:mod:`grader.sandbox`), each cell with its own
   time limit; a cell that raises, hangs or crashes is skipped and the next one runs.
2. Each graded function is then called, in the sandbox and with its own time limit, on the
   public cases of its check cell and on hidden cases drawn afresh for this run; the
   sandbox hands back the returned arrays, and nothing else counts (not what it prints).
3. Here, outside the sandbox, the arrays are compared with the references, the classic
   mistakes diagnosed and the points given by the rubric (:func:`grader.parts.score`).

Writes, merging with what OUT already holds (a regrade replaces only its submissions):

- ``OUT/reports/<id>.json``: everything about one submission; ``<id>`` is its path relative
  to SUBMISSIONS without ``.ipynb``, ``/`` written ``%2F`` (and ``%`` as ``%25``): unique,
  readable, Unicode kept (``李雷%2F05_homework``);
- ``OUT/feedback/<id>.md``: the page for the student: points, deductions, diagnoses;
- ``OUT/summary.csv`` (and ``.json``, ``.md``): one row per submission, with ``submission``,
  ``id``, ``homework``, ``score``, ``max_score``, ``status``, ``flags``, ``reason`` and the
  points of each part;
- ``OUT/answers.csv``: the written answers, one row per submission and question, for
  grading by hand;
- ``OUT/rubric.json``: the points and deductions used.

Flags (``calls torch``, ``calls bnlib``, ``dynamic code``, ...) come from reading the code,
here; they do not change the score: they tell you what to look at.
"""

from __future__ import annotations

import argparse
import ast
import csv
import datetime
import fcntl
import io
import json
import os
import queue
import re
import secrets
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: python grader/grade.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from grader import parts as registry  # noqa: E402
from grader import sandbox  # noqa: E402
from grader.parts import Homework  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "_build" / "grades"
MAX_NOTEBOOK_BYTES = 20 * 1024 * 1024
ANSWER_PREFIX = "**Your answer:**"


# --------------------------------------------------------------------------------------
# Submissions: finding, naming, reading
# --------------------------------------------------------------------------------------


def discover(submissions: Path) -> list[Path]:
    return sorted(
        p
        for p in submissions.rglob("*.ipynb")
        if ".ipynb_checkpoints" not in p.relative_to(submissions).parts
    )


def submission_id(relative: Path | str) -> str:
    """``alice/05_homework.ipynb`` -> ``alice%2F05_homework``: one file name per path, and
    no two paths with the same name (``%`` is escaped too); letters of any script kept."""
    text = str(relative)
    if text.endswith(".ipynb"):
        text = text[: -len(".ipynb")]
    out = []
    for ch in text:
        if ch in "%/\\" or not ch.isprintable() or ch in "\n\r\t":
            out.append("".join(f"%{b:02X}" for b in ch.encode()))
        else:
            out.append(ch)
    name = "".join(out)
    if name.startswith("."):
        name = "%2E" + name[1:]
    if len(name.encode()) > 200:  # file names are at most 255 bytes
        import hashlib

        digest = hashlib.sha256(name.encode()).hexdigest()[:12]
        name = name.encode()[:180].decode(errors="ignore") + "~" + digest
    return name or "%"


def read_notebook(path: Path):
    """The notebook, or (None, why not)."""
    import nbformat

    if path.is_symlink() or not path.is_file():
        return None, "not a regular file (a symbolic link?)"
    if path.stat().st_size > MAX_NOTEBOOK_BYTES:
        return None, f"larger than {MAX_NOTEBOOK_BYTES // 2**20} MB"
    try:
        nb = nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
        nbformat.validate(nb)
    except Exception as exc:  # anything unreadable is a zero, with the reason
        return None, f"not a valid Jupyter notebook ({type(exc).__name__})"
    return nb, ""


def defined_functions(sources: list[str]) -> set[str]:
    names = set()
    for source in sources:
        tree = parse(source)
        if tree is not None:
            names |= {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    return names


def identify(nb, path: Path) -> Homework | None:
    """The homework a notebook is: its stamp, its file name, or the functions it defines."""
    stamp = nb.metadata.get("bnbook", {}).get("homework")
    if isinstance(stamp, str) and stamp in registry.HOMEWORKS:
        return registry.HOMEWORKS[stamp]
    if path.stem in registry.HOMEWORKS:
        return registry.HOMEWORKS[path.stem]
    defined = defined_functions([c.source for c in nb.cells if c.cell_type == "code"])
    best = max(
        registry.HOMEWORKS.values(),
        key=lambda hw: sum(p.function in defined for p in hw.parts),
        default=None,
    )
    if best is None or not any(p.function in defined for p in best.parts):
        return None
    return best


def parse(source: str) -> ast.Module | None:
    """The cell as Python, IPython's magics turned into calls first (nothing runs)."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        source = TransformerManager().transform_cell(source)
    except Exception:
        pass
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError):
        return None


def answers(nb) -> list[dict]:
    """The written answers: Markdown cells stamped as answers (or starting "Your answer")."""
    found = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        stamp = cell.metadata.get("bnbook", {})
        question = stamp.get("answer") if isinstance(stamp, dict) else None
        if question is None and not cell.source.lstrip().startswith(ANSWER_PREFIX):
            continue
        text = cell.source.strip()
        if text.startswith(ANSWER_PREFIX):
            text = text[len(ANSWER_PREFIX) :].strip()
        if text in ("*(double-click to edit)*", ""):
            text = ""
        found.append(
            {
                "question": str(question or f"cell {index + 1}"),
                "title": str(stamp.get("title", "")) if isinstance(stamp, dict) else "",
                "cell": index + 1,
                "answer": text,
            }
        )
    return found


# --------------------------------------------------------------------------------------
# Flags: what the code does that a person should look at (read here, never run)
# --------------------------------------------------------------------------------------

# the checks a notebook's check cells may call: every registered part's, and the battery
CHECK_CALLS = {"CASES"} | {p.check.name for hw in registry.HOMEWORKS.values() for p in hw.parts}
DYNAMIC = {"exec", "eval", "compile", "__import__"}
INTROSPECTION_MODULES = {"inspect", "gc", "ctypes", "traceback", "importlib", "builtins"}
PROCESS_MODULES = {"subprocess", "multiprocessing", "signal", "pty", "socket", "threading"}


def dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def flags(sources: list[str]) -> list[str]:
    """Short flags for the summary, from the notebook's code."""
    found: set[str] = set()
    trees = [parse(source) for source in sources]
    if any(tree is None for tree in trees):
        found.add("code that does not parse")
    trees = [tree for tree in trees if tree is not None]
    imported: set[str] = set()  # the names modules are bound to
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    imported.add(alias.asname or alias.name.split(".")[0])
                    note_module(alias.name, found)
            elif isinstance(node, ast.ImportFrom) and node.module:
                note_module(node.module, found, [a.name for a in node.names])
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                note_attribute(dotted(node), found)
                events = node.attr == "register" and getattr(node.value, "attr", "") == "events"
                if events or node.attr in IPYTHON_HOOKS:
                    found.add("IPython hooks")
            elif isinstance(node, ast.Name) and node.id in DYNAMIC:
                found.add("dynamic code")
            elif isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
                many = isinstance(node, (ast.Assign, ast.Delete))
                for target in node.targets if many else [node.target]:
                    if isinstance(target, ast.Attribute):
                        if dotted(target).split(".")[0] in imported:
                            found.add("patches a module")
            elif isinstance(node, ast.Call) and dotted(node.func) == "setattr" and node.args:
                if isinstance(node.args[0], (ast.Name, ast.Attribute)):
                    if dotted(node.args[0]).split(".")[0] in imported:
                        found.add("patches a module")
    return sorted(found)


IPYTHON_HOOKS = {"register_magic_function", "input_transformers_post", "ast_transformers"}
PROCESS_CALLS = {"fork", "system", "popen", "kill", "_exit", "setsid", "execv", "execvp"}


def note_attribute(name: str, found: set[str]) -> None:
    if name.startswith("bnlib.") and not name.startswith("bnlib.check"):
        found.add("calls bnlib")
    if name.startswith("bnlib.check.") and name.split(".")[2] not in CHECK_CALLS:
        found.add("calls bnlib")
    if name.startswith("torch."):
        found.add("calls torch")
    if name in ("sys._getframe", "sys.modules", "sys.settrace", "sys.setprofile"):
        found.add("introspection")
    if name.split(".")[0] == "os" and name.split(".")[-1] in PROCESS_CALLS:
        found.add("starts or ends processes")


def note_module(module: str, found: set[str], names: list[str] | None = None) -> None:
    top = module.split(".")[0]
    if top == "torch":
        found.add("calls torch")
    elif top == "bnlib" and (module != "bnlib.check" or set(names or []) - CHECK_CALLS):
        if not (module == "bnlib" and names is None) and not (
            module == "bnlib" and set(names or []) <= {"check"}
        ):
            found.add("calls bnlib")
    elif top in INTROSPECTION_MODULES:
        found.add("introspection")
    elif top in PROCESS_MODULES:
        found.add("starts or ends processes")


# --------------------------------------------------------------------------------------
# One submission
# --------------------------------------------------------------------------------------


def first_line(source: str) -> str:
    lines = [line.strip() for line in source.splitlines() if line.strip()]
    first = lines[0] if lines else ""
    return first if len(first) <= 60 else first[:57] + "..."


def grade_notebook(
    path: Path,
    relative: str,
    rubric: dict,
    limits: sandbox.Limits,
    slot: int = 0,
    isolation: str = "bwrap",
    homework: Homework | None = None,
    seed: int | None = None,
) -> dict:
    """The report for one submission (see the module docstring); ``homework`` when known
    (else :func:`identify` tells). The hidden cases are drawn from ``seed``, a fresh random
    one unless given (the report keeps it, so that a disputed grade can be re-run)."""
    start = time.monotonic()
    report = {
        "id": submission_id(relative),
        "submission": relative,
        "homework": "",
        "score": 0.0,
        "max_score": 0.0,
        "status": "error",
        "reason": "",
        "flags": [],
        "parts": {},
        "cells": [],
        "answers": [],
        "graded_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    nb, why = read_notebook(path)
    if nb is None:
        report["reason"] = why
        return report
    homework = homework or identify(nb, path)
    if homework is None:
        report["reason"] = "not one of the homework notebooks (no graded function found)"
        return report
    report["homework"] = homework.name
    points = {p.name: registry.rubric_for(p, homework, rubric) for p in homework.parts}
    report["max_score"] = sum(pts for pts, _ in points.values())
    code = [(i, c.source) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    report["flags"] = flags([source for _, source in code])
    report["answers"] = answers(nb)

    seed = secrets.randbits(64) if seed is None else seed  # fresh hidden cases, every run
    report["seed"] = seed
    rng = np.random.default_rng(seed)
    trials = {p.name: registry.draw_trials(p, rng) for p in homework.parts}
    specs = [
        {"name": p.name, "function": p.function, "outputs": list(p.check.outputs)}
        for p in homework.parts
    ]
    run = sandbox.run([s for _, s in code], specs, trials, limits, slot, isolation)
    if run.error:
        report["reason"] = run.error
        return report
    report["status"] = "graded"
    for k, (index, source) in enumerate(code):
        cell = run.cells.get(k, {"status": "not run", "detail": ""})
        if cell["status"] != "ok":
            report["cells"].append({"cell": index + 1, "first_line": first_line(source), **cell})
    notes = []
    if run.timed_out:
        notes.append(f"the submission ran out of time ({limits.total:g} s in total)")
    if run.overflow:
        notes.append(f"the submission sent back more than {limits.output_mb} MB")
    for part in homework.parts:
        returned = run.returned[part.name]
        status = run.parts.get(part.name, "not run")
        why = {
            "timeout": f"the function ran longer than {limits.part:g} s (an endless loop?)",
            "crashed": "the process ended during the call (os._exit? a crash?)",
            "not run": "the notebook did not get this far: " + ("; ".join(notes) or "?"),
        }.get(status)
        if why:
            for k, back in enumerate(returned):
                if back.outputs is None and back.problem == "no result (it did not finish)":
                    returned[k] = type(back)(problem=why)
        max_points, deductions = points[part.name]
        if status == "missing":
            result = registry.PartScore(part.name, part.function, 0.0, max_points)
            result.reason = f"{part.function} is not defined (after running every cell)"
        else:
            result = part.assess(part, trials[part.name], returned, max_points, deductions)
            if status in ("timeout", "crashed") and result.points == 0:
                result.reason = why
        report["parts"][part.name] = result.to_dict()
        if result.public_only:
            report["flags"] = sorted({*report["flags"], "right on public cases only"})
    report["score"] = round(sum(p["points"] for p in report["parts"].values()), 2)
    report["notes"] = notes
    report["seconds"] = round(time.monotonic() - start, 2)
    report["cpu_seconds"] = run.cpu
    return report


# --------------------------------------------------------------------------------------
# Reports
# --------------------------------------------------------------------------------------


def block(text: str) -> str:
    """Text from a submission, safe inside a fenced block of a Markdown page."""
    return "```text\n" + str(text).replace("```", "'''") + "\n```"


def plain(text: str) -> str:
    """Text from a submission, safe in a Markdown table cell or line."""
    return re.sub(r"([\\`*_\[\]<>|#])", r"\\\1", str(text)).replace("\n", " ")


def feedback(report: dict) -> str:
    """The student's page: score, each part's points and why, the check reports."""
    lines = [
        f"# Feedback: {plain(report['submission'])}",
        "",
        f"**Score: {report['score']:g} / {report['max_score']:g}**",
        "",
    ]
    if report["status"] != "graded":
        return "\n".join(lines + [f"Not graded: {plain(report['reason'])}.", ""])
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
    for note in report.get("notes", []):
        lines += [f"Note: {plain(note)}.", ""]
    for part in report["parts"].values():
        lines += [f"## {part['function']}", ""]
        if part["report"]:
            lines += [block(part["report"]), ""]
        elif part["reason"]:
            lines += [plain(part["reason"]), ""]
    return "\n".join(lines)


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def save(out: Path, report: dict) -> None:
    write_atomic(
        out / "reports" / f"{report['id']}.json", json.dumps(report, indent=1, ensure_ascii=False)
    )
    write_atomic(out / "feedback" / f"{report['id']}.md", feedback(report))


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


def write_summary(out: Path) -> list[dict]:
    """summary.{csv,json,md} and answers.csv from every report in OUT (the merge)."""
    reports = load_reports(out)
    part_names = []
    for report in reports:
        for name in report.get("parts", {}):
            if name not in part_names:
                part_names.append(name)
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
    columns = ["submission", "id", "homework", "score", "max_score", "status", "flags"]
    columns += ["reason", *part_names]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(out / "summary.csv", buffer.getvalue())
    lines = [
        "# Homework grades",
        "",
        "| submission | homework | score | flags | status |",
        "| --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        status = "graded" if row["status"] == "graded" else f"zero: {row['reason']}"
        link = "feedback/" + urlquote(row["id"]) + ".md"
        lines.append(
            f"| [{plain(row['submission'])}]({link}) | {row['homework']} | "
            f"{row['score']:g} / {row['max_score']:g} | {plain(row['flags'])} | "
            f"{plain(status)} |"
        )
    write_atomic(out / "summary.md", "\n".join(lines) + "\n")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["submission", "homework", "question", "title", "cell", "answer"])
    for r in reports:
        for a in r.get("answers", []):
            writer.writerow(
                [r["submission"], r["homework"], a["question"], a["title"], a["cell"], a["answer"]]
            )
    write_atomic(out / "answers.csv", buffer.getvalue())
    return rows


def urlquote(text: str) -> str:
    from urllib.parse import quote

    return quote(text)


# --------------------------------------------------------------------------------------
# The run: every submission in a sandbox, JOBS at a time, never stopping on one
# --------------------------------------------------------------------------------------


def grade_all(
    submissions: Path,
    out: Path,
    jobs: int = 1,
    limits: sandbox.Limits | None = None,
    rubric: dict | None = None,
    isolation: str = "bwrap",
    quiet: bool = False,
    seed: int | None = None,
) -> list[dict]:
    limits = limits or sandbox.Limits()
    rubric = rubric or {}
    notebooks = discover(submissions)
    if not notebooks:
        raise SystemExit(f"no *.ipynb found under {submissions}")
    if isolation == "bwrap":
        sandbox.check_available()
    out.mkdir(parents=True, exist_ok=True)
    slots: queue.Queue[int] = queue.Queue()
    for slot in range(jobs):
        slots.put(slot)
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one grading run at a time writes to OUT

        def one(path: Path) -> dict:
            slot = slots.get()
            try:
                relative = str(path.relative_to(submissions))
                report = grade_notebook(path, relative, rubric, limits, slot, isolation, seed=seed)
            finally:
                slots.put(slot)
            save(out, report)
            if not quiet:
                status = "" if report["status"] == "graded" else f" ({report['reason']})"
                print(f"{relative}: {report['score']:g} / {report['max_score']:g}{status}")
            return report

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            reports = list(pool.map(one, notebooks))
        write_summary(out)
        write_atomic(out / "rubric.json", json.dumps(effective_rubric(rubric), indent=1))
    return reports


def effective_rubric(rubric: dict) -> dict:
    return {
        hw.name: {
            p.name: dict(
                zip(("points", "deductions"), registry.rubric_for(p, hw, rubric), strict=True)
            )
            for p in hw.parts
        }
        for hw in registry.HOMEWORKS.values()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("submissions", type=Path, help="directory of notebooks")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--jobs", type=int, default=1, help="submissions at once")
    parser.add_argument("--rubric", type=Path, help="TOML: points and deductions")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per submission")
    parser.add_argument("--cell-timeout", type=float, default=60, help="seconds per cell")
    parser.add_argument("--part-timeout", type=float, default=30, help="seconds per function")
    parser.add_argument("--memory-mb", type=int, default=4096, help="per process")
    parser.add_argument(
        "--seed", type=int, help="the hidden cases' seed (a report's), to re-run a grade"
    )
    parser.add_argument(
        "--isolation",
        choices=("bwrap", "process"),
        default="bwrap",
        help="bwrap (default); process: no sandbox, for a throwaway container only",
    )
    args = parser.parse_args(argv)
    if not args.submissions.is_dir():
        parser.error(f"{args.submissions} is not a directory of submitted notebooks")
    limits = sandbox.Limits(
        total=args.timeout, cell=args.cell_timeout, part=args.part_timeout, memory_mb=args.memory_mb
    )
    try:
        grade_all(
            args.submissions.resolve(),
            args.out.resolve(),
            max(1, args.jobs),
            limits,
            registry.load_rubric(args.rubric),
            args.isolation,
            seed=args.seed,
        )
    except sandbox.SandboxUnavailable as exc:
        raise SystemExit(str(exc)) from None
    print(f"summary: {args.out / 'summary.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
