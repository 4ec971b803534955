"""The explorers in bnbook.widgets, driven programmatically: set a slider, check the plot.

Each test recomputes the expected data independently (bnlib or PyTorch called directly, not
through the widget's helpers) and compares it with the data on the widget's figure.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from bnbook import explorer_data, widgets
from bnbook.simulate import (
    POPULATION_MEAN,
    POPULATION_STD,
    _trials_as_channels,
    drifting_batches,
)


def stairs_values(artist) -> np.ndarray:
    return np.asarray(artist.get_data().values)


def link_between(source: tuple, target: tuple) -> bool:
    """Whether a browser-side link (jslink) joins the two (widget, trait) pairs."""
    from ipywidgets.widgets.widget import _instances
    from ipywidgets.widgets.widget_link import Link

    for w in list(_instances.values()):
        if isinstance(w, Link) and w.source == source and w.target == target:
            return True
    return False


# -- ε ------------------------------------------------------------------------------------


@pytest.mark.parametrize("eps", [1e-7, 1e-3, 0.5])
def test_eps_explorer_plots_bnlib_output(eps):
    figures_before = plt.get_fignums()
    explorer = widgets.eps_explorer()
    figure, image_before = explorer.figure, explorer.image.value
    explorer.slider.value = eps
    assert explorer.figure is figure  # the same figure, redrawn
    assert explorer.image.value != image_before
    x = explorer_data.eps_input()
    y = torch.nn.functional.batch_norm(
        torch.from_numpy(x.copy()), None, None, training=True, eps=eps
    ).numpy()[:, :, 0, 0]
    for c, dots in enumerate(explorer.artists["outputs"]):
        np.testing.assert_allclose(dots.get_xdata(), y[:, c], atol=1e-9)
        # the closed form: a channel of variance s² comes out with std √(s²/(s² + ε))
        s = explorer_data.EPS_CHANNEL_STDS[c]
        assert f"{np.sqrt(s**2 / (s**2 + eps)):.3f}" in explorer.caption.value
    assert plt.get_fignums() == figures_before  # nothing left for the notebook to print


@pytest.mark.parametrize("eps, words", [(1e-10, "far below"), (1.0, "shrinks")])
def test_eps_extremes_show_a_message(eps, words):
    explorer = widgets.eps_explorer(eps=eps)
    assert words in explorer.message.value
    explorer.slider.value = 1e-5
    assert explorer.message.value == ""


# -- momentum ---------------------------------------------------------------------------


@pytest.mark.parametrize("momentum", [0.0, 0.05, 0.3, 1.0])
def test_momentum_explorer_plots_torch_running_mean(momentum):
    explorer = widgets.momentum_explorer()
    explorer.slider.value = momentum
    batches, population = drifting_batches(explorer_data.MOMENTUM_BATCH_SIZE, seed=0)
    bn = torch.nn.BatchNorm2d(1, momentum=momentum, affine=False).double()
    expected = []
    for x in batches:
        bn(torch.from_numpy(x.astype(np.float64)))
        expected.append(bn.running_mean[0].item())
    running = explorer.artists["running_mean"].get_ydata()
    np.testing.assert_allclose(running, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        explorer.artists["error"].get_ydata(), running - population, atol=1e-12
    )
    window = (np.asarray(expected) - population)[explorer_data.MOMENTUM_WINDOW]
    assert f"by {-window.mean():.2f} on average" in explorer.caption.value


@pytest.mark.parametrize("momentum, words", [(0.0, "never move"), (1.0, "last batch")])
def test_momentum_extremes_show_a_message(momentum, words):
    explorer = widgets.momentum_explorer(momentum=0.1)
    assert explorer.message.value == ""
    explorer.slider.value = momentum
    assert words in explorer.message.value


# -- batch size ---------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [2, 16, 128])
def test_batch_size_explorer_plots_bnlib_statistics(batch_size):
    explorer = widgets.batch_size_explorer(batch_size=8)
    explorer.slider.value = batch_size
    # the batches simulate.probe_outputs draws: (N, trials, 1, 1), trials as channels
    mu, sigma = POPULATION_MEAN[0], POPULATION_STD[0]
    stream, _, _ = _trials_as_channels(
        explorer_data.BATCH_TRIALS, batch_size, (mu,), (sigma,), 1, 1, batch_size
    )
    values = stream[:, :, 0, 0].T.astype(np.float64)  # (trials, N)
    means, variances = values.mean(axis=1), values.var(axis=1)
    probe = mu + sigma
    values[:, 0] = probe
    outputs = (probe - values.mean(axis=1)) / np.sqrt(values.var(axis=1) + 1e-5)
    for key, data in (("mean", means), ("var", variances), ("output", outputs)):
        edges = explorer.artists[key].get_data().edges
        expected = np.histogram(np.clip(data, edges[0], edges[-1]), edges)[0] / data.size
        # float32 inputs: allow a value or two to fall in the neighbouring bin
        assert np.abs(stairs_values(explorer.artists[key]) - expected).sum() <= 2 / data.size
    if batch_size == 2:  # two values always normalize to −1 and +1
        assert "−1 and +1" in explorer.message.value
        assert stairs_values(explorer.artists["output"]).sum() == pytest.approx(1.0)


def test_batch_size_one_shows_bnlib_error_as_a_message():
    explorer = widgets.batch_size_explorer(batch_size=8)
    before = explorer.image.value
    explorer.slider.value = 1
    assert "Expected more than 1 value per channel" in explorer.message.value
    assert "Traceback" not in explorer.message.value
    assert stairs_values(explorer.artists["mean"]).sum() == 0  # no stale histogram
    assert explorer.image.value != before
    explorer.slider.value = 4
    assert stairs_values(explorer.artists["mean"]).sum() == pytest.approx(1.0)


# -- the static explorer (chapter 6's training explorer uses it) -----------------------------


def test_static_explorer_links_slider_to_precomputed_frames():
    frames = [("first", "", b"\x89PNG one"), ("second", "", b"\x89PNG two"), ("", "no run", None)]
    box = widgets.static_explorer("title", ["a", "b", "c"], frames, 1, "lr_explorer", 400)
    assert list(box.slider.options) == ["a", "b", "c"] and box.slider.index == 1
    assert box.stack.selected_index == 1 and len(box.stack.children) == 3
    assert link_between((box.slider, "index"), (box.stack, "selected_index"))
    assert bytes(box.stack.children[0].children[-1].value) == b"\x89PNG one"
    assert len(box.stack.children[2].children) == 1  # a frame that cannot be drawn: its message
    assert "no run" in box.stack.children[2].children[0].value
    assert "lr_explorer()" in box.children[-1].value  # says how to run it live
    with pytest.raises(ValueError, match="one frame per label"):
        widgets.static_explorer("title", ["a"], frames, 0, "x", 400)
