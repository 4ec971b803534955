"""Run one submission's code isolated and bounded, and bring back what it returned.

A :class:`Sandbox` is prepared once per grading run; :meth:`Sandbox.run` writes one
submission's job (its code cells, the inputs of every trial) to a fresh directory, starts
``grader/runner.py`` through ``grader/confine.py`` and reads the frames the runner writes to
its standard output (the only way back: never files, never prints). Two modes:

- ``bwrap`` (bubblewrap, where user namespaces or root allow it): a file system of its own
  (the system's ``/usr``, ``/etc`` and libraries, the Python and its packages, ``bnlib``
  and the runner, read-only; the job's inputs read-only; small tmpfs for ``/tmp``,
  ``/dev/shm`` and its working directory; not the checkout, not the other submissions,
  not the grading output, not the home directory), no network (its own network
  namespace), its own PID namespace (every process it starts ends with it), and, as root,
  a uid of its own;
- ``process`` (where namespaces are forbidden, as in Gradescope's containers; root only):
  a uid of its own that owns nothing else, a private emptied working and temporary
  directory, no network (seccomp: no socket but AF_UNIX), every process of that uid killed
  before what it sent is read, its files in the shared temporary directories removed, and
  the paths the grader keeps private (``Sandbox.private``) closed to other users while the
  run lasts. A grader that is not root, without bubblewrap, runs no student code
  (:class:`SandboxUnavailable` says how to fix it).

Both are bounded by ``grader/confine.py``: cgroups where the machine allows (all of a
submission's processes together: memory, CPU, processes), rlimits, a total time. Without
cgroups, submissions run one at a time (:meth:`Sandbox.jobs`), so that none can slow
another, and a watch on the submission's total memory (its processes' proportional set
size, every 0.2 s) ends it past the limit.

What comes back is parsed as data only: JSON headers and ``.npy`` arrays loaded with
``allow_pickle=False``, numbers only, sizes checked before loading. An error of the
environment (the sandbox did not start) is the grader's failure (``Run.error``), never a
student's zero.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bnlib.check import Trial
from grader import confine
from grader.confine import Limits
from grader.frames import Run, parse
from grader.runtime import runtime

ROOT = Path(__file__).resolve().parent.parent
RUNNER = Path(__file__).resolve().parent / "runner.py"
ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "PYTHONDONTWRITEBYTECODE": "1",
    "MPLBACKEND": "Agg",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "LANG": "C.UTF-8",
}
WATCH_SECONDS = 0.2

__all__ = ["Limits", "Run", "Sandbox", "SandboxUnavailable"]


class SandboxUnavailable(RuntimeError):
    """No isolation can be had here; the message says how to get one."""


# --------------------------------------------------------------------------------------
# Which mode this machine allows
# --------------------------------------------------------------------------------------


def bwrap_path() -> str:
    path = shutil.which("bwrap")
    if path is None:
        raise SandboxUnavailable(
            "bubblewrap (bwrap) is missing. Install it: sudo apt-get install -y bubblewrap "
            "(make grade does this as root)."
        )
    return path


def check_available() -> None:
    """Raise :class:`SandboxUnavailable`, saying what to do, unless bwrap works here."""
    cmd = [bwrap_path(), "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    cmd += ["--unshare-pid", "--unshare-net", "--die-with-parent", "true"]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        raise SandboxUnavailable(
            "bubblewrap cannot make a sandbox here: " + run.stderr.strip() + ". It needs "
            "user namespaces (sysctl kernel.unprivileged_userns_clone=1) or root."
        )


def choose_mode(mode: str = "auto") -> str:
    """``bwrap`` where it works; else ``process`` as root; else :class:`SandboxUnavailable`."""
    if mode in ("auto", "bwrap"):
        try:
            check_available()
            return "bwrap"
        except SandboxUnavailable as exc:
            if mode == "bwrap":
                raise
            why = str(exc)
    else:
        why = "asked for"
    if os.getuid() == 0:
        return "process"
    raise SandboxUnavailable(
        f"no isolation for student code here ({why}), so none is run. Without bubblewrap "
        "the grader isolates a submission by running it as a user of its own, which needs "
        "root. Either install bubblewrap where user namespaces are allowed (sudo apt-get "
        "install -y bubblewrap), or run the grader as root (in a container, for one)."
    )


# --------------------------------------------------------------------------------------
# The sandbox of a grading run
# --------------------------------------------------------------------------------------


class Sandbox:
    """The isolation of one grading run: its mode, its bounds, its runtime, prepared once;
    :meth:`close` (or ``with``) removes what it made."""

    def __init__(self, mode: str = "auto", limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.mode = choose_mode(mode)
        self.root = os.getuid() == 0
        self.work = Path(tempfile.mkdtemp(prefix="bnbook-grader-"))
        self.work.chmod(0o711)  # crossed by the sandbox's uid, never listed
        self.cgroups = confine.cgroup_parent(self.limits)
        self.seccomp = confine.seccomp_available()
        self.runtime = runtime(self.work / "runtime") if self.mode == "process" else None
        self.slot = 0
        self.private: list[Path] = []  # closed to other users while a process-mode run lasts

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def close(self) -> None:
        if self.cgroups is not None:
            self.cgroups.remove()
        shutil.rmtree(self.work, ignore_errors=True)

    def jobs(self, requested: int) -> int:
        """Submissions at once: as asked where cgroups bound each one's CPU and memory;
        one at a time without them (no submission can then slow or starve another)."""
        return max(1, requested) if self.cgroups is not None else 1

    def describe(self) -> dict:
        """What this run's sandbox is and bounds (for the reports and the command's output)."""
        network = "own namespace" if self.mode == "bwrap" else "open"
        if self.seccomp:
            network = (network + ", " if self.mode == "bwrap" else "") + "seccomp: AF_UNIX only"
        bounds = f"cgroup v{self.cgroups.version}" if self.cgroups else "rlimits, memory watch"
        return {
            "mode": self.mode,
            "uid": "own" if self.root else "grader's",
            "bounds": bounds,
            "network": network,
            "limits": {
                "memory_mb": self.limits.memory_mb,
                "cpus": self.limits.cpus,
                "processes": self.limits.processes,
                "total_s": self.limits.total,
            },
        }

    @contextlib.contextmanager
    def protect(self, paths: list[Path]):
        """Close ``paths`` to other users (o-rwx) while the block runs, in process mode, so
        that the sandbox's uid cannot read them; their modes are restored after."""
        changed = []
        try:
            if self.mode == "process":
                for path in paths:
                    with contextlib.suppress(OSError):
                        mode = path.stat().st_mode
                        if mode & 0o007:
                            path.chmod(stat.S_IMODE(mode) & ~0o007)
                            changed.append((path, stat.S_IMODE(mode)))
            yield
        finally:
            for path, mode in changed:
                with contextlib.suppress(OSError):
                    path.chmod(mode)

    # -- one submission ------------------------------------------------------------------

    def run(self, cells: list[str], parts: list[dict], trials: dict[str, list[Trial]]) -> Run:
        """Run the cells, then each part's function on its trials, in a fresh sandbox.

        ``parts``: ``[{"name", "function", "outputs": [names], "caller"}]``; ``trials``: per
        part, the inputs (kept here: the sandbox gets copies on disk)."""
        self.slot += 1
        if not self.root:
            return self._run(cells, parts, trials, None)
        try:
            with confine.free_uid(self.slot) as uid:
                return self._run(cells, parts, trials, uid)
        except OSError as exc:
            return Run(error=f"the sandbox could not be prepared: {exc}")

    def _run(self, cells, parts, trials, uid: int | None) -> Run:
        tmp = Path(tempfile.mkdtemp(prefix="job-", dir=self.work))
        cgroup = None
        try:
            tmp.chmod(0o711)
            job = tmp / "job"
            write_job(job, cells, parts, trials, self.limits)
            try:
                cgroup = self.cgroups.make(self.limits) if self.cgroups else None
                cmd, env, fds = self.command(tmp, job, uid, cgroup)
            except (OSError, SandboxUnavailable) as exc:
                return Run(error=f"the sandbox could not be prepared: {exc}")
            result = self.execute(cmd, env, fds, tmp, uid, cgroup)
            for fd in fds:
                os.close(fd)
            result = parse(result.pop("out"), trials, result)
            if cgroup is not None:
                result.bounds = cgroup.settings()
            return self.verify(result, uid)
        finally:
            if cgroup is not None:
                cgroup.remove()
            if uid is not None and self.mode == "process":
                confine.kill_uid(uid)
                confine.sweep(uid)
            shutil.rmtree(tmp, ignore_errors=True)

    def verify(self, result: Run, uid: int | None) -> Run:
        """The grader's failure unless the runner said it was ready, as the expected uid."""
        if result.error:
            return result
        if result.ready is None:
            result.error = "the sandbox did not start: " + result.error_detail
        elif uid is not None and result.ready.get("uid") != uid:
            result.error = f"the sandbox ran as uid {result.ready.get('uid')}, not {uid}"
        return result

    def command(self, tmp: Path, job: Path, uid: int | None, cgroup) -> tuple[list, dict, list]:
        """The command line (the wrapper, then bwrap or the runner), its environment, and
        the file descriptors it inherits."""
        limits, mb = self.limits, 2**20
        rlimits = {
            "AS": limits.memory_mb * mb,
            "FSIZE": limits.file_mb * mb,
            "CORE": 0,
            "CPU": int(limits.total) + 10,
            "NPROC": limits.processes if uid is not None else own_processes() + limits.processes,
        }
        procs = cgroup.procs if cgroup else []
        fds = []
        spec_path = job / "job.json"
        spec = json.loads(spec_path.read_text())
        if self.mode == "bwrap":
            spec["uid"] = uid  # the runner drops to it inside (bwrap runs as root)
            spec_path.write_text(json.dumps(spec))
            seccomp_fd = None
            if self.seccomp:
                with open(tmp / "seccomp.bpf", "wb") as f:
                    confine.seccomp_filter().export_bpf(f)
                seccomp_fd = os.open(tmp / "seccomp.bpf", os.O_RDONLY)
                os.set_inheritable(seccomp_fd, True)
                fds.append(seccomp_fd)
            inner = bwrap_command(job, uid, limits, seccomp_fd)
            spec = confine.Spec(procs, rlimits)
            return spec.argv(inner), None, fds
        scratch = tmp / "scratch"
        (scratch / "tmp").mkdir(parents=True)
        shutil.copy2(RUNNER, job / "runner.py")
        shutil.copytree(ROOT / "bnlib", job / "bnlib", ignore=shutil.ignore_patterns("__pycache__"))
        spec.update(cwd=str(scratch), site=self.runtime.site)
        spec_path.write_text(json.dumps(spec))
        for path in [job, *job.rglob("*")]:  # the uid reads its job, no one else does
            os.chown(path, 0, uid)
            path.chmod(0o750 if path.is_dir() else 0o640)
        for path in [scratch, scratch / "tmp"]:
            os.chown(path, uid, uid)
            path.chmod(0o700)
        env = {**ENV, "HOME": str(scratch), "TMPDIR": str(scratch / "tmp")}
        env |= {"MPLCONFIGDIR": str(scratch / "tmp"), "IPYTHONDIR": str(scratch / "tmp")}
        env["LD_LIBRARY_PATH"] = self.runtime.libdir
        inner = [self.runtime.python, "-s", "-E", str(job / "runner.py"), str(job)]
        spec = confine.Spec(procs, rlimits, uid=uid, seccomp=self.seccomp)
        return spec.argv(inner), env, fds

    def execute(self, cmd, env, fds, tmp: Path, uid, cgroup) -> dict:
        """Start it, read what it sends, watch its memory (without cgroups), end it at the
        time limit, and kill everything it left before anything it sent is read."""
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=tmp,
            env=env or ENV,
            pass_fds=fds,
        )
        cap = self.limits.output_mb * 2**20
        out, err = bytearray(), bytearray()
        state = {"overflow": False}

        def drain(stream, buffer, limit):
            while True:
                chunk = stream.read1(65536)
                if not chunk:
                    return
                if len(buffer) + len(chunk) > limit:
                    state["overflow"] = True
                    buffer += chunk[: max(0, limit - len(buffer))]
                    proc.kill()
                    return
                buffer += chunk

        readers = [
            threading.Thread(target=drain, args=(proc.stdout, out, cap), daemon=True),
            threading.Thread(target=drain, args=(proc.stderr, err, 64 * 1024), daemon=True),
        ]
        for reader in readers:
            reader.start()
        deadline = time.monotonic() + self.limits.total
        timed_out = out_of_memory = False
        while proc.poll() is None:
            if time.monotonic() > deadline:
                timed_out = True
                break
            if cgroup is None and self.memory(proc.pid, uid) > self.limits.memory_mb:
                out_of_memory = True
                break
            time.sleep(WATCH_SECONDS)
        # everything ends before what it sent is read: the cgroup, the uid, the session
        if cgroup is not None:
            cgroup.kill()
        if uid is not None and self.mode == "process":
            confine.kill_uid(uid)
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, 9)
        proc.kill()
        proc.wait()
        for reader in readers:
            reader.join(timeout=10)
        tail = err.decode(errors="replace").strip().splitlines()[-3:]
        return {
            "out": bytes(out),
            "timed_out": timed_out,
            "overflow": state["overflow"],
            "out_of_memory": out_of_memory or bool(cgroup and cgroup.oom_kills()),
            "error_detail": " ".join(tail) or f"exit {proc.returncode}",
        }

    def memory(self, pid: int, uid: int | None) -> float:
        """The submission's memory in MB, all its processes together (their proportional
        set size, so that pages shared by forks count once)."""
        by_uid = uid is not None and self.mode == "process"
        pids = confine.processes_of(uid) if by_uid else process_tree(pid)
        total = 0
        for p in pids:
            with contextlib.suppress(OSError, ValueError):
                for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        return total / 1024


