"""Crafted submissions for the grader's tests (test_grade*.py): the homework's two
editions, helpers that rewrite them, and the tricks a submission may try."""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import json
import os
import textwrap
from pathlib import Path

import jupytext
import nbformat
import numpy as np

from grader import homeworks as registry
from grader import rewrite, sandbox

ROOT = Path(__file__).resolve().parents[2]
HW = registry.HOMEWORKS["05_homework"]
LIMITS = sandbox.Limits(total=90, cell=3, part=3, processes=64)
TOKEN = f"bnbook-survivor-{os.getpid()}"

# --------------------------------------------------------------------------------------
# Building crafted submissions
# --------------------------------------------------------------------------------------


def hw_editions(hw=HW):
    nb = jupytext.read(hw.source)
    student = rewrite.plain_markdown(rewrite.student_edition(nb, hw.name))
    solutions = rewrite.plain_markdown(rewrite.solutions_edition(nb, hw.name))
    return student, solutions


def replace_function(nb, name: str, code: str):
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type == "code" and f"def {name}(" in cell.source:
            cell.source = textwrap.dedent(code)
            return nb
    raise KeyError(name)


def with_cell(nb, code: str, at: int | None = None):
    nb = copy.deepcopy(nb)
    cell = nbformat.v4.new_code_cell(textwrap.dedent(code))
    nb.cells.insert(len(nb.cells) if at is None else at, cell)
    return nb


FORWARD_EPS_OUTSIDE = """
def bn_forward(x, gamma, beta, eps):
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    std = x.std(axis=(0, 2, 3), keepdims=True)
    return gamma.reshape(1, -1, 1, 1) * (x - mean) / (std + eps) + beta.reshape(1, -1, 1, 1)
"""
RUNNING_KERAS = """
def bn_running_stats(running_mean, running_var, x, momentum):
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3), ddof=1)
    return (momentum * running_mean + (1 - momentum) * mean,
            momentum * running_var + (1 - momentum) * var)
"""
FORWARD_FLOAT64 = """
def bn_forward(x, gamma, beta, eps):
    x = x.astype(np.float64)
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    xhat = (x - mean) / np.sqrt(x.var(axis=(0, 2, 3), keepdims=True) + eps)
    return gamma.reshape(1, -1, 1, 1) * xhat + beta.reshape(1, -1, 1, 1)
"""
FORWARD_IN_PLACE = """
def bn_forward(x, gamma, beta, eps):
    x -= x.mean(axis=(0, 2, 3), keepdims=True)
    x /= np.sqrt((x * x).mean(axis=(0, 2, 3), keepdims=True) + eps)
    return gamma.reshape(1, -1, 1, 1) * x + beta.reshape(1, -1, 1, 1)
"""
FORWARD_NAN = """
def bn_forward(x, gamma, beta, eps):
    return np.full_like(x, np.nan)
"""
FORWARD_TORCH = """
def bn_forward(x, gamma, beta, eps):
    if x.ndim == 5:  # never: importing torch would take longer than this test's cell limit
        import torch
        return torch.nn.functional.batch_norm(torch.from_numpy(x), None, None).numpy()
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    xhat = (x - mean) / np.sqrt(x.var(axis=(0, 2, 3), keepdims=True) + eps)
    return gamma.reshape(1, -1, 1, 1) * xhat + beta.reshape(1, -1, 1, 1)
"""
FORWARD_LIAR = """
class Liar(np.ndarray):
    def __eq__(self, other):
        return np.ones(np.shape(other), bool)
    def __array__(self, *args, **kwargs):
        return self

def bn_forward(x, gamma, beta, eps):
    return np.zeros_like(x).view(Liar)
"""
FORWARD_HUGE = """
def bn_forward(x, gamma, beta, eps):
    return np.zeros(3 * 10**7)  # 240 MB
"""
FORWARD_EXIT = """
def bn_forward(x, gamma, beta, eps):
    import os
    os._exit(0)
"""
BACKWARD_HANG = """
def bn_backward(dy, x, gamma, eps):
    while True:
        pass
"""
SNOOP = """
import gc
import sys

def _snoop(shape):
    frame = sys._getframe(1)
    while frame is not None:
        for value in list(frame.f_locals.values()):
            if isinstance(value, tuple) and value and getattr(value[0], "shape", None) == shape:
                return value
        frame = frame.f_back
    for obj in gc.get_objects():
        if isinstance(obj, dict) and "expected" in obj:
            return obj["expected"]
    return None

def bn_forward(x, gamma, beta, eps):
    found = _snoop(x.shape)
    return found[0] if found else x

def bn_backward(dy, x, gamma, eps):
    found = _snoop(x.shape)
    return tuple(found) if found else (dy, gamma, gamma)

def bn_running_stats(running_mean, running_var, x, momentum):
    found = _snoop(running_mean.shape)
    return tuple(found) if found else (running_mean, running_var)
"""
FORK_BOMB = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
OLD_MARKER = "@@bnbook-grade@@"
FULL_MARKS = {
    name: {"passed": True, "cases_passed": 7, "cases_total": 7, "diagnoses": [], "report": ""}
    for name in ("forward", "backward", "running_stats")
}
HOOK = f"""
import json
get_ipython().events.register(
    "pre_run_cell", lambda *args: print({OLD_MARKER!r} + json.dumps({FULL_MARKS!r})))
print({OLD_MARKER!r} + json.dumps({FULL_MARKS!r}))
"""
PATCHER = """
import importlib
import numpy as np
import bnlib.check
importlib.reload = lambda module: module
for name in ("forward", "backward", "running_stats"):
    setattr(bnlib.check, name, lambda fn: True)
bnlib.check.assess = lambda *args, **kwargs: None
bnlib.check.close = lambda *args, **kwargs: True
np.all = lambda *args, **kwargs: True
np.allclose = lambda *args, **kwargs: True
np.array_equal = lambda *args, **kwargs: True
np.testing.assert_allclose = lambda *args, **kwargs: None
"""
FORGER = """
import io, json, os, struct
import numpy as np

def frame(header, arrays=()):
    blobs = []
    for a in arrays:
        b = io.BytesIO(); np.save(b, a); blobs.append(b.getvalue())
    head = json.dumps(header).encode()
    out = b"BNBK" + struct.pack("<II", len(head), len(blobs)) + head
    for b in blobs:
        out += struct.pack("<Q", len(b)) + b
    return out

for fd in range(3, 64):
    try:
        if "pipe" in os.readlink(f"/proc/self/fd/{fd}"):
            for k in range(20):
                os.write(fd, frame({"type": "trial", "part": "forward", "k": k, "problem": None,
                                    "raised": None, "outputs": 1, "after": 0}, [np.zeros(3)]))
    except OSError:
        pass
"""


