"""How long a slider change takes in each live explorer: recompute with bnlib plus redraw.

Drives each widget programmatically (``explorer.slider.value = v``, which runs the same
callback a browser's slider move runs in the kernel) and times the whole change: bnlib's
computation, the in-place update of the figure's artists, the Agg render and the PNG handed
to the ``ipywidgets.Image``. Target: under 100 ms per change on 2 cores (aim: 50 ms).

Run: ``.venv/bin/python benchmarks/bench_widgets.py``
"""

from __future__ import annotations

import itertools
import os
import statistics
import time

from bnlib import widgets

CASES = {
    "eps_explorer": (widgets.eps_explorer, [1e-9, 1e-6, 1e-4, 1e-2, 0.5]),
    "momentum_explorer": (widgets.momentum_explorer, [0.0, 0.01, 0.1, 0.5, 1.0]),
    "batch_size_explorer": (widgets.batch_size_explorer, [1, 2, 8, 32, 128]),
}
CHANGES = 30


def time_changes(make, values, changes: int = CHANGES) -> list[float]:
    """Milliseconds per slider change, cycling through ``values``."""
    explorer = make()
    explorer.slider.value = values[0]  # warm-up: first render fixes the layout
    times = []
    for value in itertools.islice(itertools.cycle(values[1:] + values[:1]), changes):
        start = time.perf_counter()
        explorer.slider.value = value
        times.append((time.perf_counter() - start) * 1e3)
    return times


def main() -> None:
    print(
        f"slider change = recompute with bnlib + redraw, {CHANGES} changes, {os.cpu_count()} CPUs"
    )
    print(f"{'explorer':22s} {'median ms':>10s} {'max ms':>8s}")
    worst = 0.0
    for name, (make, values) in CASES.items():
        times = time_changes(make, values)
        worst = max(worst, max(times))
        print(f"{name:22s} {statistics.median(times):10.1f} {max(times):8.1f}")
    print(f"slowest change: {worst:.1f} ms ({'within' if worst < 100 else 'OVER'} 100 ms)")


if __name__ == "__main__":
    main()
