"""bnlib.ghost (ghost batch norm, Hoffer et al. 2017) against a torch composition (each
ghost batch's statistics in torch ops, autograd for the gradients; the running statistics
through torch's own batch norm, one ghost batch after another), against finite differences
in float64, and its special cases: one ghost batch is batch norm, one image a ghost is
instance norm. Errors on bad input."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given
from hypothesis import strategies as st

import bnlib
from bnlib.gradcheck import numerical_gradient
from tests.cases import GRAD_TOL, TOL, dtypes, epsilons, momenta, random_input

seeds = st.integers(0, 2**32 - 1)


@st.composite
def ghost_shapes(draw):
    """(shape, ghost_size): G ≤ 4 ghost batches of ≤ 3 images, C ≤ 3, up to 2 spatial
    sides ≤ 3, more than one value per channel in each ghost batch."""
    size, ghosts = draw(st.integers(1, 3)), draw(st.integers(1, 4))
    c = draw(st.integers(1, 3))
    spatial = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    if size * int(np.prod(spatial, dtype=int)) < 2:
        spatial = (*spatial, 2)
    return (size * ghosts, c, *spatial), size


def case(seed, shape, dtype, affine):
    x = random_input(seed, shape, dtype, min_scale=0.2)
    rng = np.random.default_rng(seed + 1)
    c = shape[1]
    dy = rng.standard_normal(shape).astype(dtype)
    weight = rng.uniform(0.5, 2, c).astype(dtype) if affine else None
    bias = rng.uniform(-1, 1, c).astype(dtype) if affine else None
    return x, dy, weight, bias


def torch_ghost(x, dy, weight, bias, ghost_size, eps):
    """y, (dx, dγ, dβ): each ghost batch standardized with its own mean and biased variance
    in torch ops, autograd through them."""
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    c = x.shape[1]
    view = (1, c) + (1,) * (x.ndim - 2)
    w = torch.tensor(np.ones(c) if weight is None else weight, dtype=torch.float64)
    b = torch.tensor(np.zeros(c) if bias is None else bias, dtype=torch.float64)
    w.requires_grad_(), b.requires_grad_()
    dims = [0, *range(2, x.ndim)]
    parts = []
    for ghost in torch.split(xt, ghost_size):
        mean = ghost.mean(dims, keepdim=True)
        var = ((ghost - mean) ** 2).mean(dims, keepdim=True)
        parts.append((ghost - mean) / torch.sqrt(var + eps) * w.view(view) + b.view(view))
    y = torch.cat(parts)
    y.backward(torch.tensor(dy, dtype=torch.float64))
    return y.detach().numpy(), (xt.grad.numpy(), w.grad.numpy(), b.grad.numpy())


@given(
    case_=ghost_shapes(),
    dtype=dtypes,
    eps=epsilons,
    momentum=momenta,
    affine=st.booleans(),
    seed=seeds,
)
@example(((8, 3, 1, 1), 2), np.float32, 1e-5, 0.1, True, 0)  # 1×1 maps, two images a ghost
@example(((6, 2, 3, 3), 3), np.float64, 1e-5, 0.01, True, 1)
def test_matches_torch_composition(case_, dtype, eps, momentum, affine, seed):
    shape, ghost_size = case_
    x, dy, weight, bias = case(seed, shape, dtype, affine)
    c = shape[1]
    rm, rv = np.zeros(c, dtype), np.ones(c, dtype)
    y, mean, invstd = bnlib.ghost_batch_norm_forward(
        x, ghost_size, rm, rv, weight, bias, momentum, eps
    )
    y_t, grads_t = torch_ghost(x, dy, weight, bias, ghost_size, eps)
    assert y.dtype == x.dtype and mean.shape == invstd.shape == (shape[0] // ghost_size, c)
    np.testing.assert_allclose(y, y_t, **TOL[dtype])
    # the running statistics: torch's batch norm on one ghost batch after another
    rm_t, rv_t = torch.zeros(c, dtype=torch.float64), torch.ones(c, dtype=torch.float64)
    for ghost in np.split(x.astype(np.float64), shape[0] // ghost_size):
        F.batch_norm(torch.tensor(ghost), rm_t, rv_t, None, None, True, momentum, eps)
    np.testing.assert_allclose(rm, rm_t.numpy(), **TOL[dtype])
    np.testing.assert_allclose(rv, rv_t.numpy(), **TOL[dtype])
    dx, dweight, dbias = bnlib.ghost_batch_norm_backward(dy, x, mean, invstd, weight)
    assert dx.dtype == x.dtype and dweight.dtype == dbias.dtype == x.dtype
    scale = max(1.0, float(np.abs(grads_t[0]).max()))
    np.testing.assert_allclose(dx / scale, grads_t[0] / scale, **GRAD_TOL[dtype])
    np.testing.assert_allclose(dweight, grads_t[1], **GRAD_TOL[dtype])
    np.testing.assert_allclose(dbias, grads_t[2], **GRAD_TOL[dtype])


@given(case_=ghost_shapes(), dtype=dtypes, eps=epsilons, seed=seeds)
def test_special_cases(case_, dtype, eps, seed):
    """ghost_size = N is torch's batch norm (gradients included); ghost_size = 1 on maps is
    torch's instance norm."""
    shape, _ = case_
    x, dy, weight, bias = case(seed, shape, dtype, True)
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(weight, requires_grad=True)
    y_t = F.batch_norm(xt, None, None, wt, torch.tensor(bias), True, 0.1, eps)
    y_t.backward(torch.tensor(dy))
    y, mean, invstd = bnlib.ghost_batch_norm_forward(x, shape[0], None, None, weight, bias, eps=eps)
    np.testing.assert_allclose(y, y_t.detach().numpy(), **TOL[dtype])
    dx, dweight, _ = bnlib.ghost_batch_norm_backward(dy, x, mean, invstd, weight)
    scale = max(1.0, float(np.abs(xt.grad.numpy()).max()))
    np.testing.assert_allclose(dx / scale, xt.grad.numpy() / scale, **GRAD_TOL[dtype])
    np.testing.assert_allclose(dweight, wt.grad.numpy(), **GRAD_TOL[dtype])
    if len(shape) > 2 and np.prod(shape[2:]) > 1:
        y1, *_ = bnlib.ghost_batch_norm_forward(x, 1, eps=eps)
        inst = F.instance_norm(torch.tensor(x), eps=eps).numpy()
        np.testing.assert_allclose(y1, inst, **TOL[dtype])


