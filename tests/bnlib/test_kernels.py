"""bnlib.kernels against bnlib.reference (and torch), on random cases drawn by hypothesis,
with the input cut into tiles and shared among 1, 2, 3 and 16 threads as large inputs are;
how bnlib.parallel splits the work; the same numbers on every run for a thread count."""

import contextlib
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given
from hypothesis import strategies as st

import bnlib
from bnlib import kernels, parallel, reference
from tests.cases import GRAD_TOL, TOL, dtypes, epsilons, momenta, random_input, shapes

# How the kernels cut the work: as small inputs run (whole, this thread); in tiles of one
# channel or fewer rows, in this thread; and shared among 2, 3 or 16 threads, tiles of a
# few values, whatever the input's size (2 cores here: 16 threads is more than cores).
TINY = dict(TILE_BYTES=1, MIN_TILE_BYTES=1, BYTES_PER_THREAD=1)
LAYOUTS = {
    "whole": (dict(), 1),
    "tiles": (TINY, 1),
    "2 threads": (TINY, 2),
    "3 threads": (TINY, 3),
    "16 threads": (TINY, 16),
}
layouts = st.sampled_from(sorted(LAYOUTS))

# Kernels and reference compute the same formula in different orders: float32 agrees to a
# few units in the last place of the values involved, float64 to far below TOL.
SAME = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-11, atol=1e-11)}


@contextlib.contextmanager
def layout(name: str):
    """Set bnlib.parallel's cut-offs and BNLIB_NUM_THREADS for a while."""
    settings, threads = LAYOUTS[name]
    with pytest.MonkeyPatch.context() as patch:
        for key, value in settings.items():
            patch.setattr(parallel, key, value)
        patch.setenv(parallel.THREADS_VARIABLE, str(threads))
        parallel.split.cache_clear()  # split's answers depend on the cut-offs
        try:
            yield
        finally:
            parallel.split.cache_clear()


def random_case(seed: int, shape, dtype, affine: bool):
    x = random_input(seed, shape, dtype)
    rng = np.random.default_rng(seed + 1)
    dy = rng.standard_normal(shape).astype(dtype)
    weight = rng.uniform(0.5, 2, shape[1]).astype(dtype) if affine else None
    bias = rng.uniform(-1, 1, shape[1]).astype(dtype) if affine else None
    return x, dy, weight, bias


def assert_same(got, expected, dtype, scale=1.0):
    for g, e in zip(got, expected, strict=True):
        assert g.shape == e.shape and g.dtype == e.dtype
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
@example((1, 3, 2, 2), np.float32, 1e-5, True, "3 threads", 1)
@example((4, 1, 3, 3), np.float64, 1e-3, False, "16 threads", 2)
@example((5, 2, 1, 1), np.float32, 1.0, True, "2 threads", 3)
def test_forward_kernels_match_the_reference(shape, dtype, eps, affine, how, seed):
    x, _, weight, bias = random_case(seed, shape, dtype, affine)
    expected = reference.forward(x, weight, bias, eps)
    mean, var = reference.batch_stats(x)
    invstd = 1 / np.sqrt(var + eps)
    with layout(how):
        got = kernels.forward(x, weight, bias, eps)
        native = kernels.native_batch_norm(x, weight, bias, None, None, True, 0.1, eps)
        stats = kernels.batch_stats(x)
        normalized = kernels.normalize(x, mean, invstd, weight, bias)
    assert got[0].dtype == x.dtype and got[1].dtype == got[2].dtype == np.float64
    assert_same(got, expected, dtype)
    assert_same(native, expected, dtype)
    assert_same(stats, (mean, var), dtype, scale=max(1.0, float(var.max())))
    assert_same((normalized,), expected[:1], dtype)