def own_processes() -> int:
    return len(confine.processes_of(os.getuid()))


def process_tree(root: int) -> set[int]:
    """``root`` and its descendants (bubblewrap's PID namespace keeps orphans inside)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                text = Path(f"/proc/{entry}/stat").read_text()
                ppid = int(text.rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo += children.get(pid, [])
    return found


# --------------------------------------------------------------------------------------
# bubblewrap's command line
# --------------------------------------------------------------------------------------


def _system_mounts() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    return args


def _parents(path: str) -> list[str]:
    """Mount points' parent directories, made world-readable (bwrap makes them 0700 as
    root, which the unprivileged user inside could not cross)."""
    args = []
    parts = Path(path).parts[1:-1]
    for k in range(1, len(parts) + 1):
        args += ["--perms", "0755", "--dir", "/" + "/".join(parts[:k])]
    return args


def _python_mounts() -> tuple[list[str], str]:
    """Read-only mounts for the interpreter and its packages; the python to run."""
    prefixes = {os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix)}
    for path in sys.path:  # site-packages outside the prefixes (unusual installs)
        if path and os.path.isdir(path) and "site-packages" in path:
            real = os.path.realpath(path)
            if not any(real.startswith(p + os.sep) for p in prefixes):
                prefixes.add(real)
    args = []
    for prefix in sorted(prefixes):
        if not prefix.startswith(("/usr/", "/etc/")) and prefix != "/usr":
            args += _parents(prefix) + ["--ro-bind", prefix, prefix]
    python = os.path.join(os.path.realpath(sys.prefix), "bin", "python")
    if not os.path.exists(python):
        python = os.path.realpath(sys.executable)
    return args, python


def bwrap_command(job: Path, uid: int | None, limits: Limits, seccomp_fd=None) -> list[str]:
    mounts, python = _python_mounts()
    size = str(limits.tmpfs_mb * 1024 * 1024)
    cmd = [bwrap_path(), "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"]
    cmd += ["--unshare-cgroup-try", "--die-with-parent", "--new-session"]
    # /tmp first: an interpreter or venv that lives under /tmp (a clone there, as CI may
    # make) is then mounted on top of the sandbox's own empty /tmp, and nothing else of
    # the host's /tmp is seen
    cmd += ["--size", size, "--tmpfs", "/tmp"]
    cmd += _system_mounts() + mounts
    cmd += ["--proc", "/proc", "--dev", "/dev", "--size", size, "--tmpfs", "/dev/shm"]
    cmd += _parents("/opt/bnbook/bnlib") + ["--ro-bind", str(ROOT / "bnlib"), "/opt/bnbook/bnlib"]
    cmd += ["--ro-bind", str(RUNNER), "/opt/bnbook/runner.py"]
    cmd += ["--ro-bind", str(job), "/grade"]
    cmd += ["--size", size, "--tmpfs", "/scratch"]
    if uid is not None:
        cmd += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--chmod", "1777", "/scratch"]
        cmd += ["--chmod", "1777", "/tmp", "--chmod", "1777", "/dev/shm"]
    if seccomp_fd is not None:
        cmd += ["--seccomp", str(seccomp_fd)]
    cmd += ["--chdir", "/scratch", "--clearenv"]
    env = {**ENV, "HOME": "/scratch", "PYTHONPATH": "/opt/bnbook"}
    env |= {"MPLCONFIGDIR": "/tmp/matplotlib", "IPYTHONDIR": "/tmp/ipython"}
    for key, value in env.items():
        cmd += ["--setenv", key, value]
    return cmd + ["--", python, "-s", "/opt/bnbook/runner.py", "/grade"]


def write_job(
    job: Path, cells: list[str], parts: list[dict], trials: dict[str, list[Trial]], limits
) -> None:
    """job.json and in/<part>/<k>/a<i>.npy: everything the runner needs, nothing else."""
    spec_parts = []
    for part in parts:
        specs = []
        for k, trial in enumerate(trials[part["name"]]):
            folder = job / "in" / part["name"] / str(k)
            folder.mkdir(parents=True)
            kinds, numbers = [], {}
            for i, arg in enumerate(trial.args):
                if isinstance(arg, np.ndarray):
                    np.save(folder / f"a{i}.npy", arg, allow_pickle=False)
                    kinds.append("array")
                else:
                    kinds.append("number")
                    numbers[str(i)] = arg.item() if isinstance(arg, np.generic) else arg
            specs.append({"kinds": kinds, "numbers": numbers})
        max_bytes = limits.output_mb * 2**20 // (4 * max(1, len(specs)))
        spec_parts.append({**part, "timeout": limits.part, "trials": specs, "max_bytes": max_bytes})
    spec = {"cells": cells, "cell_timeout": limits.cell, "parts": spec_parts, "cwd": "/scratch"}
    job.mkdir(parents=True, exist_ok=True)
    (job / "job.json").write_text(json.dumps(spec))
    for path in [job, *job.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
