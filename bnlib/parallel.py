r"""How the kernels of :mod:`bnlib.kernels` share an input among threads, tile by tile.

A tile is a block of batch rows and consecutive channels of the input viewed as
``(N, C, L)``. How the tiles go round the threads (:func:`split`) depends only on the
input's shape and dtype and the thread count, never on timing, so a thread count gives the
same numbers on every run. Each
thread takes consecutive channels, whole, when the channels go round the threads evenly
(within ``MAX_IMBALANCE``): a tile then holds every value of its channels and is finished
in one sweep. Otherwise (fewer channels than threads, say) the batch rows are cut too: each
tile computes partial statistics, those of one channel are merged in float64 in a fixed
order (Chan's merge, :func:`bnlib.stats.chan_merge`, for mean and M₂; plain sums for the
backward), and a second sweep over the same tiles writes the output.

The thread count is ``BNLIB_NUM_THREADS`` if set, else one per core this process may use
(``os.sched_getaffinity``), and an input gets at most one thread per ``BYTES_PER_THREAD``.
The threads are a pool kept for the life of the process; the calling thread works too.
"""

from __future__ import annotations

import concurrent.futures
import functools
import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

#: The environment variable that sets the number of threads (default: one per core).
THREADS_VARIABLE = "BNLIB_NUM_THREADS"

# The cut-offs, chosen from costs measured on this project's 2-core machine (AMD EPYC
# Zen 4: 1 MiB of L2 per core, 32 MiB of L3) and fixed here; never measured at run time.
#
# A tile's input, at most: one thread's tile of 2 MiB keeps its input, output and dy in
# the L3 cache while the passes run (smaller tiles were slower on one thread here: each
# tile costs a dozen NumPy calls of a microsecond or two, and the per-row sums of its
# strided view; 0.5 MiB tiles took 1.3× the time of 2 MiB ones, 1 MiB tiles 1.1×).
TILE_BYTES = 2 << 20
# With more threads, the tiles of all of them at once (three arrays each in the backward)
# should fit in a cache of CACHE_BYTES (32 MiB: this machine's L3; many-core parts have
# about 2 MiB of L3 or more per core); never below MIN_TILE_BYTES, where Python's share
# of each tile (it holds the GIL between NumPy calls) starts to crowd 16 threads.
CACHE_BYTES = 32 << 20
MIN_TILE_BYTES = 1 << 20
# The least input worth a thread: handing work to another thread costs 30-50 µs here
# (a pool's round trip), what one core needs for about 0.2 MiB of the forward; with
# 1 MiB each, sharing pays even on a busy machine, and 8×16×32×32 (0.5 MiB) runs on one.
BYTES_PER_THREAD = 1 << 20
# How unevenly whole channels may go round the threads (the busiest thread's channels
# over the mean) before the batch rows are cut too, which costs a second sweep over the
# input: 64 channels on 3 threads (1.03) stay whole, 3 channels on 2 threads (1.33) do not.
MAX_IMBALANCE = 1.25
# The pool and its size: one at a time, replaced by a larger one when more threads are asked
_pools: list[tuple[int, ThreadPoolExecutor]] = []
if hasattr(os, "register_at_fork"):  # a forked child has none of the parent's threads
    os.register_at_fork(after_in_child=_pools.clear)


# --------------------------------------------------------------------------------------
# Threads and tiles
# --------------------------------------------------------------------------------------


def num_threads() -> int:
    """The threads a large input is shared among: ``BNLIB_NUM_THREADS`` if set, else one
    per core this process may run on (``os.sched_getaffinity``, as NumPy's and PyTorch's
    thread pools count them)."""
    value = os.environ.get(THREADS_VARIABLE, "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(
                f"{THREADS_VARIABLE} must be a positive whole number of threads, got "
                f"{value!r}; unset it to use one thread per core"
            )
        return int(value)
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


#: One tile: (its index among the row blocks, its batch rows, its channels)
Tile = tuple[int, slice, slice]


