"""The sandbox, in each mode this machine allows (bubblewrap; and a uid of its own without
it, as root): who the code runs as, what it can reach, what it leaves, and the bounds
applied. A probe function, defined by the cells, hands back what it saw as bytes."""

from __future__ import annotations

import json
import os
import shutil
import socket
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bnlib.check import Trial
from grader import confine, frames, runtime, sandbox
from grader.sandbox import Limits, Sandbox, SandboxUnavailable

LIMITS = Limits(total=120, cell=20, part=20, memory_mb=1024, cpus=1.0, processes=64)
PROBE_PART = {"name": "probe", "function": "probe", "outputs": ["seen"]}
PROBE_PART["caller"] = "bnlib.check:call"
# pytest-xdist: the sandboxes of this file in one worker (they share a machine's uids)
pytestmark = pytest.mark.xdist_group("grader")


def modes() -> list[str]:
    found = []
    try:
        sandbox.check_available()
        found.append("bwrap")
    except SandboxUnavailable:
        pass
    if os.getuid() == 0:
        found.append("process")
    return found


@pytest.fixture(scope="module", params=modes())
def box(request):
    with Sandbox(request.param, LIMITS) as prepared:
        yield prepared


def probe(box: Sandbox, *cells: str, seen: str = "SEEN") -> tuple[dict, frames.Run]:
    """Run ``cells``, then ``probe()``, which returns the JSON of the cells' ``SEEN``."""
    define = "def probe():\n    import json, numpy\n"
    define += f"    return numpy.frombuffer(json.dumps({seen}).encode(), numpy.uint8)"
    run = box.run([textwrap.dedent(c) for c in cells] + [define], [PROBE_PART], TRIAL)
    assert not run.error, run.error
    back = run.returned["probe"][0]
    assert back.outputs is not None, (back.problem, run.cells)
    return json.loads(back.outputs[0].tobytes()), run


TRIAL = {"probe": [Trial("probe", (), np.dtype(np.float64))]}


def test_it_runs_as_a_uid_of_its_own_with_the_filter(box):
    seen, run = probe(box, "import os\nSEEN = [os.getuid(), os.getgid(), os.getgroups()]")
    uid = run.ready["uid"]
    if os.getuid() == 0:
        assert confine.SANDBOX_UID_BASE <= uid < confine.SANDBOX_UID_BASE + 64
    assert seen == [uid, uid if os.getuid() == 0 else run.ready["gid"], []]
    assert run.ready["seccomp"] == (2 if box.seccomp else 0)


def test_the_bounds_are_applied(box):
    seen, run = probe(
        box,
        """
        import resource
        SEEN = {n: resource.getrlimit(getattr(resource, "RLIMIT_" + n))[0]
                for n in ("AS", "FSIZE", "CORE", "NPROC")}
        """,
    )
    assert seen["AS"] == LIMITS.memory_mb * 2**20 and seen["FSIZE"] == LIMITS.file_mb * 2**20
    assert seen["CORE"] == 0
    if os.getuid() == 0:
        assert seen["NPROC"] == LIMITS.processes
    if box.cgroups is not None:
        assert run.bounds == {
            "cgroup": f"v{box.cgroups.version}",
            "memory_mb": LIMITS.memory_mb,
            "processes": LIMITS.processes,
            "cpus": LIMITS.cpus,
        }
        assert box.jobs(2) == 2
    else:
        assert box.jobs(2) == 1  # no cgroups: one at a time, so none can slow another


def test_no_network_not_even_the_loopback(box):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.setblocking(False)
    port = server.getsockname()[1]
    try:
        seen, _ = probe(
            box,
            f"""
            import socket
            try:
                socket.create_connection(("127.0.0.1", {port}), timeout=5).sendall(b"hi")
                SEEN = "connected"
            except OSError as exc:
                SEEN = type(exc).__name__
            """,
        )
        assert seen != "connected"
        with pytest.raises(BlockingIOError):
            server.accept()  # no connection ever came
    finally:
        server.close()


def test_no_process_is_held_per_cell(box):
    """300 finished cells under a limit of 64 processes: every one runs (the old runner
    kept a process per cell, and past the limit the cells crashed), and the last one sees
    a handful of processes of its uid, not one per cell."""
    assert LIMITS.processes < 300
    scratch = [f"x{k} = {k}" for k in range(300)]
    count = """
    import os
    SEEN = 0
    for p in os.listdir("/proc"):
        try:
            SEEN += p.isdigit() and os.stat(f"/proc/{p}").st_uid == os.getuid()
        except OSError:
            pass  # a process of the machine that ended meanwhile
    """
    seen, run = probe(box, *scratch, count)
    assert [c["status"] for c in run.cells.values()] == ["ok"] * 302
    assert seen < LIMITS.processes


