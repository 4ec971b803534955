"""bnlib.batch_norm and its backward against torch, on random cases drawn by hypothesis."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given
from hypothesis import strategies as st

import bnlib
from bnlib import kernels
from tests.cases import GRAD_TOL, TOL, dtypes, epsilons, momenta, random_input, shapes


@given(
    shape=shapes(),
    dtype=dtypes,
    eps=epsilons,
    momentum=momenta,
    training=st.booleans(),
    affine=st.booleans(),
    with_running=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
# the edge cases, always: one image with H·W > 1, one channel, 1×1 feature maps
@example((1, 3, 2, 2), np.float32, 1e-5, 0.1, True, True, True, 1)
@example((4, 1, 3, 3), np.float64, 1e-3, 0.0, True, False, True, 2)
@example((5, 2, 1, 1), np.float32, 1.0, 1.0, True, True, True, 3)
@example((1, 2, 1, 1), np.float32, 1e-5, 0.1, False, True, True, 4)
def test_forward_matches_torch(shape, dtype, eps, momentum, training, affine, with_running, seed):
    if not training:
        with_running = True  # evaluation needs running statistics
    rng = np.random.default_rng(seed + 1)
    x = random_input(seed, shape, dtype)
    c = shape[1]
    weight = rng.uniform(0.5, 2, c).astype(dtype) if affine else None
    bias = rng.uniform(-1, 1, c).astype(dtype) if affine else None
    rm = rng.standard_normal(c).astype(dtype) if with_running else None
    rv = rng.uniform(0.5, 2, c).astype(dtype) if with_running else None
    t = {k: None if v is None else torch.tensor(v) for k, v in dict(w=weight, b=bias).items()}
    trm = None if rm is None else torch.tensor(rm)
    trv = None if rv is None else torch.tensor(rv)

    expected = F.batch_norm(torch.tensor(x), trm, trv, t["w"], t["b"], training, momentum, eps)
    got = bnlib.batch_norm(x, rm, rv, weight, bias, training, momentum, eps)

    assert got.dtype == x.dtype and got.shape == x.shape
    np.testing.assert_allclose(got, expected.numpy(), **TOL[dtype])
    if with_running:
        np.testing.assert_allclose(rm, trm.numpy(), **TOL[dtype])
        np.testing.assert_allclose(rv, trv.numpy(), **TOL[dtype])


@given(
    shape=shapes(),
    dtype=dtypes,
    eps=epsilons,
    affine=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
@example((1, 3, 2, 2), np.float32, 1e-5, True, 1)
@example((4, 1, 3, 3), np.float64, 1e-3, False, 2)
@example((5, 2, 1, 1), np.float32, 1.0, True, 3)
def test_backward_matches_autograd(shape, dtype, eps, affine, seed):
    rng = np.random.default_rng(seed + 1)
    x = random_input(seed, shape, dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    c = shape[1]
    weight = rng.uniform(0.5, 2, c).astype(dtype) if affine else None

    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(weight if affine else np.ones(c, dtype), requires_grad=True)
    tb = torch.zeros(c, dtype=tx.dtype, requires_grad=True)
    F.batch_norm(tx, None, None, tw, tb, True, 0.1, eps).backward(torch.tensor(dy))

    dx, dweight, dbias = bnlib.batch_norm_backward(dy, x, weight, eps)
    assert dx.dtype == x.dtype and dx.shape == x.shape
    # float32 gradients: the closed form subtracts nearly equal sums, so compare relative to
    # the gradient's own scale
    scale = max(1.0, float(np.abs(tx.grad.numpy()).max()))
    np.testing.assert_allclose(dx / scale, tx.grad.numpy() / scale, **GRAD_TOL[dtype])
    np.testing.assert_allclose(dweight, tw.grad.numpy(), **GRAD_TOL[dtype])
    np.testing.assert_allclose(dbias, tb.grad.numpy(), **GRAD_TOL[dtype])


def central_difference(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """∂f/∂x by central differences, one element at a time (float64)."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        up = f(x)
        x[i] = old - h
        down = f(x)
        x[i] = old
        grad[i] = (up - down) / (2 * h)
    return grad


