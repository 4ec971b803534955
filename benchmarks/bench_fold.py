"""Inference time of a convolution followed by batch norm (eval mode) against the folded one.

    .venv/bin/python benchmarks/bench_fold.py [--rounds 5] [--repeats 15]

For each shape, a ``Conv2d`` (3×3, padding 1, no bias) followed by ``BatchNorm2d`` in eval
mode, against the single convolution ``torch.nn.utils.fusion.fuse_conv_bn_eval`` makes of
them (whose weights ``bnlib.fold_conv_bn`` gives too; checked here). float32, torch on its
default threads, under ``torch.inference_mode()``. Each round times the two contenders in
blocks of their own (median of ``--repeats`` calls each, a pause before each block, the order
alternating between rounds); the speed-up is reported as the median and range over rounds.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch.nn.utils.fusion import fuse_conv_bn_eval

import bnlib

# (batch, channels, side): a ResNet stage-1 layer at batch 8 and at batch 1 (one image at a
# time, as a server answers requests), and a later, narrower-map, wider layer.
SHAPES = [(8, 64, 56), (1, 64, 56), (8, 256, 14)]
PAUSE_SECONDS = 0.3


def median_time(fn, repeats: int) -> float:
    """Median wall time in seconds of ``fn()`` over ``repeats`` calls, after 3 warm-up calls."""
    time.sleep(PAUSE_SECONDS)
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def make_layers(channels: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    """conv → BN with trained-looking running statistics, and its folded convolution."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(channels, channels, 3, padding=1, bias=False)
    bn = torch.nn.BatchNorm2d(channels)
    with torch.no_grad():
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 2)
        bn.bias.normal_()
    unfolded = torch.nn.Sequential(conv, bn).eval()
    folded = fuse_conv_bn_eval(conv, bn).eval()
    w, b = bnlib.fold_conv_bn(
        conv.weight.detach().numpy(),
        None,
        bn.running_mean.numpy(),
        bn.running_var.numpy(),
        bn.eps,
        bn.weight.detach().numpy(),
        bn.bias.detach().numpy(),
    )
    np.testing.assert_allclose(w, folded.weight.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b, folded.bias.detach().numpy(), rtol=1e-5, atol=1e-6)
    return unfolded, folded


def bench_shape(batch: int, channels: int, side: int, rounds: int, repeats: int) -> dict:
    unfolded, folded = make_layers(channels)
    x = torch.randn(batch, channels, side, side)
    with torch.inference_mode():
        torch.testing.assert_close(folded(x), unfolded(x), rtol=1e-4, atol=1e-4)
        times = {"conv + BN": [], "folded conv": []}
        for r in range(rounds):
            order = list(times) if r % 2 == 0 else list(reversed(times))
            for name in order:
                model = unfolded if name == "conv + BN" else folded
                times[name].append(median_time(lambda m=model: m(x), repeats))
    speedups = [u / f for u, f in zip(times["conv + BN"], times["folded conv"], strict=True)]
    return {
        "conv + BN ms": 1e3 * float(np.median(times["conv + BN"])),
        "folded ms": 1e3 * float(np.median(times["folded conv"])),
        "speed-up": float(np.median(speedups)),
        "min": min(speedups),
        "max": max(speedups),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds of both contenders (>= 3)")
    parser.add_argument("--repeats", type=int, default=15, help="timed calls per block (>= 7)")
    args = parser.parse_args()
    if args.rounds < 3 or args.repeats < 7:
        parser.error("--rounds must be at least 3 and --repeats at least 7")
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), float32, eval mode")
    print(f"medians of {args.repeats} calls per block, {args.rounds} rounds\n")
    header = f"{'N×C×H×W':>16} {'conv + BN ms':>13} {'folded ms':>10} {'speed-up':>9} {'range':>12}"
    print(header)
    print("-" * len(header))
    for batch, channels, side in SHAPES:
        r = bench_shape(batch, channels, side, args.rounds, args.repeats)
        shape = f"{batch}×{channels}×{side}×{side}"
        print(
            f"{shape:>16} {r['conv + BN ms']:13.3f} {r['folded ms']:10.3f} "
            f"{r['speed-up']:9.2f} {r['min']:5.2f}–{r['max']:.2f}"
        )


if __name__ == "__main__":
    main()
