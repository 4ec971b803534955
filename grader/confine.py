"""The bounds on one submission, and the means to end it whole.

    python grader/confine.py SPEC -- COMMAND...      (what grader/sandbox.py starts)

The grader starts every submission through this small program, which applies the bounds to
its own process and then becomes COMMAND (bubblewrap, or the runner itself), so that
everything the submission ever starts inherits them:

1. it joins the submission's **cgroup** (:class:`Cgroup`): memory (all its processes
   together, page cache and tmpfs included), CPU (``Limits.cpus`` cores' worth), processes;
2. sets its **rlimits**: address space per process, processes per uid, file size, CPU time,
   no core dumps; and starts a session of its own;
3. becomes the submission's **uid** (:func:`free_uid`: one of its own, that owns nothing
   else), when the grader is root and runs it without bubblewrap (bubblewrap's runner drops
   to it inside);
4. loads the **seccomp** filter (:func:`seccomp_filter`, from libseccomp's Python bindings,
   or PyPI's ``pyseccomp`` which has their API): no socket but AF_UNIX (no network, the
   loopback included), no io_uring (sockets by another door), no System V IPC (which
   outlives its processes); with bubblewrap, the same filter is handed to it
   (``--seccomp``).

Cgroups: version 2 where the grader may make a subtree with the memory, cpu and pids
controllers (root, or a user with a delegated subtree: ``systemd-run --user --scope -p
Delegate=yes``); else version 1's memory, cpu and pids hierarchies where they are writable
(root on a machine without the unified hierarchy); else none, and the sandbox falls back
to what exists (``grader/sandbox.py``): one submission at a time, rlimits, and a watch on
the submission's total memory.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import pwd
import resource
import shutil
import signal
import socket
import stat
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

SANDBOX_UID_BASE = 61000  # as root, each submission runs as a free uid from here on
SANDBOX_UID_COUNT = 64
CONTROLLERS = ("memory", "cpu", "pids")
TEMP_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/dev/mqueue")


@dataclass
class Limits:
    """What one submission may use (README, "For instructors")."""

    total: float = 300.0  # seconds for everything (wall clock)
    cell: float = 60.0  # seconds per notebook cell
    part: float = 30.0  # seconds per graded function (all its trials)
    memory_mb: int = 4096  # all its processes together (and each one's address space)
    cpus: float = 1.0  # CPU: this many cores' worth, whatever number of processes it starts
    output_mb: int = 64  # bytes the sandbox may send back
    file_mb: int = 64  # largest file it may write
    tmpfs_mb: int = 256  # size of each of its temporary file systems (bubblewrap)
    processes: int = 128  # processes and threads at once


# --------------------------------------------------------------------------------------
# Cgroups: one per submission, all its processes bounded together
# --------------------------------------------------------------------------------------


def _mounts() -> list[tuple[str, str, str, str]]:
    """(root, mount point, fstype, super options) of each cgroup mount of this process."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, tail = left.split(), right.split()
            if len(fields) >= 5 and len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2"):
                found.append((fields[3], fields[4], tail[0], tail[2]))
    return found


def _own_paths() -> dict[str, str]:
    """``{controller or "": path}`` from /proc/self/cgroup ("" is version 2's)."""
    paths = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                paths[name] = path
    return paths


def _inside(root: str, mount: str, path: str) -> Path:
    """The directory of cgroup ``path`` under a mount that shows the hierarchy from ``root``."""
    relative = os.path.relpath(path, root) if root != "/" else path.lstrip("/")
    return Path(mount) / ("" if relative == "." else relative)


