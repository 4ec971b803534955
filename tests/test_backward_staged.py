"""bnlib.batch_norm_backward_staged against torch autograd, the compact form and finite
differences, on random shapes, dtypes, ε and affine settings drawn by hypothesis; also
bnlib.gradcheck and the chapter's two figures (bnlib.plots, "Chapter 4")."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import bnlib
from bnlib.gradcheck import numerical_gradient, relative_error
from tests.cases import GRAD_TOL, dtypes, epsilons, random_input, shapes


def random_case(seed: int, shape, dtype, affine: bool):
    """x with a per-channel offset and scale, an upstream gradient dy, and γ (or None)."""
    x = random_input(seed, shape, dtype, min_scale=0.2)
    rng = np.random.default_rng(seed + 1)
    dy = rng.standard_normal(shape).astype(dtype)
    weight = rng.uniform(0.5, 2, shape[1]).astype(dtype) if affine else None
    return x, dy, weight


def torch_grads(x, dy, weight, eps):
    """dx, dγ, dβ from torch.nn.functional.batch_norm's backward, in float64."""
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    c = x.shape[1]
    w = np.ones(c) if weight is None else weight
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    bt = torch.zeros(c, dtype=torch.float64, requires_grad=True)
    y = F.batch_norm(xt, None, None, wt, bt, training=True, eps=eps)
    y.backward(torch.tensor(dy, dtype=torch.float64))
    return xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()


