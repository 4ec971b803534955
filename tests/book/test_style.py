"""Every figure of the book's modules is readable where it is shown: no wider than the text
column (``bnbook.style.FULL_WIDTH``), no text smaller than the body text
(``bnbook.style.too_small_texts``), laid out at ``style.DPI``; and showing a figure the
book's way gives a bitmap at ``PIXEL_RATIO`` times its displayed size (IPython's retina
format, as ``style.use_book_figures`` selects it)."""

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from bnbook import after_figures, beyond_figures, plots, simulate, style, train
from bnbook import train_figures as figures
from tests.cases import random_input

BLOG_X = np.array(
    [[[[1, 1], [1, 2]], [[-1, 1], [0, 1]]], [[[0, -1], [2, 2]], [[0, -1], [3, 1]]]],
    dtype=np.float32,
)


@pytest.fixture(scope="module")
def histories():
    data = train.load_digits_split()
    return [
        train.train(train.make_cnn(norm, seed=0), data, 0.05, 10, 16, 0, eval_every=5,
                    record_activations_every=5)
        for norm in ("batch", "none")
    ]  # fmt: skip


def book_figures(histories):
    """One of every figure the book's modules draw, from small inputs."""
    rng = np.random.default_rng(0)
    seeds3 = rng.uniform(0.1, 1, (3, 3))
    by_norm = {"batch": histories[:1], "none": histories[1:]}
    traces = [simulate.simulate_running_stats(p, 8, 30, seed=0) for p in (0.1, None)]
    batches, mean = simulate.drifting_batches(8, steps=40, seed=1)
    drift = [simulate.track_running_stats(batches, p) for p in (0.1, None)]
    x = random_input(5, (4, 3, 2, 2), np.float64, min_scale=0.2)
    z = rng.standard_normal((20, 4, 2, 2))
    yield "tensor_pooling", plots.tensor_pooling_figure(BLOG_X)
    yield "unbiased_pitfall", plots.unbiased_pitfall_figure([2, 4, 8, 16, 64])
    yield "eps_sweep", plots.eps_sweep_figure([1.0, 1e-2, 1e-4], np.logspace(-8, 0, 9))
    yield "normalization_pooling", plots.normalization_pooling_figure((2, 4, 2, 2), 2)
    yield "backward_graph", plots.backward_graph_figure()
    yield (
        "gradient_projection",
        plots.gradient_projection_figure(
            x, rng.standard_normal(x.shape), rng.uniform(0.5, 2, 3), np.logspace(-6, 0, 7)
        ),
    )
    yield (
        "running_stats",
        plots.running_stats_figure(
            traces, np.array(simulate.POPULATION_MEAN), np.array(simulate.POPULATION_STD) ** 2
        ),
    )
    yield "ema_weights", plots.ema_weights_figure([0.01, 0.1, 0.3], steps=60)
    spreads = [simulate.batch_stat_spread(n, trials=50) for n in (2, 8)]
    yield "batch_spread", plots.batch_spread_figure(spreads, simulate.POPULATION_STD)
    probe, ideal = simulate.probe_outputs(4, trials=30)
    yield "probe_outputs", plots.probe_outputs_figure({4: probe}, ideal[0])
    yield "drift", plots.drift_figure(drift, mean, drift[0].batch_mean[:, 0])
    yield "digits", figures.digits_figure(rng.standard_normal((10, 8, 8)), range(10))
    yield (
        "sweep",
        figures.sweep_figure((0.01, 0.1, 1.0), {"batch": seeds3, "none": seeds3}, "lr", "t"),
    )
    yield "curves", figures.curves_figure(by_norm, "title")
    yield (
        "activations",
        figures.activations_figure(
            {"none": histories[1], "batch": histories[0]}, ("block 1", "block 2", "block 3")
        ),
    )
    yield (
        "batch_size",
        figures.batch_size_figure((2, 8, 32), {"a": {"batch": seeds3}, "b": {"layer": seeds3}}),
    )
    pair = (np.array([0.5, 0.3, 0.2]), np.array([0.6, 0.4, 0.3]))
    yield "batch_spread_6", figures.batch_spread_figure((1, 2, 4), {"x": pair, "y": pair}, 64)
    landscape = {"batch": {"loss_range": seeds3, "smoothness": seeds3}}
    yield "landscape", figures.landscape_figure((0, 50, 100), landscape)
    lr_figure, _, draw = figures._lr_figure({0.1: by_norm, 1.0: by_norm})
    draw(0.1)
    yield "lr_explorer", lr_figure
    batches_ = {"a": (z[:8], z[:8]), "b": (z[8:16], z[8:16])}
    yield "affine", after_figures.affine_figure(z, z, batches_, (0, 1, 2), [1, 1, 1], [0, 0, 0])
    yield "padding", after_figures.padding_error_figure(rng.uniform(0, 1, (4, 4)))
    images = [(f"shift {i}", rng.uniform(0, 16, (8, 8))) for i in range(4)]
    yield "shift", after_figures.shift_figure(images, rng.uniform(0, 1, (3, 3, 3)), ["a", "b", "c"])
    yield (
        "variance_error",
        after_figures.variance_error_figure(
            [1e2, 1e3, 1e4], {"one": seeds3, "two": seeds3}, 2.0**-24
        ),
    )
    yield (
        "per_device_gap",
        after_figures.per_device_gap_figure(
            [4, 2, 1], seeds3, (0, 1, 2), np.array([0.2, 0.4, 0.6])
        ),
    )
    yield "per_device_training", after_figures.per_device_training_figure(by_norm)
    three = {"batch norm": [0.8, 0.9, 0.85], "batch renorm": [0.9, 0.9, 0.95], "group norm": [0.7]}
    yield "dots", beyond_figures.dots_figure({"a": three, "b": three}, ["%", "loss"])
    depth = {"batch norm": rng.uniform(1, 5, (3, 8)), "no norm": rng.uniform(1, 500, (3, 8))}
    panels = {"lr = 0.1": three, "lr = 1": three}
    yield "depth", beyond_figures.depth_figure(depth, panels, "v", "%")
    matrices = {"before": np.eye(8), "after batch norm:\ncovariance": np.eye(8)}
    yield "matrices", beyond_figures.matrices_figure(matrices, "correlation / covariance")


