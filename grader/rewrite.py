"""Rewrite a homework's source into its two editions: the student's and the solutions'.

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
web page keeps them.

:func:`solution_lines` lists the solutions' distinctive lines, which no file written for the
student may contain (:func:`grader.editions.leaks` searches them).
"""

from __future__ import annotations

import ast
import copy
import re

import nbformat

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
