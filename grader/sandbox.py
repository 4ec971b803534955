"""Run one submission's code in a bubblewrap sandbox and bring back what it returned.

:func:`run` writes the job (the notebook's code cells, the inputs of every trial) to a
fresh scratch directory, starts ``grader/runner.py`` inside ``bwrap`` and reads the frames the
runner writes to its standard output (the only way back: never files, never prints). The
sandbox:

- sees a minimal file system: the system's ``/usr``, ``/etc`` and libraries, the Python and
  the virtual environment (read-only), ``bnlib`` and the runner (read-only, from the
  checkout), the job's inputs (read-only), and small tmpfs for ``/tmp``, ``/dev/shm`` and
  its working directory. Not the checkout, not the other submissions, not the grading
  output, not the home directory;
- has no network, its own PID namespace (``--unshare-pid``) and ``--die-with-parent``: when
  the runner ends, or the grader kills the sandbox at the time limit, every process it
  started ends with it, ``start_new_session`` or not;
- runs as an unprivileged user: as root, the runner drops to a uid of its own, locked for
  the sandbox's lifetime (so that the process limit, ``RLIMIT_NPROC``, bounds a fork bomb
  to its own sandbox, even with other graders running);
- is bounded: total time, memory (``RLIMIT_AS``), file size, number of processes, and the
  bytes it may send back.

What comes back is parsed as data only: JSON headers and ``.npy`` arrays loaded with
``allow_pickle=False``, numbers only, sizes checked before loading.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import math
import os
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bnlib.check import Returned, Trial

ROOT = Path(__file__).resolve().parent.parent
RUNNER = Path(__file__).resolve().parent / "runner.py"
MAGIC = b"BNBK"
SLOT_UID_BASE = 61000  # as root, each sandbox runs as a free uid from here on
UID_COUNT = 64


@dataclass
class Limits:
    """What one submission may use."""

    total: float = 300.0  # seconds for everything
    cell: float = 60.0  # seconds per notebook cell
    part: float = 30.0  # seconds per graded function (all its trials)
    memory_mb: int = 4096  # address space per process
    output_mb: int = 64  # bytes the sandbox may send back
    file_mb: int = 64  # largest file it may write (in its tmpfs)
    tmpfs_mb: int = 256  # size of its /tmp and of its working directory
    processes: int = 256  # processes at once


@dataclass
class Run:
    """What the sandbox gave back for one submission."""

    cells: dict[int, dict] = field(default_factory=dict)  # index -> {"status", "detail"}
    returned: dict[str, list[Returned]] = field(default_factory=dict)  # part -> per trial
    parts: dict[str, str] = field(default_factory=dict)  # part -> done|timeout|crashed|missing
    finished: bool = False  # the runner got to its end
    cpu: float | None = None  # CPU seconds the submission used, when the runner said
    timed_out: bool = False  # killed at the total time limit
    overflow: bool = False  # sent back more than the limit
    error: str = ""  # the sandbox itself failed (bwrap missing, ...)


class SandboxUnavailable(RuntimeError):
    pass


def bwrap_path() -> str:
    path = shutil.which("bwrap")
    if path is None:
        raise SandboxUnavailable(
            "bubblewrap (bwrap) is missing: the grader runs every submission in it. "
            "Install it: sudo apt-get install -y bubblewrap (make grade does this as root)."
        )
    return path


def check_available() -> None:
    """Raise :class:`SandboxUnavailable`, saying what to do, unless bwrap works here."""
    import subprocess

    cmd = [bwrap_path(), "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    cmd += ["--unshare-pid", "--unshare-net", "--die-with-parent", "true"]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        raise SandboxUnavailable(
            "bubblewrap cannot make a sandbox here: " + run.stderr.strip() + ". It needs "
            "user namespaces (sysctl kernel.unprivileged_userns_clone=1) or root."
        )


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


ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "PYTHONDONTWRITEBYTECODE": "1",
    "MPLBACKEND": "Agg",
    "MPLCONFIGDIR": "/tmp/matplotlib",
    "IPYTHONDIR": "/tmp/ipython",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "LANG": "C.UTF-8",
}


def command(job: Path, work_uid: int | None, limits: Limits) -> list[str]:
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
    if work_uid is not None:
        cmd += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--chmod", "1777", "/scratch"]
        cmd += ["--chmod", "1777", "/tmp", "--chmod", "1777", "/dev/shm"]
    cmd += ["--chdir", "/scratch", "--clearenv"]
    env = {**ENV, "HOME": "/scratch", "PYTHONPATH": "/opt/bnbook"}
    for key, value in env.items():
        cmd += ["--setenv", key, value]
    return cmd + ["--", python, "-s", "/opt/bnbook/runner.py", "/grade"]


def _own_processes() -> int:
    uid = os.getuid()
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                count += os.stat(f"/proc/{entry}").st_uid == uid
            except OSError:
                pass
    return count


def _limit(work_uid: int | None, limits: Limits, become: bool = False):
    """preexec_fn: resource limits, inherited by bwrap and everything in the sandbox."""
    # As root, the limit counts the slot's own uid; otherwise it counts all of this user's
    # processes, so it allows the ones already running.
    nproc = limits.processes if work_uid is not None else _own_processes() + limits.processes
    mb = 1024 * 1024

    def apply():
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb * mb,) * 2)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_mb * mb,) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if become:  # no sandbox: its own session, and the slot's user when we are root
            os.setsid()
            if work_uid is not None:
                os.setgroups([])
                os.setresgid(work_uid, work_uid, work_uid)
                os.setresuid(work_uid, work_uid, work_uid)

    return apply


def _world_usable(path: str) -> bool:
    """Every directory above ``path`` can be crossed, and it read, by any user."""
    real = Path(os.path.realpath(path))
    return bool(real.stat().st_mode & 0o005 == 0o005) and all(
        p.stat().st_mode & 0o001 for p in real.parents
    )


def _kill_leftovers(pid: int, work_uid: int | None) -> None:
    """Without a PID namespace: the session, and (as root) every process of the slot's uid."""
    import signal

    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    if work_uid is None:
        return
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == work_uid:
                    os.kill(int(entry), signal.SIGKILL)
            except OSError:
                pass


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
    (job / "job.json").write_text(json.dumps(spec))