@given(
    shape=shapes(),
    dtype=dtypes,
    eps=epsilons,
    momentum=momenta,
    training=st.booleans(),
    how=layouts,
    seed=st.integers(0, 2**32 - 1),
)
def test_native_batch_norm_is_the_reference_with_running_stats(
    shape, dtype, eps, momentum, training, how, seed
):
    """Training: the forward and the running update; evaluation: the running statistics
    normalize, and they come back as the mean and invstd the backward takes."""
    x, _, weight, bias = random_case(seed, shape, dtype, affine=True)
    rng = np.random.default_rng(seed + 2)
    rm, rv = rng.standard_normal(shape[1]).astype(dtype), rng.uniform(0.5, 2, shape[1])
    rv = rv.astype(dtype)
    expected_rm, expected_rv = rm.copy(), rv.copy()
    if training:
        expected = reference.forward(x, weight, bias, eps)
        mean, var = reference.batch_stats(x)
        m = x.size // shape[1]
        reference.update_running_stats(expected_rm, expected_rv, mean, var, m, momentum)
    else:
        mean = rm.astype(np.float64)
        invstd = 1 / np.sqrt(rv.astype(np.float64) + eps)
        expected = (reference.normalize(x, mean, invstd, weight, bias), mean, invstd)
    with layout(how):
        got = kernels.native_batch_norm(x, weight, bias, rm, rv, training, momentum, eps)
    assert_same(got, expected, dtype)
    np.testing.assert_allclose(rm, expected_rm, **SAME[dtype])
    np.testing.assert_allclose(rv, expected_rv, **SAME[dtype])


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
    mean, var = reference.batch_stats(x)
    m = x.size // shape[1]
    expected = [None if b is None else b.copy() for b in (rm, rv)]
    reference.update_running_stats(*expected, mean, var, m, number_type(momentum))
    kernels.update_running_stats(rm, rv, mean, var, m, number_type(momentum))
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
@example((1, 3, 2, 2), np.float32, 1e-5, True, "3 threads", 1)
@example((4, 1, 3, 3), np.float64, 1e-3, False, "16 threads", 2)
@example((5, 2, 1, 1), np.float32, 1.0, True, "2 threads", 3)
def test_backward_kernels_match_the_reference(shape, dtype, eps, affine, how, seed):
    x, dy, weight, _ = random_case(seed, shape, dtype, affine)
    _, mean, invstd = reference.forward(x, weight, None, eps)
    rng = np.random.default_rng(seed + 2)
    running_mean, running_invstd = rng.standard_normal(shape[1]), rng.uniform(0.5, 2, shape[1])
    m = x.size // shape[1]
    expected = reference.backward(dy, x, mean, invstd, weight, True)
    expected_eval = reference.backward(dy, x, running_mean, running_invstd, weight, False)
    expected_sums = reference.backward_reduce(dy, x, mean, invstd)
    with layout(how):
        got = kernels.backward(dy, x, mean, invstd, weight, True)
        got_eval = kernels.backward(dy, x, running_mean, running_invstd, weight, False)
        sums = kernels.backward_reduce(dy, x, mean, invstd)
        elemt = kernels.backward_elemt(dy, x, mean, invstd, weight, *expected_sums, m)
    # dx is a difference of nearly equal terms: compare on the scale of those terms
    gamma = 1.0 if weight is None else np.abs(weight).max()
    terms = gamma * invstd.max() * np.abs(dy).max() * (1 + invstd.max() * np.abs(x).max())
    assert_same((got[0], elemt), (expected[0],) * 2, dtype, scale=max(1.0, terms))
    assert_same(got[1:], expected[1:], dtype, scale=max(1.0, np.abs(expected[1]).max()))
    assert_same(sums, expected_sums, dtype, scale=max(1.0, np.abs(expected[1]).max()))
    assert_same(got_eval, expected_eval, dtype, scale=max(1.0, np.abs(expected_eval[1]).max()))


# -- how the work is shared -------------------------------------------------------------------


