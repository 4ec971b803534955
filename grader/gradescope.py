"""The Gradescope autograder: the same grader, packaged in Gradescope's convention.

    python -m grader.gradescope build HOMEWORK DEST.zip     (``make homework`` does this)
    python -m grader.gradescope run [--root /autograder]    (what ``run_autograder`` runs)

Gradescope unpacks the zip into ``/autograder/source``, runs ``setup.sh`` once when it
builds the image, then ``run_autograder`` once per submission: the student's files are in
``/autograder/submission`` and the result must be written to
``/autograder/results/results.json``: ``score``, and ``tests``, one per graded function,
each with ``name``, ``score``, ``max_score``, ``output`` (the feedback) and ``visibility``.

The zip holds ``bnlib`` and the grader's modules (no solutions: no chapter, no edition), a
pinned ``requirements-grader.txt`` and ``gradescope.json`` (which homework it grades).
Grading is :func:`grader.grade.grade_notebook`, as with ``make grade``: the student's code
runs in bubblewrap when the container allows it, else (Gradescope's containers usually
forbid the namespaces bubblewrap needs) as a uid of its own with seccomp and the same
bounds (``grader/sandbox.py``); each container grades one submission and is thrown away.
``results.json`` is written by the grader only, once every process of the submission has
ended, into a folder the submission cannot write.

A failure of the grader or of the container (no isolation possible, the sandbox did not
start) writes no ``results.json`` and exits 1: Gradescope then shows the autograder failed,
never a zero for the student.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
import zipfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from grader import grade, homeworks, notebook  # noqa: E402
from grader.notebook import GRADED, GRADER_ERROR  # noqa: E402
from grader.sandbox import Sandbox, SandboxUnavailable  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODULES = (  # the grader's modules the autograder runs (grader/editions.py is not one)
    "__init__.py",
    "homeworks.py",
    "notebook.py",
    "flags.py",
    "scoring.py",
    "reports.py",
    "confine.py",
    "runtime.py",
    "frames.py",
    "sandbox.py",
    "runner.py",
    "grade.py",
    "gradescope.py",
)
# What the grader imports (IPython for cells with magics, pyseccomp for the sandbox's
# filter), and what a student's notebook may import beside NumPy.
GRADER_PACKAGES = ("numpy", "matplotlib", "ipywidgets", "ipykernel", "pyseccomp")

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image (pick a base
# image with Python >= 3.11, e.g. Ubuntu 24.04).
set -euo pipefail
apt-get update -q
apt-get install -y -q python3 python3-venv python3-pip bubblewrap libseccomp2
python3 -c 'import sys; assert sys.version_info >= (3, 11), "bnbook needs Python >= 3.11"'
python3 -m venv /autograder/venv
/autograder/venv/bin/pip install -q -r /autograder/source/requirements-grader.txt
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this once per submission. AUTOGRADER_ROOT and AUTOGRADER_PYTHON let it
# run elsewhere (a local test against a fake /autograder); BNBOOK_ISOLATION=process tries
# the mode without bubblewrap where bubblewrap works.
set -euo pipefail
cd "$(dirname "$0")"
exec "${AUTOGRADER_PYTHON:-/autograder/venv/bin/python}" -m grader.gradescope run \\
  --root "${AUTOGRADER_ROOT:-/autograder}" --isolation "${BNBOOK_ISOLATION:-auto}"
"""


TORCH_INDEX = "--extra-index-url https://download.pytorch.org/whl/cpu"  # torch's CPU wheel


def requirements(homework: homeworks.Homework | None = None) -> str:
    """The grader's pins, taken from the project's requirements.txt, with the packages the
    homework's notebooks need besides (homework 2's part 3: torch, its CPU wheel)."""
    wanted = set(GRADER_PACKAGES) | set(homework.packages if homework else ())
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    pins = [
        line.strip()
        for line in lines
        if line.strip() and line.split("==")[0].strip().lower() in wanted
    ]
    index = [TORCH_INDEX] if "torch" in wanted else []
    return "\n".join(index + pins) + "\n"


