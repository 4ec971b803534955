"""Lint the chapters: each in jupytext's canonical form, and its code cells through ruff.

    python scripts/lint_chapters.py [chapters/*.md]

1. Canonical form: a chapter must be exactly what jupytext writes for it, so that opening
   it in JupyterLab (Jupytext) and saving changes nothing. A chapter that is not is
   named, with the command that rewrites it.
2. Code: every chapter is converted to a notebook in ``_build/lint/`` and ``ruff check``
   lints the notebooks' code cells with the project's settings (pyproject.toml).

Exits non-zero when either fails.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jupytext

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "_build" / "lint"


def canonical(path: Path) -> str:
    """The text jupytext writes for the chapter at ``path`` (its own MyST format)."""
    notebook = jupytext.read(path)
    return jupytext.writes(notebook, fmt="md:myst")


def main(argv: list[str]) -> int:
    chapters = [Path(a) for a in argv] or sorted((ROOT / "chapters").glob("*.md"))
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("*.ipynb"):
        old.unlink()
    failed = False
    for path in chapters:
        if path.read_text(encoding="utf-8") != canonical(path):
            failed = True
            print(
                f"{path}: not in jupytext's canonical form (JupyterLab would rewrite it); "
                f"run: .venv/bin/jupytext --to md:myst -o {path} {path}"
            )
        jupytext.write(jupytext.read(path), OUT / f"{path.stem}.ipynb")
    ruff = [sys.executable, "-m", "ruff", "check", "--config", str(ROOT / "pyproject.toml")]
    failed |= subprocess.run([*ruff, str(OUT)]).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