def test_a_private_emptied_temporary_directory(box):
    """What one submission leaves in /tmp, /dev/shm and /var/tmp, and its daemons, are gone
    before the next one starts; its temporary directory starts empty."""
    leave = """
    import os, subprocess, sys, tempfile
    for folder in ("/tmp", "/dev/shm", "/var/tmp", tempfile.gettempdir()):
        try:
            with open(os.path.join(folder, "bnbook-left-behind"), "w") as f:
                f.write("answers")
        except OSError:
            pass
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                     start_new_session=True)
    SEEN = os.getuid()
    """
    first, _ = probe(box, leave)
    look = """
    import os, tempfile
    SEEN = {"left": [f for f in ("/tmp", "/dev/shm", "/var/tmp", tempfile.gettempdir())
                     if os.path.exists(os.path.join(f, "bnbook-left-behind"))],
            "tmpdir": sorted(os.listdir(tempfile.gettempdir()))}
    """
    second, _ = probe(box, look)
    assert second["left"] == []
    if box.mode == "process":
        assert second["tmpdir"] == []
        assert confine.processes_of(first) == []  # the daemon ended with its submission


@pytest.mark.skipif(os.getuid() != 0, reason="needs root (a uid of its own)")
def test_what_the_grader_keeps_private_is_not_readable(box, tmp_path):
    secret = tmp_path / "solutions.py"
    secret.write_text("ANSWER = 42")
    secret.chmod(0o600)
    protected = tmp_path / "submissions"
    protected.mkdir(mode=0o755)
    (protected / "bob.ipynb").write_text("{}")
    (protected / "bob.ipynb").chmod(0o644)
    tmp_path.chmod(0o755)
    paths = [str(secret), str(protected / "bob.ipynb"), str(box.work)]
    reader = f"""
    import os
    SEEN = {{}}
    for path in {paths!r}:
        try:
            SEEN[path] = os.listdir(path) if os.path.isdir(path) else open(path).read()
        except OSError as exc:
            SEEN[path] = type(exc).__name__
    """
    with box.protect([protected]):
        seen, _ = probe(box, reader)
    assert (protected.stat().st_mode & 0o777) == 0o755  # restored after the run
    if box.mode == "process":
        assert set(seen.values()) == {"PermissionError"}, seen
    else:  # none of them is in the sandbox's file system
        assert set(seen.values()) <= {"FileNotFoundError", "PermissionError"}, seen


def test_memory_is_bounded_for_all_processes_together(box):
    """Three processes of 400 MB each, under a 1024 MB limit for the submission: each is
    within its own address space, together they are not. The cgroup (or, without one, the
    watch on the submission's memory) ends it, and the run says so."""
    hog = """
    import os, time
    for _ in range(3):
        if os.fork() == 0:
            block = bytearray(400 * 2**20)
            block[::4096] = b"x" * len(block[::4096])
            time.sleep(60)
            os._exit(0)
    time.sleep(60)
    """
    run = box.run([textwrap.dedent(hog)], [], {})
    assert run.out_of_memory and not run.error


def test_without_cgroups_the_memory_watch_bounds_it(monkeypatch):
    with Sandbox(modes()[0], LIMITS) as plain:
        plain.cgroups.remove() if plain.cgroups else None
        plain.cgroups = None
        assert plain.jobs(2) == 1
        test_memory_is_bounded_for_all_processes_together(plain)


def test_an_environment_failure_is_the_graders(box, monkeypatch):
    monkeypatch.setattr(sandbox, "RUNNER", Path("/nonexistent/runner.py"))
    if box.mode == "process":
        monkeypatch.setattr(shutil, "copy2", lambda *a, **k: None)
    run = box.run(["x = 1"], [], {})
    assert run.error.startswith(("the sandbox did not start", "the sandbox could not be"))


def test_no_isolation_no_student_code(monkeypatch):
    """A grader that is not root, without bubblewrap, refuses and says how to fix it."""
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(os, "getuid", lambda: 1000)
    with pytest.raises(SandboxUnavailable) as refused:
        sandbox.choose_mode("auto")
    assert "apt-get install -y bubblewrap" in str(refused.value)
    assert "as root" in str(refused.value)
    with pytest.raises(SandboxUnavailable):
        sandbox.choose_mode("process")


def test_an_interpreter_under_tmp_is_mounted_over_the_sandboxes_own_tmp(tmp_path, monkeypatch):
    """A clone (and its venv) under /tmp, as CI may make: the sandbox's empty /tmp is
    mounted first and the interpreter's prefix on top of it, so the python to run exists
    inside while nothing else of the host's /tmp is seen."""
    import sys

    prefix = tmp_path / "venv"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "bin" / "python").symlink_to(sys.executable)
    monkeypatch.setattr(sys, "prefix", str(prefix))
    cmd = sandbox.bwrap_command(tmp_path / "job", None, Limits())
    tmpfs = next(i for i in range(len(cmd) - 1) if cmd[i : i + 2] == ["--tmpfs", "/tmp"])
    binds = [i for i in range(len(cmd) - 2) if cmd[i] == "--ro-bind"]
    prefix_bind = next(i for i in binds if cmd[i + 2] == os.path.realpath(prefix))
    assert tmpfs < prefix_bind
    assert not any(cmd[i + 2] in ("/", "/tmp") for i in binds)  # the host's /tmp stays out
    assert cmd[cmd.index("--") + 1] == os.path.join(os.path.realpath(prefix), "bin", "python")


def test_a_python_other_users_cannot_reach_is_mirrored(tmp_path):
    made = runtime.runtime(tmp_path / "runtime")
    assert runtime.usable_by_others(made.python) or made.mirror is not None
    if made.mirror is not None:
        assert Path(made.python).is_relative_to(made.mirror)
        assert all((made.mirror / "lib").iterdir())