def build(homework: homeworks.Homework, dest: Path) -> Path:
    """The autograder zip for one homework (module docstring)."""
    dest.parent.mkdir(parents=True, exist_ok=True)

    def add(archive, name: str, data: bytes, executable: bool = False) -> None:
        info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
        mode = 0o755 if executable else 0o644
        info.external_attr = (stat.S_IFREG | mode) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, data)

    with zipfile.ZipFile(dest, "w") as archive:
        add(archive, "setup.sh", SETUP_SH.encode(), executable=True)
        add(archive, "run_autograder", RUN_AUTOGRADER.encode(), executable=True)
        add(archive, "requirements-grader.txt", requirements(homework).encode())
        config = {"homework": homework.name}
        add(archive, "gradescope.json", json.dumps(config).encode())
        for name in MODULES:
            add(archive, f"grader/{name}", (ROOT / "grader" / name).read_bytes())
        for path in sorted((ROOT / "bnlib").rglob("*.py")):
            add(archive, path.relative_to(ROOT).as_posix(), path.read_bytes())
    return dest


def results(report: dict) -> dict:
    """Gradescope's results.json from one of our reports."""
    tests = []
    for part in report.get("parts", {}).values():
        lost = [f"- {d['message']} (−{d['points']:g})" for d in part["deductions"]]
        output = "\n".join(
            [*([part["reason"]] if part["reason"] else []), *lost, "", part["report"]]
        ).strip()
        tests.append(
            {
                "name": part["function"],
                "score": part["points"],
                "max_score": part["max_points"],
                "output": output,
                "visibility": "visible",
            }
        )
    notes = [f"cell {c['cell']} ({c['first_line']}): {c['status']}" for c in report["cells"]]
    if report.get("flags"):
        tests.append(
            {
                "name": "for the instructor: flags",
                "score": 0,
                "max_score": 0,
                "output": "; ".join(report["flags"]),
                "visibility": "hidden",
            }
        )
    output = f"{report['status']}: {report['reason']}\n" if report["status"] != GRADED else ""
    output += "".join(f"Note: {note}.\n" for note in report.get("notes", []))
    if notes:
        output += "Cells that did not run to the end (the cells after them still ran):\n"
        output += "\n".join(notes)
    return {
        "score": report["score"],
        "output": output.strip(),
        "tests": tests,
        "visibility": "visible",
        "stdout_visibility": "hidden",
    }


def run(root: Path, isolation: str = "auto") -> dict | None:
    """Grade the one submission under ``root/submission``; write ``root/results``. None,
    and no results, when the grader itself failed (printed, for the instructor)."""
    config_path = Path(__file__).resolve().parent.parent / "gradescope.json"
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    homework = homeworks.HOMEWORKS.get(config.get("homework", ""))
    if homework is None:
        print(f"the autograder's gradescope.json names no homework: {config}")
        return None
    notebooks = notebook.discover(root / "submission")
    notebooks.sort(key=lambda p: (p.stem != homework.name, str(p)))  # its own name first
    if not notebooks:
        report = {"status": "unreadable", "reason": "no .ipynb notebook was submitted"}
        report |= {"score": 0, "parts": {}, "cells": [], "flags": []}
    else:
        try:
            sandbox = Sandbox(isolation)
        except (SandboxUnavailable, OSError) as exc:
            print(f"not grading: {exc}")
            return None
        with sandbox:
            path = notebooks[0]
            relative = str(path.relative_to(root / "submission"))
            report = grade.grade_notebook(path, relative, homework, sandbox)
    if report["status"].startswith(GRADER_ERROR):
        print(f"not graded: {report['status']}")
        return None
    out = results(report)
    folder = root / "results"
    folder.mkdir(parents=True, exist_ok=True)
    if os.getuid() == 0:
        os.chown(folder, 0, 0)
        folder.chmod(0o755)  # no one else writes here
    tmp = folder / f".results.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(out, indent=1, ensure_ascii=False))
    os.replace(tmp, folder / "results.json")  # whatever was there before is replaced
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write the autograder zip of a homework")
    b.add_argument("homework", choices=sorted(homeworks.HOMEWORKS))
    b.add_argument("dest", type=Path)
    r = sub.add_parser("run", help="grade /autograder/submission (inside Gradescope)")
    r.add_argument(
        "--root", type=Path, default=Path(os.environ.get("AUTOGRADER_ROOT", "/autograder"))
    )
    r.add_argument("--isolation", choices=("auto", "bwrap", "process"), default="auto")
    args = parser.parse_args(argv)
    if args.command == "build":
        print(build(homeworks.HOMEWORKS[args.homework], args.dest))
        return 0
    out = run(args.root, args.isolation)
    if out is None:
        return 1
    print(f"score {out['score']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
