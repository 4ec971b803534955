"""The grader on crafted submissions: honest work scores full marks, partial work keeps what
is right, and no trick raises a score, touches the checkout or the grading output, leaves a
process behind or collides with another report.

One grading run (two jobs) grades every crafted submission at once: each costs a sandbox
start, so they are batched."""

from __future__ import annotations

import base64
import copy
import csv
import hashlib
import io
import json
import os
import textwrap
import time
from pathlib import Path

import jupytext
import nbformat
import numpy as np
import pytest

from bnlib import check
from grader import confine, grade, rewrite, sandbox
from grader import homeworks as registry
from grader.reports import spreadsheet_safe

ROOT = Path(__file__).resolve().parents[2]
HW = registry.HOMEWORKS["05_homework"]
LIMITS = sandbox.Limits(total=90, cell=3, part=3, processes=64)
TOKEN = f"bnbook-survivor-{os.getpid()}"
# one pytest-xdist worker grades them all (make test runs --dist loadgroup): one grading run
pytestmark = pytest.mark.xdist_group("grader")

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


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Every crafted submission, graded in one run; the reports by name."""
    base = tmp_path_factory.mktemp("grading")
    subs, out = base / "submissions", base / "grades"
    student, solutions = hw_editions()
    honest_path = subs / "honest.ipynb"
    summary = out / "summary.csv"
    code = (
        "import os, time\n"
        "time.sleep(3)\n"
        f"for path in ({str(summary)!r}, {str(base / 'survived')!r}):\n"
        "    try:\n"
        "        os.makedirs(os.path.dirname(path), exist_ok=True)\n"
        "        with open(path, 'a') as f:\n"
        "            f.write('survivor.ipynb,survivor,05_homework,10,10,graded,,\\n')\n"
        "    except OSError:\n"
        "        pass\n"
    )
    survivor = (
        "import subprocess, sys\n"
        f"child = subprocess.Popen([sys.executable, '-c', {code!r}, {TOKEN!r}],"
        " start_new_session=True)\n"
        "import time\n"
        "time.sleep(0.5)\n"
        "assert child.poll() is None  # alive in the sandbox (the report shows no error)"
    )
    writer = "\n".join(
        f"try:\n    open({str(p)!r}, 'a').write('# hacked\\n')\nexcept OSError:\n    pass"
        for p in [
            *PROTECTED,
            Path("/opt/bnbook/bnlib/check/engine.py"),
            honest_path,
            summary,
            out / "reports" / "honest.json",
        ]
    )
    reader = f"""
    import re
    for path in ({str(honest_path)!r}, {str(HW.source)!r}):
        try:
            text = open(path).read()
        except OSError:
            continue
        import json
        cells = json.loads(text)["cells"] if path.endswith(".ipynb") else []
        for cell in cells:
            source = "".join(cell["source"])
            if "def bn_" in source:
                exec(source, globals())
    """
    partial = replace_function(student, "bn_forward", FORWARD_EPS_OUTSIDE)
    partial = replace_function(partial, "bn_running_stats", RUNNING_KERAS)
    for cell in solutions.cells:
        if cell.cell_type == "code" and "def bn_backward(" in cell.source:
            partial = replace_function(partial, "bn_backward", cell.source)
    answer = next(
        c for c in partial.cells if c.metadata.get("bnbook", {}).get("answer") == "hw-unbiased"
    )
    answer.source = "**Your answer:** every x̂ shrinks by √(7/8) in the 1×1 case."
    submissions = {
        "honest.ipynb": solutions,
        "stub.ipynb": student,
        "partial.ipynb": partial,
        "marker_hook.ipynb": with_cell(student, HOOK, at=1),
        "marker_print.ipynb": with_cell(
            student, f"print({OLD_MARKER!r} + {json.dumps(FULL_MARKS)!r})"
        ),
        "patcher.ipynb": with_cell(student, PATCHER),
        "snoop.ipynb": with_cell(student, SNOOP),
        "hardcoded.ipynb": with_cell(student, hardcoded()),
        "forger.ipynb": with_cell(student, FORGER),
        "survivor.ipynb": with_cell(solutions, survivor),
        "writer.ipynb": with_cell(solutions, writer),
        "reader.ipynb": with_cell(student, reader),
        "huge_output.ipynb": with_cell(
            solutions, "import sys\nfor _ in range(300):\n    sys.stdout.write('x' * 10**6)"
        ),
        "fork_bomb.ipynb": with_cell(solutions, FORK_BOMB, at=3),
        "loop_cell.ipynb": with_cell(solutions, "while True:\n    pass", at=3),
        "error_cells.ipynb": with_cell(
            with_cell(solutions, "1 / 0", at=2), "import os\nos._exit(1)", at=5
        ),
        "liar.ipynb": replace_function(solutions, "bn_forward", FORWARD_LIAR),
        "nan.ipynb": replace_function(solutions, "bn_forward", FORWARD_NAN),
        "dtype.ipynb": replace_function(solutions, "bn_forward", FORWARD_FLOAT64),
        "in_place.ipynb": replace_function(solutions, "bn_forward", FORWARD_IN_PLACE),
        "hang.ipynb": replace_function(solutions, "bn_backward", BACKWARD_HANG),
        "exit.ipynb": replace_function(solutions, "bn_forward", FORWARD_EXIT),
        "huge_return.ipynb": replace_function(solutions, "bn_forward", FORWARD_HUGE),
        "memory_hog.ipynb": with_cell(solutions, "hog = bytearray(16 * 2**30)", at=3),
        "torch.ipynb": replace_function(solutions, "bn_forward", FORWARD_TORCH),
        "alice/05_homework.ipynb": solutions,
        "alice__05_homework.ipynb": student,
        "李雷/05_homework.ipynb": solutions,
        "韩梅梅.ipynb": partial,
    }
    for name, nb in submissions.items():
        (subs / name).parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, subs / name)
    (subs / "garbage.ipynb").write_text("{this is not a notebook")
    (subs / "link.ipynb").symlink_to(honest_path)
    write_odd_notebooks(subs, student, solutions)
    before = {p: digest(p) for p in PROTECTED}
    honest_before = digest(honest_path)
    reports = grade.grade_all(subs, out, jobs=2, limits=LIMITS, quiet=True)
    time.sleep(4)  # the survivor's moment, had it survived (its process is gone: see below)
    return {
        "reports": {r["submission"]: r for r in reports},
        "out": out,
        "subs": subs,
        "base": base,
        "before": before,
        "honest_before": honest_before,
    }


def score(graded, name: str) -> float:
    return graded["reports"][name]["score"]


# --------------------------------------------------------------------------------------
# Honest and partial work
# --------------------------------------------------------------------------------------


def test_hidden_cases_are_drawn_afresh_for_every_submission(graded):
    seeds = [r["seed"] for r in graded["reports"].values() if "seed" in r]
    assert len(seeds) > 20 and len(set(seeds)) == len(seeds)


def test_honest_work_scores_full_marks(graded):
    report = graded["reports"]["honest.ipynb"]
    assert report["status"] == "graded" and report["score"] == report["max_score"] == 10
    assert report["flags"] == [] and report["cells"] == []
    for part in report["parts"].values():
        assert part["deductions"] == [] and part["cases_total"] == 8


def test_stubs_score_zero(graded):
    report = graded["reports"]["stub.ipynb"]
    assert report["score"] == 0 and report["status"] == "graded"
    assert all("Not implemented yet" in p["reason"] for p in report["parts"].values())


def test_partial_work_keeps_what_is_right_and_loses_by_mistake(graded):
    parts = graded["reports"]["partial.ipynb"]["parts"]
    assert parts["forward"]["points"] == 3  # ε outside the root: −1 of 4
    assert [d["key"] for d in parts["forward"]["deductions"]] == ["eps_outside_sqrt"]
    assert parts["backward"]["points"] == 4
    assert parts["running_stats"]["points"] == 1  # Keras's momentum: −1 of 2
    assert [d["key"] for d in parts["running_stats"]["deductions"]] == ["keras_momentum"]
    page = (graded["out"] / "feedback" / "partial.md").read_text()
    assert "ε is outside the square root" in page and "Keras way round" in page
    assert "3 / 4" in page and "**Score: 8 / 10**" in page


@pytest.mark.parametrize(
    ("name", "expected", "part", "key"),
    [
        ("dtype.ipynb", 9.5, "forward", "dtype"),  # a dtype slip: −0.5, not the part
        ("in_place.ipynb", 9, "forward", "in_place"),  # right values, x -= mean: −1
    ],
)
def test_dtype_and_in_place_are_deductions_of_their_own(graded, name, expected, part, key):
    report = graded["reports"][name]
    assert report["score"] == expected
    assert [d["key"] for d in report["parts"][part]["deductions"]] == [key]


@pytest.mark.parametrize(
    ("name", "lost"),
    [
        ("loop_cell.ipynb", None),  # an endless loop in an ungraded cell: skipped
        ("error_cells.ipynb", None),  # a cell that raises, a cell that os._exit()s
        ("huge_output.ipynb", None),  # 300 MB printed: discarded
        ("fork_bomb.ipynb", None),  # bounded by the process limit, killed with its cell
        ("liar.ipynb", "forward"),  # an ndarray subclass whose == says True
        ("nan.ipynb", "forward"),
        ("hang.ipynb", "backward"),  # a function that never returns: that part only
        ("exit.ipynb", "forward"),  # os._exit() inside the graded function
        ("huge_return.ipynb", "forward"),  # 240 MB returned, per case: refused, not sent
        ("memory_hog.ipynb", None),  # 16 GB asked for: MemoryError, its cell skipped
    ],
)
def test_a_failure_costs_only_its_own_part(graded, name, lost):
    report = graded["reports"][name]
    assert report["status"] == "graded"
    for part_name, part in report["parts"].items():
        expected = 0 if part_name == lost else part["max_points"]
        assert part["points"] == expected, (name, part_name, part)


def test_skipped_cells_are_reported(graded):
    bomb = graded["reports"]["fork_bomb.ipynb"]["cells"]
    assert [(c["status"], c["first_line"]) for c in bomb] == [("timeout", "import os")]
    cells = graded["reports"]["loop_cell.ipynb"]["cells"]
    assert [(c["status"], c["first_line"]) for c in cells] == [("timeout", "while True:")]
    statuses = [c["status"] for c in graded["reports"]["error_cells.ipynb"]["cells"]]
    assert statuses == ["error", "crashed"]
    hang = graded["reports"]["hang.ipynb"]["parts"]["backward"]
    assert "longer than 3 s" in hang["reason"]


# --------------------------------------------------------------------------------------
# Tricks: none raises a score
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "marker_hook.ipynb",  # a pre_run_cell hook printing the old grader's marker
        "marker_print.ipynb",  # printing it
        "patcher.ipynb",  # importlib.reload no-op'd, bnlib.check and np.all patched
        "snoop.ipynb",  # sys._getframe and gc for the expected values
        "hardcoded.ipynb",  # the public cases' outputs, looked up by input
        "forger.ipynb",  # frames written into the runner's channel
        "reader.ipynb",  # reads another submission and the solutions to exec them
    ],
)
def test_tricks_do_not_raise_the_score(graded, name):
    report = graded["reports"][name]
    assert report["status"] == "graded" and report["score"] == 0, report


def test_hardcoded_public_outputs_are_flagged(graded):
    report = graded["reports"]["hardcoded.ipynb"]
    assert "right on public cases only" in report["flags"]
    assert all(p["public_only"] for p in report["parts"].values())


def test_flags_name_what_the_code_does(graded):
    flags = {name: set(r["flags"]) for name, r in graded["reports"].items()}
    assert "calls torch" in flags["torch.ipynb"]
    assert graded["reports"]["torch.ipynb"]["score"] == 10  # flagged, not docked
    assert "IPython hooks" in flags["marker_hook.ipynb"]
    assert {"patches a module", "introspection"} <= flags["patcher.ipynb"]
    assert "introspection" in flags["snoop.ipynb"]
    assert "starts or ends processes" in flags["survivor.ipynb"]
    assert "dynamic code" in flags["reader.ipynb"]
    assert flags["honest.ipynb"] == set() and flags["stub.ipynb"] == set()


def test_nothing_reaches_the_checkout_the_output_or_other_submissions(graded):
    assert {p: digest(p) for p in PROTECTED} == graded["before"]
    assert digest(graded["subs"] / "honest.ipynb") == graded["honest_before"]
    assert graded["reports"]["writer.ipynb"]["score"] == 10
    summary = (graded["out"] / "summary.csv").read_text()
    assert "hacked" not in summary and "survivor,05_homework,10,10,graded,,\n" not in summary
    assert not (graded["base"] / "survived").exists()
    assert graded["reports"]["survivor.ipynb"]["cells"] == []  # it did start, and run
    assert "hacked" not in (graded["out"] / "reports" / "honest.json").read_text()


def test_no_process_is_left_behind(graded):
    """The survivor (a process in a session of its own, its command line carrying TOKEN)
    ended with its submission."""
    leftovers = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if TOKEN.encode() in cmdline:
            leftovers.append((entry, cmdline[:80]))
    assert leftovers == []


# --------------------------------------------------------------------------------------
# Reports: ids, summary, feedback, answers, regrade
# --------------------------------------------------------------------------------------


def test_every_submission_has_its_own_report(graded):
    out, reports = graded["out"], graded["reports"]
    ids = [r["id"] for r in reports.values()]
    assert len(ids) == len(set(ids)) == len(list(graded["subs"].rglob("*.ipynb")))
    assert reports["alice/05_homework.ipynb"]["id"] == "alice%2F05_homework"
    assert reports["alice__05_homework.ipynb"]["id"] == "alice__05_homework"
    assert reports["李雷/05_homework.ipynb"]["id"] == "李雷%2F05_homework"
    assert reports["韩梅梅.ipynb"]["score"] == 8
    for report in reports.values():
        assert (out / "reports" / f"{report['id']}.json").is_file()
        assert (out / "feedback" / f"{report['id']}.md").is_file()
    assert reports["garbage.ipynb"]["status"] == "unreadable"
    assert reports["garbage.ipynb"]["reason"].startswith("not a Jupyter notebook")
    assert reports["link.ipynb"]["reason"].startswith("not a regular file")


def test_summary_has_paths_scores_and_flags(graded):
    rows = list(csv.DictReader(io.StringIO((graded["out"] / "summary.csv").read_text())))
    assert {"submission", "score", "max_score", "flags", "homework", "id"} <= set(rows[0])
    by_path = {row["submission"]: row for row in rows}
    assert set(by_path) == {spreadsheet_safe(name) for name in graded["reports"]}
    assert float(by_path["honest.ipynb"]["score"]) == 10.0
    assert float(by_path["alice__05_homework.ipynb"]["score"]) == 0.0
    assert by_path["torch.ipynb"]["flags"] == "calls torch"
    assert float(by_path["partial.ipynb"]["forward"]) == 3.0
    rubric = json.loads((graded["out"] / "rubric.json").read_text())
    assert rubric["05_homework"]["running_stats"]["deductions"]["keras_momentum"] == 1


def test_written_answers_are_exported(graded):
    rows = list(csv.DictReader(io.StringIO((graded["out"] / "answers.csv").read_text())))
    mine = [r for r in rows if r["submission"] == "partial.ipynb"]
    questions = [r["question"] for r in mine]
    assert questions == ["hw-unbiased", "hw-warmup", "hw-sums", "hw-eps"]
    assert [r["title"] for r in mine[:2]] == ["Exercise 2", "Exercise 4"]
    assert mine[0]["answer"] == "every x̂ shrinks by √(7/8) in the 1×1 case."
    assert all(r["answer"] == "" for r in mine if r["question"] != "hw-unbiased")


def test_a_regrade_merges_with_what_is_there(graded, tmp_path):
    out = graded["out"]
    other = (out / "reports" / "stub.json").read_text()
    _, solutions = hw_editions()
    late = tmp_path / "late"
    late.mkdir()
    nbformat.write(solutions, late / "partial.ipynb")
    grade.grade_all(late, out, jobs=1, limits=LIMITS, quiet=True)
    rows = list(csv.DictReader(io.StringIO((out / "summary.csv").read_text())))
    assert len(rows) == len(graded["reports"])
    assert float(next(r for r in rows if r["submission"] == "partial.ipynb")["score"]) == 10
    assert (out / "reports" / "stub.json").read_text() == other


# --------------------------------------------------------------------------------------
# Issue 21: one bad notebook never stops the run; judging does not depend on the student
# --------------------------------------------------------------------------------------


def test_every_odd_notebook_gets_a_row_and_a_page(graded):
    reports, out = graded["reports"], graded["out"]
    expected = {
        "sum_chain.ipynb": ("graded", 10),  # 1+1+…+1: RecursionError in the old flag scan
        "minus.ipynb": ("graded", 10),  # ------…1: MemoryError there
        "string_stamp.ipynb": ("graded", 10),  # "bnbook": "05_homework": AttributeError
        "surrogate.ipynb": ("graded", 10),  # a lone surrogate in an answer
        GBK_DISPLAY: ("graded", 10),  # a GBK file name, as a Chinese Windows zip leaves it
        "scratch_300.ipynb": ("graded", 10),  # 300 scratch cells: no process held per cell
        "huge_cell.ipynb": ("too large", 0),  # 2 MB of code
        "oversize.ipynb": ("too large", 0),  # a file past the limit: refused unread
    }
    for name, (status, score) in expected.items():
        report = reports[name]
        assert (report["status"], report["score"]) == (status, score), (name, report["reason"])
        assert (out / "feedback" / f"{report['id']}.md").is_file()
    assert reports[GBK_DISPLAY]["id"] == "%C0%EE%C0%D7"
    assert "code too deep to read" in reports["sum_chain.ipynb"]["flags"]
    page = (out / "feedback" / "oversize.md").read_text()
    assert "Not graded (too large)" in page and "at most 16 MB" in page
    answers = (out / "answers.csv").read_text(encoding="utf-8")
    assert "\\ud800" in answers


def test_a_notebook_stamped_for_another_homework_is_graded_as_the_runs(graded):
    reports = graded["reports"]
    trick = reports["stamped_hw2.ipynb"]  # homework 2's answers, handed in for homework 1
    assert trick["homework"] == "05_homework" and trick["score"] == 0
    assert "stamped 09_homework_2" in trick["flags"]
    honest = reports["mis_stamped.ipynb"]  # homework 1's answers, the wrong stamp
    assert honest["score"] == 10 and "stamped 09_homework_2" in honest["flags"]
    assert any("graded as 05_homework" in note for note in honest["notes"])


@pytest.mark.parametrize(
    ("name", "flag"),
    [
        ("alias_check.ipynb", "calls bnlib.check"),  # from bnlib import check as ref
        ("import_alias.ipynb", "calls bnlib.check"),  # import bnlib.check as c
        ("dynamic_torch.ipynb", "dynamic import"),  # vars(__builtins__)["__imp"+"ort__"]
    ],
)
def test_calling_the_library_is_flagged_through_any_alias(graded, name, flag):
    report = graded["reports"][name]
    assert flag in report["flags"], report["flags"]


def test_returning_float16_gains_nothing(graded):
    low = graded["reports"]["float16.ipynb"]["parts"]["forward"]
    cast = graded["reports"]["float16_cast.ipynb"]["parts"]["forward"]
    assert low["points"] <= cast["points"] < 4


def test_csv_cells_are_escaped(graded):
    summary = list(csv.reader(io.StringIO((graded["out"] / "summary.csv").read_text())))
    assert '\'=HYPERLINK("x","y").ipynb' in [row[0] for row in summary]
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in summary for cell in row)
    answers = list(csv.reader(io.StringIO((graded["out"] / "answers.csv").read_text())))
    assert any(row[-1] == "'=1+2" for row in answers)


def test_the_run_says_which_sandbox_graded(graded):
    report = graded["reports"]["honest.ipynb"]
    assert report["sandbox"]["mode"] in ("bwrap", "process")
    if os.getuid() == 0:
        assert report["sandbox"]["ran_as"]["uid"] >= confine.SANDBOX_UID_BASE


def test_reports_of_two_homeworks_never_mix(graded, tmp_path):
    """A homework-2 run into homework 1's OUT is refused; the default OUT is per homework."""
    other = tmp_path / "hw2"
    other.mkdir()
    student, _ = hw_editions(registry.HOMEWORKS["09_homework_2"])
    nbformat.write(student, other / "09_homework_2.ipynb")
    with pytest.raises(SystemExit, match="holds grades of 05_homework"):
        grade.grade_all(other, graded["out"], homework="09_homework_2", limits=LIMITS, quiet=True)
    assert grade.GRADES.name == "grades"  # the default: _build/grades/<homework>
    with pytest.raises(SystemExit, match="which homework"):
        empty = tmp_path / "none"
        empty.mkdir()
        (empty / "x.ipynb").write_text('{"cells": []}')
        grade.grade_all(empty, tmp_path / "o", limits=LIMITS, quiet=True)