@given(
    n=st.integers(1, 40),
    c=st.integers(1, 70),
    length=st.integers(1, 50),
    itemsize=st.sampled_from([4, 8]),
    threads=st.integers(1, 20),
    tile=st.sampled_from([1, 100, 1000, 1 << 30]),
    per_thread=st.sampled_from([1, 500, 1 << 30]),
)
def test_split_covers_every_value_once(n, c, length, itemsize, threads, tile, per_thread):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(parallel, "TILE_BYTES", tile)
        patch.setattr(parallel, "MIN_TILE_BYTES", tile)
        patch.setattr(parallel, "BYTES_PER_THREAD", per_thread)
        parallel.split.cache_clear()
        blocks, runs = parallel.split(n, c, length, itemsize, threads)
    parallel.split.cache_clear()
    seen = np.zeros((n, c), int)
    block_rows = {}
    for run in runs:
        assert run  # every thread used has work
        for block, rows, channels in run:
            seen[rows, channels] += 1
            assert block_rows.setdefault(block, (rows.start, rows.stop)) == (rows.start, rows.stop)
    assert np.all(seen == 1)
    assert 1 <= len(runs) <= max(1, min(threads, n * c * length * itemsize // per_thread))
    assert sorted(block_rows) == list(range(blocks))
    starts = [block_rows[b][0] for b in range(blocks)]
    assert starts[0] == 0 and starts == sorted(starts)  # blocks in order, top to bottom
    if blocks == 1:
        assert all(rows == slice(0, n) for run in runs for _, rows, _ in run)


def test_split_shares_the_benchmark_shapes_by_whole_channels():
    """32×64×56×56 on 16 threads: 4 channels each, in two tiles; 3 channels on 2 threads
    are too uneven (2 against 1), so the rows are cut too."""
    blocks, runs = parallel.split(32, 64, 56 * 56, 4, 16)
    assert blocks == 1 and len(runs) == 16
    assert all(sum(t[2].stop - t[2].start for t in run) == 4 for run in runs)
    blocks, runs = parallel.split(64, 3, 112 * 112, 4, 2)
    assert blocks > 1 and len(runs) == 2
    blocks, runs = parallel.split(8, 16, 32 * 32, 4, 16)  # 0.5 MiB: one thread
    assert len(runs) == 1


@pytest.mark.parametrize("threads", [1, 2, 3, 16])
@pytest.mark.parametrize("shape", [(16, 5, 96, 96), (33, 3, 96, 96), (2, 1, 512, 600)])
def test_real_threads_match_the_reference_and_repeat_exactly(monkeypatch, threads, shape):
    """Inputs large enough (2.9-4.4 MiB) to be shared for real (no cut-off patched): the
    reference's numbers, and the very same bits on every run with this thread count."""
    monkeypatch.setenv(parallel.THREADS_VARIABLE, str(threads))
    x, dy, weight, bias = random_case(sum(shape), shape, np.float32, affine=True)
    expected = reference.forward(x, weight, bias, 1e-5)
    _, mean, invstd = expected
    expected_grads = reference.backward(dy, x, mean, invstd, weight, True)
    runs = [
        (
            *kernels.forward(x, weight, bias, 1e-5),
            *kernels.backward(dy, x, mean, invstd, weight, True),
        )
        for _ in range(3)
    ]
    assert_same(runs[0][:3], expected, np.float32)
    # float32 sums err relative to the sum of their terms' sizes, not to the result
    xhat = reference.normalize(x.astype(np.float64), mean, invstd, None, None)
    sizes = (np.abs(expected_grads[0]).max(), np.abs(dy * xhat).sum(), np.abs(dy).sum())
    for got, want, size in zip(runs[0][3:], expected_grads, sizes, strict=True):
        assert_same((got,), (want,), np.float32, scale=float(size))
    for again in runs[1:]:
        for a, b in zip(runs[0], again, strict=True):
            np.testing.assert_array_equal(a, b)


def test_thread_count_from_the_environment(monkeypatch):
    monkeypatch.delenv(parallel.THREADS_VARIABLE, raising=False)
    assert parallel.num_threads() == len(parallel.os.sched_getaffinity(0))
    monkeypatch.setenv(parallel.THREADS_VARIABLE, " 3 ")
    assert parallel.num_threads() == 3
    for bad in ("0", "-2", "two", "1.5"):
        monkeypatch.setenv(parallel.THREADS_VARIABLE, bad)
        with pytest.raises(ValueError, match="BNLIB_NUM_THREADS must be a positive whole"):
            parallel.num_threads()


def test_an_error_in_a_thread_reaches_the_caller():
    def fail(tile) -> None:
        if tile[2].start == 3:
            raise ZeroDivisionError(f"tile {tile}")

    runs = tuple(((0, slice(0, 1), slice(i, i + 1)),) for i in range(4))
    with pytest.raises(ZeroDivisionError, match="tile"):
        parallel.each_tile(fail, runs)


def test_the_thread_pool_is_kept_between_calls():
    x = random_input(0, (2, 4, 3, 3), np.float32)
    with layout("3 threads"):
        bnlib.batch_norm(x, training=True)
        threads = set(threading.enumerate())
        for _ in range(3):
            bnlib.batch_norm(x, training=True)
            bnlib.batch_norm_backward(x, x)
        assert set(threading.enumerate()) == threads


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("c", [1, 3, 8])
def test_module_on_threads_matches_torch(c, affine):
    """The module and the functions, every input shared among three threads."""
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

    with layout("3 threads"):
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


@pytest.mark.parametrize("offset", [0.0, 100.0, 1000.0])
def test_large_float32_input_is_as_accurate_as_torch(offset):
    """Large enough to be shared for real, with rows longer than ROW_PIECE, and a mean far
    from zero: against float64 autograd on the same float32 values, bnlib's output and
    gradients err no more than three times as much as torch's float32 ones."""
    rng = np.random.default_rng(12)
    x = (offset + rng.standard_normal((4, 6, 100, 100))).astype(np.float32)
    assert x.shape[2] * x.shape[3] > kernels.ROW_PIECE
    dy = rng.standard_normal(x.shape).astype(np.float32)
    results = {}
    for dtype in (torch.float32, torch.float64):
        tx = torch.tensor(x, dtype=dtype, requires_grad=True)
        out = F.batch_norm(tx, None, None, training=True)
        out.backward(torch.tensor(dy, dtype=dtype))
        results[dtype] = (out.detach().double().numpy(), tx.grad.double().numpy())
    ours = (bnlib.batch_norm(x, training=True), bnlib.batch_norm_backward(dy, x)[0])
    for got, theirs, want in zip(ours, results[torch.float32], results[torch.float64], strict=True):
        their_error = np.abs(theirs - want).max()
        assert np.abs(got - want).max() <= 3 * their_error + 1e-6
