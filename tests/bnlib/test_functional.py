"""bnlib.reference and bnlib.functional against torch: the reference (``forward``,
``normalize``, ``backward``, ``backward_reduce``, ``backward_elemt``, ``update_running_stats``,
``batch_stats``, ``backward_staged``), the public functions that run the kernels, on random
cases drawn by hypothesis; gradients also against finite differences (bnlib.gradcheck); the
gradients' dtypes, torch's rule."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given
from hypothesis import strategies as st

import bnlib
from bnlib import reference
from bnlib.gradcheck import numerical_gradient
from tests.cases import GRAD_TOL, TOL, dtypes, epsilons, momenta, random_input, shapes

seeds = st.integers(0, 2**32 - 1)


def random_case(seed: int, shape, dtype, affine: bool):
    """x with a per-channel offset and scale, an upstream gradient dy, γ and β (or None)."""
    x = random_input(seed, shape, dtype, min_scale=0.2)
    rng = np.random.default_rng(seed + 1)
    dy = rng.standard_normal(shape).astype(dtype)
    weight = rng.uniform(0.5, 2, shape[1]).astype(dtype) if affine else None
    bias = rng.uniform(-1, 1, shape[1]).astype(dtype) if affine else None
    return x, dy, weight, bias


def tensor(a):
    return None if a is None else torch.tensor(a)


def torch_grads(x, dy, weight, eps, running=None):
    """dx, dγ, dβ from torch.nn.functional.batch_norm's backward, in x's dtype.

    ``running`` = (running_mean, running_var) for evaluation mode, else training mode.
    """
    xt = torch.tensor(x, requires_grad=True)
    c = x.shape[1]
    w = np.ones(c) if weight is None else weight
    wt = torch.tensor(w.astype(x.dtype), requires_grad=True)
    bt = torch.zeros(c, dtype=xt.dtype, requires_grad=True)
    rm, rv = (None, None) if running is None else map(torch.tensor, running)
    y = F.batch_norm(xt, rm, rv, wt, bt, training=running is None, eps=eps)
    y.backward(torch.tensor(dy))
    return xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()


def assert_grads_close(got, expected, dtype):
    """dx relative to its own scale (the closed form cancels in float32), dγ and dβ as is."""
    (dx, dweight, dbias), (tdx, tdweight, tdbias) = got, expected
    scale = max(1.0, float(np.abs(tdx).max()))
    np.testing.assert_allclose(dx / scale, tdx / scale, **GRAD_TOL[dtype])
    np.testing.assert_allclose(dweight, tdweight, **GRAD_TOL[dtype])
    np.testing.assert_allclose(dbias, tdbias, **GRAD_TOL[dtype])


# -- the reference ---------------------------------------------------------------------------


@given(shape=shapes(), dtype=dtypes, eps=epsilons, affine=st.booleans(), seed=seeds)
@example((1, 3, 2, 2), np.float32, 1e-5, True, 1)  # one image with H·W > 1
@example((4, 1, 3, 3), np.float64, 1e-3, False, 2)  # one channel
@example((5, 2, 1, 1), np.float32, 1.0, True, 3)  # 1×1 maps
def test_reference_forward_matches_native_batch_norm(shape, dtype, eps, affine, seed):
    """forward returns what torch.native_batch_norm does: (y, mean, invstd)."""
    x, _, weight, bias = random_case(seed, shape, dtype, affine)
    expected = torch.native_batch_norm(
        torch.tensor(x), tensor(weight), tensor(bias), None, None, True, 0.1, eps
    )
    got = reference.forward(x, weight, bias, eps)
    assert got[0].dtype == x.dtype and got[1].dtype == got[2].dtype == np.float64
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e.numpy(), **TOL[dtype])


@given(shape=shapes(), dtype=dtypes, eps=epsilons, affine=st.booleans(), seed=seeds)
@example((1, 2, 1, 1), np.float32, 1e-5, True, 4)  # evaluation: one value per channel is fine
def test_reference_normalize_with_running_stats_matches_torch_eval(shape, dtype, eps, affine, seed):
    x, _, weight, bias = random_case(seed, shape, dtype, affine)
    rng = np.random.default_rng(seed + 2)
    rm, rv = rng.standard_normal(shape[1]), rng.uniform(0.5, 2, shape[1])
    expected = F.batch_norm(
        torch.tensor(x), tensor(rm.astype(dtype)), tensor(rv.astype(dtype)), tensor(weight),
        tensor(bias), False, 0.1, eps,
    )  # fmt: skip
    invstd = 1 / np.sqrt(rv.astype(dtype).astype(np.float64) + eps)
    got = reference.normalize(x, rm.astype(dtype).astype(np.float64), invstd, weight, bias)
    np.testing.assert_allclose(got, expected.numpy(), **TOL[dtype])


@given(shape=shapes(), dtype=dtypes, eps=epsilons, affine=st.booleans(), seed=seeds)
@example((1, 3, 2, 2), np.float32, 1e-5, True, 1)
@example((4, 1, 3, 3), np.float64, 1e-3, False, 2)
@example((5, 2, 1, 1), np.float32, 1.0, True, 3)
def test_reference_backward_matches_autograd(shape, dtype, eps, affine, seed):
    x, dy, weight, _ = random_case(seed, shape, dtype, affine)
    _, mean, invstd = reference.forward(x, weight, None, eps)
    got = reference.backward(dy, x, mean, invstd, weight, True)
    assert got[0].dtype == x.dtype and got[0].shape == x.shape
    assert_grads_close(got, torch_grads(x, dy, weight, eps), dtype)


@given(shape=shapes(), dtype=dtypes, eps=epsilons, affine=st.booleans(), seed=seeds)
def test_reference_eval_backward_matches_autograd(shape, dtype, eps, affine, seed):
    x, dy, weight, _ = random_case(seed, shape, dtype, affine)
    rng = np.random.default_rng(seed + 2)
    rm = rng.standard_normal(shape[1]).astype(dtype)
    rv = rng.uniform(0.5, 2, shape[1]).astype(dtype)
    invstd = 1 / np.sqrt(rv.astype(np.float64) + eps)
    got = reference.backward(dy, x, rm.astype(np.float64), invstd, weight, False)
    assert_grads_close(got, torch_grads(x, dy, weight, eps, running=(rm, rv)), dtype)


@given(shape=shapes(), dtype=dtypes, momentum=momenta, seed=seeds)
def test_reference_running_update_matches_torch(shape, dtype, momentum, seed):
    x = random_input(seed, shape, dtype)
    rng = np.random.default_rng(seed + 1)
    rm = rng.standard_normal(shape[1]).astype(dtype)
    rv = rng.uniform(0.5, 2, shape[1]).astype(dtype)
    trm, trv = torch.tensor(rm), torch.tensor(rv)
    F.batch_norm(torch.tensor(x), trm, trv, None, None, True, momentum, 1e-5)
    mean, var = bnlib.batch_stats(x)
    reference.update_running_stats(rm, rv, mean, var, x.size // shape[1], momentum)
    np.testing.assert_allclose(rm, trm.numpy(), **TOL[dtype])
    np.testing.assert_allclose(rv, trv.numpy(), **TOL[dtype])


def test_batch_stats_are_biased_mean_and_variance():
    x = random_input(3, (5, 2, 3, 3), np.float64)
    mean, var = bnlib.batch_stats(x)
    np.testing.assert_allclose(mean, x.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(var, x.var(axis=(0, 2, 3)), rtol=1e-12)  # ddof=0: divide by m


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_offset_keeps_float32_accuracy(dtype):
    """Two-pass statistics: a mean far from zero does not cancel the variance away."""
    x = (np.random.default_rng(0).standard_normal((16, 3, 8, 8)) + 1000).astype(dtype)
    expected = F.batch_norm(torch.tensor(x), None, None, training=True).numpy()
    np.testing.assert_allclose(bnlib.batch_norm(x, training=True), expected, rtol=1e-4, atol=1e-4)
    y, _, _ = reference.forward(x, None, None, 1e-5)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("offset", [0.0, 30.0, 1000.0])
def test_float32_backward_is_as_accurate_as_torch(offset):
    """Against float64 autograd, the float32 gradients err no more than torch's float32 ones:
    x − μ is formed before any product, so a large mean costs no extra digits."""
    rng = np.random.default_rng(int(offset))
    x = (rng.standard_normal((16, 3, 8, 8)) + offset).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    weight = rng.uniform(0.5, 2, 3).astype(np.float32)
    exact = torch_grads(x.astype(np.float64), dy.astype(np.float64), weight, 1e-5)
    torch32 = torch_grads(x, dy, weight, 1e-5)
    _, mean, invstd = reference.forward(x, weight, None, 1e-5)
    for ours in (
        bnlib.batch_norm_backward(dy, x, weight),
        reference.backward(dy, x, mean, invstd, weight, True),
    ):
        for got, theirs, want in zip(ours, torch32, exact, strict=True):
            scale = np.abs(want).max()
            their_error = np.abs(theirs - want).max() / scale
            assert np.abs(got - want).max() / scale <= 2 * their_error + 1e-7


# -- the public functions (they run the kernels) ---------------------------------------------


@given(
    shape=shapes(),
    dtype=dtypes,
    eps=epsilons,
    momentum=momenta,
    training=st.booleans(),
    affine=st.booleans(),
    with_running=st.booleans(),
    seed=seeds,
)
# the edge cases, always: one image with H·W > 1, one channel, 1×1 feature maps
@example((1, 3, 2, 2), np.float32, 1e-5, 0.1, True, True, True, 1)
@example((4, 1, 3, 3), np.float64, 1e-3, 0.0, True, False, True, 2)
@example((5, 2, 1, 1), np.float32, 1.0, 1.0, True, True, True, 3)
@example((1, 2, 1, 1), np.float32, 1e-5, 0.1, False, True, True, 4)
def test_batch_norm_matches_torch(
    shape, dtype, eps, momentum, training, affine, with_running, seed
):
    if not training:
        with_running = True  # evaluation needs running statistics
    rng = np.random.default_rng(seed + 1)
    x = random_input(seed, shape, dtype)
    c = shape[1]
    weight = rng.uniform(0.5, 2, c).astype(dtype) if affine else None
    bias = rng.uniform(-1, 1, c).astype(dtype) if affine else None
    rm = rng.standard_normal(c).astype(dtype) if with_running else None
    rv = rng.uniform(0.5, 2, c).astype(dtype) if with_running else None
    trm, trv = tensor(rm), tensor(rv)

    expected = F.batch_norm(
        torch.tensor(x), trm, trv, tensor(weight), tensor(bias), training, momentum, eps
    )
    got = bnlib.batch_norm(x, rm, rv, weight, bias, training, momentum, eps)

    assert got.dtype == x.dtype and got.shape == x.shape
    np.testing.assert_allclose(got, expected.numpy(), **TOL[dtype])
    if with_running:
        np.testing.assert_allclose(rm, trm.numpy(), **TOL[dtype])
        np.testing.assert_allclose(rv, trv.numpy(), **TOL[dtype])


@given(shape=shapes(), dtype=dtypes, eps=epsilons, affine=st.booleans(), seed=seeds)
@example((1, 3, 2, 2), np.float32, 1e-5, True, 1)
@example((4, 1, 3, 3), np.float64, 1e-3, False, 2)
@example((5, 2, 1, 1), np.float32, 1.0, True, 3)
def test_batch_norm_backward_matches_autograd(shape, dtype, eps, affine, seed):
    x, dy, weight, _ = random_case(seed, shape, dtype, affine)
    got = bnlib.batch_norm_backward(dy, x, weight, eps)
    assert all(g.dtype == x.dtype for g in got) and got[0].shape == x.shape
    assert_grads_close(got, torch_grads(x, dy, weight, eps), dtype)


@given(shape=shapes(), dtype=dtypes, eps=epsilons, affine=st.booleans(), seed=seeds)
def test_batch_norm_eval_backward_matches_autograd(shape, dtype, eps, affine, seed):
    x, dy, weight, _ = random_case(seed, shape, dtype, affine)
    rng = np.random.default_rng(seed + 2)
    rm = rng.standard_normal(shape[1]).astype(dtype)
    rv = rng.uniform(0.5, 2, shape[1]).astype(dtype)
    got = bnlib.batch_norm_eval_backward(dy, x, rm, rv, weight, eps)
    assert all(g.dtype == x.dtype for g in got)
    assert_grads_close(got, torch_grads(x, dy, weight, eps, running=(rm, rv)), dtype)


@given(
    # small (2·x.size forward passes each); m = 2 is left out: there x̂ = ±σ/√(σ² + ε) hardly
    # depends on x, dx is O(ε), and finite differences see only their own rounding noise
    shape=shapes(max_side=3, max_spatial_dims=1, min_values=3),
    eps=st.sampled_from([1e-5, 1e-2, 1.0]),
    affine=st.booleans(),
    backward=st.sampled_from(["compact", "staged", "reference"]),
    seed=seeds,
)
def test_backward_matches_finite_differences(shape, eps, affine, backward, seed):
    x, dy, weight, _ = random_case(seed, shape, np.float64, affine)
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

    if backward == "reference":
        _, mean, invstd = reference.forward(x, weight, bias, eps)
        dx, dweight, dbias = reference.backward(dy, x, mean, invstd, weight, True)
    elif backward == "staged":
        dx, dweight, dbias = bnlib.batch_norm_backward_staged(dy, x, weight, eps=eps)
    else:
        dx, dweight, dbias = bnlib.batch_norm_backward(dy, x, weight, eps=eps)
    assert_close(dx, numerical_gradient(loss, x))
    assert_close(dbias, numerical_gradient(lambda b: loss(bias=b), bias))
    if affine:
        assert_close(dweight, numerical_gradient(lambda w: loss(weight=w), weight))


def test_training_update_uses_unbiased_variance():
    x = random_input(4, (2, 3, 2, 2), np.float64)
    rm, rv = np.zeros(3), np.ones(3)
    bnlib.batch_norm(x, rm, rv, training=True, momentum=1.0)
    np.testing.assert_allclose(rv, x.var(axis=(0, 2, 3), ddof=1), rtol=1e-12)
    np.testing.assert_allclose(rm, x.mean(axis=(0, 2, 3)), rtol=1e-12)


def test_public_functions_leave_their_inputs_alone():
    x, dy, weight, bias = random_case(0, (3, 2, 2, 2), np.float32, affine=True)
    copies = [a.copy() for a in (x, dy, weight, bias)]
    bnlib.batch_norm(x, weight=weight, bias=bias, training=True)
    bnlib.batch_norm_backward(dy, x, weight)
    bnlib.batch_norm_backward_staged(dy, x, weight)
    bnlib.batch_norm_eval_backward(dy, x, np.zeros(2), np.ones(2), weight)
    for original, copy in zip((x, dy, weight, bias), copies, strict=True):
        np.testing.assert_array_equal(original, copy)


# -- the staged backward ---------------------------------------------------------------------


@given(shape=shapes(), dtype=dtypes, eps=epsilons, affine=st.booleans(), seed=seeds)
def test_staged_matches_autograd(shape, dtype, eps, affine, seed):
    x, dy, weight, _ = random_case(seed, shape, dtype, affine)
    got = bnlib.batch_norm_backward_staged(dy, x, weight, eps=eps)
    expected = torch_grads(x.astype(np.float64), dy.astype(np.float64), weight, eps)
    assert got[0].shape == x.shape and got[1].shape == got[2].shape == (shape[1],)
    for g, e in zip(got, expected, strict=True):
        assert g.dtype == np.dtype(dtype)
        np.testing.assert_allclose(g, e, **GRAD_TOL[dtype])


@given(shape=shapes(), dtype=dtypes, eps=epsilons, affine=st.booleans(), seed=seeds)
def test_staged_matches_compact(shape, dtype, eps, affine, seed):
    x, dy, weight, _ = random_case(seed, shape, dtype, affine)
    staged = bnlib.batch_norm_backward_staged(dy, x, weight, eps=eps)
    compact = bnlib.batch_norm_backward(dy, x, weight, eps=eps)
    tol = dict(GRAD_TOL[dtype])
    if dtype == np.float32:
        # The compact form runs in float32 (the staged one in float64, from the same float32
        # values). In float32, x − μ loses digits when a channel's spread is small next to
        # its values (few, close values: m = 2 is the extreme), and the bracket
        # m·dy − Σdy − x̂·Σdy·x̂ cancels; the error scales with γ·ρ·|dy|·(1 + ρ·|x|), not |dx|.
        _, var = bnlib.batch_stats(x)
        rho = 1 / np.sqrt(var + eps)
        gamma = np.ones(shape[1]) if weight is None else weight.astype(np.float64)
        max_abs_x = np.abs(x).max(axis=(0, *range(2, x.ndim)))
        k = gamma * rho * (1 + rho * max_abs_x)
        tol["atol"] = max(tol["atol"], 1e-5 * k.max() * np.abs(dy).max())
    for staged_grad, compact_grad in zip(staged, compact, strict=True):
        assert staged_grad.dtype == compact_grad.dtype == np.dtype(dtype)
        np.testing.assert_allclose(staged_grad, compact_grad, **tol)


@given(shape=shapes(), eps=epsilons, affine=st.booleans(), seed=seeds)
def test_staged_gradient_properties(shape, eps, affine, seed):
    """Per channel: Σ dx = 0 and Σ dx·x̂ = γ·ε·ρ³·Σ dy·x̂ (zero when ε = 0)."""
    x, dy, weight, _ = random_case(seed, shape, np.float64, affine)
    dx, dweight, dbias = bnlib.batch_norm_backward_staged(dy, x, weight, eps=eps)
    axes = (0, *range(2, x.ndim))
    xhat = bnlib.batch_norm(x, training=True, eps=eps)
    _, var = bnlib.batch_stats(x)
    rho = (var + eps) ** -0.5
    gamma = np.ones(shape[1]) if weight is None else weight
    # rounding scale of the sums: the terms γ·ρ·dy that cancel in them, m of them
    scale = (gamma * rho).max() * np.abs(dy).max() * np.abs(xhat).max() * x[:, 0].size
    np.testing.assert_allclose(dx.sum(axis=axes), 0, atol=1e-12 * scale)
    np.testing.assert_allclose(
        (dx * xhat).sum(axis=axes), gamma * eps * rho**3 * dweight, rtol=1e-6, atol=1e-12 * scale
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
    x, _, weight, _ = random_case(sum(shape), shape, np.float64, affine=True)
    inputs = [
        torch.tensor(x, requires_grad=True),
        torch.tensor(weight, requires_grad=True),
        torch.linspace(-1, 1, shape[1], dtype=torch.float64, requires_grad=True),
    ]
    assert torch.autograd.gradcheck(
        lambda x, w, b: StagedBatchNorm.apply(x, w, b, eps), inputs, eps=1e-6, atol=1e-6
    )


def test_staged_constant_channel_is_finite_and_centred():
    """σ² = 0: x̂ = 0 and dx = γ·(dy − mean dy)/√ε, the case ε exists for."""
    x = np.full((4, 1, 3), 2.5)
    dy = np.random.default_rng(1).standard_normal(x.shape)
    for backward in (bnlib.batch_norm_backward_staged, bnlib.batch_norm_backward):
        dx, dweight, dbias = backward(dy, x, np.array([1.5]), eps=1e-4)
        np.testing.assert_allclose(dx, 1.5 / np.sqrt(1e-4) * (dy - dy.mean()), rtol=1e-12)
        assert dweight[0] == 0.0
        np.testing.assert_allclose(dbias, [dy.sum()], rtol=1e-12)


def test_backward_returns_the_dtype_of_x_whatever_dy_is():
    x, dy, weight, _ = random_case(3, (4, 2, 3), np.float32, affine=True)
    for backward in (bnlib.batch_norm_backward_staged, bnlib.batch_norm_backward):
        dx, dweight, dbias = backward(dy.astype(np.float64), x, weight)
        assert dx.dtype == dweight.dtype == dbias.dtype == np.float32
        expected = backward(dy, x, weight)
        for got, want in zip((dx, dweight, dbias), expected, strict=True):
            np.testing.assert_array_equal(got, want)


# -- one contract for the backward, one dtype rule for the gradients --------------------------


@given(shape=shapes(), dtype=dtypes, eps=epsilons, affine=st.booleans(), seed=seeds)
def test_reference_backward_is_reduce_then_elemt(shape, dtype, eps, affine, seed):
    """backward_reduce's sums are dβ and dγ; backward_elemt with zero sums is the
    evaluation gradient γρ·dy, with the sums the training one."""
    x, dy, weight, _ = random_case(seed, shape, dtype, affine)
    _, mean, invstd = reference.forward(x, weight, None, eps)
    sum_dy, sum_dy_xhat = reference.backward_reduce(dy, x, mean, invstd)
    assert sum_dy.dtype == sum_dy_xhat.dtype == np.float64
    dx, dweight, dbias = reference.backward(dy, x, mean, invstd, weight, True)
    np.testing.assert_array_equal(dweight, sum_dy_xhat.astype(dweight.dtype))
    np.testing.assert_array_equal(dbias, sum_dy.astype(dbias.dtype))
    m = x.size // shape[1]
    elemt = reference.backward_elemt(dy, x, mean, invstd, weight, sum_dy, sum_dy_xhat, m)
    np.testing.assert_array_equal(elemt, dx)
    zero = np.zeros(shape[1])
    frozen = reference.backward_elemt(dy, x, mean, invstd, weight, zero, zero, m)
    gamma = np.ones(shape[1]) if weight is None else weight
    per_channel = (1, -1) + (1,) * (x.ndim - 2)
    expected = (gamma * invstd).reshape(per_channel) * dy
    np.testing.assert_allclose(frozen, expected.astype(dtype), **TOL[dtype])
    np.testing.assert_array_equal(frozen, reference.backward(dy, x, mean, invstd, weight, False)[0])


@pytest.mark.parametrize("x_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weight_dtype", [None, np.float32, np.float64])
def test_gradients_take_torchs_dtypes(x_dtype, weight_dtype):
    """dx in x's dtype; dweight and dbias in the weight's, x's without one: the dtypes (and
    values) of torch's own decomposition of native_batch_norm_backward, for every backward."""
    from torch._decomp.decompositions import native_batch_norm_backward

    x, dy, _, _ = random_case(7, (4, 3, 2, 5), x_dtype, affine=False)
    weight = None if weight_dtype is None else np.linspace(0.5, 2, 3).astype(weight_dtype)
    mean, var = reference.batch_stats(x)
    invstd = 1 / np.sqrt(var + 1e-5)
    running_mean, running_var = np.linspace(-1, 1, 3), np.linspace(0.5, 1.5, 3)
    for training in (True, False):
        expected = native_batch_norm_backward(
            torch.tensor(dy), torch.tensor(x), tensor(weight),
            torch.tensor(running_mean), torch.tensor(running_var),
            torch.tensor(mean), torch.tensor(invstd), training, 1e-5, [True, True, True],
        )  # fmt: skip
        if training:
            stats = (mean, invstd)
            gots = {
                "bnlib.batch_norm_backward": bnlib.batch_norm_backward(dy, x, weight),
                "bnlib.batch_norm_backward_staged": bnlib.batch_norm_backward_staged(dy, x, weight),
            }
        else:
            stats = (running_mean, 1 / np.sqrt(running_var + 1e-5))
            gots = {
                "bnlib.batch_norm_eval_backward": bnlib.batch_norm_eval_backward(
                    dy, x, running_mean, running_var, weight
                )
            }
        gots["reference.backward"] = reference.backward(dy, x, *stats, weight, training)
        gots["kernels.backward"] = bnlib.kernels.backward(dy, x, *stats, weight, training)
        for name, got in gots.items():
            for g, e in zip(got, expected, strict=True):
                assert g.dtype == np.dtype(str(e.dtype).removeprefix("torch.")), name
                scale = max(1.0, float(e.abs().max()))
                np.testing.assert_allclose(g / scale, e.numpy() / scale, **GRAD_TOL[x_dtype])