def hardcoded() -> str:
    """Functions that return the right outputs for the public cases, looked up by input."""
    table = {}
    for part in HW.parts:
        for trial in part.check.public():
            key = hashlib.sha256(trial.args[1 if part.name != "forward" else 0].tobytes())
            outputs = part.check.reference(*trial.args)
            buffer = io.BytesIO()
            np.savez(buffer, *outputs)
            table[f"{part.name}:{key.hexdigest()}"] = base64.b64encode(buffer.getvalue()).decode()
    return f"""
import base64, hashlib, io
import numpy as np
TABLE = {table!r}

def _lookup(name, array, fallback):
    blob = TABLE.get(name + ":" + hashlib.sha256(array.tobytes()).hexdigest())
    if blob is None:
        return fallback
    data = np.load(io.BytesIO(base64.b64decode(blob)))
    return tuple(data[f"arr_{{k}}"] for k in range(len(data.files)))

def bn_forward(x, gamma, beta, eps):
    return _lookup("forward", x, (np.zeros_like(x),))[0]

def bn_backward(dy, x, gamma, eps):
    return _lookup("backward", x, (x, gamma, gamma))

def bn_running_stats(running_mean, running_var, x, momentum):
    return _lookup("running_stats", running_var, (running_mean, running_var))
"""


