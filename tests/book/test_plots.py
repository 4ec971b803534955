"""Part I's figures (bnbook.tensor_figures, variance_figures, running_figures,
backward_figures): each figure plots exactly what bnlib (and torch) compute."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from matplotlib.text import Annotation

import bnlib
from bnbook import backward_figures, running_figures, simulate, tensor_figures, variance_figures
from tests.cases import random_input

BLOG_X = np.array(
    [[[[1, 1], [1, 2]], [[-1, 1], [0, 1]]], [[[0, -1], [2, 2]], [[0, -1], [3, 1]]]],
    dtype=np.float32,
)


def texts_by_gid(fig: Figure) -> dict[str, str]:
    return {t.get_gid(): t.get_text() for ax in fig.axes for t in ax.texts if t.get_gid()}


def line_by_gid(fig: Figure, gid: str):
    (line,) = [ln for ax in fig.axes for ln in ax.get_lines() if ln.get_gid() == gid]
    return line


@pytest.mark.parametrize("shape", [(2, 2, 2, 2), (3, 1, 2, 3), (1, 3, 3, 2)])
def test_tensor_figure_places_every_value_and_the_channel_statistics(shape):
    rng = np.random.default_rng(sum(shape))
    x = BLOG_X if shape == BLOG_X.shape else rng.integers(-3, 4, shape).astype(np.float32)
    texts = texts_by_gid(tensor_figures.tensor_pooling_figure(x))
    n_img, n_ch, h, w = x.shape
    for idx in np.ndindex(x.shape):
        assert float(texts["x[{},{},{},{}]".format(*idx)]) == x[idx]
    rows = x.transpose(1, 0, 2, 3).reshape(n_ch, -1)
    for c, j in np.ndindex(rows.shape):
        assert float(texts[f"row[{c},{j}]"]) == rows[c, j]
    # the header of channel c shows torch's statistics of exactly the values framed under it
    xt = torch.from_numpy(x)
    for c in range(n_ch):
        mean = xt[:, c].mean().item()
        var = xt[:, c].var(correction=0).item()
        assert texts[f"stats[{c}]"] == f"channel {c}\nμ = {mean:.4g}, σ² = {var:.4g}"


def test_tensor_figure_rejects_other_ranks():
    with pytest.raises(ValueError, match="shape"):
        tensor_figures.tensor_pooling_figure(np.zeros((2, 2, 4), np.float32))


def test_unbiased_normalization_variance_is_m_minus_1_over_m_and_matches_torch():
    ms = [2, 3, 8, 100, 1000]
    m, v = variance_figures.unbiased_normalization_variance(ms, eps=1e-5, seed=3)
    np.testing.assert_array_equal(m, ms)
    np.testing.assert_allclose(v, (m - 1) / m, rtol=1e-3)
    # the same experiment in torch: normalize with torch's default (unbiased) variance
    rng = np.random.default_rng(3)
    for k, mk in enumerate(ms):
        xt = torch.from_numpy(rng.standard_normal((mk, 1, 1, 1)))
        y = (xt - xt.mean()) / torch.sqrt(xt.var() + 1e-5)
        assert v[k] == pytest.approx(y.var(correction=0).item(), rel=1e-12)


def test_unbiased_pitfall_figure_plots_theory_and_measurements():
    ms = [2, 4, 8, 64]
    fig = variance_figures.unbiased_pitfall_figure(ms, seed=1)
    theory = line_by_gid(fig, "theory")
    mx, my = theory.get_data()
    np.testing.assert_array_equal(mx, np.arange(2, 65))
    np.testing.assert_allclose(my, (mx - 1) / mx)
    mx, my = line_by_gid(fig, "measured").get_data()
    m, v = variance_figures.unbiased_normalization_variance(ms, seed=1)
    np.testing.assert_array_equal(mx, m)
    np.testing.assert_array_equal(my, v)


def test_output_std_vs_eps_matches_torch_and_theory():
    variances = [0.0, 1e-6, 1e-2, 4.0]
    eps = [1e-8, 1e-5, 1e-1]
    std = variance_figures.output_std_vs_eps(variances, eps)
    var = np.array(variances).reshape(-1, 1)
    e = np.array(eps).reshape(1, -1)
    np.testing.assert_allclose(std, np.sqrt(var / (var + e)), rtol=1e-6, atol=1e-12)
    assert np.all(std[0] == 0)  # a constant channel: all zeros, never NaN
    # torch's BatchNorm2d on a tensor with these channel variances gives the same std
    x = 3 + torch.randn(4, 4, 4, 4, dtype=torch.float64, generator=torch.manual_seed(0))
    x0 = (x - x.mean((0, 2, 3), keepdim=True)) / x.std((0, 2, 3), correction=0, keepdim=True)
    x = 3 + x0 * torch.tensor(variances, dtype=torch.float64).sqrt().reshape(1, -1, 1, 1)
    for k, ek in enumerate(eps):
        y = torch.nn.BatchNorm2d(4, eps=ek, affine=False, dtype=torch.float64)(x)
        torch_std = y.std((0, 2, 3), correction=0).detach().numpy()
        np.testing.assert_allclose(std[:, k], torch_std, rtol=1e-6, atol=1e-12)


def test_eps_sweep_figure_lines_are_the_computed_stds():
    variances = [1e-6, 1e-3, 1.0]
    eps = np.logspace(-8, 0, 9)
    fig = variance_figures.eps_sweep_figure(variances, eps)
    assert fig.axes[0].get_xscale() == "log"
    expected = variance_figures.output_std_vs_eps(variances, eps)
    for k, v in enumerate(variances):
        ex, ey = line_by_gid(fig, f"var={v:g}").get_data()
        np.testing.assert_array_equal(ex, eps)
        np.testing.assert_array_equal(ey, expected[k])
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert labels[-1] == "PyTorch's default ε = $10^{-5}$"


def test_batch_norm_of_blog_tensor_matches_torch():
    """The chapter's first claim, kept here too: bnlib equals torch on the blog's tensor."""
    y = torch.nn.BatchNorm2d(2, affine=False)(torch.from_numpy(BLOG_X)).detach().numpy()
    np.testing.assert_allclose(bnlib.batch_norm(BLOG_X, training=True), y, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "call",
    [
        lambda: variance_figures.unbiased_normalization_variance([1, 4]),
        lambda: variance_figures.output_std_vs_eps([-1.0], [1e-5]),
    ],
)
def test_bad_input_is_a_clear_value_error(call):
    with pytest.raises(ValueError, match="must be"):
        call()


def torch_layer(layer: str, shape, groups: int) -> torch.nn.Module:
    """The torch module of each row of chapter 1's family table, float64, no affine."""
    c, f64 = shape[1], torch.float64
    return {
        "BatchNorm2d": lambda: torch.nn.BatchNorm2d(c, affine=False, dtype=f64),
        "LayerNorm": lambda: torch.nn.LayerNorm(shape[1:], elementwise_affine=False, dtype=f64),
        "InstanceNorm2d": lambda: torch.nn.InstanceNorm2d(c, dtype=f64),
        "GroupNorm": lambda: torch.nn.GroupNorm(groups, c, affine=False, dtype=f64),
    }[layer]()


