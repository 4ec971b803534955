"""Batch norm computed in the page (js/): ``window.bnlibjs``, chapter 1's playground, and the
live explorers of chapters 2 and 3, driven in Chromium and checked against bnlib and PyTorch.

- ``window.bnlibjs.forward`` and ``backward`` on random and edge-case inputs generated here
  agree with ``bnlib.BatchNorm2d`` (float64) to 1e-10 of each array's largest value.
- The playground opens with the numbers PyTorch prints for the blog's tensor; typing into its
  grid, changing its shape and pressing "Another batch" give what bnlib gives.
- The explorers' sliders, moved by keyboard and by pointer and typed into, redraw what bnlib
  computes on the explorer's own data; labels follow the page's language.
- axe-core (npm's, from node_modules) finds no WCAG 2.2 AA violation in them, light or dark.

Speed is not tested here (``benchmarks/bench_explorers.py`` measures the redraw).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

import bnlib
from bnbook import explorer_data, simulate
from tests.site.pages import ROOT, SITE, open_page, unavailable

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


@pytest.fixture(scope="module")
def playground_page(browser, base_url):
    page, log = open_page(browser, base_url, PLAYGROUND)
    page.wait_for_function("() => window.bnlibjs && window.bnlibjs.instances.length > 0")
    yield page
    page.context.close()
    assert log.errors == [], f"console errors on {PLAYGROUND}: {log.errors}"


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


# -- window.bnlibjs against bnlib ------------------------------------------------------------


def make_case(name: str, rng: np.random.Generator) -> dict:
    """Inputs for one comparison: x, dy and the options, as plain lists."""
    shapes = {
        "random train": (3, 4, 5, 2),
        "random eval": (2, 3, 4, 4),
        "N = 1, H·W > 1": (1, 3, 3, 4),
        "1×1 maps": (8, 3, 1, 1),
        "means of 1e4": (4, 2, 3, 3),
        "ε = 1": (2, 2, 3, 2),
        "ε = 0.3, no γ and β": (5, 2, 2, 2),
        "momentum None after 3 batches": (2, 3, 2, 3),
        "evaluation, one value per channel": (1, 2, 1, 1),
    }
    shape = shapes[name]
    c = shape[1]
    x = rng.standard_normal(shape) * rng.uniform(0.5, 3) + rng.uniform(-2, 2)
    if name == "means of 1e4":  # (at std 1e-2, mean/std = 1e6 leaves any float64 code
        x = 1e4 + rng.standard_normal(shape)  # ~1e-10 from the exact x̂: bnlib included)
    options = {
        "eps": {"ε = 1": 1.0, "ε = 0.3, no γ and β": 0.3}.get(name, 1e-5),
        "momentum": None if name.startswith("momentum None") else float(rng.uniform(0, 1)),
        "training": "eval" not in name,
        "runningMean": rng.standard_normal(c).tolist(),
        "runningVar": rng.uniform(0.2, 3, c).tolist(),
        "numBatchesTracked": 3 if name.startswith("momentum None") else int(rng.integers(0, 9)),
    }
    if name != "ε = 0.3, no γ and β":
        options["gamma"] = rng.standard_normal(c).tolist()
        options["beta"] = rng.standard_normal(c).tolist()
    return {
        "shape": list(shape),
        "x": x.ravel().tolist(),
        "dy": rng.standard_normal(shape).ravel().tolist(),
        "opts": options,
    }


def bnlib_result(case: dict) -> dict:
    """The same forward and backward with bnlib.BatchNorm2d, in float64."""
    shape, o = tuple(case["shape"]), case["opts"]
    x = np.array(case["x"]).reshape(shape)
    dy = np.array(case["dy"]).reshape(shape)
    c = shape[1]
    bn = bnlib.BatchNorm2d(c, eps=o["eps"], momentum=o["momentum"])
    bn.weight = np.array(o.get("gamma", np.ones(c)), np.float64)
    bn.bias = np.array(o.get("beta", np.zeros(c)), np.float64)
    bn.running_mean = np.array(o["runningMean"], np.float64)
    bn.running_var = np.array(o["runningVar"], np.float64)
    bn.num_batches_tracked = o["numBatchesTracked"]
    bn.train(o["training"])
    y = bn(x)
    dx = bn.backward(dy)
    mean, var = bnlib.batch_stats(x)
    return {
        "y": y.ravel(),
        "mean": mean,
        "var": var,
        "runningMean": bn.running_mean,
        "runningVar": bn.running_var,
        "numBatchesTracked": bn.num_batches_tracked,
        "dx": dx.ravel(),
        "dgamma": bn.grad_weight,
        "dbeta": bn.grad_bias,
    }


RUN_CASE = """({x, dy, shape, opts}) => {
    const f = window.bnlibjs.forward(Float64Array.from(x), shape, opts);
    const b = window.bnlibjs.backward(Float64Array.from(dy), Float64Array.from(x), shape, opts);
    const list = (a) => Array.from(a);
    return {y: list(f.y), mean: list(f.mean), var: list(f.var),
            runningMean: list(f.runningMean), runningVar: list(f.runningVar),
            numBatchesTracked: f.numBatchesTracked,
            dx: list(b.dx), dgamma: list(b.dgamma), dbeta: list(b.dbeta)};
}"""

CASES = [
    "random train",
    "random eval",
    "N = 1, H·W > 1",
    "1×1 maps",
    "means of 1e4",
    "ε = 1",
    "ε = 0.3, no γ and β",
    "momentum None after 3 batches",
    "evaluation, one value per channel",
]


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_bnlibjs_agrees_with_bnlib(playground_page, name, seed):
    case = make_case(name, np.random.default_rng([seed, CASES.index(name)]))
    got = playground_page.evaluate(RUN_CASE, case)
    expected = bnlib_result(case)
    assert got["numBatchesTracked"] == expected.pop("numBatchesTracked")
    for key, value in expected.items():
        close_to_largest(got[key], value, f"{name}, seed {seed}: {key}")


def test_one_value_per_channel_in_training_is_torch_error(playground_page):
    with pytest.raises(ValueError) as torch_error:
        torch.nn.BatchNorm2d(2)(torch.zeros(1, 2, 1, 1))
    assert str(torch_error.value).startswith(TORCH_WORDS)
    messages = playground_page.evaluate(
        """() => [() => bnlibjs.forward([1, 2], [1, 2, 1, 1]),
                  () => bnlibjs.backward([1, 1], [1, 2], [1, 2, 1, 1])].map(f => {
                 try { f(); return null } catch (e) { return e instanceof Error && e.message }
             })"""
    )
    assert all(m and m.startswith(TORCH_WORDS) for m in messages), messages


def test_pages_without_it_do_not_load_it(site):
    for page in site.joinpath("chapters").glob("*.html"):
        html = page.read_text(encoding="utf-8")
        uses = "data-bnbook-live" in html
        assert ("bnlibjs/bnlibjs.js" in html) == uses, page.name


# -- the playground -------------------------------------------------------------------------


def shown_numbers(page) -> dict:
    """The numbers the playground shows: the output grid and the statistics table."""
    return page.evaluate(
        """() => {
            const root = document.querySelector('[data-bnbook-live="playground"]');
            const cells = [...root.querySelectorAll('.bnbook-output .bnbook-num')]
                .map(e => e.textContent);
            const rows = [...root.querySelectorAll('table.bnbook-stats tbody tr')]
                .map(r => [...r.querySelectorAll('td.bnbook-num')].map(td => td.textContent));
            const alert = root.querySelector('[role="alert"]').textContent;
            return {y: cells, rows, alert};
        }"""
    )


def torch_printed(values) -> list[str]:
    """As torch prints a tensor's entries: 4 decimals, no "-0.0000"."""
    return [re.sub(r"^-(0\.0+)$", r"\1", f"{float(v):.4f}") for v in np.ravel(values)]


