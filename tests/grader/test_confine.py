"""The bounds on one submission are applied: the cgroup's limits as the kernel holds them,
the rlimits, the uid, the seccomp filter; and what a uid leaves behind is ended and swept.
None of these tests measures time: each reads back what was set, or tries what is denied."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from grader import confine, runtime
from grader.confine import Limits

ROOT_ONLY = pytest.mark.skipif(os.getuid() != 0, reason="needs root (a uid of its own)")
LIMITS = Limits(memory_mb=1536, cpus=0.5, processes=40, file_mb=8, total=60)

PROBE = textwrap.dedent(
    """
    import errno, json, os, resource, socket
    out = {"uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups()}
    out["cgroup"] = open("/proc/self/cgroup").read()
    out["limits"] = {n: resource.getrlimit(getattr(resource, "RLIMIT_" + n))[0]
                     for n in ("AS", "NPROC", "FSIZE", "CORE", "CPU")}
    out["seccomp"] = [l.split()[1] for l in open("/proc/self/status") if l.startswith("Seccomp:")]
    out["session"] = os.getsid(0) == os.getpid()
    for family in ("AF_INET", "AF_INET6", "AF_NETLINK"):
        try:
            socket.socket(getattr(socket, family), socket.SOCK_DGRAM if family != "AF_NETLINK"
                          else socket.SOCK_RAW).close()
            out[family] = "allowed"
        except OSError as exc:
            out[family] = errno.errorcode[exc.errno]
    a, b = socket.socketpair(socket.AF_UNIX)
    out["AF_UNIX"] = "allowed"
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def python():
    """A Python that any uid can run (this one, or a hard-linked mirror of it)."""
    with tempfile.TemporaryDirectory(prefix="bnbook-test-runtime-") as scratch:
        os.chmod(scratch, 0o755)
        yield runtime.runtime(Path(scratch) / "python")


def confined(python, spec: confine.Spec) -> dict:
    env = {"PATH": "/usr/bin:/bin", "LD_LIBRARY_PATH": python.libdir}
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)
        cmd = spec.argv([python.python, "-s", "-E", "-c", PROBE])
        run = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp, timeout=60)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


@ROOT_ONLY
def test_the_wrapper_applies_uid_rlimits_session_and_seccomp(python):
    rlimits = {"AS": 2**31, "NPROC": 40, "FSIZE": 2**23, "CORE": 0, "CPU": 70}
    with confine.free_uid() as uid:
        seen = confined(python, confine.Spec([], rlimits, uid=uid, seccomp=True))
    assert (seen["uid"], seen["gid"], seen["groups"]) == (uid, uid, [])
    assert seen["limits"] == rlimits and seen["session"]
    assert seen["seccomp"] == ["2"]  # a filter
    assert seen["AF_INET"] == seen["AF_INET6"] == seen["AF_NETLINK"] == "EACCES"
    assert seen["AF_UNIX"] == "allowed"


def test_without_the_filter_sockets_are_allowed(python):
    """The control: the same probe, no filter, makes its sockets (the filter is what denies)."""
    seen = confined(python, confine.Spec([], {"CORE": 0}))
    assert seen["seccomp"] == ["0"] and seen["AF_INET"] == "allowed"


def test_the_filter_is_libseccomps():
    assert confine.seccomp_module() is not None, "pip install pyseccomp (requirements.txt)"
    rules = confine.seccomp_filter()
    with tempfile.TemporaryFile("w+") as f:
        rules.export_pfc(f)
        f.seek(0)
        text = f.read()
    assert "socket" in text and "io_uring_setup" in text and "shmget" in text


@pytest.fixture
def cgroups():
    parent = confine.cgroup_parent(LIMITS)
    if parent is None:
        pytest.skip("no writable cgroup hierarchy with memory, cpu and pids here")
    yield parent
    parent.remove()
    assert not any(d.exists() for d in parent.dirs.values())


