"""Inside the sandbox: run a submission's cells, then call its graded functions on the
inputs it is given, and hand the outputs back. Nothing here judges anything.

    python runner.py JOB_DIR        (started by grader/sandbox.py, through grader/confine.py)

``JOB_DIR/job.json`` lists the notebook's code cells, the time limits, the site directories
to add to ``sys.path``, and for each graded part the function's name, its output names, its
*caller* and the kinds of its arguments; ``JOB_DIR/in/<part>/<k>/a<i>.npy`` hold the array
arguments of trial ``k`` (numbers are in ``job.json``). The runner writes *frames* to its
standard output, the only channel back (the student's own prints go to /dev/null):

    b"BNBK" | u32 header length | u32 number of arrays | JSON header | (u64 length | .npy)*

- ``{"type": "ready", "uid": u, "gid": g, "groups": [...], "seccomp": m}`` once set up,
  before any of the student's code runs (no ready frame: the sandbox itself failed);
- ``{"type": "cell", "index": i, "status": "ok" | "error" | "timeout" | "crashed",
  "detail": "..."}`` for each code cell;
- ``{"type": "trial", "part": name, "k": k, "problem": str | None, "raised": str | None,
  "outputs": n, "after": m}`` followed by the ``n`` returned arrays, then the ``m`` array
  arguments as they were after the call (in-place changes);
- ``{"type": "part", "part": name, "status": "done" | "timeout" | "crashed" | "missing"}``;
- ``{"type": "end"}``, then ``{"type": "cpu", "seconds": s}``, the CPU time it all took.

**Callers.** A part's caller (``"module:function"``, bnlib's :func:`bnlib.check.call` by
default, imported before any student code runs) calls the student's function on one trial
and returns a :class:`bnlib.check.Returned` whose outputs are plain NumPy arrays. A part
whose function takes or returns something else names its own caller, which builds the
arguments from the trial's arrays (a torch model from its weights) and turns the result
into arrays (the buffers of a returned module's ``state_dict``): the frames, the sandbox
and the grader's judging stay as they are.

Cells run as plain Python (``exec``, one namespace) unless one of them needs IPython
(magics, ``!`` commands, ``get_ipython``, ``display``): then in an IPython shell.

**Processes.** The first process (the supervisor) never runs student code: it starts the
chain, reaps every process that ends, and leaves once the chain is done. Each cell runs in
a fork of the process that holds the state after the previous cells. When the cell ends,
the child reports, its parent leaves and the child holds the state from then on: two
processes at most, whatever number of cells. When a cell runs too long or its process
dies, it is killed and the parent, whose state is that of before the cell, carries on: a
hanging or crashing cell is skipped. Each graded function is then called in a forked child
of its own, with its own time limit.
"""

from __future__ import annotations

import ctypes
import importlib
import io
import json
import os
import re
import resource
import select
import signal
import site
import struct
import sys
import time

# Captured before any student code runs, so that patching these modules cannot reach the
# runner's own calls.
_fork, _exit, _write, _kill, _waitpid, _pipe, _close, _read = (
    os.fork,
    os._exit,
    os.write,
    os.kill,
    os.waitpid,
    os.pipe,
    os.close,
    os.read,
)
_select, _monotonic, _dumps = select.select, time.monotonic, json.dumps

MAGIC = b"BNBK"
CELL_FRAME_MAX = 3800  # below PIPE_BUF (4096): a cell frame is written atomically
PR_SET_CHILD_SUBREAPER = 36


def frame(header: dict, arrays: list = ()) -> bytes:
    blobs = []
    for array in arrays:
        buffer = io.BytesIO()
        LOADED["save"](buffer, array, allow_pickle=False)
        blobs.append(buffer.getvalue())
    head = _dumps(header).encode()
    parts = [MAGIC, struct.pack("<II", len(head), len(blobs)), head]
    for blob in blobs:
        parts += [struct.pack("<Q", len(blob)), blob]
    return b"".join(parts)


