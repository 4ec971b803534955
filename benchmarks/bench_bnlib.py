"""bnlib's speed against PyTorch and against a plain memory copy, in one process.

    .venv/bin/python benchmarks/bench_bnlib.py [--rounds 20] [--block 10] [--warm-ms 5]
                                               [--torch-threads N]

Training mode, float32, torch on its default threads (or ``--torch-threads``). The
contenders take turns: each round runs every contender once, as a block of ``--block``
timed calls after a few milliseconds of untimed ones, with a pause after every block.
Prints, for each shape, each contender's median time per call over the rounds, and the
ratios bnlib / torch (the ratio of the medians, and the quartiles of the ratios within a
round) and bnlib / copy.

Why blocks and pauses: after its last call torch's OpenMP workers keep spinning for a
moment, taking the second core from whatever runs next. The script measures how long
(the CPU time of the process's other threads while the main one sleeps after a block of
torch calls) and pauses after every block for three times that, at least 20 ms, so that
they are asleep before the next contender starts. A sleeping pool costs torch a wake-up on
its next call, and a core that has been idle runs slower for a millisecond or two, so each
block starts with untimed calls (``--warm-ms`` of them, at least one): the timed calls run
with torch's workers
awake and the cores busy, as in a training loop. Taking turns spreads the load of a shared
machine over all contenders alike.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

import bnlib

SHAPES = [(32, 64, 56, 56), (8, 16, 32, 32)]
WARM_SECONDS = 0.005  # untimed calls before each block (--warm-ms)
MIN_PAUSE_SECONDS = 0.02


def thread_cpu_seconds() -> dict[int, float]:
    """CPU time so far of each of this process's threads, in seconds, by thread id.

    Linux's per-thread CPU clocks, which are exact even for a thread running on another
    core right now (``time.process_time()`` and ``/proc``'s counters see such a thread's
    time only at scheduler ticks, 4 ms here). Empty where there is no ``/proc``.
    """
    times = {}
    if not os.path.isdir("/proc/self/task"):
        return times
    for task in os.listdir("/proc/self/task"):
        tid = int(task)
        try:  # the clock id of thread tid, as glibc's pthread_getcpuclockid makes it
            times[tid] = time.clock_gettime((~tid << 3) | 6)
        except OSError:  # the thread ended meanwhile
            pass
    return times


def busy_cores(seconds: float) -> float:
    """Cores this process's other threads keep busy while this one sleeps ``seconds``.

    CPU time over wall time of the threads alive at both ends of the sleep, where Linux
    gives per-thread clocks; elsewhere the whole process's CPU time (coarser: scheduler
    ticks, and this thread counts too).
    """
    before, start = thread_cpu_seconds(), time.perf_counter()
    if not before:  # no per-thread clocks here
        cpu_before = time.process_time()
        time.sleep(seconds)
        return (time.process_time() - cpu_before) / (time.perf_counter() - start)
    time.sleep(seconds)
    after, wall = thread_cpu_seconds(), time.perf_counter()
    others = (before.keys() & after.keys()) - {threading.get_native_id()}
    return sum(after[t] - before[t] for t in others) / (wall - start)


def spin_seconds(fn: Callable[[], object], calls: int = 20, slice_seconds: float = 0.002) -> float:
    """How long this process keeps a core busy after ``calls`` calls of ``fn``, in seconds.

    Sleeps in slices: a slice where the other threads kept more than a tenth of a core busy
    (spinning) counts as spinning. The longest of three tries, up to 0.5 s.
    """
    longest = 0.0
    for _ in range(3):
        for _ in range(calls):
            fn()
        spinning = 0.0
        while spinning < 0.5 and busy_cores(slice_seconds) >= 0.1:
            spinning += slice_seconds
        longest = max(longest, spinning)
    return longest


def block_times(
    contenders: dict[str, Callable[[], object]],
    rounds: int,
    block: int,
    pause: float,
    warm: float,
) -> dict[str, np.ndarray]:
    """Seconds per call of each contender, one value per round (see the module docstring)."""
    times = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            warm_until = time.perf_counter() + warm
            fn()  # untimed: wakes torch's workers and the core, warms the caches
            while time.perf_counter() < warm_until:
                fn()
            start = time.perf_counter()
            for _ in range(block):
                fn()
            times[name].append((time.perf_counter() - start) / block)
            time.sleep(pause)  # let torch's workers stop spinning
    return {name: np.array(t) for name, t in times.items()}


def bench_shape(
    shape: tuple[int, ...], rounds: int, block: int, warm: float
) -> tuple[dict[str, np.ndarray], float, float]:
    """Per-call seconds of every contender (one per round), torch's spin and the pause."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape, dtype=np.float32)
    dy = rng.standard_normal(shape, dtype=np.float32)
    c = shape[1]
    weight, bias = np.ones(c, np.float32), np.zeros(c, np.float32)
    running_mean, running_var = np.zeros(c, np.float32), np.ones(c, np.float32)

    tx, tdy = torch.from_numpy(x), torch.from_numpy(dy)
    tw, tb = torch.from_numpy(weight), torch.from_numpy(bias)
    trm, trv = torch.zeros(c), torch.ones(c)
    torch_bn = torch.nn.BatchNorm2d(c)
    bn = bnlib.BatchNorm2d(c)
    tx_grad = tx.clone().requires_grad_(True)

    def torch_forward_backward():
        tx_grad.grad = None  # as a training loop's zero_grad(set_to_none=True): no adding up
        torch_bn.zero_grad(set_to_none=True)
        torch_bn(tx_grad).backward(tdy)

    def bnlib_forward_backward():
        bn(x)
        bn.backward(dy)

    def torch_forward():
        F.batch_norm(tx, trm, trv, tw, tb, True, 0.1, 1e-5)

    spin = max(spin_seconds(torch_forward), spin_seconds(torch_forward_backward))
    pause = max(MIN_PAUSE_SECONDS, 3 * spin)
    times = block_times(
        {
            "copy": x.copy,
            "torch forward": torch_forward,
            "bnlib forward": lambda: bnlib.batch_norm(
                x, running_mean, running_var, weight, bias, True, 0.1, 1e-5
            ),
            "torch forward+backward": torch_forward_backward,
            "bnlib forward+backward": bnlib_forward_backward,
        },
        rounds,
        block,
        pause,
        warm,
    )
    return times, spin, pause


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="blocks per contender (>= 5)")
    parser.add_argument("--block", type=int, default=10, help="timed calls per block (>= 1)")
    parser.add_argument(
        "--torch-threads", type=int, default=0, help="torch's threads (default: its own choice)"
    )
    parser.add_argument(
        "--warm-ms",
        type=float,
        default=WARM_SECONDS * 1e3,
        help="untimed calls before each block, in ms (0: just one call)",
    )
    args = parser.parse_args()
    if args.torch_threads > 0:
        torch.set_num_threads(args.torch_threads)
    if args.rounds < 5 or args.block < 1 or args.warm_ms < 0:
        parser.error("--rounds must be at least 5, --block at least 1, --warm-ms at least 0")
    print(f"numpy {np.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads)")
    print(
        f"float32, training mode; {args.rounds} rounds of {args.block}-call blocks after "
        f"{args.warm_ms:g} ms of untimed calls, a pause after each block; "
        "medians per call\n"
    )
    header = (
        f"{'shape':>18} {'contender':>24} {'ms':>9} {'/ torch':>8} "
        f"{'(quartiles, rounds)':>19} {'/ copy':>7}"
    )
    print(header)
    print("-" * len(header))
    for shape in SHAPES:
        t, spin, pause = bench_shape(shape, args.rounds, args.block, args.warm_ms / 1e3)
        print(
            f"{str(shape):>18} torch's workers spin {spin * 1e3:.0f} ms after a block; "
            f"pause {pause * 1e3:.0f} ms"
        )
        median = {name: float(np.median(v)) for name, v in t.items()}
        for name, seconds in median.items():
            vs_torch = spread = ""
            if name.startswith("bnlib"):
                torch_name = name.replace("bnlib", "torch")
                per_round = t[name] / t[torch_name]
                vs_torch = f"{seconds / median[torch_name]:.2f}"
                q1, q3 = np.percentile(per_round, [25, 75])
                spread = f"{q1:.2f}–{q3:.2f}"
            print(
                f"{str(shape):>18} {name:>24} {seconds * 1e3:9.3f} {vs_torch:>8} "
                f"{spread:>19} {seconds / median['copy']:7.2f}"
            )
        print()


if __name__ == "__main__":
    main()