def torch_expected(x: np.ndarray, momentum=0.1, steps=()) -> dict:
    """What torch.nn.BatchNorm2d(C, affine=False) gives for x after the batches ``steps``."""
    bn = torch.nn.BatchNorm2d(x.shape[1], affine=False, momentum=momentum, dtype=torch.float64)
    for batch in steps:
        bn(torch.from_numpy(np.asarray(batch, np.float64)))
    xt = torch.from_numpy(x.astype(np.float64))
    y = bn(xt).detach().numpy()
    var_b, mean = torch.var_mean(xt, dim=(0, 2, 3), correction=0)
    var_u = torch.var(xt, dim=(0, 2, 3), correction=1)
    columns = [mean, var_b, var_u, bn.running_mean, bn.running_var]
    rows = [torch_printed([col[c].item() for col in columns]) for c in range(x.shape[1])]
    return {"y": torch_printed(y), "rows": rows}


def reset_playground(page) -> None:
    """The blog's tensor, a fresh module, training mode, torch's defaults."""
    root = live(page, "playground")
    root.get_by_role("button", name="The blog's tensor").click()
    root.get_by_label("None (cumulative average)").uncheck()
    root.get_by_label("momentum", exact=True).fill("0.1")
    root.get_by_label("ε (eps)", exact=True).fill("1e-5")
    root.get_by_label("training mode, bn.train()").check()
    root.get_by_role("button", name="Reset running statistics").click()