def test_a_grader_failure_is_no_students_zero(graded, tmp_path, monkeypatch):
    """The sandbox breaking on one notebook (here: the grader's own code raising) gives that
    row a status and no score; the run goes on and the command exits 1."""
    subs = tmp_path / "subs"
    subs.mkdir()
    _, solutions = hw_editions()
    for name in ("a.ipynb", "b.ipynb"):
        nbformat.write(solutions, subs / name)
    original = sandbox.Sandbox.run

    def flaky(self, cells, parts, trials):
        if parts and self.slot == 1:  # the first notebook's run (slot 0 is the probe)
            self.slot += 1
            raise OSError("disk full")
        return original(self, cells, parts, trials)

    monkeypatch.setattr(sandbox.Sandbox, "run", flaky)
    code = grade.main([str(subs), "--out", str(tmp_path / "out"), "--timeout", "60"])
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "summary.csv").read_text())))
    by_name = {row["submission"]: row for row in rows}
    assert code == 1
    failed = [r for r in rows if r["status"].startswith("grader error")]
    assert len(failed) == 1 and failed[0]["score"] == "" and "disk full" in failed[0]["status"]
    assert {float(r["score"]) for r in by_name.values() if r not in failed} == {10.0}


def test_another_homework_plugs_in(tmp_path):
    """A homework of another shape (a number among the arguments, a 0-d output, its own
    mistakes) needs only a Check and a Part: the same sandbox, assessor and rubric."""

    def trials(rng, n):
        return [
            check.Trial(f"case {k}", (rng.standard_normal((2, 3)), float(k + 2)), np.float64)
            for k in range(n)
        ]

    toy = check.Check(
        name="scale",
        arg_names=("x", "k"),
        outputs=("scaled", "total"),
        reference=lambda x, k: (x * k, np.asarray((x * k).sum())),
        public=lambda: trials(np.random.default_rng(0), 2),
        hidden=lambda rng: trials(rng, 3),
        variant=lambda x, k, forgot_k=False: (x, np.asarray(x.sum())) if forgot_k else None,
        mistakes=(check.Mistake("forgot_k", "k is not applied.", {"forgot_k": True}),),
    )
    homework_toy = registry.Homework(
        "toy_homework",
        tmp_path / "toy.md",
        (registry.Part("scale", "scale", 2, toy, {"forgot_k": 1.5}),),
    )
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("def scale(x, k):\n    return x, x.sum()")]
    path = tmp_path / "toy.ipynb"
    nbformat.write(nb, path)
    with sandbox.Sandbox("auto", LIMITS) as box:
        report = grade.grade_notebook(path, "toy.ipynb", homework_toy, box)
        part = report["parts"]["scale"]
        assert report["max_score"] == 2 and part["points"] == 0.5
        assert [d["key"] for d in part["deductions"]] == ["forgot_k"]
        # the report's seed draws the same hidden cases again: a disputed grade can be re-run
        again = grade.grade_notebook(path, "toy.ipynb", homework_toy, box, seed=report["seed"])
    assert again["parts"] == report["parts"]


