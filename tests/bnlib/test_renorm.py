"""bnlib.renorm (batch renormalization, Ioffe 2017) against a torch composition of the paper's
formula with autograd (r and d detached, the paper's stop_gradient), against finite
differences in float64, and its special cases: r_max = 1, d_max = 0 is batch norm;
unclipped, training mode normalizes with the running statistics. Errors on bad input."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given
from hypothesis import strategies as st

import bnlib
from bnlib.gradcheck import numerical_gradient
from tests.cases import GRAD_TOL, TOL, dtypes, epsilons, momenta, random_input, shapes

seeds = st.integers(0, 2**32 - 1)
clips = st.sampled_from([(1.0, 0.0), (1.5, 0.5), (3.0, 5.0), (1e6, 1e6)])


def case(seed, shape, dtype, affine):
    """x, dy, γ, β (or None), and running statistics near (not at) the batch's."""
    x = random_input(seed, shape, dtype, min_scale=0.2)
    rng = np.random.default_rng(seed + 1)
    c = shape[1]
    dy = rng.standard_normal(shape).astype(dtype)
    weight = rng.uniform(0.5, 2, c).astype(dtype) if affine else None
    bias = rng.uniform(-1, 1, c).astype(dtype) if affine else None
    axes = (0, *range(2, x.ndim))
    rm = (x.mean(axis=axes) + rng.uniform(-2, 2, c)).astype(dtype)
    rv = (x.var(axis=axes) * rng.uniform(0.1, 10, c)).astype(dtype)
    return x, dy, weight, bias, rm, rv


def torch_renorm(x, dy, weight, bias, rm, rv, r_max, d_max, momentum, eps):
    """The paper's Algorithm 1 in torch ops, autograd for the gradients; running statistics
    updated as BatchNorm2d's (unbiased variance). Returns y, (dx, dγ, dβ), (rm, rv)."""
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    c = x.shape[1]
    view = (1, c) + (1,) * (x.ndim - 2)
    dims = [0, *range(2, x.ndim)]
    w = torch.tensor(np.ones(c) if weight is None else weight, dtype=torch.float64)
    b = torch.tensor(np.zeros(c) if bias is None else bias, dtype=torch.float64)
    w.requires_grad_(), b.requires_grad_()
    rm_t, rv_t = torch.tensor(rm, dtype=torch.float64), torch.tensor(rv, dtype=torch.float64)
    mu_b = xt.mean(dims, keepdim=True)
    var_b = xt.var(dims, unbiased=False, keepdim=True)
    sigma_b = torch.sqrt(var_b + eps)
    sigma = torch.sqrt(rv_t + eps).view(view)
    r = torch.clamp(sigma_b / sigma, 1 / r_max, r_max).detach()
    d = torch.clamp((mu_b - rm_t.view(view)) / sigma, -d_max, d_max).detach()
    y = ((xt - mu_b) / sigma_b * r + d) * w.view(view) + b.view(view)
    y.backward(torch.tensor(dy, dtype=torch.float64))
    m = x.size // c
    with torch.no_grad():
        rm_new = (1 - momentum) * rm_t + momentum * mu_b.view(c)
        rv_new = (1 - momentum) * rv_t + momentum * var_b.view(c) * m / (m - 1)
    grads = xt.grad.numpy(), w.grad.numpy(), b.grad.numpy()
    return y.detach().numpy(), grads, (rm_new.numpy(), rv_new.numpy())


