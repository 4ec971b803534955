"""The Gradescope autograder: its zip carries no solution, its run_autograder grades one
submission in each mode this machine allows (bubblewrap; a uid of its own without it), the
submission cannot touch results.json, and a failure of the grader is no student's zero."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import jupytext
import nbformat
import pytest

from grader import gradescope, homeworks, rewrite

HW = homeworks.HOMEWORKS["05_homework"]
pytestmark = pytest.mark.xdist_group("grader")
TOKEN = f"bnbook-daemon-{os.getpid()}"
LOOP = """
import json, sys, time
for _ in range(200):
    for path in (sys.argv[1] + "/results.json", "/autograder/results/results.json"):
        try:
            with open(path, "w") as f:
                json.dump({"score": 10, "tests": []}, f)
        except OSError:
            pass
    time.sleep(0.1)
"""
DAEMON = """
import subprocess, sys
subprocess.Popen([sys.executable, "-c", {loop!r}, {results!r}, {token!r}],
                 start_new_session=True)
"""


def alive(token: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if token.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
            except OSError:
                pass
    return found


def modes() -> list[str]:
    found = []
    if shutil.which("bwrap"):
        found.append("auto")
    if os.getuid() == 0:
        found.append("process")
    return found


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """The zip, unzipped as Gradescope does (into a folder any user may read)."""
    base = tmp_path_factory.mktemp("gradescope")
    zip_path = gradescope.build(HW, base / "autograder.zip")
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(base / "source")
    for script in ("setup.sh", "run_autograder"):
        (base / "source" / script).chmod(0o755)
    return zip_path, base / "source"


def partial_notebook():
    nb = jupytext.read(HW.source)
    student = rewrite.plain_markdown(rewrite.student_edition(nb, HW.name))
    solutions = rewrite.plain_markdown(rewrite.solutions_edition(nb, HW.name))
    code = {c.source.split("(")[0]: c.source for c in solutions.cells if c.cell_type == "code"}
    for cell in student.cells:
        key = cell.source.split("(")[0]
        if cell.cell_type == "code" and key in ("def bn_backward", "def bn_running_stats"):
            cell.source = code[key]
    return student


def autograde(source: Path, fake: Path, notebook, mode: str) -> tuple[subprocess.Popen, dict]:
    (fake / "submission").mkdir(parents=True)
    (fake / "results").mkdir()
    nbformat.write(notebook, fake / "submission" / "whatever.ipynb")
    env = {**os.environ, "AUTOGRADER_ROOT": str(fake), "AUTOGRADER_PYTHON": sys.executable}
    env["BNBOOK_ISOLATION"] = mode
    env.pop("PYTHONPATH", None)  # the zip's own bnlib and grader
    run = subprocess.run(
        [str(source / "run_autograder")], env=env, capture_output=True, text=True, timeout=600
    )
    results = fake / "results" / "results.json"
    return run, json.loads(results.read_text()) if results.exists() else {}


def test_the_zip_carries_no_solution(source):
    zip_path, _ = source
    nb = jupytext.read(HW.source)
    secret = rewrite.solution_lines(nb)
    with zipfile.ZipFile(zip_path) as archive:
        names = set(archive.namelist())
        text = "\n".join(archive.read(n).decode(errors="replace") for n in names)
    assert {"setup.sh", "run_autograder", "requirements-grader.txt"} <= names
    assert {f"grader/{m}" for m in gradescope.MODULES} <= names
    assert not any(n.startswith(("chapters/", "_build/")) or n.endswith(".md") for n in names)
    assert [line for line in secret if " ".join(line.split()) in " ".join(text.split())] == []
    assert "pyseccomp==" in (source[1] / "requirements-grader.txt").read_text()


@pytest.mark.parametrize("mode", modes())
def test_run_autograder_grades_one_submission(source, tmp_path, mode):
    run, results = autograde(source[1], tmp_path / "autograder", partial_notebook(), mode)
    assert run.returncode == 0, run.stdout + run.stderr
    tests = {t["name"]: t for t in results["tests"]}
    assert results["score"] == 6  # the forward is the stub's: 0 of 4
    assert [tests[p.function]["max_score"] for p in HW.parts] == [4, 4, 2]
    assert "Not implemented yet" in tests["bn_forward"]["output"]
    assert all(t["visibility"] == "visible" for t in tests.values())


@pytest.mark.parametrize("mode", modes())
def test_a_daemon_cannot_rewrite_the_results(source, tmp_path, mode):
    """A process the submission leaves behind, writing 10/10 into results.json: every
    process of the submission ends before results.json is written, by the grader alone,
    into a folder the submission cannot write."""
    fake = tmp_path / "autograder"
    nb = partial_notebook()
    daemon = DAEMON.format(loop=LOOP, results=str(fake / "results"), token=TOKEN)
    nb.cells.insert(1, nbformat.v4.new_code_cell(textwrap.dedent(daemon)))
    run, results = autograde(source[1], fake, nb, mode)
    assert run.returncode == 0, run.stdout + run.stderr
    assert results["score"] == 6 and len(results["tests"]) >= 3
    assert alive(TOKEN) == []  # the daemon ended before results.json was written
    assert json.loads((fake / "results" / "results.json").read_text()) == results


def test_the_flags_are_for_the_instructor_only():
    report = {"score": 10, "status": "graded", "reason": "", "cells": [], "parts": {}}
    results = gradescope.results(report | {"flags": ["calls torch"]})
    (flags,) = [t for t in results["tests"] if t["name"].startswith("for the instructor")]
    assert flags["visibility"] == "hidden" and flags["output"] == "calls torch"


def test_a_grader_failure_writes_no_results(source, tmp_path):
    """No isolation to be had (bubblewrap asked for and missing): run_autograder exits 1
    with the reason and writes no results.json, so Gradescope shows the autograder failed,
    never a zero."""
    fake = tmp_path / "autograder"
    env_path = f"{tmp_path}/bin"
    os.makedirs(env_path)
    for tool in ("env", "bash", "dirname", "kill", "ldconfig"):
        found = shutil.which(tool) or f"/sbin/{tool}"
        if os.path.exists(found):
            os.symlink(found, f"{env_path}/{tool}")
    (fake / "submission").mkdir(parents=True)
    nbformat.write(partial_notebook(), fake / "submission" / "a.ipynb")
    env = {"PATH": env_path, "AUTOGRADER_ROOT": str(fake), "AUTOGRADER_PYTHON": sys.executable}
    env["BNBOOK_ISOLATION"] = "bwrap"
    run = subprocess.run(
        [str(source[1] / "run_autograder")], env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 1 and "bubblewrap" in run.stdout
    assert not (fake / "results" / "results.json").exists()