@pytest.fixture(scope="module")
def graded_process(tmp_path_factory):
    """The tricks that need the sandbox's walls, graded without bubblewrap (a uid of its
    own, seccomp, cgroups or rlimits): as in a container that forbids namespaces."""
    if os.getuid() != 0:
        pytest.skip("without bubblewrap, the grader runs student code only as root")
    base = tmp_path_factory.mktemp("process")
    subs, out = base / "submissions", base / "grades"
    subs.mkdir()
    base.chmod(0o755)
    student, solutions = hw_editions()
    secret = base / "secret_solutions.py"  # the solutions, readable by root only
    secret.write_text(
        "\n\n".join(c.source for c in solutions.cells if c.source.startswith("def bn_"))
    )
    secret.chmod(0o600)
    reader = f"""
    import glob, json, os
    for path in [{str(secret)!r}, {str(HW.source)!r}, *glob.glob({str(subs)!r} + "/*.ipynb")]:
        try:
            text = open(path).read()
        except OSError:
            continue
        cells = json.loads(text)["cells"] if path.endswith(".ipynb") else [{{"source": text}}]
        for cell in cells:
            source = "".join(cell["source"])
            if "def bn_" in source and "NotImplementedError" not in source:
                try:
                    exec(source, globals())
                except Exception:
                    pass
    """
    submissions = {
        "honest.ipynb": solutions,
        "stub.ipynb": student,
        "reader.ipynb": with_cell(student, reader),
        "fork_bomb.ipynb": with_cell(solutions, FORK_BOMB, at=3),
        "memory_hog.ipynb": with_cell(solutions, "hog = bytearray(16 * 2**30)", at=3),
    }
    for name, nb in submissions.items():
        nbformat.write(nb, subs / name)
    reports = grade.grade_all(subs, out, jobs=2, limits=LIMITS, quiet=True, isolation="process")
    return {r["submission"]: r for r in reports}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("honest.ipynb", 10),
        ("stub.ipynb", 0),
        ("reader.ipynb", 0),
        ("fork_bomb.ipynb", 10),
        ("memory_hog.ipynb", 10),
    ],
)
def test_without_bubblewrap_the_walls_hold(graded_process, name, expected):
    report = graded_process[name]
    assert report["sandbox"]["mode"] == "process"
    assert report["status"] == "graded" and report["score"] == expected, report["parts"]
    assert report["sandbox"]["ran_as"]["uid"] >= confine.SANDBOX_UID_BASE
    assert report["sandbox"]["ran_as"]["seccomp"] == 2
