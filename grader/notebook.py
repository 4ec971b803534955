"""Reading submissions: finding them, naming them, and reading each notebook in a process of
its own, bounded in time and memory, so that no notebook can stop or swamp the grader.

    python -m grader.notebook PATH [--checks forward,backward,...]   (what :func:`read` runs)

Limits (README, "For instructors"):

- a file larger than :data:`MAX_NOTEBOOK_MB` is refused (``too large``) before it is opened;
- its code cells together may hold :data:`MAX_CODE_KB` of code, in at most :data:`MAX_CELLS`
  cells (``too large`` past that: the flag scan and the sandbox read every line of it);
- the reading process (JSON, cells, answers, the flag scan) may use :data:`READ_MEMORY_MB`
  of memory and :data:`READ_SECONDS` of time; past that the notebook is ``unreadable``.

Reading is lenient about the editor that wrote the notebook (Jupyter, JupyterLab, VS Code,
Colab, nbformat 3 or 4, missing ids or metadata): it needs a JSON object with cells, each
with a ``cell_type`` and a ``source``. What it hands back is plain data: the code cells, the
written answers, the homework stamp, the names of the functions defined, and the flags
(:mod:`grader.flags`).

Names: a file name that is not valid UTF-8 (a zip made on a Chinese Windows, unpacked on
Linux) is kept, its bytes escaped: ``\\xc0\\xee.ipynb`` in reports, ``%C0%EE`` in ids.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_NOTEBOOK_MB = 16
MAX_CODE_KB = 1024
MAX_CELLS = 5000
MAX_ANSWER_CHARS = 20_000
READ_MEMORY_MB = 1024
READ_SECONDS = 60
ANSWER_PREFIX = "**Your answer:**"
ANSWER_PLACEHOLDER = "*(double-click to edit)*"
GRADED, UNREADABLE, TOO_LARGE = "graded", "unreadable", "too large"
GRADER_ERROR = "grader error"
SURROGATE = re.compile("[\ud800-\udfff]")
DEF = re.compile(r"^[ \t]*(?:async[ \t]+)?def[ \t]+([A-Za-z_]\w*)", re.MULTILINE)


@dataclass
class Notebook:
    """What the grader needs of one submitted notebook, or why it has none."""

    status: str = GRADED  # GRADED (read), UNREADABLE, TOO_LARGE or "grader error: ..."
    reason: str = ""
    cells: list[tuple[int, str]] = field(default_factory=list)  # (cell number, code)
    answers: list[dict] = field(default_factory=list)
    stamp: str = ""  # metadata.bnbook.homework, when a string
    defined: list[str] = field(default_factory=list)  # functions defined anywhere
    flags: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------
# Finding and naming
# --------------------------------------------------------------------------------------


def discover(submissions: Path) -> list[Path]:
    """Every ``*.ipynb`` below ``submissions`` (checkpoints left out), sorted."""
    found = []
    for folder, dirs, files in os.walk(submissions):  # never follows a linked folder
        dirs[:] = sorted(d for d in dirs if d != ".ipynb_checkpoints")
        found += [Path(folder) / f for f in files if f.endswith(".ipynb")]
    return sorted(found)


def escape(text: str) -> str:
    """Text safe to write as UTF-8: each byte of a name that was not UTF-8 (which Python keeps
    as a surrogate escape) as ``\\xNN``, any other lone surrogate (from a notebook's JSON) as
    ``\\udNNN``."""
    if not SURROGATE.search(text):
        return text

    def one(match: re.Match) -> str:
        code = ord(match.group())
        return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"

    return SURROGATE.sub(one, text)


def submission_id(relative: Path | str) -> str:
    """``alice/05_homework.ipynb`` -> ``alice%2F05_homework``: one file name per path, and no
    two paths with the same name (``%`` is escaped too); letters of any script kept, bytes
    that are not UTF-8 written ``%XX``."""
    text = str(relative)
    if text.endswith(".ipynb"):
        text = text[: -len(".ipynb")]
    out = []
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8
            out.append(f"%{code - 0xDC00:02X}")
        elif 0xD800 <= code <= 0xDFFF:
            out.append(f"%u{code:04X}")
        elif ch in "%/\\" or not ch.isprintable():
            out.append("".join(f"%{b:02X}" for b in ch.encode()))
        else:
            out.append(ch)
    name = "".join(out)
    if name.startswith("."):
        name = "%2E" + name[1:]
    if len(name.encode()) > 200:  # file names are at most 255 bytes
        digest = hashlib.sha256(name.encode()).hexdigest()[:12]
        name = name.encode()[:180].decode(errors="ignore") + "~" + digest
    return name or "%"


# --------------------------------------------------------------------------------------
# Reading, in a bounded process of its own
# --------------------------------------------------------------------------------------


def read(path: Path, checks: set[str]) -> Notebook:
    """The notebook at ``path``, read in a child process with its own memory and time limits
    (module docstring); the file's kind and size are checked here first."""
    try:
        info = path.lstat()
    except OSError as exc:
        return Notebook(UNREADABLE, f"cannot be read ({exc.strerror})")
    if path.is_symlink() or not path.is_file():
        return Notebook(UNREADABLE, "not a regular file (a symbolic link?)")
    if info.st_size > MAX_NOTEBOOK_MB * 2**20:
        size = info.st_size / 2**20
        return Notebook(TOO_LARGE, f"{size:.1f} MB; the grader takes at most {MAX_NOTEBOOK_MB} MB")
    cmd = [sys.executable, "-m", "grader.notebook", os.fsencode(path), "--checks", ",".join(checks)]
    cmd += ["--memory-mb", str(READ_MEMORY_MB), "--seconds", str(READ_SECONDS)]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    env["PYTHONPATH"] = str(ROOT)
    try:
        run = subprocess.run(
            cmd, capture_output=True, timeout=2 * READ_SECONDS, cwd=ROOT, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        return Notebook(UNREADABLE, f"reading it took more than {2 * READ_SECONDS} s")
    if run.returncode != 0:
        tail = "".join(run.stderr.decode(errors="replace").strip().splitlines()[-1:])
        if run.returncode < 0 or tail.startswith(("MemoryError", "RecursionError")):
            return Notebook(
                UNREADABLE,
                f"reading it needed more than {READ_MEMORY_MB} MB of memory or "
                f"{READ_SECONDS} s of time",
            )
        return Notebook(f"{GRADER_ERROR}: reading the notebook failed ({tail})")
    data = json.loads(run.stdout)
    return Notebook(
        status=data["status"],
        reason=data.get("reason", ""),
        cells=[(int(k), str(s)) for k, s in data.get("cells", [])],
        answers=data.get("answers", []),
        stamp=data.get("stamp", ""),
        defined=data.get("defined", []),
        flags=data.get("flags", []),
    )


def source_of(cell: dict) -> str:
    """A cell's source: a string, or a list of strings (nbformat), else nothing."""
    source = cell.get("source", cell.get("input", ""))  # nbformat 3 code cells: "input"
    if isinstance(source, list):
        return "".join(s for s in source if isinstance(s, str))
    return source if isinstance(source, str) else ""


def cells_of(nb) -> list:
    if not isinstance(nb, dict):
        raise ValueError("not a JSON object")
    cells = nb.get("cells")
    if cells is None and isinstance(nb.get("worksheets"), list):  # nbformat 3
        cells = [c for w in nb["worksheets"] if isinstance(w, dict) for c in w.get("cells", [])]
    if not isinstance(cells, list):
        raise ValueError("no list of cells")
    return [c for c in cells if isinstance(c, dict) and isinstance(c.get("cell_type"), str)]


def answer_of(cell: dict, number: int) -> dict | None:
    """A written answer: a Markdown cell stamped as one (or starting "**Your answer:**")."""
    metadata = cell.get("metadata")
    stamp = metadata.get("bnbook") if isinstance(metadata, dict) else None
    stamp = stamp if isinstance(stamp, dict) else {}
    text = source_of(cell).strip()
    question = stamp.get("answer")
    if question is None and not text.startswith(ANSWER_PREFIX):
        return None
    if text.startswith(ANSWER_PREFIX):
        text = text[len(ANSWER_PREFIX) :].strip()
    if text == ANSWER_PLACEHOLDER:
        text = ""
    if len(text) > MAX_ANSWER_CHARS:
        text = text[:MAX_ANSWER_CHARS] + f" [cut: {len(text) - MAX_ANSWER_CHARS} more characters]"
    return {
        "question": str(question if question is not None else f"cell {number}")[:200],
        "title": str(stamp.get("title", ""))[:200],
        "cell": number,
        "answer": text,
    }


def parse_notebook(raw: bytes, checks: set[str]) -> dict:
    """What :func:`read` hands back, from the file's bytes (runs in the bounded child)."""
    from grader import flags

    if raw.startswith(b"\xef\xbb\xbf"):  # a byte-order mark, as some editors write
        raw = raw[3:]
    try:
        nb = json.loads(raw.decode("utf-8"))
        cells = cells_of(nb)
    except UnicodeDecodeError:
        return {"status": UNREADABLE, "reason": "not a Jupyter notebook (not UTF-8 text)"}
    except (ValueError, RecursionError) as exc:
        return {"status": UNREADABLE, "reason": f"not a Jupyter notebook ({exc})"[:300]}
    code, answers = [], []
    for number, cell in enumerate(cells, start=1):
        if cell["cell_type"] == "code":
            code.append((number, source_of(cell)))
        elif cell["cell_type"] == "markdown":
            answer = answer_of(cell, number)
            if answer is not None:
                answers.append(answer)
    size = sum(len(source.encode("utf-8", "surrogatepass")) for _, source in code)
    if size > MAX_CODE_KB * 1024 or len(code) > MAX_CELLS:
        return {
            "status": TOO_LARGE,
            "reason": f"{len(code)} code cells holding {size / 1024:.0f} KB of code; the "
            f"grader takes at most {MAX_CODE_KB} KB in {MAX_CELLS} cells",
        }
    metadata = nb.get("metadata")
    stamp = metadata.get("bnbook") if isinstance(metadata, dict) else None
    stamp = stamp.get("homework") if isinstance(stamp, dict) else None
    sources = [source for _, source in code]
    return {
        "status": GRADED,
        "cells": code,
        "answers": answers,
        "stamp": stamp if isinstance(stamp, str) else "",
        "defined": sorted({name for source in sources for name in DEF.findall(source)}),
        "flags": flags.scan(sources, checks),
    }


def main(argv: list[str] | None = None) -> int:
    import resource

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=os.fsencode)
    parser.add_argument("--checks", default="")
    parser.add_argument("--memory-mb", type=int, default=READ_MEMORY_MB)
    parser.add_argument("--seconds", type=int, default=READ_SECONDS)
    args = parser.parse_args(argv)
    limit = args.memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CPU, (args.seconds, args.seconds + 1))
    with open(args.path, "rb") as f:
        raw = f.read(MAX_NOTEBOOK_MB * 2**20 + 1)
    if len(raw) > MAX_NOTEBOOK_MB * 2**20:  # grown since it was measured
        data = {"status": TOO_LARGE, "reason": f"larger than {MAX_NOTEBOOK_MB} MB"}
    else:
        data = parse_notebook(raw, set(filter(None, args.checks.split(","))))
    sys.stdout.write(json.dumps(data))  # ASCII: lone surrogates travel as \\ud800
    return 0


if __name__ == "__main__":
    sys.exit(main())
