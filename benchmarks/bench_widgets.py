"""How long a slider change takes in each live explorer: recompute with bnlib plus redraw.

Drives each widget programmatically (``explorer.slider.value = v``, which runs the same
callback a browser's slider move runs in the kernel) and times the whole change: bnlib's
computation, the in-place update of the figure's moving artists, the Agg render over the
kept background and the JPEG handed to the ``ipywidgets.Image``. Target: under 50 ms per
change (the slowest of all changes, not the median).

Two numbers per explorer: wall time and the CPU time of this process. On a shared machine
the wall time includes waiting for a core; the CPU time does not. ``--contend`` runs the
measurement a second time with one busy process per core competing for the CPU, the
worst case of a loaded machine.

Run: ``.venv/bin/python benchmarks/bench_widgets.py [--contend]``
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import os
import statistics
import time

from bnbook import widgets

CASES = {
    "eps_explorer": (widgets.eps_explorer, [1e-9, 1e-6, 1e-4, 1e-2, 0.5]),
    "momentum_explorer": (widgets.momentum_explorer, [0.0, 0.01, 0.1, 0.5, 1.0]),
    "batch_size_explorer": (widgets.batch_size_explorer, [1, 2, 8, 32, 128]),
}
CHANGES = 30
TARGET_MS = 50.0


def time_changes(make, values, changes: int = CHANGES) -> tuple[list[float], list[float]]:
    """(wall ms, CPU ms) per slider change, cycling through ``values``."""
    explorer = make()
    explorer.slider.value = values[0]  # warm-up: the first render draws the background
    wall, cpu = [], []
    for value in itertools.islice(itertools.cycle(values[1:] + values[:1]), changes):
        start, start_cpu = time.perf_counter(), time.process_time()
        explorer.slider.value = value
        wall.append((time.perf_counter() - start) * 1e3)
        cpu.append((time.process_time() - start_cpu) * 1e3)
    return wall, cpu


def _spin(stop) -> None:
    while not stop.is_set():
        pass


def run(label: str) -> float:
    print(f"{label}: {CHANGES} changes each, {os.cpu_count()} CPUs")
    print(f"{'explorer':22s} {'median ms':>10s} {'max ms':>8s} {'median CPU ms':>14s}")
    worst = 0.0
    for name, (make, values) in CASES.items():
        wall, cpu = time_changes(make, values)
        worst = max(worst, max(wall))
        print(
            f"{name:22s} {statistics.median(wall):10.1f} {max(wall):8.1f} "
            f"{statistics.median(cpu):14.1f}"
        )
    verdict = "within" if worst < TARGET_MS else "OVER"
    print(f"slowest change: {worst:.1f} ms ({verdict} {TARGET_MS:g} ms)\n")
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contend", action="store_true", help="also measure under CPU load")
    args = parser.parse_args()
    run("as the machine is")
    if args.contend:
        stop = multiprocessing.Event()
        spinners = [
            multiprocessing.Process(target=_spin, args=(stop,)) for _ in range(os.cpu_count())
        ]
        for p in spinners:
            p.start()
        try:
            run(f"with {len(spinners)} busy processes competing")
        finally:
            stop.set()
            for p in spinners:
                p.join()


if __name__ == "__main__":
    main()