@given(
    case_=ghost_shapes(),
    eps=st.sampled_from([1e-5, 1e-2, 1.0]),
    affine=st.booleans(),
    seed=seeds,
)
def test_backward_matches_finite_differences(case_, eps, affine, seed):
    shape, ghost_size = case_
    if ghost_size * int(np.prod(shape[2:], dtype=int)) < 3:
        # two values a ghost: x̂ = ±σ/√(σ² + ε) hardly depends on x (test_functional's note)
        shape = (shape[0], shape[1], *shape[2:], 3)
    x, dy, weight, _ = case(seed, shape, np.float64, affine)
    bias = np.linspace(-1, 1, shape[1])

    def loss(x=x, weight=weight, bias=bias):
        y, *_ = bnlib.ghost_batch_norm_forward(x, ghost_size, None, None, weight, bias, eps=eps)
        return float((y * dy).sum())

    noise = 1e-8 * (1 + np.abs(dy).sum() * 4)

    def assert_close(analytic, numeric):
        assert np.abs(analytic - numeric).max() <= 1e-6 * np.abs(numeric).max() + noise

    _, mean, invstd = bnlib.ghost_batch_norm_forward(
        x, ghost_size, None, None, weight, bias, eps=eps
    )
    dx, dweight, dbias = bnlib.ghost_batch_norm_backward(dy, x, mean, invstd, weight)
    assert_close(dx, numerical_gradient(loss, x))
    assert_close(dbias, numerical_gradient(lambda b: loss(bias=b), bias))
    if affine:
        assert_close(dweight, numerical_gradient(lambda w: loss(weight=w), weight))


