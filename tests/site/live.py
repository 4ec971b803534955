"""What the browser tests of the in-page batch norm share (test_bnlibjs.py,
test_playground.py, test_explorers.py, test_live_a11y.py): the pages, the blog's tensor,
and helpers to reach the mounted playground and explorers."""

from __future__ import annotations

import numpy as np

PLAYGROUND = "chapters/01_worked_example.html"
EXPLORERS = {
    "eps": "chapters/02_std_vs_variance.html",
    "momentum": "chapters/03_running_stats.html",
    "batch-size": "chapters/03_running_stats.html",
}
LIVE_PAGES = sorted({PLAYGROUND, *EXPLORERS.values()})
BLOG_X = np.array(
    [[[[1, 1], [1, 2]], [[-1, 1], [0, 1]]], [[[0, -1], [2, 2]], [[0, -1], [3, 1]]]],
    dtype=np.float32,
)
TORCH_WORDS = "Expected more than 1 value per channel when training"
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]


def live(page, kind: str):
    """The element of the playground or an explorer on the page."""
    return page.locator(f'[data-bnbook-live="{kind}"]')


def instance(page, kind: str) -> str:
    """A JavaScript expression for the mounted instance of ``kind``."""
    name = {"eps": "eps", "momentum": "momentum", "batch-size": "batch-size"}.get(kind, kind)
    return f'window.bnlibjs.instances.find(i => i.name === "{name}")'


def close_to_largest(actual, expected, what: str, tol: float = 1e-10) -> None:
    """|actual − expected| ≤ tol × (the largest |expected|), elementwise."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} ≠ {expected.shape}"
    scale = max(float(np.abs(expected).max(initial=0.0)), np.finfo(float).tiny)
    worst = float(np.abs(actual - expected).max(initial=0.0))
    assert worst <= tol * scale, f"{what}: off by {worst:.3g}, largest value {scale:.3g}"