@given(
    shape=shapes(),
    dtype=dtypes,
    eps=epsilons,
    clip=clips,
    momentum=momenta,
    affine=st.booleans(),
    seed=seeds,
)
@example((2, 3), np.float32, 1e-5, (3.0, 5.0), 0.1, True, 0)  # two values a channel
@example((4, 2, 3, 3), np.float64, 1e-5, (1.5, 0.5), 0.01, True, 1)  # images
def test_matches_torch_composition(shape, dtype, eps, clip, momentum, affine, seed):
    r_max, d_max = clip
    x, dy, weight, bias, rm, rv = case(seed, shape, dtype, affine)
    y_t, grads_t, (rm_t, rv_t) = torch_renorm(
        x, dy, weight, bias, rm, rv, r_max, d_max, momentum, eps
    )
    running_mean, running_var = rm.copy(), rv.copy()
    y, mean, invstd, r, d = bnlib.batch_renorm_forward(
        x, running_mean, running_var, weight, bias, r_max, d_max, momentum, eps
    )
    assert y.dtype == x.dtype and running_var.dtype == x.dtype
    np.testing.assert_allclose(y, y_t, **TOL[dtype])
    np.testing.assert_allclose(running_mean, rm_t, **TOL[dtype])
    np.testing.assert_allclose(running_var, rv_t, **TOL[dtype])
    assert np.all((r >= 1 / r_max) & (r <= r_max)) and np.all(np.abs(d) <= d_max)
    dx, dweight, dbias = bnlib.batch_renorm_backward(dy, x, mean, invstd, r, d, weight)
    assert dx.dtype == x.dtype and dweight.dtype == dbias.dtype == x.dtype
    scale = max(1.0, float(np.abs(grads_t[0]).max()))
    np.testing.assert_allclose(dx / scale, grads_t[0] / scale, **GRAD_TOL[dtype])
    np.testing.assert_allclose(dweight, grads_t[1], **GRAD_TOL[dtype])
    np.testing.assert_allclose(dbias, grads_t[2], **GRAD_TOL[dtype])


@given(shape=shapes(), dtype=dtypes, eps=epsilons, affine=st.booleans(), seed=seeds)
def test_no_room_to_correct_is_batch_norm(shape, dtype, eps, affine, seed):
    """r_max = 1 and d_max = 0 force r = 1, d = 0: torch's batch norm, forward and backward,
    running statistics included."""
    x, dy, weight, bias, rm, rv = case(seed, shape, dtype, affine)
    rm_t, rv_t = torch.tensor(rm), torch.tensor(rv)
    xt = torch.tensor(x, requires_grad=True)
    wt = None if weight is None else torch.tensor(weight, requires_grad=True)
    y_t = F.batch_norm(xt, rm_t, rv_t, wt, tensor(bias), True, 0.1, eps)
    y_t.backward(torch.tensor(dy))
    y, mean, invstd, r, d = bnlib.batch_renorm_forward(x, rm, rv, weight, bias, 1.0, 0.0, 0.1, eps)
    np.testing.assert_array_equal(r, 1.0)
    np.testing.assert_array_equal(d, 0.0)
    np.testing.assert_allclose(y, y_t.detach().numpy(), **TOL[dtype])
    np.testing.assert_allclose(rm, rm_t.numpy(), **TOL[dtype])
    np.testing.assert_allclose(rv, rv_t.numpy(), **TOL[dtype])
    dx, dweight, _ = bnlib.batch_renorm_backward(dy, x, mean, invstd, r, d, weight)
    scale = max(1.0, float(np.abs(xt.grad.numpy()).max()))
    np.testing.assert_allclose(dx / scale, xt.grad.numpy() / scale, **GRAD_TOL[dtype])
    if weight is not None:
        np.testing.assert_allclose(dweight, wt.grad.numpy(), **GRAD_TOL[dtype])


def tensor(a):
    return None if a is None else torch.tensor(a)


@given(shape=shapes(), dtype=dtypes, eps=epsilons, affine=st.booleans(), seed=seeds)
def test_unclipped_training_normalizes_with_the_running_statistics(shape, dtype, eps, affine, seed):
    """With clips that never bite, x̂ = (x − μ_B)/σ_B·σ_B/σ + (μ_B − μ)/σ = (x − μ)/σ: the
    training output is evaluation-mode batch norm's with the (old) running statistics."""
    x, _, weight, bias, rm, rv = case(seed, shape, dtype, affine)
    expected = F.batch_norm(
        torch.tensor(x), torch.tensor(rm), torch.tensor(rv), tensor(weight), tensor(bias),
        False, 0.0, eps,
    )  # fmt: skip
    y, *_ = bnlib.batch_renorm_forward(x, rm.copy(), rv.copy(), weight, bias, 1e9, 1e9, 0.1, eps)
    np.testing.assert_allclose(y, expected.numpy(), **TOL[dtype])