def emit(channel: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[_write(channel, view) :]


def short(text: str, limit: int = 500) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def drop_privileges(uid: int | None) -> None:
    """As root inside bubblewrap (with only CAP_SETUID/CAP_SETGID), become ``uid``."""
    if uid is not None and os.getuid() == 0:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    if uid is not None and (os.getuid() != uid or os.geteuid() != uid):
        raise SystemExit(f"could not become uid {uid}")


def seccomp_mode() -> int:
    """This process's seccomp mode (/proc/self/status: 0 none, 2 a filter), -1 if unknown."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Seccomp:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def fork() -> int:
    """``os.fork``, retried for a few seconds while the process limit is reached (a fork
    bomb's processes, killed, still count until they are reaped)."""
    deadline = _monotonic() + 10
    while True:
        try:
            return _fork()
        except BlockingIOError:
            if _monotonic() > deadline:
                raise
            time.sleep(0.05)


def wait_for(read_fd: int, timeout: float) -> bytes | None:
    """The child's report on ``read_fd`` (b"" when it died without one); None on time-out."""
    deadline = _monotonic() + timeout
    chunks = []
    while True:
        left = deadline - _monotonic()
        if left <= 0:
            return None
        ready, _, _ = _select([read_fd], [], [], left)
        if ready:
            chunk = _read(read_fd, 65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def kill_child(pid: int) -> None:
    for target in (-pid, pid):  # its process group (set by the child), then itself
        try:
            _kill(target, signal.SIGKILL)
        except OSError:
            pass
    try:
        _waitpid(pid, 0)
    except ChildProcessError:
        pass


def run_cells(shell, cells: list[str], timeout: float, channel: int) -> None:
    """Run each cell in a fork of the current state (module docstring). Returns in the
    process that holds the final state; each process before it leaves once its cell's
    child has reported."""
    for index, source in enumerate(cells):
        read_fd, write_fd = _pipe()
        pid = fork()
        if pid == 0:  # the child: run the cell, report, and carry on as the state holder
            _close(read_fd)
            os.setpgid(0, 0)
            status, detail = run_one(shell, source)
            _write(write_fd, _dumps({"status": status, "detail": detail}).encode())
            _close(write_fd)
            continue
        _close(write_fd)
        report = wait_for(read_fd, timeout)
        _close(read_fd)
        try:
            result = json.loads(report.decode()) if report else None
        except ValueError:
            result = None
        if report is None or not isinstance(result, dict):  # too long, or it died
            kill_child(pid)
            status = "timeout" if report is None else "crashed"
            header = {"type": "cell", "index": index, "status": status, "detail": ""}
            emit(channel, frame(header)[:CELL_FRAME_MAX])
            continue  # with the state of before the cell
        status = "ok" if result.get("status") == "ok" else "error"
        detail = short(result.get("detail", ""))
        header = {"type": "cell", "index": index, "status": status, "detail": detail}
        emit(channel, frame(header)[:CELL_FRAME_MAX])
        _exit(0)  # the child holds the state from now on (the supervisor reaps it)


def needs_ipython(cells: list[str]) -> bool:
    """Whether some cell needs IPython (magics, shell escapes, ``get_ipython``, ``display``,
    syntax plain Python lacks); plain ``exec`` starts half a second sooner."""
    import ast

    for source in cells:
        if re.search(r"^\s*[%!]|get_ipython|\bdisplay\(|\?\s*$", source, re.MULTILINE):
            return True
        try:
            ast.parse(source)
        except SyntaxError:
            return True
        except (RecursionError, MemoryError, ValueError):
            pass  # plain Python will say so when the cell runs
    return False


class PlainShell:
    """Runs cells as plain Python in one namespace, each under its own file name (so that
    tracebacks show the student's lines), like IPython's ``run_cell`` without IPython."""

    def __init__(self) -> None:
        import builtins

        self.user_ns = {"__name__": "__main__", "__builtins__": builtins}
        self.count = 0

    def run_cell(self, source: str, **_):
        import linecache

        self.count += 1
        filename = f"<cell {self.count}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        exec(compile(source, filename, "exec"), self.user_ns)
        return None


def run_one(shell, source: str) -> tuple[str, str]:
    try:
        result = shell.run_cell(source, store_history=False, silent=False)
        if result is None:  # PlainShell: no exception is success
            return "ok", ""
    except BaseException as exc:  # noqa: BLE001 (anything at all, even SystemExit)
        return "error", short(f"{type(exc).__name__}: {exc}")
    error = result.error_before_exec or result.error_in_exec
    if error is None:
        return "ok", ""
    return "error", short(f"{type(error).__name__}: {error}")


def resolve(caller: str):
    """``"module:function"``, imported now, before any student code runs."""
    module, _, name = caller.partition(":")
    return getattr(importlib.import_module(module), name)


def run_part(namespace: dict, part: dict, job_dir: str, channel: int) -> None:
    """Call the part's function on each of its trials, in a child with a time limit."""
    fn = namespace.get(part["function"])
    if not callable(fn):
        missing = {"type": "part", "part": part["name"], "status": "missing"}
        emit(channel, frame(missing))
        return
    pid = fork()
    if pid == 0:
        os.setpgid(0, 0)
        try:
            call_trials(fn, part, job_dir, channel)
        finally:
            _exit(0)
    deadline = _monotonic() + part["timeout"]
    status = "done"
    while True:
        done, code = _waitpid(pid, os.WNOHANG)
        if done:
            status = "done" if code == 0 else "crashed"
            break
        if _monotonic() > deadline:
            kill_child(pid)
            status = "timeout"
            break
        time.sleep(0.01)
    emit(channel, frame({"type": "part", "part": part["name"], "status": status}))


def call_trials(fn, part: dict, job_dir: str, channel: int) -> None:
    np, trial_type = LOADED["numpy"], LOADED["Trial"]
    names = tuple(part["outputs"])
    caller = CALLERS[part["caller"]]
    for k, trial in enumerate(part["trials"]):
        folder = os.path.join(job_dir, "in", part["name"], str(k))
        args = []
        for i, kind in enumerate(trial["kinds"]):
            if kind == "array":
                args.append(np.load(os.path.join(folder, f"a{i}.npy"), allow_pickle=False))
            else:
                args.append(trial["numbers"][str(i)])
        back = caller(fn, trial_type("", tuple(args), np.dtype("float64")), names)
        arrays = list(back.outputs or [])
        after = []
        if back.args_after is not None:
            pairs = zip(back.args_after, trial["kinds"], strict=False)
            after = [a for a, kind in pairs if kind == "array"]
        if not all(type(a) is np.ndarray for a in arrays + after):
            arrays, after = [], []
            back.problem = back.problem or "an output is not a NumPy array"
        size = sum(a.nbytes for a in arrays + after)
        if size > part.get("max_bytes", 1 << 24):  # far more than any right answer
            problem = f"returned {size} bytes of arrays: far more than the expected outputs"
            back.problem, arrays, after = problem, [], []
        header = {
            "type": "trial",
            "part": part["name"],
            "k": k,
            "problem": None if back.problem is None else short(back.problem),
            "raised": None if back.raised is None else short(back.raised),
            "outputs": len(arrays),
            "after": len(after),
        }
        try:
            data = frame(header, arrays + after)
        except (ValueError, TypeError) as exc:  # an array that cannot be saved plainly
            header.update(problem=short(f"an output could not be saved: {exc}"), outputs=0)
            header["after"] = 0
            data = frame(header)
        emit(channel, data)


CALLERS: dict = {}  # "module:function" -> the caller, resolved before student code runs
LOADED: dict = {}  # numpy, np.save and bnlib's Trial, taken before student code runs


def supervise(done_fd: int, channel: int) -> None:
    """The supervisor: reap every process as it ends (it is their subreaper, so a finished
    cell's process never lingers as a zombie), until the chain says it is done; then report
    the CPU time of everything reaped, and leave."""
    while True:
        try:
            _waitpid(-1, 0)
        except ChildProcessError:
            break  # nothing left to wait for
        ready, _, _ = _select([done_fd], [], [], 0)
        if ready:
            message = _read(done_fd, 64)
            if not message or message.startswith(b"E"):
                break
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    seconds = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    emit(channel, frame({"type": "cpu", "seconds": round(seconds, 3)}))


def main() -> None:
    job_dir = sys.argv[1]
    with open(os.path.join(job_dir, "job.json")) as f:
        job = json.load(f)
    # the channel: our stdout; the student's prints and tracebacks go nowhere
    channel = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    drop_privileges(job.get("uid"))
    for directory in job.get("site", []):
        site.addsitedir(directory)
    import numpy

    from bnlib.check import Trial

    LOADED.update(numpy=numpy, save=numpy.save, Trial=Trial)
    for part in job["parts"]:
        CALLERS[part["caller"]] = resolve(part["caller"])
    os.chdir(job.get("cwd", job_dir))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)

    if needs_ipython(job["cells"]):
        from IPython.core.interactiveshell import InteractiveShell
        from traitlets.config import Config

        config = Config()
        config.HistoryManager.enabled = False
        config.InteractiveShell.colors = "nocolor"
        shell = InteractiveShell.instance(config=config)
        shell.user_ns["__name__"] = "__main__"
    else:
        shell = PlainShell()
    ready = {"type": "ready", "uid": os.getuid(), "gid": os.getgid()}
    ready |= {"groups": os.getgroups(), "seccomp": seccomp_mode()}
    emit(channel, frame(ready))

    done_read, done_write = _pipe()
    if fork() != 0:
        _close(done_write)
        supervise(done_read, channel)
        _exit(0)
    _close(done_read)  # the chain: cells, then parts, then the end
    run_cells(shell, job["cells"], job["cell_timeout"], channel)
    namespace = dict(shell.user_ns)
    for part in job["parts"]:
        run_part(namespace, part, job_dir, channel)
    emit(channel, frame({"type": "end"}))
    _write(done_write, b"E")
    _exit(0)


if __name__ == "__main__":
    main()
