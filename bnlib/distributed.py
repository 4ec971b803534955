r"""``SyncBatchNorm2d``: batch norm over a batch split across processes (torch.distributed).

Data-parallel training gives each process (rank) a slice of the batch. Plain batch norm
normalizes each slice with its own statistics; :class:`SyncBatchNorm2d` normalizes with
the statistics of the *whole* global batch, exchanged over the default
``torch.distributed`` process group (gloo on the CPU). The algorithm is that of
:mod:`bnlib.sharded`, step by step; only the exchange is torch's:

- forward: every rank all-gathers each rank's (count, mean, M₂) and merges them in rank
  order (Chan's merge, :func:`bnlib.stats.chan_merge`): exact global statistics, the same
  on every rank, so the running statistics (updated with the global count) stay equal;
- backward: every rank all-gathers each rank's Σdy and Σdy·x̂ and adds them up.

Before any exchange of statistics, the ranks all-gather a few numbers describing their
call (input shape and dtype, and the module's settings): ranks that disagree, or a rank
with bad input, make *every* rank raise the same error naming the ranks, instead of one
rank raising while the others wait forever. A rank that never calls is caught by the
process group's timeout (:func:`run` sets it).

Torch is imported here only: ``import bnlib`` needs NumPy alone.
"""

from __future__ import annotations

import datetime
import multiprocessing.resource_tracker
import os
import pickle
import socket
import tempfile
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.distributed as dist

from bnlib._validate import to_numpy
from bnlib.module import BatchNorm2d
from bnlib.reference import backward_elemt, backward_reduce, normalize, update_running_stats
from bnlib.sharded import AXES, invstd_of, merge_moments
from bnlib.stats import moments

# The description every rank gathers before exchanging statistics
META_FIELDS = (
    "status",  # 0: input fine; else an index into PROBLEMS
    "ndim",
    "channels",
    "dtype",  # 32 or 64 (bits), 0 for anything else
    "num_features",
    "eps",
    "momentum",  # NaN for None
    "affine",
    "track_running_stats",
)
PROBLEMS = {
    1: "its input is not a float32 or float64 array",
    2: "its input is not 4D (N, C, H, W)",
    3: "its input's channel count differs from num_features",
    4: "its dy does not have the shape of its last forward's output",
}
# Settings every rank must share, or the ranks' buffers would drift apart
SHARED = ("channels", "dtype", "num_features", "eps", "momentum", "affine", "track_running_stats")


def _gather(values: np.ndarray) -> np.ndarray:
    """All-gather a float64 vector from every rank: an array (world_size, len(values))."""
    tensor = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float64))
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor)
    return torch.stack(parts).numpy()


def _describe(values: np.ndarray) -> str:
    return ", ".join(f"rank {r}: {v:g}" for r, v in enumerate(values))


