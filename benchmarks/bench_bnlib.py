"""bnlib's speed against PyTorch and against a plain memory copy, at 1, 2, 4, ... threads.

    .venv/bin/python benchmarks/bench_bnlib.py [--threads 1,2,4] [--shapes 32x64x56x56,...]
                                               [--rounds 3] [--min-run-time 0.2]

Every figure is taken by ``torch.utils.benchmark.Timer.blocked_autorange``, the one
instrument for every contender (it warms up, picks a block size that makes the timer's own
cost negligible and keeps every block's time): bnlib's and torch's forward
(``bnlib.batch_norm``, ``torch.nn.functional.batch_norm``) and forward+backward (the
modules, torch with autograd and its gradients set to None before each call, as a training
loop's ``zero_grad()`` does), a NumPy copy of the input (one thread) and torch's ``clone``
(on the threads of the row). Float32, training mode, running statistics updated.

For each thread count n, torch runs on n threads (the Timer's ``num_threads``) and bnlib on
n (``BNLIB_NUM_THREADS``). The contenders take turns, ``--rounds`` times, with a pause after
each measurement so that torch's OpenMP workers stop spinning before the next one starts;
the rounds of a contender are merged into one measurement (``Measurement.merge``). Prints
``Compare``'s tables (median per call, rows grouped by thread count), then one table with
the ratios: bnlib / torch (per round the ratio of the two medians; the median and the range
of those over the rounds) and bnlib / copy, a thread count per row.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils import benchmark

import bnlib
from bnlib import parallel

SHAPES = [(32, 64, 56, 56), (8, 16, 32, 32), (128, 256, 28, 28)]
PAUSE_SECONDS = 0.05  # after each measurement: torch's workers spin about 10 ms
CONTENDERS = (
    "torch forward",
    "bnlib forward",
    "torch forward+backward",
    "bnlib forward+backward",
    "numpy copy",
    "torch clone",
)


def thread_counts(cores: int) -> list[int]:
    """1, 2, 4, ... below ``cores``, then ``cores``."""
    counts = [1]
    while counts[-1] * 2 < cores:
        counts.append(counts[-1] * 2)
    return counts + [cores] if cores > 1 else counts


def statements(shape: tuple[int, ...]) -> dict[str, object]:
    """Each contender as a callable with its data, for ``Timer(globals=...)``."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape, dtype=np.float32)
    dy = rng.standard_normal(shape, dtype=np.float32)
    c = shape[1]
    weight, bias = np.ones(c, np.float32), np.zeros(c, np.float32)
    running_mean, running_var = np.zeros(c, np.float32), np.ones(c, np.float32)
    tx, tdy = torch.from_numpy(x), torch.from_numpy(dy)
    tw, tb = torch.from_numpy(weight.copy()), torch.from_numpy(bias.copy())
    trm, trv = torch.zeros(c), torch.ones(c)
    torch_bn, bn = torch.nn.BatchNorm2d(c), bnlib.BatchNorm2d(c)
    tx_grad = tx.clone().requires_grad_(True)

    def torch_forward_backward():
        tx_grad.grad = None  # as a training loop's zero_grad(set_to_none=True)
        torch_bn.zero_grad(set_to_none=True)
        torch_bn(tx_grad).backward(tdy)

    def bnlib_forward_backward():
        bn(x)
        bn.backward(dy)

    return {
        "torch forward": lambda: F.batch_norm(tx, trm, trv, tw, tb, True, 0.1, 1e-5),
        "bnlib forward": lambda: bnlib.batch_norm(
            x, running_mean, running_var, weight, bias, True, 0.1, 1e-5
        ),
        "torch forward+backward": torch_forward_backward,
        "bnlib forward+backward": bnlib_forward_backward,
        "numpy copy": x.copy,
        "torch clone": tx.clone,
    }


def measure(
    shape: tuple[int, ...], threads: int, rounds: int, min_run_time: float
) -> dict[str, list[benchmark.Measurement]]:
    """Every contender's measurements at ``threads`` threads, one per round, in turns."""
    calls = statements(shape)
    os.environ[parallel.THREADS_VARIABLE] = str(threads)
    label = "×".join(map(str, shape))
    timers = {
        name: benchmark.Timer(
            stmt="call()",
            globals={"call": calls[name]},
            num_threads=threads,
            label=f"batch norm, float32, training: {label}",
            sub_label=name,
            description="median per call",
        )
        for name in CONTENDERS
    }
    results: dict[str, list[benchmark.Measurement]] = {name: [] for name in CONTENDERS}
    for _ in range(rounds):
        for name, timer in timers.items():
            results[name].append(timer.blocked_autorange(min_run_time=min_run_time))
            time.sleep(PAUSE_SECONDS)
    return results


