"""The live explorers of chapters 2 and 3, driven in Chromium: their settings are the book's
(bnbook.explorer_data), and their sliders, moved by keyboard and by pointer and typed into,
redraw what bnlib computes on the explorer's own data."""

from __future__ import annotations

import numpy as np
import pytest

import bnlib
from bnbook import explorer_data, simulate
from tests.site.live import (
    EXPLORERS,
    TORCH_WORDS,
    close_to_largest,
    instance,
    live,
)
from tests.site.pages import open_page

# -- the explorers ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def explorer_pages(browser, base_url):
    pages = {}
    for path in sorted(set(EXPLORERS.values())):
        page, log = open_page(browser, base_url, path)
        page.wait_for_function("() => window.bnlibjs && window.bnlibjs.instances.length > 0")
        pages[path] = (page, log)
    yield {kind: pages[path][0] for kind, path in EXPLORERS.items()}
    for page, log in pages.values():
        page.context.close()
        assert log.errors == [], f"console errors: {log.errors}"


def explorer_state(page, kind: str) -> dict:
    return page.evaluate(
        f"""() => {{
            const s = {instance(page, kind)}.state();
            const plain = (v) => ArrayBuffer.isView(v) ? Array.from(v)
                : Array.isArray(v) ? v.map(plain)
                : v && typeof v === 'object' ? Object.fromEntries(
                    Object.entries(v).map(([k, w]) => [k, plain(w)])) : v;
            return plain(s);
        }}"""
    )


def caption(page, kind: str) -> str:
    return live(page, kind).locator(".bnbook-caption").inner_text()


def drawn(page, kind: str) -> list[str]:
    return (
        live(page, kind).locator("svg path").evaluate_all("ps => ps.map(p => p.getAttribute('d'))")
    )


def test_explorer_settings_are_the_books(explorer_pages):
    params = explorer_pages["eps"].evaluate(
        """() => { const s = window.bnlibjs.simulate;
                  return {eps: s.EPS, drift: s.DRIFT, batch: s.BATCH}; }"""
    )
    assert tuple(params["eps"]["channelStds"]) == explorer_data.EPS_CHANNEL_STDS
    assert params["eps"]["values"] == explorer_data.eps_input().shape[0]
    assert (params["eps"]["minExponent"], params["eps"]["maxExponent"]) == (
        explorer_data.EPS_MIN_EXPONENT,
        explorer_data.EPS_MAX_EXPONENT,
    )
    drift = params["drift"]
    assert (drift["steps"], drift["hold"], drift["ramp"], drift["top"], drift["std"]) == (
        simulate.DRIFT_STEPS,
        simulate.DRIFT_HOLD,
        simulate.DRIFT_RAMP,
        simulate.DRIFT_TOP,
        simulate.DRIFT_STD,
    )
    assert drift["batchSize"] == explorer_data.MOMENTUM_BATCH_SIZE
    window = explorer_data.MOMENTUM_WINDOW
    assert drift["window"] == [window.start, window.stop]
    batch = params["batch"]
    assert (batch["mean"], batch["std"]) == (
        simulate.POPULATION_MEAN[0],
        simulate.POPULATION_STD[0],
    )
    assert batch["trials"] == explorer_data.BATCH_TRIALS


def check_eps(page) -> float:
    """The ε explorer shows bnlib's outputs of its own input at its ε; returns that ε."""
    state = explorer_state(page, "eps")
    x = np.array(state["x"]).reshape(state["shape"])
    y = bnlib.batch_norm(x, training=True, eps=state["eps"])
    close_to_largest(np.array(state["y"]).reshape(state["shape"]), y, "ε explorer output")
    stds = ", ".join(f"{s:.3f}" for s in y.std(axis=(0, 2, 3)))
    assert caption(page, "eps").endswith(stds)
    return state["eps"]


def test_eps_slider_by_keyboard_pointer_and_typing(explorer_pages):
    page = explorer_pages["eps"]
    root = live(page, "eps")
    slider = root.get_by_role("slider", name="ε, on a log scale from 1e-10 to 1")
    assert slider.get_attribute("aria-valuetext") == "1.00e-5"
    assert check_eps(page) == pytest.approx(1e-5)
    before = drawn(page, "eps")
    slider.focus()
    slider.press("End")
    assert check_eps(page) == 1.0 and slider.get_attribute("aria-valuetext") == "1.00e0"
    assert "shrinks every output" in root.locator(".bnbook-message").inner_text()
    assert drawn(page, "eps") != before
    slider.press("Home")
    assert check_eps(page) == pytest.approx(1e-10)
    assert "far below" in root.locator(".bnbook-message").inner_text()
    for _ in range(3):
        slider.press("ArrowRight")  # one step of the log scale: 0.01 decade
    assert check_eps(page) == pytest.approx(10**-9.97)
    box = slider.bounding_box()  # pointer: a click a quarter of the way along
    page.mouse.click(box["x"] + box["width"] / 4, box["y"] + box["height"] / 2)
    eps = check_eps(page)
    assert 10**-8.2 < eps < 10**-7.3
    typed = root.get_by_label("ε: value")
    typed.fill("3.5e-4")
    typed.press("Enter")
    assert check_eps(page) == 3.5e-4  # exactly what was typed
    assert slider.get_attribute("aria-valuetext") == "3.50e-4"
    typed.fill("2")  # out of range: refused
    typed.press("Enter")
    assert typed.get_attribute("aria-invalid") == "true" and check_eps(page) == 3.5e-4


