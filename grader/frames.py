"""What comes back from the sandbox, read as data only: the runner's frames
(``grader/runner.py`` writes them), JSON headers and ``.npy`` arrays loaded with
``allow_pickle=False``, numbers only, sizes checked before loading; text made printable and
bounded. A malformed frame ends the reading; a malformed array is that call's problem."""

from __future__ import annotations

import io
import json
import math
import struct
from dataclasses import dataclass, field

import numpy as np

from bnlib.check import Returned, Trial
from grader.runner import MAGIC


@dataclass
class Run:
    """What the sandbox gave back for one submission."""

    cells: dict[int, dict] = field(default_factory=dict)  # index -> {"status", "detail"}
    returned: dict[str, list[Returned]] = field(default_factory=dict)  # part -> per trial
    parts: dict[str, str] = field(default_factory=dict)  # part -> done|timeout|crashed|missing
    ready: dict | None = None  # the runner's ready frame: who it ran as, its seccomp mode
    bounds: dict = field(default_factory=dict)  # the cgroup's limits, as the kernel held them
    finished: bool = False  # the runner got to its end
    cpu: float | None = None  # CPU seconds the submission used, when the runner said
    timed_out: bool = False  # killed at the total time limit
    overflow: bool = False  # sent back more than the limit
    out_of_memory: bool = False  # its processes together went past the memory limit
    error: str = ""  # the sandbox itself failed: the grader's failure, not the student's
    error_detail: str = ""  # the end of what the sandbox wrote to its standard error


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


def parse(data: bytes, trials: dict[str, list[Trial]], state: dict | None = None) -> Run:
    """The frames the runner sent, as a :class:`Run` (``state``: how the run ended)."""
    state = state or {}
    result = Run(
        timed_out=state.get("timed_out", False),
        overflow=state.get("overflow", False),
        out_of_memory=state.get("out_of_memory", False),
    )
    result.error_detail = state.get("error_detail", "")
    for name, items in trials.items():
        result.returned[name] = [Returned(problem="no result (it did not finish)") for _ in items]
    for header, blobs in frames(data):
        kind = header.get("type")
        if kind == "ready" and result.ready is None:
            result.ready = {k: header.get(k) for k in ("uid", "gid", "groups", "seccomp")}
        elif kind == "cell" and isinstance(header.get("index"), int):
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
