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

The source marks its solutions; the student edition drops everything marked:

- a ``{solution}`` directive (its whole fenced block), or every cell from a
  ``{solution-start}`` directive to its ``{solution-end}``;
- a cell tagged ``solution``.

A code cell dropped that way becomes a stub for the student: the ``def`` line and docstring
of each function it defines, then ``raise NotImplementedError``; or ``# YOUR CODE HERE`` when
it defines no function. A solution cell also tagged ``remove-cell`` (a hidden assertion that
the solutions pass) is dropped without a stub. Links to other chapters become plain text,
as the student edition has only this page. In the two notebooks (read in Jupyter, which
does not know MyST) the exercise and solution directives become plain Markdown; the student
web page keeps them. Then every file written for the student is
searched for every line of the solutions: on a find, the student edition is deleted and the
command fails.
"""

from __future__ import annotations

import argparse
import ast
import copy
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

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "chapters" / "05_homework.md"
OUT = ROOT / "_build" / "homework"
SOLUTION_TAG = "solution"
STUB_BODY = "    # YOUR CODE HERE\n    raise NotImplementedError"
ANSWER = "**Your answer:** *(double-click to edit)*"
HTML_COMMENT = re.compile(r"<!--.*?-->\s*", re.DOTALL)
OPEN_DIRECTIVE = re.compile(r"^(\s*)(`{3,}|:{3,})\s*\{(solution|solution-start|solution-end)\}")
ANY_DIRECTIVE = re.compile(r"^(\s*)(`{3,}|:{3,})\s*\{([\w-]+)\}\s*(.*)$")
ANSWER_SLOT = re.compile(re.escape(ANSWER) + "\x00([^\x00]*)\x00")
CHAPTER_LINK = re.compile(
    r"\[([^\]]+)\]\((?:(?!https?:)[^)\s]+\.(?:md|ipynb)(?:#[^)]*)?|#sec-[\w-]+)\)"
)


# --------------------------------------------------------------------------------------
# Source -> editions
# --------------------------------------------------------------------------------------


def tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def stub(code: str) -> str:
    """The student's version of a solution code cell: signatures and docstrings only."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return "# YOUR CODE HERE"
    lines = code.splitlines()
    stubs = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        first_body = node.body[0]
        has_doc = isinstance(first_body, ast.Expr) and isinstance(
            getattr(first_body, "value", None), ast.Constant
        )
        start = (node.decorator_list[0].lineno if node.decorator_list else node.lineno) - 1
        # through the docstring; without one, up to the body (the signature may span lines)
        end = first_body.end_lineno if has_doc else first_body.lineno - 1
        stubs.append("\n".join(lines[start:end]) + "\n" + STUB_BODY)
    return "\n\n\n".join(stubs) if stubs else "# YOUR CODE HERE"


def fence_end(lines: list[str], start: int, fence: str) -> int:
    """Index of the line closing the directive opened at ``lines[start]`` with ``fence``:
    the first line made only of ``fence``'s character, at least as many; else ``len(lines)``."""
    for j in range(start + 1, len(lines)):
        close = lines[j].strip()
        if close and set(close) == {fence[0]} and len(close) >= len(fence):
            return j
    return len(lines)


def strip_solution_markdown(text: str, inside_gate: bool) -> tuple[str, bool]:
    """Remove ``{solution}`` blocks and gated ``{solution-start}``…``{solution-end}`` text
    from one markdown cell. Returns the kept text and whether a gate is still open."""
    kept: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        match = OPEN_DIRECTIVE.match(line)
        if match:
            fence, name = match.group(2), match.group(3)
            i = fence_end(lines, i, fence) + 1  # skip the directive's fenced block
            if name in ("solution", "solution-start"):
                label = line[match.end() :].split()
                kept.append(ANSWER + f"\x00{label[0] if label else ''}\x00")
            if name == "solution-start":
                inside_gate = True
            elif name == "solution-end":
                inside_gate = False
            continue
        if not inside_gate:
            kept.append(line)
        i += 1
    return "\n".join(kept).strip("\n"), inside_gate


def unlink_chapters(text: str) -> str:
    """``[Title](02_x.md)`` -> ``*Title*`` (a chapter of the book, not in this edition); and
    ``[Title](#sec-label)``, a link to a section of another chapter (by its label)."""
    return CHAPTER_LINK.sub(lambda m: f"*{m.group(1)}*", text)


def exercise_titles(nb) -> dict[str, str]:
    """``{label: "Exercise k"}``, numbered in order as :func:`plain_markdown` numbers them."""
    titles, number = {}, 0
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        lines = cell.source.splitlines()
        for i, line in enumerate(lines):
            match = ANY_DIRECTIVE.match(line)
            if match and match.group(3) == "exercise":
                number += 1
                for option in lines[i + 1 : fence_end(lines, i, match.group(2))]:
                    if option.strip().startswith(":label:"):
                        titles[option.split(":label:", 1)[1].strip()] = f"Exercise {number}"
    return titles


def answer_cell(label: str, titles: dict[str, str]):
    """A cell for a written answer, stamped so that the grader exports what it holds."""
    stamp = {"answer": label or "answer", "title": titles.get(label, "")}
    return nbformat.v4.new_markdown_cell(ANSWER, metadata={"bnbook": stamp})


def graded_functions() -> set[str]:
    """The names of every graded function (``grader/homeworks.py``): the homework's parts."""
    from grader.homeworks import HOMEWORKS

    return {part.function for hw in HOMEWORKS.values() for part in hw.parts}


