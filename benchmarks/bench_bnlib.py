"""bnlib's speed against PyTorch and against a plain memory copy, in one process.

    .venv/bin/python benchmarks/bench_bnlib.py [--repeats 15]

Prints, for each shape, the median time of each contender and the ratios
bnlib / torch and bnlib / copy. Training mode, float32, torch on its default threads.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

import bnlib

SHAPES = [(32, 64, 56, 56), (8, 16, 32, 32)]
PAUSE_SECONDS = 0.5


def median_times(contenders: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall time in seconds of each contender over ``repeats`` runs, after warm-up.

    Contenders run one after the other, each in a block of its own, with a pause between
    blocks: torch's worker threads keep spinning for a moment after its last call, and
    would otherwise take the second core from whatever runs next.
    """
    result = {}
    for name, fn in contenders.items():
        time.sleep(PAUSE_SECONDS)
        for _ in range(3):
            fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        result[name] = float(np.median(times))
    return result


def bench_shape(shape: tuple[int, ...], repeats: int) -> dict[str, float]:
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
        torch_bn(tx_grad).backward(tdy)

    def bnlib_forward_backward():
        bn(x)
        bn.backward(dy)

    return median_times(
        {
            "copy": x.copy,
            "torch forward": lambda: F.batch_norm(tx, trm, trv, tw, tb, True, 0.1, 1e-5),
            "bnlib forward": lambda: bnlib.batch_norm(
                x, running_mean, running_var, weight, bias, True, 0.1, 1e-5
            ),
            "torch forward+backward": torch_forward_backward,
            "bnlib forward+backward": bnlib_forward_backward,
        },
        repeats,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed runs per contender (>= 7)")
    args = parser.parse_args()
    if args.repeats < 7:
        parser.error("--repeats must be at least 7")
    print(f"numpy {np.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads)")
    print(f"medians of {args.repeats} runs, float32, training mode\n")
    header = f"{'shape':>18} {'contender':>24} {'ms':>9} {'/ torch':>8} {'/ copy':>8}"
    print(header)
    print("-" * len(header))
    for shape in SHAPES:
        t = bench_shape(shape, args.repeats)
        for name, seconds in t.items():
            torch_name = name.replace("bnlib", "torch")
            vs_torch = f"{seconds / t[torch_name]:8.2f}" if name.startswith("bnlib") else ""
            print(
                f"{str(shape):>18} {name:>24} {seconds * 1e3:9.3f} {vs_torch:>8} "
                f"{seconds / t['copy']:8.2f}"
            )
        print()


if __name__ == "__main__":
    main()