def test_ghost_batches_do_not_mix():
    """Shifting ghost batch 1 by a constant leaves ghost batch 0's output unchanged."""
    x = random_input(1, (6, 2, 2, 2), np.float64)
    shifted = x.copy()
    shifted[3:] += 100.0
    y, *_ = bnlib.ghost_batch_norm_forward(x, 3)
    y_shift, *_ = bnlib.ghost_batch_norm_forward(shifted, 3)
    np.testing.assert_array_equal(y[:3], y_shift[:3])
    np.testing.assert_allclose(y[3:], y_shift[3:], atol=1e-9)  # a constant shift: removed


def test_inputs_are_left_alone_but_the_buffers():
    x, dy, weight, bias = case(0, (4, 2, 2, 2), np.float32, True)
    before = [a.copy() for a in (x, dy, weight, bias)]
    rm, rv = np.zeros(2, np.float32), np.ones(2, np.float32)
    _, mean, invstd = bnlib.ghost_batch_norm_forward(x, 2, rm, rv, weight, bias)
    bnlib.ghost_batch_norm_backward(dy, x, mean, invstd, weight)
    for a, a0 in zip((x, dy, weight, bias), before, strict=True):
        np.testing.assert_array_equal(a, a0)
    assert rm.dtype == np.float32 and np.any(rm != 0)


X = np.zeros((4, 3, 2, 2), np.float32)
STATS = (np.zeros((2, 3)), np.ones((2, 3)))


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: bnlib.ghost_batch_norm_forward(X[:, :, :1, :1], 1), ValueError,
         "more than 1 value per channel in each ghost batch"),
        (lambda: bnlib.ghost_batch_norm_forward(np.zeros((1, 3), np.float32), 1), ValueError,
         "more than 1 value per channel"),
        (lambda: bnlib.ghost_batch_norm_backward(X[:, :, :1, :1], X[:, :, :1, :1],
                                                 np.zeros((4, 3)), np.ones((4, 3))),
         ValueError, "more than 1 value per channel"),
        (lambda: bnlib.ghost_batch_norm_forward(X, 3), ValueError,
         r"positive divisor of the batch size N = 4.*1, 2, 4"),
        (lambda: bnlib.ghost_batch_norm_forward(X, 0), ValueError, "positive divisor"),
        (lambda: bnlib.ghost_batch_norm_forward(X, 2.0), TypeError, "ghost_size must be an int"),
        (lambda: bnlib.ghost_batch_norm_forward(X, True), TypeError, "ghost_size must be"),
        (lambda: bnlib.ghost_batch_norm_forward(X, 2, np.zeros(2)), ValueError,
         r"running_mean must have shape \(3,\)"),
        (lambda: bnlib.ghost_batch_norm_forward(X, 2, momentum=-0.1), ValueError, "momentum"),
        (lambda: bnlib.ghost_batch_norm_forward(X, 2, eps=0.0), ValueError, "eps must"),
        (lambda: bnlib.ghost_batch_norm_forward(X.astype(int), 2), TypeError, "float32"),
        (lambda: bnlib.ghost_batch_norm_backward(X, X, np.zeros(3), np.ones(3)), ValueError,
         r"shape \(G, C\)"),
        (lambda: bnlib.ghost_batch_norm_backward(X, X, np.zeros((3, 3)), np.ones((3, 3))),
         ValueError, "do not divide"),
        (lambda: bnlib.ghost_batch_norm_backward(X[:2], X, *STATS), ValueError, "dy must have"),
    ],
)  # fmt: skip
def test_bad_input_gets_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()