def _write(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


class Cgroup:
    """One submission's cgroup: a directory per hierarchy (one with version 2; memory, cpu
    and pids with version 1), made with the limits written, removed with :meth:`remove`."""

    def __init__(self, version: int, dirs: dict[str, Path]) -> None:
        self.version, self.dirs = version, dirs

    @property
    def procs(self) -> list[str]:
        """The files a process writes its pid to, to join."""
        return sorted({str(d / "cgroup.procs") for d in self.dirs.values()})

    def limit(self, limits: Limits) -> None:
        memory = limits.memory_mb * 2**20
        if self.version == 2:
            d = self.dirs[""]
            _write(d / "memory.max", str(memory))
            if (d / "memory.swap.max").exists():
                _write(d / "memory.swap.max", "0")
            _write(d / "pids.max", str(limits.processes))
            _write(d / "cpu.max", f"{int(limits.cpus * 100_000)} 100000")
        else:
            _write(self.dirs["memory"] / "memory.limit_in_bytes", str(memory))
            swap = self.dirs["memory"] / "memory.memsw.limit_in_bytes"
            if swap.exists():
                _write(swap, str(memory))
            _write(self.dirs["pids"] / "pids.max", str(limits.processes))
            period = int((self.dirs["cpu"] / "cpu.cfs_period_us").read_text())
            _write(self.dirs["cpu"] / "cpu.cfs_quota_us", str(int(limits.cpus * period)))

    def settings(self) -> dict:
        """The bounds as the kernel holds them (read back, for the report and the tests)."""
        if self.version == 2:
            d = self.dirs[""]
            quota, period = (d / "cpu.max").read_text().split()
            memory, pids = (d / "memory.max").read_text(), (d / "pids.max").read_text()
        else:
            memory = (self.dirs["memory"] / "memory.limit_in_bytes").read_text()
            pids = (self.dirs["pids"] / "pids.max").read_text()
            quota = (self.dirs["cpu"] / "cpu.cfs_quota_us").read_text()
            period = (self.dirs["cpu"] / "cpu.cfs_period_us").read_text()
        return {
            "cgroup": f"v{self.version}",
            "memory_mb": int(memory) // 2**20,
            "processes": int(pids),
            "cpus": round(int(quota) / int(period), 3),
        }

    def pids(self) -> set[int]:
        found = set()
        for procs in self.procs:
            with contextlib.suppress(OSError):
                found |= {int(p) for p in Path(procs).read_text().split()}
        return found

    def peak_memory_mb(self) -> float | None:
        name = "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"
        path = self.dirs["" if self.version == 2 else "memory"] / name
        with contextlib.suppress(OSError, ValueError):
            return round(int(path.read_text()) / 2**20, 1)
        return None

    def oom_kills(self) -> int:
        """How many of its processes the kernel killed at the memory limit."""
        d = self.dirs["" if self.version == 2 else "memory"]
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        with contextlib.suppress(OSError, ValueError):
            for line in (d / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        return 0

    def kill(self) -> None:
        """Every process in it, until none is left (a fork bomb's children included)."""
        if self.version == 2:
            with contextlib.suppress(OSError):
                _write(self.dirs[""] / "cgroup.kill", "1")
        kill_until_none(self.pids)

    def remove(self) -> None:
        self.kill()
        for d in self.dirs.values():
            for _ in range(200):  # until the last killed process is reaped
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)


class CgroupParent:
    """Where this grading run makes its submissions' cgroups: a directory per hierarchy,
    made for the run (``bnbook-grader-<pid>``) and removed at its end."""

    def __init__(self, version: int, dirs: dict[str, Path]) -> None:
        self.version, self.dirs, self.count = version, dirs, 0

    def make(self, limits: Limits) -> Cgroup:
        self.count += 1
        dirs = {name: d / f"submission-{self.count}" for name, d in self.dirs.items()}
        for d in dirs.values():
            d.mkdir()
        cgroup = Cgroup(self.version, dirs)
        try:
            cgroup.limit(limits)
        except OSError:
            cgroup.remove()
            raise
        return cgroup

    def remove(self) -> None:
        for d in self.dirs.values():
            for child in d.iterdir() if d.exists() else []:
                if child.is_dir():
                    Cgroup(self.version, {"": child}).remove()
            with contextlib.suppress(OSError):
                d.rmdir()


def cgroup_parent(limits: Limits) -> CgroupParent | None:
    """A place for this run's cgroups, version 2 first, then version 1; None where neither
    can be made with the memory, cpu and pids controllers (the module's docstring)."""
    name = f"bnbook-grader-{os.getpid()}"
    mounts, own = _mounts(), _own_paths()
    for root, mount, fstype, _ in mounts:
        if fstype == "cgroup2" and "" in own:
            with contextlib.suppress(OSError):
                parent = _v2_parent(_inside(root, mount, own[""]), name)
                if parent is not None and _works(parent, limits):
                    return parent
    dirs = {}
    for controller in CONTROLLERS:
        for root, mount, fstype, options in mounts:
            if fstype == "cgroup" and controller in options.split(",") and controller in own:
                dirs[controller] = _inside(root, mount, own[controller]) / name
    if set(dirs) == set(CONTROLLERS):
        try:
            for d in dirs.values():
                d.mkdir(exist_ok=True)
            parent = CgroupParent(1, dirs)
            if _works(parent, limits):
                return parent
        except OSError:
            pass
        CgroupParent(1, dirs).remove()
    return None


def _v2_parent(own: Path, name: str) -> CgroupParent | None:
    """Version 2: a child of our own cgroup with the controllers enabled for its children.
    A cgroup with processes cannot pass controllers down (the "no internal processes" rule),
    so the processes of our own cgroup first move to a leaf of it (``bnbook-grader``)."""
    wanted = set(CONTROLLERS)
    if not wanted <= set((own / "cgroup.controllers").read_text().split()):
        return None
    enable = " ".join(f"+{c}" for c in CONTROLLERS)
    try:
        _write(own / "cgroup.subtree_control", enable)
    except OSError as exc:
        if exc.errno != errno.EBUSY:
            return None
        leaf = own / "bnbook-grader"
        leaf.mkdir(exist_ok=True)
        for pid in (own / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):
                _write(leaf / "cgroup.procs", pid)
        _write(own / "cgroup.subtree_control", enable)
    run = own / name
    run.mkdir(exist_ok=True)
    _write(run / "cgroup.subtree_control", enable)
    return CgroupParent(2, {"": run})


def _works(parent: CgroupParent, limits: Limits) -> bool:
    """Whether a submission's cgroup can be made and limited there (then removed)."""
    try:
        parent.make(limits).remove()
        return True
    except OSError:
        parent.remove()
        return False


# --------------------------------------------------------------------------------------
# A uid of its own (as root), and what that uid leaves behind
# --------------------------------------------------------------------------------------


def processes_of(uid: int) -> list[int]:
    """The live processes of ``uid`` (zombies, already dead, left out)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if os.stat(f"/proc/{entry}").st_uid != uid:
                    continue
                with open(f"/proc/{entry}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                        found.append(int(entry))
    return found


def kill_uid(uid: int) -> None:
    """Every process of ``uid``, until none is left (daemons and new sessions included)."""
    kill_until_none(lambda: processes_of(uid))


def kill_until_none(alive) -> None:
    """SIGKILL every pid ``alive()`` lists, again until it lists none: a fork bomb's
    children, bounded by the process limit, die before they can fork again."""
    for _ in range(1000):
        pids = alive()
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.005)


def sweep(uid: int) -> None:
    """Remove everything ``uid`` owns in the machine's shared temporary directories (and in
    the world-writable folders inside them): nothing of one submission is there for the
    next. Run when no process of ``uid`` is left."""

    def clear(folder: str, depth: int) -> None:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            return
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if info.st_uid == uid:
                with contextlib.suppress(OSError):
                    if stat.S_ISDIR(info.st_mode):
                        shutil.rmtree(entry.path)
                    else:
                        os.unlink(entry.path)
            elif stat.S_ISDIR(info.st_mode) and info.st_mode & 0o002 and depth < 8:
                clear(entry.path, depth + 1)

    for folder in TEMP_DIRS:
        if os.path.isdir(folder) and not os.path.islink(folder):
            clear(folder, 0)


@contextlib.contextmanager
def free_uid(first: int = 0):
    """A uid of its own for one submission (root only): no user of the machine has it, no
    process runs as it, and it is locked for as long as the submission runs (so that two
    graders never share one). Whatever it left from before is ended and swept first."""
    locks = Path(tempfile.gettempdir()) / "bnbook-sandbox-uids"
    locks.mkdir(mode=0o700, exist_ok=True)
    if locks.is_symlink() or locks.stat().st_uid != 0 or locks.stat().st_mode & 0o077:
        raise OSError(f"{locks} is not root's own private directory")
    for k in range(SANDBOX_UID_COUNT):
        uid = SANDBOX_UID_BASE + (first + k) % SANDBOX_UID_COUNT
        with contextlib.suppress(KeyError):
            pwd.getpwuid(uid)
            continue  # a user of the machine: never
        fd = os.open(locks / str(uid), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            kill_uid(uid)
            sweep(uid)
            yield uid
        finally:
            os.close(fd)
        return
    raise OSError(f"no free sandbox uid: {SANDBOX_UID_COUNT} submissions running at once?")


# --------------------------------------------------------------------------------------
# Seccomp: no network
# --------------------------------------------------------------------------------------


def seccomp_module():
    """libseccomp's Python bindings: Debian's ``python3-seccomp`` where importable, else
    PyPI's ``pyseccomp`` (the same API, over the system's libseccomp.so.2); None if
    neither loads."""
    for name in ("seccomp", "pyseccomp"):
        with contextlib.suppress(ImportError, OSError, AttributeError):
            return __import__(name)
    return None


def seccomp_filter():
    """Everything allowed but sockets other than AF_UNIX (EACCES), io_uring (ENOSYS) and
    System V IPC (EPERM). Other architectures' system calls (32-bit ones) kill the process
    (libseccomp's default for an architecture the filter does not list)."""
    seccomp = seccomp_module()
    if seccomp is None:
        raise OSError("no seccomp bindings: pip install pyseccomp (requirements.txt pins it)")
    rules = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    rules.add_rule(
        seccomp.ERRNO(errno.EACCES), "socket", seccomp.Arg(0, seccomp.NE, socket.AF_UNIX)
    )
    for name in ("io_uring_setup", "io_uring_enter", "io_uring_register"):
        rules.add_rule(seccomp.ERRNO(errno.ENOSYS), name)
    for name in ("shmget", "msgget", "semget"):
        rules.add_rule(seccomp.ERRNO(errno.EPERM), name)
    return rules


def seccomp_available() -> bool:
    """Whether this kernel has seccomp filters and the bindings load."""
    try:
        with open("/proc/self/status") as f:
            has_field = any(line.startswith("Seccomp:") for line in f)
        return has_field and seccomp_filter() is not None
    except OSError:
        return False


# --------------------------------------------------------------------------------------
# The wrapper: apply the bounds to this process, then become the command
# --------------------------------------------------------------------------------------


@dataclass
class Spec:
    """What the wrapper applies (``python -m grader.confine SPEC -- COMMAND``)."""

    procs: list[str]  # cgroup.procs files to join
    rlimits: dict[str, int]  # RLIMIT_<name>: value (soft = hard)
    uid: int | None = None  # become this uid (process mode, as root)
    seccomp: bool = False  # load the filter here (process mode)
    session: bool = True  # a session of its own

    def argv(self, command: list[str]) -> list[str]:
        """This file run as a script (it imports nothing of the grader), then COMMAND."""
        return [sys.executable, "-s", __file__, json.dumps(asdict(self)), "--", *command]


def apply(spec: Spec) -> None:
    for procs in spec.procs:
        _write(Path(procs), str(os.getpid()))
    for name, value in spec.rlimits.items():
        resource.setrlimit(getattr(resource, f"RLIMIT_{name}"), (value, value))
    if spec.session and os.getsid(0) != os.getpid():
        os.setsid()
    rules = seccomp_filter() if spec.seccomp else None  # built while it can read the library
    if spec.uid is not None:
        os.setgroups([])
        os.setresgid(spec.uid, spec.uid, spec.uid)
        os.setresuid(spec.uid, spec.uid, spec.uid)
        if os.getuid() != spec.uid or os.geteuid() != spec.uid:
            raise OSError(f"could not become uid {spec.uid}")
    if rules is not None:
        rules.load()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python grader/confine.py SPEC -- COMMAND...", file=sys.stderr)
        return 2
    try:
        apply(Spec(**json.loads(argv[0])))
        os.execv(argv[2], argv[2:])
    except Exception as exc:  # the grader reads this: an error of the environment
        print(f"confine: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 126


if __name__ == "__main__":
    sys.exit(main())