def run(
    cells: list[str],
    parts: list[dict],
    trials: dict[str, list[Trial]],
    limits: Limits,
    slot: int = 0,
    isolation: str = "bwrap",
) -> Run:
    """Run the cells, then each part's function on its trials, in a fresh sandbox.

    ``parts``: ``[{"name", "function", "outputs": [names]}]``; ``trials``: per part, the
    inputs (kept here: the sandbox gets copies on disk). ``isolation="process"`` runs
    without bubblewrap (its own session and, as root, its own uid, the same limits): only
    for a machine that is itself thrown away after one submission, like Gradescope's
    containers.
    """
    if os.getuid() != 0:
        return _run(cells, parts, trials, limits, None, isolation)
    with _free_uid(slot) as uid:
        return _run(cells, parts, trials, limits, uid, isolation)


@contextlib.contextmanager
def _free_uid(first: int):
    """A uid of its own for one sandbox (root only), locked for as long as it runs, so that
    concurrent graders never share one (its process limit, or the clean-up by uid)."""
    locks = Path(tempfile.gettempdir()) / "bnbook-sandbox-uids"
    locks.mkdir(mode=0o700, exist_ok=True)
    if locks.is_symlink() or locks.stat().st_uid != 0:
        raise SandboxUnavailable(f"{locks} is not root's own directory")
    for k in range(UID_COUNT):
        uid = SLOT_UID_BASE + (first + k) % UID_COUNT
        fd = os.open(locks / str(uid), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            yield uid
        finally:
            os.close(fd)
        return
    raise SandboxUnavailable(f"no free sandbox uid: {UID_COUNT} sandboxes running at once?")


def _run(cells, parts, trials, limits: Limits, work_uid: int | None, isolation: str) -> Run:
    tag = f"bnbook-grader-{os.getpid()}"  # on every sandbox's command line: whose it is
    with tempfile.TemporaryDirectory(prefix="bnbook-sandbox-") as tmp:
        job = Path(tmp) / "job"
        job.mkdir()
        write_job(job, cells, parts, trials, limits)
        spec = json.loads((job / "job.json").read_text())
        spec["uid"] = work_uid
        env = None
        if isolation == "process":
            scratch = Path(tmp) / "scratch"
            scratch.mkdir()
            if work_uid is not None:
                os.chown(scratch, work_uid, work_uid)
            spec["cwd"], spec["uid"] = str(scratch), None
            python = os.path.join(os.path.realpath(sys.prefix), "bin", "python")
            if work_uid is not None and not _world_usable(python):
                return Run(error=f"{os.path.realpath(python)} is not usable by another user")
            cmd = [python, "-s", str(RUNNER), str(job), tag]
            env = {**ENV, "HOME": str(scratch), "PYTHONPATH": str(ROOT)}
            env["MPLCONFIGDIR"] = env["IPYTHONDIR"] = str(scratch)
        (job / "job.json").write_text(json.dumps(spec))
        for path in [job, *job.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        Path(tmp).chmod(0o755)
        if isolation != "process":
            try:
                cmd = command(job, work_uid, limits) + [tag]
            except SandboxUnavailable as exc:
                return Run(error=str(exc))
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=_limit(work_uid, limits, become=isolation == "process"),
            cwd=tmp,
            env=env,
        )
        cap = limits.output_mb * 1024 * 1024
        out, err = bytearray(), bytearray()
        state = {"overflow": False}

        def drain(stream, buffer, limit):
            while True:
                chunk = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
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
        timed_out = False
        try:
            proc.wait(timeout=limits.total)
        except subprocess.TimeoutExpired:
            timed_out = True
            proc.kill()  # bwrap's init dies with it (--die-with-parent): the whole sandbox
            proc.wait()
        if isolation == "process":
            _kill_leftovers(proc.pid, work_uid)
        for reader in readers:
            reader.join(timeout=10)
        result = parse(bytes(out), trials)
        result.timed_out, result.overflow = timed_out, state["overflow"]
        if not result.finished and not timed_out and not result.cells and not result.parts:
            tail = err.decode(errors="replace").strip().splitlines()[-3:]
            result.error = "the sandbox failed: " + (" ".join(tail) or f"exit {proc.returncode}")
        return result


# --------------------------------------------------------------------------------------
# Reading what came back: data only
# --------------------------------------------------------------------------------------


def load_array(blob: bytes, max_bytes: int) -> np.ndarray:
    """One ``.npy`` of numbers, its size checked against its header before it is loaded."""
    stream = io.BytesIO(blob)
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
    else:
        raise ValueError(f"npy version {version}")
    if dtype.hasobject or dtype.kind not in "biuf" or dtype.fields is not None:
        raise ValueError(f"dtype {dtype}")
    count = math.prod(int(n) for n in shape)  # Python ints: no overflow to a small size
    nbytes = count * dtype.itemsize
    if nbytes > max_bytes or len(blob) - stream.tell() != nbytes:
        raise ValueError("size does not match the header")
    stream.seek(0)
    array = np.load(stream, allow_pickle=False)
    if type(array) is not np.ndarray:
        raise ValueError("not an array")
    return array


def frames(data: bytes):
    """``(header, [blob, ...])`` for each well-formed frame; stops at the first bad one."""
    at = 0
    while at + 12 <= len(data):
        if data[at : at + 4] != MAGIC:
            return
        head_len, count = struct.unpack_from("<II", data, at + 4)
        at += 12
        if head_len > 1 << 16 or count > 64 or at + head_len > len(data):
            return
        try:
            header = json.loads(data[at : at + head_len].decode())
        except (ValueError, UnicodeDecodeError):
            return
        at += head_len
        blobs = []
        for _ in range(count):
            if at + 8 > len(data):
                return
            (size,) = struct.unpack_from("<Q", data, at)
            at += 8
            if at + size > len(data):
                return
            blobs.append(data[at : at + size])
            at += size
        if isinstance(header, dict):
            yield header, blobs


def text(value, limit: int = 500) -> str | None:
    """A string from the sandbox, made safe to show: printable, bounded."""
    if value is None:
        return None
    value = "".join(ch if ch.isprintable() else " " for ch in str(value))
    return value[:limit]


def parse(data: bytes, trials: dict[str, list[Trial]]) -> Run:
    result = Run()
    for name, items in trials.items():
        result.returned[name] = [Returned(problem="no result (it did not finish)") for _ in items]
    for header, blobs in frames(data):
        kind = header.get("type")
        if kind == "cell" and isinstance(header.get("index"), int):
            status = header.get("status")
            if status in ("ok", "error", "timeout", "crashed"):
                result.cells[header["index"]] = {
                    "status": status,
                    "detail": text(header.get("detail")) or "",
                }
        elif kind == "part" and header.get("part") in trials:
            status = header.get("status")
            if status in ("done", "timeout", "crashed", "missing"):
                result.parts[header["part"]] = status
        elif kind == "trial" and header.get("part") in trials:
            items = trials[header["part"]]
            k = header.get("k")
            if not isinstance(k, int) or not 0 <= k < len(items):
                continue
            result.returned[header["part"]][k] = returned(header, blobs, items[k])
        elif kind == "end":
            result.finished = True
        elif kind == "cpu" and isinstance(header.get("seconds"), (int, float)):
            result.cpu = float(header["seconds"])
    return result


def returned(header: dict, blobs: list[bytes], trial: Trial) -> Returned:
    n_out, n_after = header.get("outputs"), header.get("after")
    problem, raised = text(header.get("problem")), text(header.get("raised"))
    if not isinstance(n_out, int) or not isinstance(n_after, int) or n_out + n_after != len(blobs):
        return Returned(problem="the sandbox's answer was malformed")
    limit = 1 << 26
    try:
        arrays = [load_array(blob, limit) for blob in blobs]
    except Exception as exc:  # whatever a malformed .npy raises
        return Returned(problem=f"an output is not a plain array of numbers ({exc})")
    outputs = arrays[:n_out]
    after_arrays = iter(arrays[n_out:])
    args_after = None
    if n_after:
        args_after = [
            next(after_arrays, None) if isinstance(a, np.ndarray) else a for a in trial.args
        ]
    if problem is not None:
        return Returned(problem=problem, raised=raised, args_after=args_after)
    return Returned(outputs=outputs, args_after=args_after)