def tile_bytes(threads: int) -> int:
    """The most input bytes in one tile when ``threads`` threads share an input."""
    return max(MIN_TILE_BYTES, min(TILE_BYTES, CACHE_BYTES // (3 * threads)))


@functools.lru_cache(maxsize=256)
def split(
    n: int, c: int, length: int, itemsize: int, threads: int
) -> tuple[int, tuple[tuple[Tile, ...], ...]]:
    """How ``threads`` share an input of shape ``(n, c, length)``: ``(blocks, runs)``.

    ``runs`` holds one run of tiles per thread used (the first for the calling thread),
    together covering every value once. ``blocks`` is the number of blocks the batch rows
    are cut into: 1 when every tile holds whole channels.
    """
    channel_bytes = n * length * itemsize
    threads = max(1, min(threads, c * channel_bytes // BYTES_PER_THREAD))
    tile = tile_bytes(threads)
    if threads == 1:
        return 1, (_cut(0, slice(0, n), 0, c, channel_bytes, tile),)
    if c >= threads and math.ceil(c / threads) * threads <= MAX_IMBALANCE * c:
        # whole channels, shared evenly enough
        bounds = [c * t // threads for t in range(threads + 1)]
        runs = (
            _cut(0, slice(0, n), bounds[t], bounds[t + 1], channel_bytes, tile)
            for t in range(threads)
        )
        return 1, tuple(runs)
    # Cut the batch rows into blocks too: units (block, channel), in block-major order,
    # go round the threads in consecutive runs; enough blocks that the units go evenly.
    blocks = min(n, math.ceil(channel_bytes / tile))
    while blocks < n and math.ceil(blocks * c / threads) * threads > MAX_IMBALANCE * blocks * c:
        blocks += 1
    units = blocks * c
    threads = min(threads, units)
    row_bounds = [n * b // blocks for b in range(blocks + 1)]
    runs = []
    for t in range(threads):
        first, last = units * t // threads, units * (t + 1) // threads
        run = []
        while first < last:  # the run's units in one row block: consecutive channels
            block, channel = divmod(first, c)
            end = min(last, (block + 1) * c)
            rows = slice(row_bounds[block], row_bounds[block + 1])
            block_bytes = (rows.stop - rows.start) * length * itemsize
            run.extend(_cut(block, rows, channel, channel + end - first, block_bytes, tile))
            first = end
        runs.append(tuple(run))
    return blocks, tuple(runs)


def _cut(
    block: int, rows: slice, first: int, last: int, channel_bytes: int, tile: int
) -> tuple[Tile, ...]:
    """Channels ``first`` to ``last`` of ``rows`` as tiles of at most ``tile`` bytes (at
    least one channel), given the bytes of one channel in ``rows``."""
    per_tile = max(1, tile // max(1, channel_bytes))
    return tuple(
        (block, rows, slice(i, min(i + per_tile, last))) for i in range(first, last, per_tile)
    )


#: The plan of an input of one tile: the whole of it, in this thread
_WHOLE = (1, (((0, slice(None), slice(None)),),))


def plan(x3: np.ndarray) -> tuple[int, tuple[tuple[Tile, ...], ...]]:
    """:func:`split` for ``x3`` (N, C, L), with one thread below ``2·BYTES_PER_THREAD``."""
    if x3.nbytes >= 2 * BYTES_PER_THREAD:
        return split(*x3.shape, x3.itemsize, num_threads())
    if x3.nbytes <= TILE_BYTES:  # at small sizes each Python step counts
        return _WHOLE
    return split(*x3.shape, x3.itemsize, 1)


def pool(workers: int) -> ThreadPoolExecutor:
    """A thread pool of at least ``workers`` threads, kept for the life of the process
    (its threads start when first needed, and sleep when idle)."""
    if not _pools or _pools[-1][0] < workers:
        if _pools:
            _pools.pop()[1].shutdown(wait=False)
        _pools.append((workers, ThreadPoolExecutor(workers, thread_name_prefix="bnlib")))
    return _pools[-1][1]


def each_tile(fn: Callable[[Tile], None], runs: tuple[tuple[Tile, ...], ...]) -> None:
    """Call ``fn(tile)`` for every tile: each run in a thread of its own, the first in this
    one. Returns once every run has finished; re-raises the first error."""
    if len(runs) == 1:
        for tile in runs[0]:
            fn(tile)
        return
    futures = [pool(len(runs) - 1).submit(_run, fn, run) for run in runs[1:]]
    try:
        _run(fn, runs[0])
    finally:
        concurrent.futures.wait(futures)  # no thread still writes when this returns
    for future in futures:
        future.result()  # re-raises


def _run(fn: Callable[[Tile], None], run: tuple[Tile, ...]) -> None:
    for tile in run:
        fn(tile)
