"""bnlib.kernels against the reference in bnlib.functional (and torch), on random cases drawn
by hypothesis, with the input cut into chunks of channels and run on several threads as
large inputs are."""

import contextlib
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given
from hypothesis import strategies as st

import bnlib
from bnlib import functional, kernels
from tests.cases import GRAD_TOL, TOL, dtypes, epsilons, momenta, random_input, shapes

# How the kernels cut the work: as small inputs run (one chunk, this thread), in chunks of
# one channel in this thread, and in chunks spread over (pretend) three cores.
LAYOUTS = {
    "whole": dict(),
    "chunks": dict(CHUNK_BYTES=1),
    "threads": dict(CHUNK_BYTES=1, PARALLEL_MIN_SIZE=0, cores=3),
}
layouts = st.sampled_from(sorted(LAYOUTS))

# Kernels and reference compute the same formula in different orders: float32 agrees to a
# few units in the last place of the values involved, float64 to far below TOL.
SAME = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-11, atol=1e-11)}


@contextlib.contextmanager
def layout(name: str):
    """Set the kernels' chunk size, parallel threshold and core count for a while."""
    settings = dict(LAYOUTS[name])
    cores = settings.pop("cores", None)
    saved = {k: getattr(kernels, k) for k in settings}
    saved_cpu_count = kernels.os.cpu_count
    try:
        for k, v in settings.items():
            setattr(kernels, k, v)
        if cores is not None:
            kernels.os.cpu_count = lambda: cores
        yield
    finally:
        for k, v in saved.items():
            setattr(kernels, k, v)
        kernels.os.cpu_count = saved_cpu_count


def random_case(seed: int, shape, dtype, affine: bool):
    x = random_input(seed, shape, dtype)
    rng = np.random.default_rng(seed + 1)
    dy = rng.standard_normal(shape).astype(dtype)
    weight = rng.uniform(0.5, 2, shape[1]).astype(dtype) if affine else None
    bias = rng.uniform(-1, 1, shape[1]).astype(dtype) if affine else None
    return x, dy, weight, bias


def assert_same(got, expected, dtype, scale=1.0):
    for g, e in zip(got, expected, strict=True):
        assert g.shape == e.shape
        np.testing.assert_allclose(np.divide(g, scale), np.divide(e, scale), **SAME[dtype])


@given(
    shape=shapes(),
    dtype=dtypes,
    eps=epsilons,
    affine=st.booleans(),
    how=layouts,
    seed=st.integers(0, 2**32 - 1),
)
# the edge cases, always: one image with H·W > 1, one channel, 1×1 feature maps
@example((1, 3, 2, 2), np.float32, 1e-5, True, "threads", 1)
@example((4, 1, 3, 3), np.float64, 1e-3, False, "chunks", 2)
@example((5, 2, 1, 1), np.float32, 1.0, True, "threads", 3)
def test_forward_kernels_match_the_reference(shape, dtype, eps, affine, how, seed):
    x, _, weight, bias = random_case(seed, shape, dtype, affine)
    expected = functional._forward(x, weight, bias, eps)
    mean, var = functional.batch_stats(x)
    with layout(how):
        got = kernels._forward(x, weight, bias, eps)
        y, got_mean, got_var, got_invstd = kernels._train_forward(x, weight, bias, eps)
        stats = kernels._batch_stats(x)
        normalized = kernels._normalize(x, mean, 1 / np.sqrt(var + eps), weight, bias)
    assert got[0].dtype == x.dtype and got[1].dtype == got[2].dtype == np.float64
    assert_same(got, expected, dtype)
    assert_same((y, got_mean, got_invstd), expected, dtype)
    assert_same((got_var,), (var,), dtype, scale=max(1.0, float(var.max())))
    assert_same(stats, (mean, var), dtype, scale=max(1.0, float(var.max())))
    assert_same((normalized,), expected[:1], dtype)