def renorm_loss(dy, r_max, d_max, eps, bias):
    """Σ y·dy of batch renorm as a function of x (or γ, β), running statistics fixed."""

    def loss(x, rm, rv, weight, b=bias):
        y, *_ = bnlib.batch_renorm_forward(
            x, rm.copy(), rv.copy(), weight, b, r_max, d_max, 0.0, eps
        )
        return float((y * dy).sum())

    return loss


@given(
    shape=shapes(max_side=3, max_spatial_dims=1, min_values=3),
    eps=st.sampled_from([1e-5, 1e-2, 1.0]),
    affine=st.booleans(),
    seed=seeds,
)
def test_backward_matches_finite_differences_where_r_and_d_are_clipped(shape, eps, affine, seed):
    """Running statistics far from the batch's clip r at 1/r_max and d at d_max: r and d
    are then constant near x, so the true derivative of the forward is the backward's."""
    x, dy, weight, _, _, _ = case(seed, shape, np.float64, affine)
    c = shape[1]
    bias = np.linspace(-1, 1, c)
    axes = (0, *range(2, x.ndim))
    rv = 1e4 * (x.var(axis=axes) + eps)  # σ = 100·σ_B: r = 1/2 after clipping
    rm = x.mean(axis=axes) - 1e3 * np.sqrt(x.var(axis=axes) + eps)  # d = 10 → 1
    loss = renorm_loss(dy, 2.0, 1.0, eps, bias)
    _, mean, invstd, r, d = bnlib.batch_renorm_forward(
        x, rm.copy(), rv.copy(), weight, bias, 2.0, 1.0, 0.0, eps
    )
    np.testing.assert_array_equal(r, 0.5)
    np.testing.assert_array_equal(d, 1.0)
    dx, dweight, dbias = bnlib.batch_renorm_backward(dy, x, mean, invstd, r, d, weight)
    noise = 1e-8 * (1 + np.abs(dy).sum() * 10)

    def assert_close(analytic, numeric):
        assert np.abs(analytic - numeric).max() <= 1e-6 * np.abs(numeric).max() + noise

    assert_close(dx, numerical_gradient(lambda v: loss(v, rm, rv, weight), x))
    assert_close(dbias, numerical_gradient(lambda b: loss(x, rm, rv, weight, b), bias))
    if affine:
        assert_close(dweight, numerical_gradient(lambda w: loss(x, rm, rv, w), weight))


@given(
    shape=shapes(max_side=3, max_spatial_dims=1, min_values=3),
    eps=st.sampled_from([1e-5, 1e-2, 1.0]),
    seed=seeds,
)
def test_backward_is_the_derivative_with_r_and_d_held_fixed(shape, eps, seed):
    """Unclipped, r and d depend on x; the backward is the derivative of the forward with
    the r and d of this batch held fixed (finite differences of that function)."""
    x, dy, weight, bias, rm, rv = case(seed, shape, np.float64, True)
    _, mean, invstd, r, d = bnlib.batch_renorm_forward(
        x, rm.copy(), rv.copy(), weight, bias, 3.0, 5.0, 0.0, eps
    )
    view = (1, -1) + (1,) * (x.ndim - 2)
    axes = (0, *range(2, x.ndim))

    def frozen(v):  # γ((v − μ_B(v))/σ_B(v)·r + d) + β, r and d this batch's
        xtilde = (v - v.mean(axis=axes, keepdims=True)) / np.sqrt(
            v.var(axis=axes, keepdims=True) + eps
        )
        y = (xtilde * r.reshape(view) + d.reshape(view)) * weight.reshape(view)
        return float(((y + bias.reshape(view)) * dy).sum())

    dx, _, _ = bnlib.batch_renorm_backward(dy, x, mean, invstd, r, d, weight)
    numeric = numerical_gradient(frozen, x)
    assert np.abs(dx - numeric).max() <= 1e-6 * np.abs(numeric).max() + 1e-7


