"""Every `literalinclude` in the chapters names a file that exists and, with `:pyobject:`,
an object defined in it (the book build fails otherwise, minutes in; this finds it at once)."""

import ast
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
INCLUDE = re.compile(r"^```\{literalinclude\} (\S+)\n((?::[^\n]*\n)*)", re.M)


def includes():
    for page in sorted((ROOT / "chapters").glob("*.md")):
        for match in INCLUDE.finditer(page.read_text(encoding="utf-8")):
            options = dict(
                line[1:].split(":", 1) for line in match.group(2).splitlines() if line.strip()
            )
            target = (page.parent / match.group(1)).resolve()
            yield pytest.param(
                page,
                target,
                options.get("pyobject", "").strip(),
                id=f"{page.stem}:{match.group(1)}",
            )


def defined_names(tree: ast.Module) -> set[str]:
    """`name` for top-level functions and classes, `Class.method` for methods."""
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        if isinstance(node, ast.ClassDef):
            names |= {
                f"{node.name}.{item.name}"
                for item in node.body
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))
            }
    return names


@pytest.mark.parametrize(("page", "target", "pyobject"), list(includes()))
def test_include_exists(page, target, pyobject):
    assert target.is_file(), f"{page.name} includes {target}, which does not exist"
    if pyobject:
        names = defined_names(ast.parse(target.read_text(encoding="utf-8")))
        assert pyobject in names, f"{page.name}: no {pyobject!r} in {target.name}"


def test_the_chapters_include_something():
    assert len(list(includes())) > 10
