"""Reading submissions: whatever a file holds or is named, reading it ends with a notebook or
a status (``unreadable``, ``too large``), in a bounded process of its own."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from grader import flags, homeworks, notebook

CHECKS = homeworks.check_functions()


def write(path: Path, cells: list[dict], metadata=None, nbformat: int = 4) -> Path:
    data = {"nbformat": nbformat, "nbformat_minor": 5, "metadata": metadata or {}}
    data["cells"] = cells
    path.write_text(json.dumps(data))
    return path


def code(source, **extra) -> dict:
    return {"cell_type": "code", "source": source, **extra}


def markdown(source, metadata=None) -> dict:
    return {"cell_type": "markdown", "source": source, "metadata": metadata or {}}


def test_a_notebook_is_read_with_its_cells_answers_stamp_and_flags(tmp_path):
    path = write(
        tmp_path / "a.ipynb",
        [
            code(["import torch\n", "def bn_forward(x, g, b, eps):\n", "    return x"]),
            markdown("**Your answer:** it shrinks", {"bnbook": {"answer": "q1", "title": "E 1"}}),
            markdown("Some text"),
            code("x = 1"),
        ],
        {"bnbook": {"homework": "05_homework"}},
    )
    nb = notebook.read(path, CHECKS)
    assert nb.status == notebook.GRADED and nb.stamp == "05_homework"
    assert nb.cells == [
        (1, "import torch\ndef bn_forward(x, g, b, eps):\n    return x"),
        (4, "x = 1"),
    ]
    assert nb.answers == [{"question": "q1", "title": "E 1", "cell": 2, "answer": "it shrinks"}]
    assert nb.defined == ["bn_forward"] and nb.flags == [flags.CALLS_TORCH]


@pytest.mark.parametrize(
    ("content", "status", "reason"),
    [
        (b"{this is not a notebook", notebook.UNREADABLE, "not a Jupyter notebook"),
        (b"[" * 100_000 + b"]" * 100_000, notebook.UNREADABLE, "not a Jupyter notebook"),
        (b'{"cells": 3}', notebook.UNREADABLE, "no list of cells"),
        (b"\xff\xfe{}", notebook.UNREADABLE, "not UTF-8"),
        (b"", notebook.UNREADABLE, "not a Jupyter notebook"),
    ],
)
def test_what_is_not_a_notebook_is_unreadable(tmp_path, content, status, reason):
    path = tmp_path / "x.ipynb"
    path.write_bytes(content)
    nb = notebook.read(path, CHECKS)
    assert nb.status == status and reason in nb.reason


def test_odd_metadata_and_editors_are_read(tmp_path):
    """A stamp that is a string (not a mapping), nbformat 3's worksheets, cells without
    metadata or ids, a byte-order mark: read all the same."""
    stamped = write(tmp_path / "s.ipynb", [code("def f(): pass")], {"bnbook": "05_homework"})
    nb = notebook.read(stamped, CHECKS)
    assert nb.status == notebook.GRADED and nb.stamp == ""
    old = tmp_path / "v3.ipynb"
    cells = [{"cell_type": "code", "input": "x = 2"}, {"cell_type": "heading", "source": "T"}]
    old.write_text(json.dumps({"nbformat": 3, "worksheets": [{"cells": cells}]}))
    assert notebook.read(old, CHECKS).cells == [(1, "x = 2")]
    bom = tmp_path / "bom.ipynb"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps({"cells": [code("y = 3")]}).encode())
    assert notebook.read(bom, CHECKS).cells == [(1, "y = 3")]


def test_a_lone_surrogate_is_kept_escaped(tmp_path):
    path = tmp_path / "s.ipynb"
    path.write_text(
        '{"cells": [{"cell_type": "markdown", "source": "**Your answer:** a \\ud800 b"}]}'
    )
    nb = notebook.read(path, CHECKS)
    assert nb.answers[0]["answer"] == "a \ud800 b"
    assert notebook.escape(nb.answers[0]["answer"]) == "a \\ud800 b"


def test_a_file_too_large_is_refused_before_it_is_opened(tmp_path, monkeypatch):
    path = tmp_path / "big.ipynb"
    with open(path, "wb") as f:
        f.truncate(notebook.MAX_NOTEBOOK_MB * 2**20 + 1)

    def never(*args, **kwargs):
        raise AssertionError("a reader was started")

    monkeypatch.setattr(subprocess, "run", never)
    nb = notebook.read(path, CHECKS)
    assert nb.status == notebook.TOO_LARGE and f"at most {notebook.MAX_NOTEBOOK_MB} MB" in nb.reason


def test_too_much_code_is_too_large(tmp_path):
    """A 2 MB cell (the old grader's own process took 12 GB on 19.6 MB): refused after the
    JSON, before the flag scan or the sandbox reads a line of it."""
    path = write(tmp_path / "c.ipynb", [code("x = 1\n" + "#" * 2 * 2**20)])
    nb = notebook.read(path, CHECKS)
    assert nb.status == notebook.TOO_LARGE and f"{notebook.MAX_CODE_KB} KB" in nb.reason


def test_links_and_folders_are_not_read(tmp_path):
    target = write(tmp_path / "t.ipynb", [code("x = 1")])
    (tmp_path / "link.ipynb").symlink_to(target)
    (tmp_path / "dir.ipynb").mkdir()
    for name in ("link.ipynb", "dir.ipynb"):
        nb = notebook.read(tmp_path / name, CHECKS)
        assert nb.status == notebook.UNREADABLE and "not a regular file" in nb.reason


def test_the_reader_is_bounded(tmp_path, monkeypatch):
    """Reading runs in a child with its own memory limit: a child that runs out of it is
    the notebook's status, not the grader's crash."""
    path = write(tmp_path / "a.ipynb", [code("x = 1")])
    monkeypatch.setattr(notebook, "READ_MEMORY_MB", 8)  # too little for Python to start
    nb = notebook.read(path, CHECKS)
    assert nb.status == notebook.UNREADABLE and "8 MB of memory" in nb.reason


def test_discovery_skips_checkpoints_and_keeps_any_name(tmp_path):
    (tmp_path / ".ipynb_checkpoints").mkdir()
    (tmp_path / ".ipynb_checkpoints" / "a-checkpoint.ipynb").write_text("{}")
    gbk = os.fsdecode(b"\xc0\xee\xc0\xd7.ipynb")  # 李雷 in GBK, as a Windows zip leaves it
    (tmp_path / gbk).write_text("{}")
    (tmp_path / "李雷").mkdir()
    (tmp_path / "李雷" / "05_homework.ipynb").write_text("{}")
    found = [str(p.relative_to(tmp_path)) for p in notebook.discover(tmp_path)]
    assert found == sorted([gbk, "李雷/05_homework.ipynb"])


def test_names_that_are_not_utf8_are_kept_escaped():
    name = os.fsdecode(b"\xc0\xee\xc0\xd7.ipynb")
    assert notebook.escape(name) == "\\xc0\\xee\\xc0\\xd7.ipynb"
    assert notebook.submission_id(name) == "%C0%EE%C0%D7"
    assert notebook.submission_id("李雷/05_homework.ipynb") == "李雷%2F05_homework"


@given(st.lists(st.text(min_size=1, max_size=12), min_size=2, max_size=2, unique=True))
def test_ids_never_collide(paths):
    assert notebook.submission_id(paths[0]) != notebook.submission_id(paths[1])


def test_ids_are_readable():
    assert notebook.submission_id("alice/05_homework.ipynb") == "alice%2F05_homework"
    assert notebook.submission_id("alice%2F05_homework.ipynb") == "alice%252F05_homework"
    assert notebook.submission_id("韩梅梅.ipynb") == "韩梅梅"
    assert notebook.submission_id("../x.ipynb") == "%2E.%2Fx"