def ratio_row(shape, threads, results) -> str:
    """One row of the ratio table, in Markdown."""
    median = {name: benchmark.Measurement.merge(ms)[0].median for name, ms in results.items()}

    def ratio(a: str, b: str) -> str:
        """The median of the rounds' ratios (each of two medians), and their range."""
        per_round = [x.median / y.median for x, y in zip(results[a], results[b], strict=True)]
        spread = f" ({min(per_round):.2f}–{max(per_round):.2f})" if len(per_round) > 1 else ""
        return f"{np.median(per_round):.2f}{spread}"

    ms = {name: f"{median[name] * 1e3:.3g}" for name in median}
    return (
        f"| {'×'.join(map(str, shape))} | {threads} "
        f"| {ms['torch forward']} / {ms['torch forward+backward']} "
        f"| {ms['bnlib forward']} / {ms['bnlib forward+backward']} "
        f"| {ratio('bnlib forward', 'torch forward')} "
        f"| {ratio('bnlib forward+backward', 'torch forward+backward')} "
        f"| {ms['numpy copy']} / {ms['torch clone']} "
        f"| {ratio('bnlib forward', 'numpy copy')} |"
    )


def parse_list(text: str, kind) -> list:
    return [kind(v) for v in text.split(",") if v]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    parser.add_argument(
        "--threads",
        type=lambda t: parse_list(t, int),
        default=thread_counts(cores),
        help=f"thread counts, comma-separated (default here: 1, 2, 4, ... up to {cores})",
    )
    parser.add_argument(
        "--shapes",
        type=lambda t: [tuple(map(int, s.split("x"))) for s in parse_list(t, str)],
        default=SHAPES,
        help="N×C×H×W shapes, comma-separated, as 32x64x56x56",
    )
    parser.add_argument("--rounds", type=int, default=3, help="turns of every contender")
    parser.add_argument(
        "--min-run-time", type=float, default=0.2, help="seconds per blocked_autorange"
    )
    args = parser.parse_args()
    if args.rounds < 1 or args.min_run_time <= 0 or min(args.threads) < 1:
        parser.error("--rounds, --min-run-time and every thread count must be positive")

    started = datetime.datetime.now(datetime.UTC)
    load = os.getloadavg() if hasattr(os, "getloadavg") else ()
    print(
        f"{platform.processor() or platform.machine()}, {cores} cores for this process; "
        f"numpy {np.__version__}, torch {torch.__version__}; "
        f"{started:%Y-%m-%d %H:%M} UTC; load average {', '.join(f'{v:.1f}' for v in load)}"
    )
    if load and load[0] > 0.5:
        print(
            "warning: other processes are running; the figures measure them too (torch's "
            "OpenMP threads wait for each other when one of them loses its core)"
        )
    print()
    rows, everything = [], []
    for shape in args.shapes:
        for threads in args.threads:
            results = measure(shape, threads, args.rounds, args.min_run_time)
            everything += [m for ms in results.values() for m in ms]
            rows.append(ratio_row(shape, threads, results))
    compare = benchmark.Compare(benchmark.Measurement.merge(everything))
    compare.trim_significant_figures()
    compare.print()
    load = os.getloadavg() if hasattr(os, "getloadavg") else ()
    print(f"load average at the end: {', '.join(f'{v:.1f}' for v in load)}\n")
    print(
        "| shape | threads | torch fwd / fwd+bwd, ms | bnlib fwd / fwd+bwd, ms "
        "| bnlib / torch, fwd | bnlib / torch, fwd+bwd | copy (NumPy, 1 thread) / clone "
        "(torch), ms | bnlib fwd / copy |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(rows))
    print(
        f"\nRatios: the median over the {args.rounds} rounds of each round's ratio of medians; "
        "in brackets, their range."
        if args.rounds > 1
        else "\nRatios of medians."
    )


if __name__ == "__main__":
    main()
