"""Write each homework's student and solutions editions, and its Gradescope autograder.

    python -m grader.editions [--source chapters/05_homework.md ...] [--out _build/homework]
                              [--no-html] [--no-check]

For every homework registered in :mod:`grader.homeworks` (or each ``--source``), NAME being the
source's stem (``05_homework``, ``09_homework_2``), writes
    OUT/student/NAME.ipynb     the notebook to hand out: solutions removed, no outputs
    OUT/solutions/NAME.ipynb   the notebook with the solutions, executed
    OUT/gradescope/NAME.zip    the Gradescope autograder (grader/gradescope.py)
and once
    OUT/student/bnbook_bnlib-*.whl    bnlib for the students to install (the library only)
    OUT/student/html/          the student editions' web pages (Jupyter Book, executed)

Then the grader grades both editions (unless ``--no-check``): the solutions must get full
marks and the stubs zero. The notebooks are stamped for the grader: the homework's name in
the notebook's metadata, the question's label on each written-answer cell.

How the source becomes the two editions (solutions dropped, stubs, answer cells) is
:mod:`grader.rewrite`'s job. Then every file written for the student is searched for every
line of the solutions: on a find, the student edition is deleted and the command fails.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import jupytext
import nbformat
import yaml
from nbclient import NotebookClient

if __package__ in (None, ""):  # run as a script: python grader/editions.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from grader.rewrite import (  # noqa: E402
    plain_markdown,
    solution_lines,
    solutions_edition,
    student_edition,
)

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "chapters" / "05_homework.md"
OUT = ROOT / "_build" / "homework"


# --------------------------------------------------------------------------------------
# Execution and the student site
# --------------------------------------------------------------------------------------


def execute(nb, cwd: Path, timeout: int = 600):
    """Run every cell in a fresh python3 kernel; a cell that raises stops with an error."""
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )
    client.execute()
    return nb


def build_student_site(student_nbs: dict, dest: Path) -> None:
    """Build the student editions' web pages with Jupyter Book, into ``dest``.

    ``student_nbs``: ``{name: notebook}``, the first one the site's root page. The source
    tree is a temporary directory holding symlinks to the book's own files (configuration
    helpers, assets) and, as its only pages, the student notebooks: the build sees no
    solution, so neither its pages, its ``_sources/`` nor its downloads can hold one.
    """
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config["title"] = f"{config.get('title', 'bnbook')}: homework (student edition)"
    config.setdefault("execute", {})["execute_notebooks"] = "force"
    # No way from the student's page to the repository or to the book's notebooks, which
    # hold the solutions: no launch, repository, edit or issue buttons.
    config["launch_buttons"] = {
        "binderhub_url": "",
        "jupyterhub_url": "",
        "colab_url": "",
        "thebe": False,
    }
    html_options = config.setdefault("html", {})
    for button in ("use_repository_button", "use_edit_page_button", "use_issues_button"):
        html_options[button] = False
    with tempfile.TemporaryDirectory(prefix="bnbook-homework-") as tmp:
        src, out = Path(tmp) / "src", Path(tmp) / "out"
        src.mkdir()
        skip = {"_build", ".git", ".venv", "chapters", "_toc.yml", "_config.yml", "index.md"}
        for entry in ROOT.iterdir():
            if entry.name not in skip and not entry.name.startswith((".jupyter_cache", ".")):
                (src / entry.name).symlink_to(entry)
        (src / "chapters").mkdir()
        names = list(student_nbs)
        for name, student_nb in student_nbs.items():
            nbformat.write(student_nb, src / "chapters" / f"{name}.ipynb")
        toc = f"format: jb-book\nroot: chapters/{names[0]}\n"
        if names[1:]:
            toc += "chapters:\n" + "".join(f"  - file: chapters/{n}\n" for n in names[1:])
        (src / "_toc.yml").write_text(toc)
        (src / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
        cmd = [
            str(Path(sys.executable).parent / "jupyter-book"),
            "build",
            str(src),
            "--path-output",
            str(out),
            "-W",
            "-n",
            "--keep-going",
        ]
        run = subprocess.run(cmd, capture_output=True, text=True, cwd=src)
        log = run.stdout + run.stderr
        if run.returncode != 0 or re.search(r"WARNING:|ERROR:|Traceback", log):
            sys.stderr.write(log)
            raise SystemExit("the student edition's site did not build cleanly (log above)")
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(out / "_build" / "html", dest, symlinks=False)


def build_wheel(dest: Path) -> Path:
    """bnlib as a wheel for the students: the library only, no chapter and no solution.

    Built from a copy of ``pyproject.toml`` and ``bnlib/`` in a temporary directory, so that
    setuptools leaves no ``build/`` in the repository.
    """
    with tempfile.TemporaryDirectory(prefix="bnbook-wheel-") as tmp:
        src = Path(tmp)
        for name in ("pyproject.toml", "LICENSE"):
            shutil.copy2(ROOT / name, src)
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(ROOT / "bnlib", src / "bnlib", ignore=ignore)
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir"]
        cmd += [str(dest), str(src)]
        # with the venv's setuptools; without it, pip fetches one (build isolation)
        run = subprocess.run([*cmd, "--no-build-isolation"], capture_output=True, text=True)
        if run.returncode != 0:
            run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode != 0:
            sys.stderr.write(run.stdout + run.stderr)
            raise SystemExit("could not build the bnlib wheel for the students (log above)")
    return next(dest.glob("bnbook_bnlib-*.whl"))


def text_of(path: Path) -> str:
    """A file's text as a reader would see it: HTML without tags, notebooks' cells joined."""
    raw = path.read_bytes().decode("utf-8", errors="replace")
    if path.suffix == ".ipynb":
        try:
            nb = json.loads(raw)
        except json.JSONDecodeError:
            return raw
        parts = []
        for cell in nb.get("cells", []):
            parts.append("".join(cell.get("source", "")))
            for output in cell.get("outputs", []):
                parts.append(json.dumps(output, ensure_ascii=False))
        return "\n".join(parts)
    if path.suffix in {".html", ".htm", ".js", ".txt", ".md", ".json", ".xml"}:
        return html.unescape(re.sub(r"<[^>]+>", "", raw))
    return raw


def leaks(directory: Path, lines: list[str]) -> list[str]:
    """``file: line`` for every solution line found in any file under ``directory``."""
    found = []
    normal = [(line, " ".join(line.split())) for line in lines]
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        text = " ".join(text_of(path).split())
        for line, squeezed in normal:
            if squeezed in text:
                found.append(f"{path.relative_to(directory)}: {line}")
    return found


# --------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------


def self_check(name: str, student_nb, solutions_nb) -> str:
    """Grade the two editions with the grader: the solutions must score full marks and the
    stubs nothing (a registry or an edition that drifted would show here)."""
    from grader import grade, homeworks
    from grader.sandbox import Sandbox, SandboxUnavailable

    homework = homeworks.HOMEWORKS[name]
    scores = {}
    try:
        sandbox = Sandbox()
    except (SandboxUnavailable, OSError) as exc:
        return f"grader self-check skipped: {exc}"
    with sandbox, tempfile.TemporaryDirectory(prefix="bnbook-selfcheck-") as tmp:
        for edition, nb in (("solutions", solutions_nb), ("student", student_nb)):
            path = Path(tmp) / edition / f"{name}.ipynb"
            path.parent.mkdir()
            nbformat.write(nb, path)
            report = grade.grade_notebook(path, path.name, homework, sandbox)
            scores[edition] = report["score"]
    if scores != {"solutions": homework.max_score, "student": 0}:
        raise SystemExit(f"{name}: the grader gave {scores}; expected full marks and zero")
    return f"grader self-check: solutions {homework.max_score:g}/{homework.max_score:g}, stubs 0"


def main(argv: list[str] | None = None) -> int:
    from grader import gradescope
    from grader import homeworks as registry

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source",
        type=Path,
        action="append",
        help="a homework's MyST source (repeatable); default: every homework registered",
    )
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--no-html", action="store_true", help="skip the student web page")
    parser.add_argument("--no-check", action="store_true", help="skip the grader self-check")
    args = parser.parse_args(argv)
    sources = args.source or [hw.source for hw in registry.HOMEWORKS.values()]

    student_dir, solutions_dir = args.out / "student", args.out / "solutions"
    gradescope_dir = args.out / "gradescope"
    for d in (student_dir, solutions_dir, gradescope_dir):
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
    students, secret, lines = {}, [], []
    for source in sources:
        name = source.stem
        nb = jupytext.read(source)
        student, solutions = student_edition(nb, name), solutions_edition(nb, name)
        secret += solution_lines(nb)
        students[name] = student
        # the notebooks are read in Jupyter: directives as plain Markdown; the site keeps them
        student_plain = plain_markdown(student)
        nbformat.write(student_plain, student_dir / f"{name}.ipynb")
        solutions = plain_markdown(solutions)
        with tempfile.TemporaryDirectory() as tmp:
            execute(solutions, Path(tmp))
        nbformat.write(solutions, solutions_dir / f"{name}.ipynb")
        lines.append(f"student edition:   {student_dir / (name + '.ipynb')}")
        lines.append(f"solutions edition: {solutions_dir / (name + '.ipynb')}")
        if name in registry.HOMEWORKS:
            zip_path = gradescope.build(registry.HOMEWORKS[name], gradescope_dir / f"{name}.zip")
            lines.append(f"Gradescope:        {zip_path}")
            if not args.no_check:
                lines.append(self_check(name, student_plain, solutions))
    wheel = build_wheel(student_dir)
    if not args.no_html:
        build_student_site(students, student_dir / "html")

    found = leaks(student_dir, secret)
    if found:
        shutil.rmtree(student_dir)
        raise SystemExit(
            "solution text found in the student edition (removed it):\n" + "\n".join(found)
        )
    print("\n".join(lines))
    print(f"bnlib for them:    {wheel}")
    if not args.no_html:
        print(f"student site:      {student_dir / 'html' / 'index.html'}")
    print(f"no solution line ({len(secret)} checked) in {student_dir}")
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
