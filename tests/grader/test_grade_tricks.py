"""The grader on crafted tricks (tests/grader/crafted.py): none raises a score, touches the
checkout or the grading output, or leaves a process behind; and without bubblewrap the
sandbox's walls hold."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

from grader import confine, grade
from tests.grader.crafted import (
    FORK_BOMB,
    HW,
    LIMITS,
    PROTECTED,
    TOKEN,
    digest,
    hw_editions,
    with_cell,
)

# one pytest-xdist worker grades them all (make test runs --dist loadgroup): one grading run
pytestmark = pytest.mark.xdist_group("grader")


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