def test_a_submissions_cgroup_holds_its_limits(cgroups, python):
    cgroup = cgroups.make(LIMITS)
    try:
        assert cgroup.settings() == {
            "cgroup": f"v{cgroups.version}",
            "memory_mb": 1536,
            "processes": 40,
            "cpus": 0.5,
        }
        seen = confined(python, confine.Spec(cgroup.procs, {"CORE": 0}))
        for d in cgroup.dirs.values():  # the wrapper's process joined every hierarchy
            assert any(line.endswith(d.name) for line in seen["cgroup"].splitlines())
    finally:
        cgroup.remove()
    assert not any(d.exists() for d in cgroup.dirs.values())


def test_killing_a_cgroup_ends_every_process_in_it(cgroups):
    cgroup = cgroups.make(LIMITS)
    try:
        spec = confine.Spec(cgroup.procs, {"CORE": 0})
        daemon = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(600)\n"
        cmd = spec.argv([sys.executable, "-c", daemon + "time.sleep(600)"])
        proc = subprocess.Popen(cmd)
        for _ in range(6000):  # until the child and its daemon are both in the cgroup
            assert proc.poll() is None
            if len(cgroup.pids()) == 2:
                break
            time.sleep(0.01)
        cgroup.kill()
        proc.wait()
        assert cgroup.pids() == set()
    finally:
        cgroup.remove()


def test_version_2_files(tmp_path, monkeypatch):
    """The files a version-2 hierarchy gets (a fake one here: plain files)."""
    own = tmp_path / "user.slice"
    own.mkdir()
    (own / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    parent = confine._v2_parent(own, "bnbook-grader-1")
    assert (own / "cgroup.subtree_control").read_text() == "+memory +cpu +pids"
    run = own / "bnbook-grader-1"
    assert parent.dirs == {"": run}
    (run / "cgroup.controllers").write_text("cpu memory pids\n")
    original_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        original_mkdir(self, *args, **kwargs)
        if self.name.startswith("submission-"):
            (self / "cpu.max").write_text("max 100000")
            (self / "memory.swap.max").write_text("max")

    monkeypatch.setattr(Path, "mkdir", mkdir)
    cgroup = parent.make(LIMITS)
    assert cgroup.settings() == {"cgroup": "v2", "memory_mb": 1536, "processes": 40, "cpus": 0.5}
    assert (cgroup.dirs[""] / "memory.swap.max").read_text() == "0"
    assert (cgroup.dirs[""] / "cpu.max").read_text() == "50000 100000"
    assert (own / "cgroup.controllers").exists()


@ROOT_ONLY
def test_a_uid_of_its_own(monkeypatch):
    import pwd

    with confine.free_uid() as first, confine.free_uid() as second:
        assert first != second  # locked: two submissions never share one
        for uid in (first, second):
            assert confine.SANDBOX_UID_BASE <= uid < confine.SANDBOX_UID_BASE + 64
            with pytest.raises(KeyError):
                pwd.getpwuid(uid)  # no user of the machine has it


@ROOT_ONLY
def test_what_a_uid_leaves_is_ended_and_swept(tmp_path):
    with confine.free_uid() as uid:
        daemon = subprocess.Popen(
            ["sleep", "600"], user=uid, group=uid, extra_groups=[], start_new_session=True
        )
        left = []
        for folder in ("/tmp", "/dev/shm", "/var/tmp"):
            path = Path(folder) / f"bnbook-left-{uid}-{os.getpid()}"
            path.mkdir()
            (path / "data").write_text("for the next submission")
            os.chown(path / "data", uid, uid)
            os.chown(path, uid, uid)
            left.append(path)
        mine = Path("/tmp") / f"bnbook-not-theirs-{os.getpid()}"
        mine.write_text("root's")
        try:
            confine.kill_uid(uid)
            assert daemon.wait(timeout=30) == -9
            confine.sweep(uid)
            assert not any(p.exists() for p in left)
            assert mine.exists()
        finally:
            mine.unlink()