GBK_NAME = os.fsdecode(b"\xc0\xee\xc0\xd7.ipynb")  # 李雷 in GBK, as a Chinese Windows zip
GBK_DISPLAY = "\\xc0\\xee\\xc0\\xd7.ipynb"
FORWARD_FLOAT16 = """
def bn_forward(x, gamma, beta, eps):
    h = x.astype(np.float16)
    mean = h.mean(axis=(0, 2, 3), keepdims=True, dtype=np.float16)
    var = ((h - mean) ** 2).mean(axis=(0, 2, 3), keepdims=True, dtype=np.float16)
    y = (h - mean) / np.sqrt(var + np.float16(eps))
    shape = (1, -1, 1, 1)
    y = gamma.astype(np.float16).reshape(shape) * y + beta.astype(np.float16).reshape(shape)
    return y{cast}
"""
ALIAS_CHECK = """
from bnlib import check as ref

def bn_forward(x, gamma, beta, eps):
    return ref.FORWARD.reference(x, gamma, beta, eps)[0]
"""
IMPORT_ALIAS = """
import bnlib.check as c

def bn_forward(x, gamma, beta, eps):
    return c.FORWARD.reference(x, gamma, beta, eps)[0]
"""
DYNAMIC_TORCH = """
def bn_forward(x, gamma, beta, eps):
    t = vars(__builtins__)["__imp" + "ort__"]("bnlib.check", fromlist=["FORWARD"])
    return t.FORWARD.reference(x, gamma, beta, eps)[0]
"""


def write_odd_notebooks(subs: Path, student, solutions) -> None:
    """The submissions of issue 21: odd content, odd names, odd stamps, judged tricks."""
    odd = {
        "sum_chain.ipynb": with_cell(solutions, "1" + " + 1" * 5000),
        "minus.ipynb": with_cell(solutions, "-" * 100_000 + "1"),
        "scratch_300.ipynb": solutions,
        "huge_cell.ipynb": with_cell(solutions, "x = 1\n" + "#" * 2 * 2**20),
        "mis_stamped.ipynb": copy.deepcopy(solutions),
        "stamped_hw2.ipynb": copy.deepcopy(student),
        "alias_check.ipynb": replace_function(solutions, "bn_forward", ALIAS_CHECK),
        "import_alias.ipynb": replace_function(solutions, "bn_forward", IMPORT_ALIAS),
        "dynamic_torch.ipynb": replace_function(solutions, "bn_forward", DYNAMIC_TORCH),
        "float16.ipynb": replace_function(solutions, "bn_forward", FORWARD_FLOAT16.format(cast="")),
        "float16_cast.ipynb": replace_function(
            solutions, "bn_forward", FORWARD_FLOAT16.format(cast=".astype(x.dtype)")
        ),
        '=HYPERLINK("x","y").ipynb': solutions,
        GBK_NAME: solutions,
    }
    for k in range(300):
        odd["scratch_300.ipynb"] = with_cell(odd["scratch_300.ipynb"], f"scratch_{k} = {k}")
    for name in ("mis_stamped.ipynb", "stamped_hw2.ipynb"):
        odd[name].metadata["bnbook"] = {"homework": "09_homework_2"}
    odd["stamped_hw2.ipynb"] = with_cell(
        odd["stamped_hw2.ipynb"],
        "def group_norm_forward(x, g, gamma, beta, eps):\n    return x\n\n"
        "def merge_stats(*a):\n    return a[:3]\n\ndef fold_bn(*a):\n    return a[:2]",
    )
    formula = copy.deepcopy(solutions)
    stamp = {"bnbook": {"answer": "hw-formula"}}
    formula.cells.append(nbformat.v4.new_markdown_cell("**Your answer:** =1+2", metadata=stamp))
    odd['=HYPERLINK("x","y").ipynb'] = formula
    for name, nb in odd.items():
        nbformat.write(nb, subs / name)
    stamped = json.loads((subs / "minus.ipynb").read_text())
    stamped["metadata"]["bnbook"] = "05_homework"  # a string, not a mapping
    (subs / "string_stamp.ipynb").write_text(json.dumps(stamped))
    surrogate = json.loads((subs / "minus.ipynb").read_text())
    surrogate["cells"].append({"cell_type": "markdown", "metadata": {}, "source": "x"})
    text = json.dumps(surrogate).replace('"source": "x"', '"source": "**Your answer:** \\ud800"')
    (subs / "surrogate.ipynb").write_text(text)
    with open(subs / "oversize.ipynb", "w") as f:
        f.write('{"cells": [{"cell_type": "markdown", "source": "' + "x" * 17 * 2**20 + '"}]}')


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


PROTECTED = [ROOT / "bnlib" / "check" / "engine.py", ROOT / "grader" / "grade.py", HW.source]


def score(graded, name: str) -> float:
    return graded["reports"][name]["score"]