def code_answers(nb, functions: set[str]) -> set[str]:
    """Labels of the gated solutions whose answer is a graded function's code: the student
    writes it in the stub that replaces the solution, so no "Your answer" cell is added."""
    labels, label = set(), None
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                match = OPEN_DIRECTIVE.match(line)
                if match and match.group(3) == "solution-start":
                    words = line[match.end() :].split()
                    label = words[0] if words else ""
                elif match and match.group(3) == "solution-end":
                    label = None
        elif cell.cell_type == "code" and label is not None:
            try:
                tree = ast.parse(cell.source)
            except SyntaxError:
                continue
            defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
            if defined & functions:
                labels.add(label)
    return labels


def student_edition(nb, name: str | None = None):
    """A copy of the notebook with every solution removed and no outputs; stamped with the
    homework's ``name`` (``metadata.bnbook.homework``) for the grader. A written question's
    solution leaves a "Your answer" cell; a graded function's leaves its stub only."""
    out = copy.deepcopy(nb)
    cells = []
    inside_gate = False
    titles = exercise_titles(nb)
    no_answer = code_answers(nb, graded_functions())
    for cell in nb.cells:
        cell_tags = tags(cell)
        if cell.cell_type == "markdown":
            if SOLUTION_TAG in cell_tags:
                continue
            text, inside_gate = strip_solution_markdown(cell.source, inside_gate)
            text = HTML_COMMENT.sub("", text)  # notes to the instructor
            # each answer placeholder in a cell of its own, for the student to edit
            pieces, at = [], 0
            for match in ANSWER_SLOT.finditer(text):
                pieces += [text[at : match.start()], match]
                at = match.end()
            for piece in [*pieces, text[at:]]:
                if isinstance(piece, re.Match):
                    if piece.group(1) not in no_answer:
                        cells.append(answer_cell(piece.group(1), titles))
                elif piece.strip():
                    cells.append(nbformat.v4.new_markdown_cell(unlink_chapters(piece.strip("\n"))))
            continue
        if cell.cell_type != "code":
            if not inside_gate and SOLUTION_TAG not in cell_tags:
                cells.append(copy.deepcopy(cell))
            continue
        is_solution = inside_gate or SOLUTION_TAG in cell_tags
        if not is_solution:
            new = nbformat.v4.new_code_cell(cell.source)
            kept_tags = [t for t in cell_tags if t != SOLUTION_TAG]
            if kept_tags:
                new.metadata["tags"] = kept_tags
            cells.append(new)
        elif "remove-cell" not in cell_tags:
            cells.append(nbformat.v4.new_code_cell(stub(cell.source)))
    if inside_gate:
        raise ValueError("a {solution-start} has no {solution-end}: the student edition would leak")
    out.cells = cells
    out.metadata.pop("jupytext", None)
    if name:
        out.metadata["bnbook"] = {"homework": name}
    return out


def solutions_edition(nb, name: str | None = None):
    """A copy of the notebook, solutions kept, chapter links made plain text."""
    out = copy.deepcopy(nb)
    for cell in out.cells:
        if cell.cell_type == "markdown":
            cell.source = unlink_chapters(cell.source)
    out.metadata.pop("jupytext", None)
    if name:
        out.metadata["bnbook"] = {"homework": name}
    return out


def plain_markdown(nb):
    """A copy for Jupyter, which does not know MyST directives: each ``{exercise}`` block
    becomes "**Exercise k.**" and its text, each ``{solution}`` "**Solution.**" and its text,
    and the ``{solution-start}``/``{solution-end}`` fences "**Solution.**" and nothing."""
    out = copy.deepcopy(nb)
    number = 0
    for cell in out.cells:
        if cell.cell_type != "markdown":
            continue
        lines, kept, i = cell.source.splitlines(), [], 0
        while i < len(lines):
            match = ANY_DIRECTIVE.match(lines[i])
            name = match.group(3) if match else ""
            if name not in ("exercise", "solution", "solution-start", "solution-end"):
                kept.append(lines[i])
                i += 1
                continue
            fence, title = match.group(2), match.group(4).strip()
            j = fence_end(lines, i, fence)
            body, i = lines[i + 1 : j], j + 1
            while body and (body[0].startswith(":") or not body[0].strip()):  # options
                body.pop(0)
            if name == "exercise":
                number += 1
                heading = f"**Exercise {number}" + (f" ({title})" if title else "") + ".**"
            else:
                heading = "" if name == "solution-end" else "**Solution.**"
            kept += [heading, *body] if heading else body
        cell.source = "\n".join(kept).strip("\n")
    out.cells = [c for c in out.cells if c.cell_type != "markdown" or c.source.strip()]
    return out


def solution_lines(nb) -> list[str]:
    """Distinctive lines of solution code and text: none may appear in the student edition.

    Lines of code that the stub keeps (``def`` lines, docstrings) and short or generic
    lines (blank, fences, ``return`` of a bare name, ...) are left out.
    """
    student_text = "\n".join(c.source for c in student_edition(nb).cells)
    kept = {line.strip() for line in student_text.splitlines()}
    found: list[str] = []
    inside_gate = False
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            stripped, inside_gate = strip_solution_markdown(cell.source, inside_gate)
            remaining = {line.strip() for line in stripped.splitlines()}
            candidates = [
                line for line in cell.source.splitlines() if line.strip() not in remaining
            ]
        elif inside_gate or SOLUTION_TAG in tags(cell):
            candidates = cell.source.splitlines()
        else:
            continue
        for line in candidates:
            line = line.strip()
            if len(line) >= 20 and line not in kept and not OPEN_DIRECTIVE.match(line):
                found.append(line)
    return found


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