def test_playground_opens_with_what_pytorch_prints(browser, base_url):
    page, log = open_page(browser, base_url, PLAYGROUND)
    try:
        page.wait_for_function("() => window.bnlibjs && window.bnlibjs.instances.length > 0")
        shown = shown_numbers(page)
    finally:
        page.context.close()
    # the chapter's own cell: bn = torch.nn.BatchNorm2d(C, affine=False); y_torch = bn(x)
    bn = torch.nn.BatchNorm2d(2, affine=False)
    y_torch = bn(torch.from_numpy(BLOG_X)).detach().numpy()
    assert shown["y"] == torch_printed(y_torch)
    assert [row[3:] for row in shown["rows"]] == [
        torch_printed([bn.running_mean[c].item(), bn.running_var[c].item()]) for c in range(2)
    ]
    assert shown == {"alert": "", **torch_expected(BLOG_X)}
    assert log.errors == []


def test_typing_into_the_grid_recomputes(playground_page):
    reset_playground(playground_page)
    root = live(playground_page, "playground")
    x = BLOG_X.astype(np.float64).copy()
    for (n, c, h, w), value in [
        ((1, 1, 1, 0), "7"),
        ((0, 0, 0, 1), "-2.5"),
        ((1, 0, 1, 1), "1e-3"),
    ]:
        cell = root.get_by_label(f"x, image {n}, channel {c}, row {h}, column {w}", exact=True)
        cell.fill(value)
        x[n, c, h, w] = float(value)
        assert shown_numbers(playground_page) == {"alert": "", **torch_expected(x)}
    before = shown_numbers(playground_page)
    cell.fill("abc")  # not a number: marked, and nothing changes
    assert cell.get_attribute("aria-invalid") == "true"
    assert shown_numbers(playground_page) == before


def test_shape_and_one_value_per_channel(playground_page):
    reset_playground(playground_page)
    root = live(playground_page, "playground")
    for label in ("images N", "height H", "width W"):
        root.get_by_label(label, exact=True).fill("1")
    shown = shown_numbers(playground_page)
    assert shown["alert"].startswith(TORCH_WORDS) and set(shown["y"]) == {"—"}
    root.get_by_label("evaluation mode, bn.eval()").check()  # running statistics: fine
    x = page_x(playground_page)
    assert x.shape == (1, 2, 1, 1)
    shown = shown_numbers(playground_page)
    assert shown["alert"] == ""
    assert shown["y"] == torch_printed(x / np.sqrt(1 + 1e-5))  # fresh module: 0 and 1
    root.get_by_label("channels C", exact=True).fill("3")
    assert len(shown_numbers(playground_page)["rows"]) == 3


def page_x(page) -> np.ndarray:
    state = page.evaluate(
        f"() => {{ const s = {instance(page, 'playground')}.state();"
        " return {shape: s.shape, x: Array.from(s.x)}; }"
    )
    return np.array(state["x"]).reshape(state["shape"])


@pytest.mark.parametrize("momentum", ["0.3", "None"])
def test_another_batch_moves_the_running_statistics_as_torch(playground_page, momentum):
    reset_playground(playground_page)
    root = live(playground_page, "playground")
    if momentum == "None":
        root.get_by_label("None (cumulative average)").check()
    else:
        root.get_by_label("momentum", exact=True).fill(momentum)
    batches = [page_x(playground_page)]
    for _ in range(3):
        root.get_by_role("button", name="Another batch").click()
        batches.append(page_x(playground_page))
    assert not np.array_equal(batches[-1], batches[-2])  # a new batch each time
    p = None if momentum == "None" else float(momentum)
    expected = torch_expected(batches[-1], momentum=p, steps=batches[:-1])
    assert shown_numbers(playground_page) == {"alert": "", **expected}


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


# -- language, keyboard, screen readers, Jupyter ------------------------------------------------


def test_labels_follow_the_page_language(playground_page):
    labels = playground_page.evaluate(
        """() => {
            document.documentElement.lang = 'zh-CN';
            const box = document.createElement('div');
            box.innerHTML = '<div data-bnbook-live="playground"></div>'
                          + '<div data-bnbook-live="momentum"></div>';
            document.body.append(box);
            const made = window.bnlibjs.mount(box);
            const text = box.innerText;
            box.remove();
            document.documentElement.lang = 'en';
            return {count: made.length, text};
        }"""
    )
    assert labels["count"] == 2
    for term in (
        "批量归一化",
        "运行均值",
        "运行方差",
        "动量",
        "训练模式",
        "评估模式",
        "均值",
        "输出",
    ):
        assert term in labels["text"], term
    assert "running statistics" not in labels["text"]