@given(
    shape=shapes(),
    dtype=dtypes,
    buffer_dtype=dtypes,
    momentum=momenta,
    number_type=st.sampled_from([float, np.float32, np.float64]),
    buffers=st.sampled_from(["both", "mean only", "var only", "none"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_running_update_kernel_matches_the_reference(
    shape, dtype, buffer_dtype, momentum, number_type, buffers, seed
):
    """Any buffer dtype, either buffer left out, momentum as a Python or a NumPy number."""
    x = random_input(seed, shape, dtype)
    rng = np.random.default_rng(seed + 1)
    rm = rng.standard_normal(shape[1]).astype(buffer_dtype)
    rv = rng.uniform(0.5, 2, shape[1]).astype(buffer_dtype)
    if buffers in ("var only", "none"):
        rm = None
    if buffers in ("mean only", "none"):
        rv = None
    mean, var = functional.batch_stats(x)
    m = x.size // shape[1]
    expected = [None if b is None else b.copy() for b in (rm, rv)]
    functional._update_running_stats(*expected, mean, var, m, number_type(momentum))
    kernels._update_running_stats(rm, rv, mean, var, m, number_type(momentum))
    for got, want in zip((rm, rv), expected, strict=True):
        assert (got is None) == (want is None)
        if got is not None:
            assert got.dtype == buffer_dtype
            np.testing.assert_allclose(got, want, **SAME[buffer_dtype])


@given(
    shape=shapes(),
    dtype=dtypes,
    eps=epsilons,
    affine=st.booleans(),
    how=layouts,
    seed=st.integers(0, 2**32 - 1),
)
# the edge cases, always: one image with H·W > 1, one channel, 1×1 feature maps
@example((1, 3, 2, 2), np.float32, 1e-5, True, "threads", 1)
@example((4, 1, 3, 3), np.float64, 1e-3, False, "chunks", 2)
@example((5, 2, 1, 1), np.float32, 1.0, True, "threads", 3)
def test_backward_kernels_match_the_reference(shape, dtype, eps, affine, how, seed):
    x, dy, weight, _ = random_case(seed, shape, dtype, affine)
    _, mean, invstd = functional._forward(x, weight, None, eps)
    rng = np.random.default_rng(seed + 2)
    running_mean, running_invstd = rng.standard_normal(shape[1]), rng.uniform(0.5, 2, shape[1])
    expected = functional._backward(dy, x, mean, invstd, weight)
    expected_eval = functional._eval_backward(dy, x, running_mean, running_invstd, weight)
    with layout(how):
        got = kernels._backward(dy, x, mean, invstd, weight)
        got_eval = kernels._eval_backward(dy, x, running_mean, running_invstd, weight)
    assert got[0].dtype == got_eval[0].dtype == x.dtype
    # dx is a difference of nearly equal terms: compare on the scale of those terms
    gamma = 1.0 if weight is None else np.abs(weight).max()
    terms = gamma * invstd.max() * np.abs(dy).max() * (1 + invstd.max() * np.abs(x).max())
    assert_same(got[:1], expected[:1], dtype, scale=max(1.0, terms))
    assert_same(got[1:], expected[1:], dtype, scale=max(1.0, np.abs(expected[1]).max()))
    assert_same(got_eval, expected_eval, dtype, scale=max(1.0, np.abs(expected_eval[1]).max()))


@pytest.mark.parametrize("cores", [1, 2, 3, 8])
@pytest.mark.parametrize("c", [1, 3, 8])
@pytest.mark.parametrize("chunk_bytes", [1, 40, 1 << 30])
def test_chunks_cover_every_channel_once(monkeypatch, cores, c, chunk_bytes):
    monkeypatch.setattr(kernels.os, "cpu_count", lambda: cores)
    monkeypatch.setattr(kernels, "PARALLEL_MIN_SIZE", 0)
    monkeypatch.setattr(kernels, "CHUNK_BYTES", chunk_bytes)
    seen = []
    lock = threading.Lock()

    def record(g: slice) -> None:
        with lock:
            seen.extend(range(c)[g])

    kernels._for_each_chunk(record, np.empty((2, c, 5), np.float32))
    assert sorted(seen) == list(range(c))


def test_an_error_in_a_thread_reaches_the_caller(monkeypatch):
    monkeypatch.setattr(kernels, "PARALLEL_MIN_SIZE", 0)
    monkeypatch.setattr(kernels, "CHUNK_BYTES", 1)
    monkeypatch.setattr(kernels.os, "cpu_count", lambda: 2)

    def fail(g: slice) -> None:
        raise ZeroDivisionError(f"chunk {g}")

    with pytest.raises(ZeroDivisionError, match="chunk"):
        kernels._for_each_chunk(fail, np.empty((1, 4, 1), np.float32))


def test_the_thread_pool_is_kept_between_calls(monkeypatch):
    monkeypatch.setattr(kernels, "PARALLEL_MIN_SIZE", 0)
    monkeypatch.setattr(kernels, "CHUNK_BYTES", 1)
    monkeypatch.setattr(kernels.os, "cpu_count", lambda: 2)
    x = random_input(0, (2, 4, 3, 3), np.float32)
    bnlib.batch_norm(x, training=True)
    threads = set(threading.enumerate())
    for _ in range(3):
        bnlib.batch_norm(x, training=True)
    assert set(threading.enumerate()) == threads


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("c", [1, 3, 8])
def test_module_in_chunks_on_threads_matches_torch(c, affine):
    """The module and the functions, every input split across (pretend) three cores."""
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

    with layout("threads"):
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
    """Large enough to take the chunked, parallel path for real (no patching)."""
    x = random_input(11, (8, 6, 300, 300), np.float32)
    assert x.size >= kernels.PARALLEL_MIN_SIZE
    assert len(kernels._channel_chunks(kernels._channels_view(x))) > 1
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