def normalize_each_group(x: np.ndarray, ids: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """(x − μ)/√(σ² + ε) with μ, σ² (biased) computed over each set of equal ids alone."""
    out = np.empty_like(x)
    for k in np.unique(ids):
        values = x[ids == k]
        out[ids == k] = (values - values.mean()) / np.sqrt(values.var() + eps)
    return out


@pytest.mark.parametrize("layer", list(tensor_figures.POOLING_LAYERS))
@pytest.mark.parametrize(("shape", "groups"), [((2, 4, 2, 2), 2), ((3, 6, 2, 3), 3)])
def test_pooling_ids_are_the_groups_torch_normalizes(layer, shape, groups):
    """torch's output is exactly each id-group of the input normalized on its own: a
    coarser or finer grouping than torch's gives different numbers and fails."""
    ids = tensor_figures.pooling_ids(shape, layer, groups)
    assert ids.shape == shape
    n, c, h, w = shape
    expected_count = {"BatchNorm2d": c, "LayerNorm": n, "InstanceNorm2d": n * c}
    assert len(np.unique(ids)) == expected_count.get(layer, n * groups)
    x = torch.randn(shape, dtype=torch.float64, generator=torch.manual_seed(sum(shape))) * 2 + 1
    y = torch_layer(layer, shape, groups)(x).detach().numpy()
    np.testing.assert_allclose(y, normalize_each_group(x.numpy(), ids), rtol=0, atol=1e-9)


def test_pooling_ids_check_would_catch_a_wrong_grouping():
    """The check above is not vacuous: LayerNorm's ids do not describe BatchNorm2d."""
    shape = (2, 4, 2, 2)
    x = torch.randn(shape, dtype=torch.float64, generator=torch.manual_seed(0))
    y = torch_layer("BatchNorm2d", shape, 2)(x).detach().numpy()
    wrong = normalize_each_group(x.numpy(), tensor_figures.pooling_ids(shape, "LayerNorm"))
    assert not np.allclose(y, wrong, atol=1e-3)


def test_pooling_figure_colours_every_pixel_by_its_statistic():
    shape = (2, 4, 2, 2)
    fig = tensor_figures.normalization_pooling_figure(shape, groups=2)
    assert len(fig.axes) == len(tensor_figures.POOLING_LAYERS)
    for ax, layer in zip(fig.axes, tensor_figures.POOLING_LAYERS, strict=True):
        ids = tensor_figures.pooling_ids(shape, layer, 2)
        patches = {p.get_gid(): p for p in ax.patches}
        assert len(patches) == ids.size
        colour_of_id = {}
        for idx in np.ndindex(*shape):
            patch = patches["{}:{},{},{},{}:{}".format(layer, *idx, ids[idx])]
            colour_of_id.setdefault(ids[idx], patch.get_facecolor())
            assert patch.get_facecolor() == colour_of_id[ids[idx]]
        assert len(set(colour_of_id.values())) == len(colour_of_id)  # distinct per statistic
        n_stats = len(colour_of_id)
        assert f"{n_stats} statistics × {ids.size // n_stats} values" in ax.get_title()


def test_pooling_ids_rejects_bad_input():
    with pytest.raises(ValueError, match="groups must divide"):
        tensor_figures.pooling_ids((2, 4, 2, 2), "GroupNorm", 3)
    with pytest.raises(ValueError, match="layer must be one of"):
        tensor_figures.pooling_ids((2, 4, 2, 2), "BatchNorm1d")


# -- running statistics ----------------------------------------------------------------------


def test_running_stats_figures_plot_the_simulation():
    traces = [simulate.simulate_running_stats(p, 8, 30, seed=0) for p in (0.1, None)]
    pop_mean = np.array(simulate.POPULATION_MEAN)
    pop_var = np.array(simulate.POPULATION_STD) ** 2
    fig = running_figures.running_stats_figure(traces, pop_mean, pop_var, channel=1)
    np.testing.assert_array_equal(
        line_by_gid(fig, "mean:0.1").get_ydata(), traces[0].running_mean[:, 1]
    )
    np.testing.assert_array_equal(
        line_by_gid(fig, "var:None").get_ydata(), traces[1].running_var[:, 1]
    )
    np.testing.assert_array_equal(
        line_by_gid(fig, "batch_var").get_ydata(), traces[0].batch_var[:, 1]
    )

    fig = running_figures.ema_weights_figure([0.1, 0.5], steps=20)
    np.testing.assert_allclose(line_by_gid(fig, "weights:0.5").get_ydata(), 0.5 ** np.arange(1, 21))

    spreads = [simulate.batch_stat_spread(n, trials=50) for n in (2, 8)]
    fig = running_figures.batch_spread_figure(spreads, simulate.POPULATION_STD)
    expected = [s.var_std[1] / simulate.POPULATION_STD[1] ** 2 for s in spreads]
    np.testing.assert_allclose(line_by_gid(fig, "var:c1").get_ydata(), expected)

    train, ideal = simulate.probe_outputs(4, trials=30)
    fig = running_figures.probe_outputs_figure({4: train}, ideal[0])
    np.testing.assert_array_equal(line_by_gid(fig, "probe:N=4").get_xdata(), train[:, 0])


# -- the backward pass -----------------------------------------------------------------------


def test_gradient_projection_figure_draws_the_formula():
    """Dots (Σ dx·x̂) lie on the lines (γ·ε·s³·Σ dy·x̂); crosses (Σ dx) at rounding level."""
    rng = np.random.default_rng(6)
    x = random_input(5, (4, 3, 2, 2), np.float64, min_scale=0.2)
    dy = rng.standard_normal(x.shape)
    weight = rng.uniform(0.5, 2, 3)
    eps_values = np.logspace(-6, 0, 7)
    fig = backward_figures.gradient_projection_figure(x, dy, weight, eps_values)
    lines = fig.axes[0].get_lines()
    for c in range(3):
        formula, dots, crosses = lines[3 * c : 3 * c + 3]
        np.testing.assert_array_equal(formula.get_xdata(), eps_values)
        np.testing.assert_allclose(dots.get_ydata(), formula.get_ydata(), rtol=1e-6)
        assert np.all(np.diff(np.log(formula.get_ydata())[:3]) > 0)  # rising with ε
        assert np.all(crosses.get_ydata() < 1e-12)
    plt.close(fig)


def test_backward_graph_figure_labels_every_node_and_gradient():
    fig = backward_figures.backward_graph_figure()
    texts = {t.get_text() for t in fig.axes[0].texts}
    for _, _, label, _ in backward_figures._BACKWARD_GRAPH_NODES.values():
        assert label in texts
    for gradient in backward_figures._BACKWARD_GRAPH_GRADIENTS.values():
        assert gradient in texts
    arrows = [t for t in fig.axes[0].texts if isinstance(t, Annotation)]
    assert len(arrows) == len(backward_figures._BACKWARD_GRAPH_EDGES)  # one arrow per edge
    plt.close(fig)


def test_drift_figure_draws_running_means_and_their_errors():
    batches, mean = simulate.drifting_batches(8, steps=40, seed=1)
    traces = [simulate.track_running_stats(batches, p) for p in (0.1, None)]
    fig = running_figures.drift_figure(traces, mean, traces[0].batch_mean[:, 0])
    left, right = fig.axes
    drawn = [line.get_ydata() for line in left.get_lines()[1:3]]
    errors = [line.get_ydata() for line in right.get_lines()[1:3]]
    for trace, running, error in zip(traces, drawn, errors, strict=True):
        np.testing.assert_array_equal(running, trace.running_mean[1:, 0])
        np.testing.assert_allclose(error, trace.running_mean[1:, 0] - mean)
    np.testing.assert_array_equal(left.get_lines()[3].get_ydata(), mean)
