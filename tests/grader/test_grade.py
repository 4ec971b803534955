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
import shutil
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import jupytext
import nbformat
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bnlib import check
from bnlib.check import homework_1
from grader import grade, gradescope, homework, sandbox
from grader import parts as registry

ROOT = Path(__file__).resolve().parents[2]
HW = registry.HOMEWORKS["05_homework"]
LIMITS = sandbox.Limits(total=90, cell=3, part=3, processes=64)
TOKEN = f"bnbook-survivor-{os.getpid()}"
# one pytest-xdist worker grades them all (make test runs --dist loadgroup): one grading run
pytestmark = pytest.mark.xdist_group("grader")

# --------------------------------------------------------------------------------------
# Building crafted submissions
# --------------------------------------------------------------------------------------


def editions():
    nb = jupytext.read(HW.source)
    student = homework.plain_markdown(homework.student_edition(nb, HW.name))
    solutions = homework.plain_markdown(homework.solutions_edition(nb, HW.name))
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


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


PROTECTED = [ROOT / "bnlib" / "check" / "engine.py", ROOT / "grader" / "grade.py", HW.source]


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Every crafted submission, graded in one run; the reports by name."""
    base = tmp_path_factory.mktemp("grading")
    subs, out = base / "submissions", base / "grades"
    student, solutions = editions()
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
        "fork_bomb.ipynb": with_cell(
            solutions,
            "import os\nwhile True:\n    try:\n        os.fork()\n"
            "    except OSError:\n        pass",
            at=3,
        ),
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
    before = {p: digest(p) for p in PROTECTED}
    honest_before = digest(honest_path)
    reports = grade.grade_all(subs, out, jobs=2, limits=LIMITS, quiet=True)
    time.sleep(4)  # the survivor's moment, had it survived
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
    ours = f"bnbook-grader-{os.getpid()}".encode()  # on every sandbox this process started
    leftovers = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if TOKEN.encode() in cmdline or ours in cmdline:
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
    assert reports["garbage.ipynb"]["reason"].startswith("not a valid Jupyter notebook")
    assert reports["link.ipynb"]["reason"].startswith("not a regular file")


def test_summary_has_paths_scores_and_flags(graded):
    rows = list(csv.DictReader(io.StringIO((graded["out"] / "summary.csv").read_text())))
    assert {"submission", "score", "max_score", "flags", "homework", "id"} <= set(rows[0])
    by_path = {row["submission"]: row for row in rows}
    assert set(by_path) == set(graded["reports"])
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
    _, solutions = editions()
    late = tmp_path / "late"
    late.mkdir()
    nbformat.write(solutions, late / "partial.ipynb")
    grade.grade_all(late, out, jobs=1, limits=LIMITS, quiet=True)
    rows = list(csv.DictReader(io.StringIO((out / "summary.csv").read_text())))
    assert len(rows) == len(graded["reports"])
    assert float(next(r for r in rows if r["submission"] == "partial.ipynb")["score"]) == 10
    assert (out / "reports" / "stub.json").read_text() == other


# --------------------------------------------------------------------------------------
# Gradescope: the zip, and its run_autograder against a fake /autograder
# --------------------------------------------------------------------------------------


def test_gradescope_zip_runs_locally(tmp_path, graded):
    zip_path = gradescope.build(HW, tmp_path / "autograder.zip")
    with zipfile.ZipFile(zip_path) as archive:
        names = set(archive.namelist())
        assert {"setup.sh", "run_autograder", "requirements-grader.txt"} <= names
        assert "grader/runner.py" in names and "bnlib/check/engine.py" in names
        assert not any(n.startswith("chapters/") for n in names)  # no solutions
        archive.extractall(tmp_path / "source")
    for script in ("setup.sh", "run_autograder"):
        (tmp_path / "source" / script).chmod(0o755)
    fake = tmp_path / "autograder"
    (fake / "submission").mkdir(parents=True)
    shutil.copy(graded["subs"] / "partial.ipynb", fake / "submission" / "whatever.ipynb")
    env = {**os.environ, "AUTOGRADER_ROOT": str(fake), "AUTOGRADER_PYTHON": sys.executable}
    env.pop("PYTHONPATH", None)  # the zip's own bnlib and grader
    run = subprocess.run(
        [str(tmp_path / "source" / "run_autograder")], env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    results = json.loads((fake / "results" / "results.json").read_text())
    assert results["score"] == 8
    tests = {t["name"]: t for t in results["tests"]}
    assert [tests[p.function]["max_score"] for p in HW.parts] == [4, 4, 2]
    assert tests["bn_forward"]["score"] == 3 and "ε is outside" in tests["bn_forward"]["output"]
    assert all(t["visibility"] == "visible" for t in tests.values())


def test_gradescope_results_hide_flags_from_students(graded):
    results = gradescope.results(graded["reports"]["torch.ipynb"])
    flags = [t for t in results["tests"] if t["name"].startswith("for the instructor")]
    assert flags[0]["visibility"] == "hidden" and flags[0]["output"] == "calls torch"


# --------------------------------------------------------------------------------------
# The pieces, without a sandbox
# --------------------------------------------------------------------------------------


@given(st.lists(st.text(min_size=1, max_size=12), min_size=2, max_size=2, unique=True))
def test_ids_never_collide(paths):
    assert grade.submission_id(paths[0]) != grade.submission_id(paths[1])


def test_ids_are_readable():
    assert grade.submission_id("alice/05_homework.ipynb") == "alice%2F05_homework"
    assert grade.submission_id("alice%2F05_homework.ipynb") == "alice%252F05_homework"
    assert grade.submission_id("韩梅梅.ipynb") == "韩梅梅"
    assert grade.submission_id("../x.ipynb") == "%2E.%2Fx"


def test_what_comes_back_is_parsed_as_data_only():
    good = io.BytesIO()
    np.save(good, np.arange(3.0))
    blob = good.getvalue()
    assert np.array_equal(sandbox.load_array(blob, 1 << 20), np.arange(3.0))
    objects = io.BytesIO()
    np.save(objects, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    for bad in (objects.getvalue(), blob[:-8], blob.replace(b"(3,)", b"(9999999999,)")):
        with pytest.raises(ValueError):
            sandbox.load_array(bad, 1 << 20)
    frame = sandbox.MAGIC + b"\x05\x00\x00\x00\x00\x00\x00\x00" + b'{"a":'
    assert list(sandbox.frames(frame)) == []  # truncated: nothing
    assert list(sandbox.frames(b"garbage" * 100)) == []
    assert sandbox.text("a\x1b[31mred\x00") == "a [31mred "


def test_flags_read_the_code():
    assert grade.flags(["import bnlib.check\nbnlib.check.forward(f)"]) == []
    assert grade.flags(["import bnlib\ny = bnlib.batch_norm(x)"]) == ["calls bnlib"]
    assert grade.flags(["from bnlib.check import reference_forward"]) == ["calls bnlib"]
    assert grade.flags(["import numpy as np\nnp.all = lambda *a: True"]) == ["patches a module"]
    assert grade.flags(["%timeit f()\nexec('1')"]) == ["dynamic code"]


def test_the_rubric_is_configurable(tmp_path):
    rubric_file = tmp_path / "rubric.toml"
    rubric_file.write_text(
        "[05_homework.running_stats]\npoints = 3\ndeductions = { keras_momentum = 2 }\n"
    )
    rubric = registry.load_rubric(rubric_file)
    part = HW.parts[2]
    points, deductions = registry.rubric_for(part, HW, rubric)
    assert points == 3 and deductions["keras_momentum"] == 2 and deductions["dtype"] == 0.25

    def keras(running_mean, running_var, x, momentum):
        mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3), ddof=1)
        return (momentum * running_mean + (1 - momentum) * mean,
                momentum * running_var + (1 - momentum) * var)  # fmt: skip

    trials = registry.draw_trials(part, np.random.default_rng(0))
    returned = [check.call(keras, t, part.check.outputs) for t in trials]
    assert part.assess(part, trials, returned, points, deductions).points == 1
    for text, message in [
        ("[05_homework.nonsense]\npoints = 1\n", "no part 'nonsense'"),
        ("[05_homework.forward]\ndeductions = { eps_outsde = 1 }\n", "'eps_outsde'"),
        ("[05_homework.forward]\npoints = -1\n", "a number ≥ 0"),
    ]:
        rubric_file.write_text(text)
        with pytest.raises(SystemExit, match=message):
            registry.load_rubric(rubric_file)


def test_hidden_cases_are_fresh_and_keep_the_edge_cases():
    first = homework_1.hidden_cases(np.random.default_rng(1))
    second = homework_1.hidden_cases(np.random.default_rng(2))
    assert [c.seed for c in first] != [c.seed for c in second]
    shapes = [c.shape for c in first]
    assert any(n == 1 and h * w > 1 for n, _, h, w in shapes)
    assert any(h * w == 1 for _, _, h, w in shapes)
    assert {np.dtype(c.dtype) for c in first} == {np.dtype("float32"), np.dtype("float64")}
    assert max(c.eps for c in first) >= 0.3
    assert all(abs(c.momentum - 0.5) > 0.05 for c in first)  # Keras's way is PyTorch's there


def test_missing_bubblewrap_says_what_to_do(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(sandbox.SandboxUnavailable, match="apt-get install -y bubblewrap"):
        sandbox.check_available()


def test_an_array_header_cannot_claim_a_size_it_does_not_have():
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": "<f8", "fortran_order": False, "shape": (2**32, 2**32, 1)}
    )
    with pytest.raises(ValueError, match="size"):
        sandbox.load_array(b"\x93NUMPY\x01\x00" + buffer.getvalue()[8:], 1 << 20)
    header = {"type": "trial", "part": "forward", "k": 0, "outputs": 1, "after": 0}
    back = sandbox.returned(header, [b"\x93NUMPY\x09junk"], HW.parts[0].check.public()[0])
    assert back.outputs is None and "not a plain array" in back.problem


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
    report = grade.grade_notebook(path, "toy.ipynb", {}, LIMITS, homework=homework_toy)
    part = report["parts"]["scale"]
    assert report["max_score"] == 2 and part["points"] == 0.5
    assert [d["key"] for d in part["deductions"]] == ["forgot_k"]
    # the report's seed draws the same hidden cases again: a disputed grade can be re-run
    again = grade.grade_notebook(
        path, "toy.ipynb", {}, LIMITS, homework=homework_toy, seed=report["seed"]
    )
    assert again["parts"] == report["parts"]


@pytest.mark.parametrize("hw", registry.HOMEWORKS.values(), ids=lambda hw: hw.name)
def test_every_registered_part_has_a_consistent_rubric(hw):
    """Each deduction names one of the part's mistakes (a typo would never apply), and each
    mistake costs less than the part is worth."""
    for part in hw.parts:
        keys = {m.key for m in part.check.mistakes}
        assert set(part.deductions) <= keys | {registry.DTYPE, registry.IN_PLACE}, part.name
        assert keys <= set(part.deductions), (part.name, keys - set(part.deductions))
        assert all(0 < v <= part.points for v in part.deductions.values()), part.name
        assert len(part.check.hidden(np.random.default_rng(0))) >= 4, part.name


def test_an_interpreter_under_tmp_is_mounted_over_the_sandboxes_own_tmp(tmp_path, monkeypatch):
    """A clone (and its venv) under /tmp, as CI may make: the sandbox's empty /tmp is
    mounted first and the interpreter's prefix on top of it, so the python to run exists
    inside while nothing else of the host's /tmp is seen."""
    prefix = tmp_path / "venv"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "bin" / "python").symlink_to(sys.executable)
    monkeypatch.setattr(sys, "prefix", str(prefix))
    cmd = sandbox.command(tmp_path / "job", None, sandbox.Limits())
    tmpfs = next(i for i in range(len(cmd) - 1) if cmd[i : i + 2] == ["--tmpfs", "/tmp"])
    binds = [i for i in range(len(cmd) - 2) if cmd[i] == "--ro-bind"]
    prefix_bind = next(i for i in binds if cmd[i + 2] == os.path.realpath(prefix))
    assert tmpfs < prefix_bind
    assert not any(cmd[i + 2] in ("/", "/tmp") for i in binds)  # the host's /tmp stays out
    assert cmd[cmd.index("--") + 1] == os.path.join(os.path.realpath(prefix), "bin", "python")