class SyncBatchNorm2d(BatchNorm2d):
    r"""Batch norm of a 4D input over the global batch of all ranks, as
    ``torch.nn.SyncBatchNorm`` (whose training mode needs GPU or XPU tensors).

    .. math::

        \mu = \frac{1}{m}\sum_{r}\sum x_r, \qquad
        \sigma^2 = \frac{1}{m}\sum_{r}\sum (x_r - \mu)^2, \qquad m = \sum_r N_r H W

    The interface of :class:`bnlib.BatchNorm2d`. In training mode, with an initialised
    process group of more than one rank, each rank's batch ``x`` (ranks may hold
    different batch sizes N_r) is normalized with μ and σ² of all ranks' values, and the
    running statistics move towards the global mean and unbiased variance σ²·m/(m − 1):
    every rank holds the same buffers. In eval mode, or with one process, it is
    :class:`bnlib.BatchNorm2d` (no communication), as torch's.

    ``backward(dy)`` returns this rank's ∂L/∂x, for the loss L = the sum over ranks of
    each rank's loss (each rank passes its own dy). ``grad_weight`` = Σdy·x̂ and
    ``grad_bias`` = Σdy are **this rank's share**, summed over this rank's values only,
    as torch's SyncBatchNorm leaves them: the shares of all ranks add up to the gradient
    of L, and DistributedDataParallel's all-reduce of parameter gradients (a sum, divided
    by the world size) combines them like any other parameter's.

    Every rank must make the same calls in the same order (forward, backward), with
    inputs of the same channel count and dtype; if they disagree, every rank raises.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
    ) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        # what backward() needs after a synchronized forward: x, the global μ and
        # 1/√(σ² + ε), and the global count; None after a plain (BatchNorm2d) forward
        self._sync_cache: tuple | None = None

    def __repr__(self) -> str:
        return "Sync" + super().__repr__()

    def _sync(self) -> bool:
        """Exchange statistics: training, with a process group of more than one rank."""
        return self.training and dist.is_available() and dist.is_initialized() and (
            dist.get_world_size() > 1
        )  # fmt: skip

    def _check_ranks(self, status: int, ndim: int, channels: int, dtype_bits: int) -> None:
        """All-gather each rank's description; raise the same error on every rank if a
        rank reported a problem or the ranks disagree."""
        momentum = np.nan if self.momentum is None else self.momentum
        mine = [status, ndim, channels, dtype_bits, self.num_features, self.eps, momentum,
                self.affine, self.track_running_stats]  # fmt: skip
        table = dict(zip(META_FIELDS, _gather(np.array(mine, np.float64)).T, strict=True))
        bad = {int(s) for s in table["status"] if s}
        if bad:
            lines = [f"rank {r} ({PROBLEMS[int(s)]})" for r, s in enumerate(table["status"]) if s]
            raise ValueError(
                "SyncBatchNorm2d: " + "; ".join(lines) + f". Input shapes: ndim "
                f"{_describe(table['ndim'])}; channels {_describe(table['channels'])} "
                f"(num_features {self.num_features}); every rank raises this error"
            )
        for field in SHARED:
            column = table[field]
            same = np.all(np.isnan(column)) or np.all(column == column[0])
            if not same:
                what = {"dtype": "dtype (float bits)", "channels": "number of channels"}
                raise ValueError(
                    f"SyncBatchNorm2d: the ranks disagree on the {what.get(field, field)}: "
                    f"{_describe(column)}. Every rank must call it with inputs of the same "
                    "channels and dtype, and with the same settings"
                )

    # -- forward and backward ------------------------------------------------------------

    def forward(self, x) -> np.ndarray:
        """Normalize ``x`` (N, C, H, W) with the global batch's statistics (training)."""
        self._sync_cache = None
        if not self._sync():
            return super().forward(x)
        x = to_numpy(x)
        dtype_bits = {np.dtype(np.float32): 32, np.dtype(np.float64): 64}.get(x.dtype, 0)
        status = 1 if not dtype_bits else 2 if x.ndim != 4 else 0
        if status == 0 and x.shape[1] != self.num_features:
            status = 3
        channels = x.shape[1] if x.ndim >= 2 else -1
        self._check_ranks(status, x.ndim, channels, dtype_bits)
        x = np.ascontiguousarray(x)

        c = self.num_features
        count, mean, m2 = moments(x, axis=AXES, dtype=np.float64)
        gathered = _gather(np.concatenate([[count], mean, m2]))  # (world_size, 1 + 2C)
        per_rank = [(int(row[0]), row[1 : 1 + c], row[1 + c :]) for row in gathered]
        count, mean, m2 = merge_moments(per_rank)
        if count <= 1:
            raise ValueError(
                "Expected more than 1 value per channel when training, got "
                f"{count} over all ranks (values per channel on each rank: "
                f"{_describe(gathered[:, 0])}); use a larger global batch, or call .eval()"
            )
        invstd = invstd_of(count, m2, self.eps)
        y = normalize(x, mean, invstd, self.weight, self.bias)

        if self.track_running_stats:
            self.num_batches_tracked += 1
            p = self.momentum
            if p is None:  # cumulative moving average
                p = 1.0 / self.num_batches_tracked
            # the unbiased variance σ²·m/(m − 1) with the global count m
            update_running_stats(self.running_mean, self.running_var, mean, m2 / count, count, p)
        self._sync_cache = (x, mean, invstd, count)
        return y

    def backward(self, dy) -> np.ndarray:
        """This rank's ∂L/∂x; ``grad_weight``, ``grad_bias``: this rank's share."""
        cache = self._sync_cache
        if cache is None:
            return super().backward(dy)
        x, mean, invstd, count = cache
        dy = to_numpy(dy)
        ok = dy.shape == x.shape and dy.dtype.kind == "f"
        sums = backward_reduce(dy, x, mean, invstd) if ok else (mean * 0, mean * 0)
        gathered = _gather(np.concatenate([[0.0 if ok else 4.0], *sums]))
        bad = [r for r, row in enumerate(gathered) if row[0]]
        if bad:
            raise ValueError(
                f"SyncBatchNorm2d.backward: rank(s) {bad}: {PROBLEMS[4]} "
                f"(here dy has shape {dy.shape}, dtype {dy.dtype}; expected {x.shape}, "
                "floating point); every rank raises this error"
            )
        c = self.num_features
        sum_dy, sum_dy_xhat = gathered[:, 1 : 1 + c].sum(0), gathered[:, 1 + c :].sum(0)
        dx = backward_elemt(dy, x, mean, invstd, self.weight, sum_dy, sum_dy_xhat, count)
        if self.affine:  # this rank's share: Σ over this rank's values only
            self.grad_weight = sums[1].astype(self.weight.dtype)
            self.grad_bias = sums[0].astype(self.bias.dtype)
        return dx