@given(
    shape=shapes(),
    dtype=dtypes,
    eps=epsilons,
    affine=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_staged_matches_autograd(shape, dtype, eps, affine, seed):
    x, dy, weight = random_case(seed, shape, dtype, affine)
    got = bnlib.batch_norm_backward_staged(dy, x, weight, eps=eps)
    expected = torch_grads(x, dy, weight, eps)
    assert got[0].shape == x.shape and got[1].shape == got[2].shape == (shape[1],)
    for g, e in zip(got, expected, strict=True):
        assert g.dtype == np.dtype(dtype)
        np.testing.assert_allclose(g, e, **GRAD_TOL[dtype])


@given(
    shape=shapes(),
    dtype=dtypes,
    eps=epsilons,
    affine=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_staged_matches_compact(shape, dtype, eps, affine, seed):
    x, dy, weight = random_case(seed, shape, dtype, affine)
    staged = bnlib.batch_norm_backward_staged(dy, x, weight, eps=eps)
    compact = bnlib.batch_norm_backward(dy, x, weight, eps=eps)
    tol = dict(GRAD_TOL[dtype])
    if dtype == np.float32:
        # The compact form runs in float32 (the staged one in float64, from the same float32
        # values). In float32, x − μ loses digits when a channel's spread is small next to
        # its values (few, close values: m = 2 is the extreme), and the bracket
        # m·dy − Σdy − x̂·Σdy·x̂ cancels; the error scales with γ·s·|dy|·(1 + s·|x|), not |dx|.
        _, var = bnlib.batch_stats(x)
        s = 1 / np.sqrt(var + eps)
        gamma = np.ones(shape[1]) if weight is None else weight.astype(np.float64)
        max_abs_x = np.abs(x).max(axis=(0, *range(2, x.ndim)))
        k = gamma * s * (1 + s * max_abs_x)
        tol["atol"] = max(tol["atol"], 1e-5 * k.max() * np.abs(dy).max())
    for s, c in zip(staged, compact, strict=True):
        assert s.dtype == c.dtype == np.dtype(dtype)
        np.testing.assert_allclose(s, c, **tol)


@given(
    # small (2·x.size forward passes each); m = 2 is left out: there x̂ = ±σ/√(σ² + ε) hardly
    # depends on x, dx is O(ε), and finite differences see only their own rounding noise
    shape=shapes(max_side=3, max_spatial_dims=1, min_values=3),
    eps=st.sampled_from([1e-5, 1e-2, 1.0]),
    affine=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_staged_matches_finite_differences(shape, eps, affine, seed):
    x, dy, weight = random_case(seed, shape, np.float64, affine)
    bias = np.linspace(-1, 1, shape[1])

    def loss(x=x, weight=weight, bias=bias):
        y = bnlib.batch_norm(x, weight=weight, bias=bias, training=True, eps=eps)
        return float((y * dy).sum())

    # central differences with h = 1e-6: truncation O(h²) plus rounding ~1e-16·|L|/h
    noise = 1e-8 * (
        1 + np.abs(bnlib.batch_norm(x, None, None, weight, bias, True, eps=eps) * dy).sum()
    )

    def assert_close(analytic, numeric):
        assert np.abs(analytic - numeric).max() <= 1e-6 * np.abs(numeric).max() + noise

    dx, dweight, dbias = bnlib.batch_norm_backward_staged(dy, x, weight, eps=eps)
    assert_close(dx, numerical_gradient(loss, x))
    assert_close(dbias, numerical_gradient(lambda b: loss(bias=b), bias))
    if affine:
        assert_close(dweight, numerical_gradient(lambda w: loss(weight=w), weight))


@given(
    shape=shapes(),
    eps=epsilons,
    affine=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_staged_gradient_properties(shape, eps, affine, seed):
    """Per channel: Σ dx = 0 and Σ dx·x̂ = γ·ε·s³·Σ dy·x̂ (zero when ε = 0)."""
    x, dy, weight = random_case(seed, shape, np.float64, affine)
    dx, dweight, dbias = bnlib.batch_norm_backward_staged(dy, x, weight, eps=eps)
    axes = (0, *range(2, x.ndim))
    xhat = bnlib.batch_norm(x, training=True, eps=eps)
    _, var = bnlib.batch_stats(x)
    s = (var + eps) ** -0.5
    gamma = np.ones(shape[1]) if weight is None else weight
    # rounding scale of the sums: the terms γ·s·dy that cancel in them, m of them
    scale = (gamma * s).max() * np.abs(dy).max() * np.abs(xhat).max() * x[:, 0].size
    np.testing.assert_allclose(dx.sum(axis=axes), 0, atol=1e-12 * scale)
    np.testing.assert_allclose(
        (dx * xhat).sum(axis=axes), gamma * eps * s**3 * dweight, rtol=1e-6, atol=1e-12 * scale
    )
    np.testing.assert_allclose(dweight, (dy * xhat).sum(axis=axes), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dbias, dy.sum(axis=axes), rtol=1e-12, atol=1e-12)


class StagedBatchNorm(torch.autograd.Function):
    """bnlib's forward with the staged backward, as a torch op for gradcheck."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        ctx.save_for_backward(x, weight)
        ctx.eps = eps
        y = bnlib.batch_norm(x.numpy(), weight=weight.numpy(), bias=bias.numpy(), training=True,
                             eps=eps)  # fmt: skip
        return torch.from_numpy(y)

    @staticmethod
    def backward(ctx, dy):
        x, weight = ctx.saved_tensors
        grads = bnlib.batch_norm_backward_staged(dy.numpy(), x.numpy(), weight.numpy(), ctx.eps)
        return (*(torch.from_numpy(g) for g in grads), None)


@pytest.mark.parametrize("shape", [(2, 3, 2, 2), (5, 2), (3, 1, 4), (1, 2, 3, 1)])
@pytest.mark.parametrize("eps", [1e-5, 0.5])
def test_staged_passes_torch_gradcheck(shape, eps):
    x, _, weight = random_case(sum(shape), shape, np.float64, affine=True)
    inputs = [
        torch.tensor(x, requires_grad=True),
        torch.tensor(weight, requires_grad=True),
        torch.linspace(-1, 1, shape[1], dtype=torch.float64, requires_grad=True),
    ]
    assert torch.autograd.gradcheck(
        lambda x, w, b: StagedBatchNorm.apply(x, w, b, eps), inputs, eps=1e-6, atol=1e-6
    )


def test_staged_does_not_modify_its_inputs():
    x, dy, weight = random_case(0, (3, 2, 2, 2), np.float32, affine=True)
    copies = [a.copy() for a in (x, dy, weight)]
    bnlib.batch_norm_backward_staged(dy, x, weight)
    for original, copy in zip((x, dy, weight), copies, strict=True):
        np.testing.assert_array_equal(original, copy)


def test_staged_constant_channel_is_finite_and_centred():
    """σ² = 0: x̂ = 0 and dx = γ·(dy − mean dy)/√ε, the case ε exists for."""
    x = np.full((4, 1, 3), 2.5)
    dy = np.random.default_rng(1).standard_normal(x.shape)
    dx, dweight, dbias = bnlib.batch_norm_backward_staged(dy, x, np.array([1.5]), eps=1e-4)
    np.testing.assert_allclose(dx, 1.5 / np.sqrt(1e-4) * (dy - dy.mean()), rtol=1e-12)
    assert dweight[0] == 0.0
    np.testing.assert_allclose(dbias, [dy.sum()], rtol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(dy=np.ones((2, 3, 2)), x=np.ones((2, 3, 3))), ValueError, "shape of x"),
        (dict(dy=np.ones((2, 3)), x=np.ones((2, 3)), eps=0.0), ValueError, "eps"),
        (dict(dy=np.ones((2, 3)), x=np.ones((2, 3)), eps=-1e-5), ValueError, "eps"),
        (dict(dy=np.ones((2, 3)), x=np.ones((2, 3)), weight=np.ones(2)), ValueError, "weight"),
        (dict(dy=np.ones((1, 3)), x=np.ones((1, 3))), ValueError, "more than 1 value"),
        (dict(dy=np.ones((2, 3)), x=np.ones((2, 3), dtype=np.int64)), TypeError, "float"),
        (dict(dy=np.ones(3), x=np.ones(3)), ValueError, "at least 2 dimensions"),
    ],
)
def test_staged_rejects_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        bnlib.batch_norm_backward_staged(**kwargs)


# bnlib.gradcheck: the finite-difference helper the chapter and these tests rely on.


def test_numerical_gradient_of_a_known_function():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((3, 4))
    x = rng.standard_normal((3, 4))
    grad = numerical_gradient(lambda z: float((a * z**2).sum() + np.sin(z).sum()), x)
    np.testing.assert_allclose(grad, 2 * a * x + np.cos(x), rtol=1e-8, atol=1e-8)


def test_numerical_gradient_leaves_x_unchanged_and_checks_h():
    x = np.arange(4.0)
    numerical_gradient(lambda z: float(z.sum()), x)
    np.testing.assert_array_equal(x, np.arange(4.0))
    with pytest.raises(ValueError, match="positive step"):
        numerical_gradient(lambda z: float(z.sum()), x, h=0.0)


def test_relative_error():
    assert relative_error([1.0, 2.0], [1.0, 2.0]) == 0.0
    assert relative_error([1.0, 2.5], [1.0, 2.0]) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="shapes differ"):
        relative_error([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="all zeros"):
        relative_error([1.0], [0.0])


def test_staged_returns_the_dtype_of_x_whatever_dy_is():
    x, dy, weight = random_case(3, (4, 2, 3), np.float32, affine=True)
    dx, dweight, dbias = bnlib.batch_norm_backward_staged(dy.astype(np.float64), x, weight)
    assert dx.dtype == dweight.dtype == dbias.dtype == np.float32
    expected = bnlib.batch_norm_backward_staged(dy, x, weight)
    for got, want in zip((dx, dweight, dbias), expected, strict=True):
        np.testing.assert_array_equal(got, want)


# The chapter's two figures (bnlib.plots, "Chapter 4" section).


def test_gradient_projection_figure_draws_the_formula():
    """Dots (Σ dx·x̂) lie on the lines (γ·ε·s³·Σ dy·x̂); crosses (Σ dx) at rounding level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bnlib.plots import gradient_projection_figure

    x, dy, weight = random_case(5, (4, 3, 2, 2), np.float64, affine=True)
    eps_values = np.logspace(-6, 0, 7)
    fig = gradient_projection_figure(x, dy, weight, eps_values)
    lines = fig.axes[0].get_lines()
    for c in range(3):
        formula, dots, crosses = lines[3 * c : 3 * c + 3]
        np.testing.assert_array_equal(formula.get_xdata(), eps_values)
        np.testing.assert_allclose(dots.get_ydata(), formula.get_ydata(), rtol=1e-6)
        assert np.all(np.diff(np.log(formula.get_ydata())[:3]) > 0)  # rising with ε
        assert np.all(crosses.get_ydata() < 1e-12)
    plt.close(fig)


def test_backward_graph_figure_labels_every_node_and_gradient():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.text import Annotation

    from bnlib.plots import (
        _BACKWARD_GRAPH_EDGES,
        _BACKWARD_GRAPH_GRADIENTS,
        _BACKWARD_GRAPH_NODES,
        backward_graph_figure,
    )

    fig = backward_graph_figure()
    texts = {t.get_text() for t in fig.axes[0].texts}
    for _, _, label, _ in _BACKWARD_GRAPH_NODES.values():
        assert label in texts
    for gradient in _BACKWARD_GRAPH_GRADIENTS.values():
        assert gradient in texts
    arrows = [t for t in fig.axes[0].texts if isinstance(t, Annotation)]
    assert len(arrows) == len(_BACKWARD_GRAPH_EDGES)  # one arrow per edge
    plt.close(fig)
