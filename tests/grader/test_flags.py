"""Flags read from the code's syntax tree: they see through aliases and dynamic imports,
never recurse into deep code, and leave honest check cells alone."""

from __future__ import annotations

import pytest

from grader import flags, homeworks

CHECKS = homeworks.check_functions()


def scan(*cells: str) -> list[str]:
    return flags.scan(list(cells), CHECKS)


def test_honest_check_cells_raise_no_flag():
    assert (
        scan(
            "import numpy as np\nimport bnlib.check",
            "forward_check = bnlib.check.forward(bn_forward)\nprint(forward_check.score)",
            "for case in bnlib.check.CASES:\n    n, c, h, w = case.shape",
            "from bnlib.check import forward as fw\nfrom bnlib import check\ncheck.backward(f)",
            "%matplotlib inline\n%timeit bn_forward(x, g, b, 1e-5)",
            "rng = np.random.default_rng(0)\nx = rng.normal(size=(2, 3))\nx.shape = (3, 2)",
        )
        == []
    )


@pytest.mark.parametrize(
    "code",
    [
        "from bnlib import check as ref\ndef f(*a):\n    return ref.FORWARD.reference(*a)[0]",
        "import bnlib.check as c\ny = c.homework_1.reference_forward(x)",
        "import bnlib.check\nk = bnlib.check\nforward = getattr(k, 'FORWARD')",
        "import bnlib.check as c\nF = getattr(c, 'FORW' + 'ARD')",
        "from bnlib.check import FORWARD",
        "from bnlib.check import *",
        "%%capture\nfrom bnlib.check import homework_1",
    ],
)
def test_the_answer_key_is_flagged_through_any_alias(code):
    assert flags.CALLS_CHECK in scan(code)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("import bnlib\ny = bnlib.batch_norm(x)", {flags.CALLS_BNLIB}),
        ("from bnlib import fold as f", {flags.CALLS_BNLIB}),
        ("import torch as t\nt.ones(3)", {flags.CALLS_TORCH}),
        ("import torch.nn.functional as F", {flags.CALLS_TORCH}),
        (
            "t = vars(__builtins__)['__imp' + 'ort__']('torch')",
            {flags.DYNAMIC_IMPORT, flags.INTROSPECTION},
        ),
        (
            "import importlib\nm = importlib.import_module('torch')",
            {flags.DYNAMIC_IMPORT, flags.CALLS_TORCH},
        ),
        (
            "m = __import__('bnlib.check')\nm.FORWARD",
            {flags.DYNAMIC_IMPORT, flags.CALLS_CHECK},
        ),
        ("import sys\nc = sys.modules['bnlib.check']", {flags.DYNAMIC_IMPORT}),
        ("import builtins\nbuiltins.__import__('os')", {flags.DYNAMIC_IMPORT}),
        ("exec(open('x.py').read())", {flags.DYNAMIC_CODE, flags.FILES}),
        ("%run other.py", {flags.DYNAMIC_CODE}),
        ("import numpy as np\nnp.all = lambda *a: True", {flags.PATCHES}),
        ("import numpy as np\nsetattr(np, 'all', len)", {flags.PATCHES}),
        ("import gc\ngc.get_objects()", {flags.INTROSPECTION}),
        ("f.__globals__['x']", {flags.INTROSPECTION}),
        ("get_ipython().events.register('pre_run_cell', f)", {flags.HOOKS}),
        ("import os\nos.fork()", {flags.PROCESSES}),
        ("!ls /", {flags.PROCESSES}),
        ("%pip install torch", {flags.PROCESSES}),
        ("import numpy as np\nx = np.load('answers.npy')", {flags.FILES}),
        ("def f(:\n    pass", {flags.UNPARSED}),
    ],
)
def test_flags_name_what_the_code_does(code, expected):
    assert set(scan(code)) == expected


def test_an_alias_made_in_a_later_cell_is_followed():
    assert flags.CALLS_CHECK in scan("def f(x):\n    return k.FORWARD", "import bnlib.check as k")


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("1" + " + 1" * 5000, flags.TOO_DEEP),  # a RecursionError in the old flag scan
        ("-" * 100_000 + "1", flags.TOO_DEEP),  # a MemoryError there
        ("x = " + "getattr(" * 3000 + "y" + ", 'a')" * 3000, flags.UNPARSED),  # the parser's
    ],
)
def test_no_depth_of_code_breaks_the_scan(code, expected):
    assert scan("import torch", code) == sorted([flags.CALLS_TORCH, expected])