@given(shape=shapes(), eps=epsilons, seed=st.integers(0, 2**32 - 1))
def test_backward_matches_finite_differences(shape, eps, seed):
    rng = np.random.default_rng(seed + 1)
    x = random_input(seed, shape, np.float64)
    dy = rng.standard_normal(shape)
    weight = rng.uniform(0.5, 2, shape[1])
    bias = rng.uniform(-1, 1, shape[1])

    def loss_of_x(x_):
        return float(
            (bnlib.batch_norm(x_, weight=weight, bias=bias, training=True, eps=eps) * dy).sum()
        )

    def loss_of_weight(w_):
        return float((bnlib.batch_norm(x, weight=w_, bias=bias, training=True, eps=eps) * dy).sum())

    dx, dweight, dbias = bnlib.batch_norm_backward(dy, x, weight, eps)
    np.testing.assert_allclose(dx, central_difference(loss_of_x, x.copy()), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        dweight, central_difference(loss_of_weight, weight.copy()), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(dbias, dy.sum(axis=(0, *range(2, dy.ndim))), rtol=1e-12)


@given(shape=shapes(), dtype=dtypes, eps=epsilons, seed=st.integers(0, 2**32 - 1))
def test_eval_backward_matches_autograd(shape, dtype, eps, seed):
    rng = np.random.default_rng(seed + 1)
    x = random_input(seed, shape, dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    c = shape[1]
    rm, rv = rng.standard_normal(c).astype(dtype), rng.uniform(0.5, 2, c).astype(dtype)
    weight = rng.uniform(0.5, 2, c).astype(dtype)

    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(weight, requires_grad=True)
    tb = torch.zeros(c, dtype=tx.dtype, requires_grad=True)
    out = F.batch_norm(tx, torch.tensor(rm), torch.tensor(rv), tw, tb, False, 0.1, eps)
    out.backward(torch.tensor(dy))

    dx, dweight, dbias = bnlib.batch_norm_eval_backward(dy, x, rm, rv, weight, eps)
    np.testing.assert_allclose(dx, tx.grad.numpy(), **GRAD_TOL[dtype])
    np.testing.assert_allclose(dweight, tw.grad.numpy(), **GRAD_TOL[dtype])
    np.testing.assert_allclose(dbias, tb.grad.numpy(), **GRAD_TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_offset_keeps_float32_accuracy(dtype):
    """Two-pass statistics: a mean far from zero does not cancel the variance away."""
    x = (np.random.default_rng(0).standard_normal((16, 3, 8, 8)) + 1000).astype(dtype)
    expected = F.batch_norm(torch.tensor(x), None, None, training=True).numpy()
    np.testing.assert_allclose(bnlib.batch_norm(x, training=True), expected, rtol=1e-4, atol=1e-4)


def test_batch_stats_are_biased_mean_and_variance():
    x = random_input(3, (5, 2, 3, 3), np.float64)
    mean, var = bnlib.batch_stats(x)
    np.testing.assert_allclose(mean, x.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(var, x.var(axis=(0, 2, 3)), rtol=1e-12)  # ddof=0: divide by m


def test_training_update_uses_unbiased_variance():
    x = random_input(4, (2, 3, 2, 2), np.float64)
    rm, rv = np.zeros(3), np.ones(3)
    bnlib.batch_norm(x, rm, rv, training=True, momentum=1.0)
    np.testing.assert_allclose(rv, x.var(axis=(0, 2, 3), ddof=1), rtol=1e-12)
    np.testing.assert_allclose(rm, x.mean(axis=(0, 2, 3)), rtol=1e-12)


@pytest.mark.parametrize("cores", [1, 2, 3, 8])
@pytest.mark.parametrize("c", [1, 3, 8])
def test_channel_groups_cover_every_channel_once(monkeypatch, cores, c):
    monkeypatch.setattr(kernels.os, "cpu_count", lambda: cores)
    seen = []
    kernels._for_each_chunk(lambda g: seen.extend(range(c)[g]), np.empty((1, c, 1)))
    assert sorted(seen) == list(range(c))


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("c", [1, 3, 8])
def test_parallel_channel_groups_match_torch(monkeypatch, c, affine):
    """Every input is split across (pretend) four cores, as large inputs are."""
    monkeypatch.setattr(kernels, "PARALLEL_MIN_SIZE", 0)
    monkeypatch.setattr(kernels.os, "cpu_count", lambda: 4)
    rng = np.random.default_rng(c)
    x = random_input(c, (3, c, 5, 4), np.float64)
    dy = rng.standard_normal(x.shape)
    weight = rng.uniform(0.5, 2, c) if affine else None
    bias = rng.uniform(-1, 1, c) if affine else None

    torch_bn = torch.nn.BatchNorm2d(c, affine=affine).double()
    if affine:
        with torch.no_grad():
            torch_bn.weight.copy_(torch.tensor(weight))
            torch_bn.bias.copy_(torch.tensor(bias))
    tx = torch.tensor(x, requires_grad=True)
    out = torch_bn(tx)
    out.backward(torch.tensor(dy))

    bn = bnlib.BatchNorm2d.from_torch(torch.nn.BatchNorm2d(c, affine=affine).double())
    if affine:
        bn.weight, bn.bias = weight, bias
    np.testing.assert_allclose(bn(x), out.detach().numpy(), **TOL[np.float64])
    np.testing.assert_allclose(bn.backward(dy), tx.grad.numpy(), **GRAD_TOL[np.float64])
    np.testing.assert_allclose(bn.running_var, torch_bn.running_var.numpy(), **TOL[np.float64])
    y = bnlib.batch_norm(x, weight=weight, bias=bias, training=True)
    np.testing.assert_allclose(y, out.detach().numpy(), **TOL[np.float64])
    dx, _, _ = bnlib.batch_norm_backward(dy, x, weight)
    np.testing.assert_allclose(dx, tx.grad.numpy(), **GRAD_TOL[np.float64])


def test_large_float32_input_matches_torch():
    """Large enough to take the parallel path for real (no patching)."""
    x = random_input(11, (8, 6, 300, 300), np.float32)
    assert x.size >= kernels.PARALLEL_MIN_SIZE
    dy = np.random.default_rng(12).standard_normal(x.shape).astype(np.float32)
    tx = torch.tensor(x, requires_grad=True)
    out = F.batch_norm(tx, None, None, training=True)
    out.backward(torch.tensor(dy))
    np.testing.assert_allclose(
        bnlib.batch_norm(x, training=True), out.detach().numpy(), **TOL[np.float32]
    )
    dx, _, _ = bnlib.batch_norm_backward(dy, x)
    scale = float(np.abs(tx.grad.numpy()).max())
    np.testing.assert_allclose(dx / scale, tx.grad.numpy() / scale, **GRAD_TOL[np.float32])
