"""How long the page's explorers and playground take to redraw after a change (js/).

Opens the built book (``_build/html``; ``make book`` first) in headless Chromium and, for
each live explorer, sets its slider to a sequence of values the way a dragged slider does
(the range's value, then an ``input`` event), timing in the page with ``performance.now()``:

- *update*: the event's handler, which recomputes with bnlib.js and rewrites the SVG paths,
  captions and tables;
- *+ layout*: the same, followed by a forced style and layout of the page (reading
  ``offsetHeight``), what the browser must do before it can paint the frame.

The target is a redraw within one 60 Hz frame, 16.7 ms, for 95 % of the changes (the 95th
percentile of *+ layout*; the slowest is printed too: on a busy machine it is often one
change that waited for a core, or a garbage collection). ``--throttle N`` repeats the
measurement with Chromium's CPU throttled N times (Chrome DevTools'
``Emulation.setCPUThrottlingRate``), a stand-in for a slow laptop or a phone. Timings on a
shared machine are noisy: compare runs, never put them in a test.

Run: ``.venv/bin/python benchmarks/bench_explorers.py [--throttle 4] [--changes 60]``
"""

from __future__ import annotations

import argparse
import functools
import http.server
import statistics
import threading
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"
FRAME_MS = 1000 / 60
#: (page, element kind, slider positions to cycle through)
CASES = [
    ("chapters/02_std_vs_variance.html", "eps", [-10, -7.5, -5, -3.3, -1, 0, -2.2, -8.8]),
    ("chapters/03_running_stats.html", "momentum", [0, 0.01, 0.05, 0.1, 0.3, 0.6, 1, 0.2]),
    ("chapters/03_running_stats.html", "batch-size", [2, 3, 8, 16, 64, 128, 100, 4]),
]

TIME_SLIDER = """async ({kind, positions, changes}) => {
    const root = document.querySelector(`[data-bnbook-live="${kind}"]`);
    const range = root.querySelector('input[type="range"]');
    const update = [], layout = [];
    for (let i = 0; i < changes; i++) {
        const t0 = performance.now();
        range.value = String(positions[i % positions.length]);
        range.dispatchEvent(new Event('input', {bubbles: true}));
        const t1 = performance.now();
        void document.body.offsetHeight;  // style and layout, as before a paint
        const t2 = performance.now();
        update.push(t1 - t0);
        layout.push(t2 - t0);
        await new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)));
    }
    return {update, layout};
}"""

TIME_TYPING = """async ({changes}) => {
    const root = document.querySelector('[data-bnbook-live="playground"]');
    const cell = root.querySelector('input.bnbook-cell');
    const layout = [];
    for (let i = 0; i < changes; i++) {
        const t0 = performance.now();
        cell.value = String((i % 7) - 3);
        cell.dispatchEvent(new Event('input', {bubbles: true}));
        void document.body.offsetHeight;
        layout.push(performance.now() - t0);
        await new Promise(r => requestAnimationFrame(() => setTimeout(r, 0)));
    }
    return {update: layout, layout};
}"""


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def row(name: str, times: dict) -> float:
    """Print median and max of *update*, median, 95th percentile and max of *+ layout*."""
    p95 = statistics.quantiles(times["layout"], n=20)[-1]
    print(
        f"{name:28s} {statistics.median(times['update']):9.2f} {max(times['update']):9.2f}"
        f" {statistics.median(times['layout']):10.2f} {p95:9.2f} {max(times['layout']):9.2f}"
    )
    return p95


def measure(browser, base: str, changes: int, throttle: float) -> float:
    print(f"\nCPU throttling {throttle:g}×, {changes} changes each (ms)")
    print(f"{'':28s} {'update':>9s} {'max':>9s} {'+ layout':>10s} {'95 %':>9s} {'max':>9s}")
    worst = 0.0
    pages = {}
    for path, kind, positions in [*CASES, ("chapters/01_worked_example.html", "playground", [])]:
        if path not in pages:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(base + path)
            page.wait_for_function("() => window.bnlibjs && window.bnlibjs.instances.length")
            if throttle != 1:
                cdp = page.context.new_cdp_session(page)
                cdp.send("Emulation.setCPUThrottlingRate", {"rate": throttle})
            pages[path] = page
        page = pages[path]
        args = {"kind": kind, "positions": positions, "changes": changes}
        page.evaluate(TIME_SLIDER if positions else TIME_TYPING, {**args, "changes": 3})  # warm
        times = page.evaluate(TIME_SLIDER if positions else TIME_TYPING, args)
        label = "playground (typing a cell)" if kind == "playground" else f"{kind} slider"
        worst = max(worst, row(label, times))
    for page in pages.values():
        page.close()
    verdict = "within" if worst < FRAME_MS else "OVER"
    print(f"slowest 95th percentile: {worst:.2f} ms ({verdict} a 60 Hz frame, {FRAME_MS:.1f} ms)")
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=60, help="changes per explorer")
    parser.add_argument("--throttle", type=float, default=None, help="also with CPU ×N slower")
    args = parser.parse_args()
    if not (SITE / "index.html").exists():
        raise SystemExit(f"no built book at {SITE}: run `make book` first")
    handler = functools.partial(Quiet, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}/"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox"]
            )
            measure(browser, base, args.changes, 1)
            if args.throttle:
                measure(browser, base, args.changes, args.throttle)
            browser.close()
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