def test_backward_is_not_the_full_derivative_when_r_is_free():
    """Where r and d are not clipped the paper's gradient leaves out their dependence on x:
    it differs from the true derivative of the forward (the paper's choice, checked here)."""
    x, dy, weight, bias, rm, rv = case(3, (6, 2, 2), np.float64, True)
    loss = renorm_loss(dy, 1e6, 1e6, 1e-5, bias)
    _, mean, invstd, r, d = bnlib.batch_renorm_forward(
        x, rm.copy(), rv.copy(), weight, bias, 1e6, 1e6, 0.0, 1e-5
    )
    dx, _, _ = bnlib.batch_renorm_backward(dy, x, mean, invstd, r, d, weight)
    full = numerical_gradient(lambda v: loss(v, rm, rv, weight), x)
    # the full derivative of x ↦ γ(x − μ)/σ + β, μ and σ the running ones: γ·dy/σ
    np.testing.assert_allclose(full, dy * (weight / np.sqrt(rv + 1e-5))[None, :, None], rtol=1e-6)
    assert np.abs(dx - full).max() > 0.1 * np.abs(full).max()


def test_inputs_are_left_alone_but_the_buffers():
    x, dy, weight, bias, rm, rv = case(0, (3, 2, 2, 2), np.float32, True)
    before = [a.copy() for a in (x, dy, weight, bias)]
    rm0 = rm.copy()
    _, mean, invstd, r, d = bnlib.batch_renorm_forward(x, rm, rv, weight, bias)
    bnlib.batch_renorm_backward(dy, x, mean, invstd, r, d, weight)
    for a, a0 in zip((x, dy, weight, bias), before, strict=True):
        np.testing.assert_array_equal(a, a0)
    assert not np.array_equal(rm, rm0)  # the buffers are updated in place


X = np.zeros((4, 3, 2, 2), np.float32)
RM, RV = np.zeros(3, np.float32), np.ones(3, np.float32)
CACHE = (np.zeros(3), np.ones(3), np.ones(3), np.zeros(3))


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: bnlib.batch_renorm_forward(X[:1, :, :1, :1], RM, RV), ValueError,
         r"more than 1 value per channel"),
        (lambda: bnlib.batch_renorm_forward(np.zeros((1, 3), np.float32), RM, RV), ValueError,
         r"more than 1 value per channel"),
        (lambda: bnlib.batch_renorm_backward(X[:1, :, :1, :1], X[:1, :, :1, :1], *CACHE),
         ValueError, r"more than 1 value per channel"),
        (lambda: bnlib.batch_renorm_forward(X, None, RV), ValueError, "needs running_mean"),
        (lambda: bnlib.batch_renorm_forward(X, RM, np.ones(4)), ValueError,
         r"running_var must have shape \(3,\)"),
        (lambda: bnlib.batch_renorm_forward(X, RM, RV, r_max=0.5), ValueError, "r_max must"),
        (lambda: bnlib.batch_renorm_forward(X, RM, RV, d_max=-1.0), ValueError, "d_max must"),
        (lambda: bnlib.batch_renorm_forward(X, RM, RV, r_max="3"), TypeError, "r_max must"),
        (lambda: bnlib.batch_renorm_forward(X, RM, RV, d_max=np.inf), ValueError, "finite"),
        (lambda: bnlib.batch_renorm_forward(X, RM, RV, momentum=2.0), ValueError, "momentum"),
        (lambda: bnlib.batch_renorm_forward(X, RM, RV, eps=0.0), ValueError, "eps must"),
        (lambda: bnlib.batch_renorm_forward(X.astype(int), RM, RV), TypeError, "float32"),
        (lambda: bnlib.batch_renorm_backward(X, X, None, *CACHE[1:]), ValueError,
         "are required"),
        (lambda: bnlib.batch_renorm_backward(X, X, np.zeros(2), *CACHE[1:]), ValueError,
         r"mean must have shape \(3,\)"),
        (lambda: bnlib.batch_renorm_backward(X[:2], X, *CACHE), ValueError, "dy must have"),
    ],
)  # fmt: skip
def test_bad_input_gets_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()