def axe_violations(page, dark: bool) -> dict:
    """axe-core's violations of AXE_TAGS in the page's playground and explorers."""
    axe = ROOT / "node_modules" / "axe-core" / "axe.min.js"
    if not axe.exists():
        unavailable("node_modules/axe-core is missing: run `npm ci` (make book does)")
    if dark:
        page.evaluate("() => document.documentElement.dataset.theme = 'dark'")
    page.add_script_tag(path=str(axe))
    return page.evaluate(
        """async (tags) => {
            const result = await axe.run({include: [['.bnbook-live']]},
                                         {runOnly: {type: 'tag', values: tags}});
            const checked = result.passes.reduce((k, rule) => k + rule.nodes.length, 0);
            return {checked, violations: result.violations.map(v => ({id: v.id, nodes: v.nodes
                .map(n => n.target.join(' ') + ': ' + n.failureSummary).slice(0, 3)}))};
        }""",
        AXE_TAGS,
    )


PAGE_CHECK = """() => ({
    api: typeof window.bnlibjs?.forward + typeof window.bnlibjs?.backward,
    mounted: window.bnlibjs.instances.map(i => i.name),
    asked: [...document.querySelectorAll('[data-bnbook-live]')].map(e => e.dataset.bnbookLive),
    controls: [...document.querySelectorAll('.bnbook-live input, .bnbook-live button')]
        .map(e => ({
            type: e.type,
            named: !!(e.getAttribute('aria-label') || e.labels?.length || e.textContent.trim()),
            valuetext: e.getAttribute('aria-valuetext'),
            tabbable: e.tabIndex >= 0,
        })),
    liveRegions: document.querySelectorAll('.bnbook-live [aria-live]').length,
    duplicateIds: [...document.querySelectorAll('.bnbook-live [id]')].map(e => e.id)
        .filter(id => document.querySelectorAll(`[id="${id}"]`).length > 1),
    groupsNamedByOwnTitle: [...document.querySelectorAll('.bnbook-live [role="group"]')]
        .every(g => g.querySelector('#' + g.getAttribute('aria-labelledby'))),
})"""


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
@pytest.mark.parametrize("path", LIVE_PAGES)
def test_page_has_bnlibjs_named_controls_and_no_wcag_violation(browser, base_url, path, dark):
    """window.bnlibjs is there and mounted every element that asks; every control is in the
    tab order with an accessible name, every slider has a value text, the numbers are in a
    live region; and axe-core finds no WCAG 2.2 AA violation in them, light and dark."""
    page, log = open_page(browser, base_url, path)
    try:
        state = page.evaluate(PAGE_CHECK)
        result = axe_violations(page, dark)
    finally:
        page.context.close()
    assert state["api"] == "functionfunction"
    assert state["asked"] and state["mounted"] == state["asked"]
    assert state["controls"] and state["liveRegions"] >= 1
    assert state["duplicateIds"] == [] and state["groupsNamedByOwnTitle"]
    assert all(c["named"] and c["tabbable"] for c in state["controls"])
    assert all(c["valuetext"] for c in state["controls"] if c["type"] == "range")
    assert log.errors == [] and log.failed == [] and log.offsite == []
    assert result["checked"] > 20  # axe did look at the controls
    assert result["violations"] == [], json.dumps(
        result["violations"], indent=1, ensure_ascii=False
    )


def test_jupyter_shows_nothing_broken(site):
    """In a downloaded notebook the page's elements are dropped (their Markdown cells are
    tagged page-only) or stay empty <div>s, which Jupyter renders as nothing; the explorers
    for Jupyter are the code cells beside them."""
    nbformat = pytest.importorskip("nbformat")
    jupyter_twins = {
        EXPLORERS["eps"]: ["widgets.eps_explorer()"],
        EXPLORERS["momentum"]: ["widgets.momentum_explorer()", "widgets.batch_size_explorer()"],
    }
    for path in LIVE_PAGES:
        notebook = nbformat.read(SITE / "_sources" / path.replace(".html", ".ipynb"), 4)
        for cell in notebook.cells:
            for match in re.finditer(r"<div[^>]*data-bnbook-live[^>]*>(.*?)</div>", cell.source):
                assert cell.cell_type == "markdown" and match.group(1) == "", path
        code = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "code")
        assert all(call in code for call in jupyter_twins.get(path, [])), path
    for path in LIVE_PAGES:  # and in the chapters' sources, a cell of their own, page-only
        source = (ROOT / path.replace(".html", ".md")).read_text(encoding="utf-8")
        cells = re.findall(
            r'\+\+\+ \{"tags": \["page-only"\]\}\n\n(<div[^\n]*></div>)\n\n(?:\+\+\+|```)', source
        )
        assert cells and all("data-bnbook-live" in div for div in cells), path