# --------------------------------------------------------------------------------------
# Real processes on this machine: torch.multiprocessing workers, gloo on 127.0.0.1
# --------------------------------------------------------------------------------------


# Seconds the processes of run() may take to start and join the group
RENDEZVOUS_TIMEOUT = 120.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (the OS picks it: bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world_size, port, fn, args, folder, collective_timeout) -> None:
    """One process: join the gloo group, run ``fn(rank, world_size, *args)``, and pickle
    its result to ``folder/<rank>.pkl``."""
    torch.set_num_threads(1)
    # Joining waits for every process to start (each imports torch: seconds apart on a
    # busy machine), so the rendezvous gets a generous timeout; once all have joined,
    # collectives get the short one.
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=max(RENDEZVOUS_TIMEOUT, collective_timeout)),
    )
    try:
        dist.barrier()
        dist.distributed_c10d._set_pg_timeout(datetime.timedelta(seconds=collective_timeout))
        result = fn(rank, world_size, *args)
    finally:
        dist.destroy_process_group()
    with open(os.path.join(folder, f"{rank}.pkl"), "wb") as f:
        pickle.dump(result, f)


def run(
    fn: Callable,
    world_size: int,
    *args,
    timeout: float = 60.0,
    collective_timeout: float = 10.0,
) -> list:
    """Run ``fn(rank, world_size, *args)`` on ``world_size`` fresh processes; their results.

    ``fn`` must be importable (defined at the top level of a module, as the workers
    below), and its arguments and result picklable. The processes form a gloo group on
    127.0.0.1 at a free port. Once all have joined, a collective that waits longer than
    ``collective_timeout`` seconds fails; if the whole run takes longer than ``timeout``
    seconds, it is stopped with a ``TimeoutError``. A worker's exception is raised here
    (with its traceback). Every process is ended before this returns, whatever happens.
    """
    if world_size < 1:
        raise ValueError(f"world_size must be at least 1, got {world_size}")
    tracker = multiprocessing.resource_tracker._resource_tracker
    tracker_was_running = tracker._fd is not None
    try:
        return _run(fn, world_size, args, timeout, collective_timeout)
    finally:
        # Starting processes by spawn starts multiprocessing's resource tracker, a helper
        # process that would outlive this call; stop it (and reap it) if we started it.
        if not tracker_was_running:
            tracker._stop()


def _run(fn, world_size, args, timeout, collective_timeout) -> list:
    with tempfile.TemporaryDirectory(prefix="bnlib-run-") as folder:
        processes = torch.multiprocessing.start_processes(
            _worker,
            args=(world_size, free_port(), fn, args, folder, collective_timeout),
            nprocs=world_size,
            join=False,
            start_method="spawn",
        )
        deadline = time.monotonic() + timeout
        try:
            while not processes.join(timeout=0.1):  # raises if a worker raised
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{world_size} processes running {fn.__name__} did not finish "
                        f"within {timeout:g} s; they were stopped"
                    )
        finally:
            for p in processes.processes:
                if p.is_alive():
                    p.terminate()
            for p in processes.processes:
                p.join(5)
                if p.is_alive():
                    p.kill()
                    p.join()
        results = []
        for rank in range(world_size):
            with open(os.path.join(folder, f"{rank}.pkl"), "rb") as f:
                results.append(pickle.load(f))
    return results