def check_momentum(page) -> None:
    """The momentum explorer shows bnlib.BatchNorm2d's running mean on its own stream."""
    state = explorer_state(page, "momentum")
    batches = np.array(state["batches"]).reshape(simulate.DRIFT_STEPS, -1, 1, 1, 1)
    bn = bnlib.BatchNorm2d(1, momentum=state["momentum"], affine=False)
    bn.running_mean, bn.running_var = np.zeros(1), np.ones(1)  # float64 buffers
    running = []
    for batch in batches:
        bn(batch)
        running.append(bn.running_mean[0])
    close_to_largest(state["running"], running, "running_mean")
    error = (np.array(state["running"]) - simulate.drifting_mean())[explorer_data.MOMENTUM_WINDOW]
    assert f"by {-error.mean():.2f} on average" in caption(page, "momentum")
    assert caption(page, "momentum").endswith(f"{error.std():.2f}")


def test_momentum_slider_by_keyboard_pointer_typing_and_none(explorer_pages):
    page = explorer_pages["momentum"]
    root = live(page, "momentum")
    slider = root.get_by_role("slider", name="momentum, from 0 to 1")
    check_momentum(page)
    slider.focus()
    slider.press("ArrowRight")
    assert explorer_state(page, "momentum")["momentum"] == pytest.approx(0.11)
    check_momentum(page)
    slider.press("Home")
    check_momentum(page)
    assert "never moves" in root.locator(".bnbook-message").inner_text()
    box = slider.bounding_box()  # pointer: drag the thumb from the left end to the middle
    page.mouse.move(box["x"] + 4, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()
    assert 0.35 < explorer_state(page, "momentum")["momentum"] < 0.65
    check_momentum(page)
    typed = root.get_by_label("momentum: value")
    typed.fill("0.037")
    typed.press("Enter")
    assert explorer_state(page, "momentum")["momentum"] == 0.037
    check_momentum(page)
    root.get_by_label("None (cumulative average)").check()
    assert explorer_state(page, "momentum")["momentum"] is None
    check_momentum(page)
    root.get_by_label("None (cumulative average)").uncheck()


def check_batch_size(page, size: int) -> None:
    """The batch-size explorer's histograms are those of bnlib's statistics of its batches."""
    state = explorer_state(page, "batch-size")
    assert state["size"] == size
    trials, largest = explorer_data.BATCH_TRIALS, 128
    pool = np.array(state["pool"]).reshape(trials, largest)
    x = (3.0 + 2.0 * pool[:, :size]).T.reshape(size, trials, 1, 1)  # trials as channels
    text = caption(page, "batch-size")
    if size == 1:
        assert state["data"] is None and text == ""
        return
    mean, var = bnlib.batch_stats(x)
    x[0] = 5.0  # the probe, μ + σ, in every batch
    output = bnlib.batch_norm(x, training=True)[0, :, 0, 0]
    for key, expected in (("mean", mean), ("var", var), ("output", output)):
        close_to_largest(state["data"][key], expected, f"batch size {size}: {key}")
    assert text.startswith(f"batch size {size}: batch means spread with std {mean.std():.2f}")
    assert text.endswith(f"{output.std():.2f}")


def test_batch_size_slider_by_keyboard_pointer_and_typing(explorer_pages):
    page = explorer_pages["batch-size"]
    root = live(page, "batch-size")
    slider = root.get_by_role("slider", name="batch size, from 1 to 128")
    check_batch_size(page, 8)
    slider.focus()
    slider.press("Home")
    check_batch_size(page, 1)
    assert TORCH_WORDS in root.locator(".bnbook-message").inner_text()
    slider.press("ArrowRight")
    check_batch_size(page, 2)
    assert "−1 and +1" in root.locator(".bnbook-message").inner_text()
    assert slider.get_attribute("aria-valuetext") == "2"
    box = slider.bounding_box()
    page.mouse.click(box["x"] + box["width"] - 3, box["y"] + box["height"] / 2)
    size = explorer_state(page, "batch-size")["size"]
    assert size > 110
    check_batch_size(page, size)
    typed = root.get_by_label("batch size, from 1 to 128: value")
    typed.fill("37")
    typed.press("Enter")
    check_batch_size(page, 37)
    typed.fill("2.5")  # not a whole number: refused
    typed.press("Enter")
    assert typed.get_attribute("aria-invalid") == "true"
    check_batch_size(page, 37)