def test_every_book_figure_fits_the_column_with_body_size_text(histories):
    problems = []
    for name, fig in book_figures(histories):
        if fig.get_figwidth() > style.FULL_WIDTH + 1e-9:
            problems.append(f"{name}: {fig.get_figwidth():.2f} in wide")
        if fig.dpi != style.DPI:
            problems.append(f"{name}: laid out at {fig.dpi} dpi")
        problems += [f"{name}: {text}" for text in style.too_small_texts(fig)]
        plt.close(fig)
    assert problems == []


def test_too_small_texts_finds_small_text():
    with style.figure_style():
        fig, ax = plt.subplots()
        ax.set_title("fine")
        ax.set_xlabel("small", fontsize=8)
    assert style.too_small_texts(fig) == ["8 pt: 'small'"]
    plt.close(fig)


def test_the_style_is_a_context_not_a_global_setting():
    before = dict(matplotlib.rcParams)
    import importlib

    for module in (style, plots, figures, after_figures, beyond_figures):
        importlib.reload(module)
    assert dict(matplotlib.rcParams) == before
    with style.figure_style():
        assert matplotlib.rcParams["figure.dpi"] == style.DPI
    assert matplotlib.rcParams["font.size"] == before["font.size"]


def test_use_book_figures_shows_a_bitmap_at_twice_its_displayed_width():
    from IPython.core.formatters import PNGFormatter
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    style.use_book_figures()
    with style.figure_style():
        fig, ax = plt.subplots(figsize=(style.FULL_WIDTH, 2))
        ax.plot([0, 1], [0, 1])
    formatter = shell.display_formatter.formatters["image/png"]
    assert isinstance(formatter, PNGFormatter)
    data, metadata = formatter(fig)
    import base64
    import io

    from PIL import Image

    width, _ = Image.open(io.BytesIO(base64.b64decode(data))).size
    assert width == 2 * metadata["width"]
    # shown no wider than the text column, which the layout test measures in the browser
    assert metadata["width"] <= style.TEXT_WIDTH_PX
    plt.close(fig)
    torch.manual_seed(0)  # (the shell is shared: leave nothing else behind)
