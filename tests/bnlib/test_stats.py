"""bnlib.stats against math.fsum references, float64 and torch, on cases drawn by hypothesis."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from bnlib import stats

ACCURATE = [stats.two_pass_var, stats.welford_var, stats.pairwise_var]


def fsum_moments(values) -> tuple[int, float, float]:
    """(count, mean, M2) of a list of floats, each sum correctly rounded (math.fsum)."""
    values = [float(v) for v in values]
    m = len(values)
    mean = math.fsum(values) / m
    # the mean is rounded once: correct it with the exactly summed residuals
    mean += math.fsum(v - mean for v in values) / m
    return m, mean, math.fsum((v - mean) ** 2 for v in values)


def fsum_var(values) -> float:
    m, _, m2 = fsum_moments(values)
    return m2 / m


@st.composite
def channel_data(draw, max_rows: int = 40, max_channels: int = 4):
    """An (m, C) float64 array: C channels of m values, each with its own offset and scale."""
    m = draw(st.integers(1, max_rows))
    c = draw(st.integers(1, max_channels))
    seed = draw(st.integers(0, 2**32 - 1))
    offset = draw(st.sampled_from([0.0, 1.0, -3.5, 1e3, 1e6]))
    scale = draw(st.sampled_from([1e-3, 1.0, 10.0]))
    rng = np.random.default_rng(seed)
    return offset + scale * rng.standard_normal((m, c))


@given(x=channel_data())
def test_accurate_methods_match_fsum_in_float64(x):
    expected = np.array([fsum_var(x[:, j]) for j in range(x.shape[1])])
    scale = np.array([fsum_moments(x[:, j])[1] ** 2 for j in range(x.shape[1])])
    for method in ACCURATE:
        got = method(x, axis=0)
        assert got.shape == (x.shape[1],) and got.dtype == np.float64
        # the data's own rounding (|x| up to ~1e6) bounds what any method can reach
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-13 * (1 + scale.max()))
    count, mean, m2 = stats.moments(x, axis=0)
    assert count == x.shape[0]
    refs = [fsum_moments(x[:, j]) for j in range(x.shape[1])]
    np.testing.assert_allclose(mean, [r[1] for r in refs], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(m2, [r[2] for r in refs], rtol=1e-9, atol=1e-12 * (1 + scale.max()))


@given(x=channel_data(max_rows=60), data=st.data())
def test_chan_merge_of_a_split_is_the_whole(x, data):
    """Split every channel at its own point (an empty side allowed) and merge: the whole."""
    m, c = x.shape
    splits = [data.draw(st.integers(0, m), label=f"split{j}") for j in range(c)]
    count_a, mean_a, m2_a = np.zeros(c, np.int64), np.zeros(c), np.zeros(c)
    count_b, mean_b, m2_b = np.zeros(c, np.int64), np.zeros(c), np.zeros(c)
    for j, s in enumerate(splits):
        if s > 0:
            count_a[j], mean_a[j], m2_a[j] = fsum_moments(x[:s, j])
        if s < m:
            count_b[j], mean_b[j], m2_b[j] = fsum_moments(x[s:, j])
    count, mean, m2 = stats.chan_merge(count_a, mean_a, m2_a, count_b, mean_b, m2_b)
    refs = [fsum_moments(x[:, j]) for j in range(c)]
    np.testing.assert_array_equal(count, m)
    spread = max(r[2] for r in refs) + 1.0
    np.testing.assert_allclose(mean, [r[1] for r in refs], rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(m2, [r[2] for r in refs], rtol=1e-9, atol=1e-12 * spread)


@given(x=channel_data(max_rows=30, max_channels=3), seed=st.integers(0, 2**16))
def test_chan_merge_in_any_order(x, seed):
    """Merging single values one by one, in a random order, gives the fsum statistics."""
    order = np.random.default_rng(seed).permutation(x.shape[0])
    count, mean, m2 = 0, np.zeros(x.shape[1]), np.zeros(x.shape[1])
    for i in order:
        count, mean, m2 = stats.chan_merge(count, mean, m2, 1, x[i], np.zeros(x.shape[1]))
    refs = [fsum_moments(x[:, j]) for j in range(x.shape[1])]
    assert count == x.shape[0]
    np.testing.assert_allclose(m2 / count, [r[2] / r[0] for r in refs], rtol=1e-8, atol=1e-9)


def test_empty_merge_stays_empty():
    count, mean, m2 = stats.chan_merge(0, 0.0, 0.0, 0, 0.0, 0.0)
    assert count == 0 and mean == 0.0 and m2 == 0.0
    count, mean, m2 = stats.chan_merge(0, 0.0, 0.0, 3, 2.0, 5.0)
    assert (count, mean, m2) == (3, 2.0, 5.0)


def test_welford_update_is_the_textbook_step():
    """Three values by hand: 1, 2, 4 → mean 7/3, M2 = Σ(x − 7/3)² = 14/3."""
    state = (0, 0.0, 0.0)
    for v in (1.0, 2.0, 4.0):
        state = stats.welford_update(*state, v)
    assert state[0] == 3
    assert state[1] == pytest.approx(7 / 3, rel=1e-15)
    assert state[2] == pytest.approx(14 / 3, rel=1e-15)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_float32_one_pass_cancels_the_others_do_not(seed):
    """(32, 4, 16, 16) float32 data of std 1: the one-pass formula's relative error grows
    like the mean squared; the other methods stay accurate (against float64 of the same
    float32 values)."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((32, 4, 16, 16))
    axis = (0, 2, 3)
    errors = {}
    for mean in (0.0, 100.0, 1e3, 1e4):
        x = (base + mean).astype(np.float32)
        exact = x.astype(np.float64).var(axis=axis)
        for method in [stats.one_pass_var, *ACCURATE]:
            got = method(x, axis=axis)
            assert got.dtype == np.float32
            errors[method.__name__, mean] = np.max(np.abs(got / exact - 1))
        # torch's own per-channel variance of the same values, for an independent check
        tvar = torch.var(torch.from_numpy(x), dim=axis, unbiased=False).double().numpy()
        assert np.max(np.abs(tvar / exact - 1)) < 1e-4
    assert errors["one_pass_var", 0.0] < 1e-6
    assert 1e-4 < errors["one_pass_var", 100.0] < 1e-1
    assert errors["one_pass_var", 1e3] > 1e-2
    assert errors["one_pass_var", 1e4] > 1.0
    for method in ACCURATE:
        for mean in (0.0, 100.0, 1e3, 1e4):
            assert errors[method.__name__, mean] < 1e-3, (method.__name__, mean)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_pass_goes_negative(seed):
    """float32 data of std 1 at mean 30,000: the one-pass variance of some channel is
    negative (its square root NaN); the other methods stay near the true variance."""
    x = (np.random.default_rng(seed).standard_normal((32, 4, 16, 16)) + 3e4).astype(np.float32)
    axis = (0, 2, 3)
    exact = x.astype(np.float64).var(axis=axis)
    assert np.all(exact > 0.9)
    got = stats.one_pass_var(x, axis=axis)
    assert np.any(got < 0)
    with np.errstate(invalid="ignore"):
        assert np.any(np.isnan(np.sqrt(got)))
    for method in ACCURATE:
        np.testing.assert_allclose(method(x, axis=axis), exact, rtol=1e-2)


def test_bad_input_gets_a_clear_error():
    with pytest.raises(TypeError, match="floating-point"):
        stats.two_pass_var(np.arange(5))
    assert stats.two_pass_var(np.arange(5), dtype=np.float64) == 2.0
    with pytest.raises(ValueError, match="no values"):
        stats.welford_var(np.zeros((0, 3)), axis=0)
    with pytest.raises(ValueError, match="non-negative"):
        stats.chan_merge(-1, 0.0, 0.0, 2, 1.0, 1.0)
    with pytest.raises(TypeError, match="dtype"):
        stats.one_pass_var(np.ones(3), dtype=np.int32)


def test_moments_of_no_values_add_nothing_to_a_merge():
    """An empty set (a rank with no samples) has count 0, mean 0 and M2 0: the merge's
    identity, so merging it changes nothing."""
    x = np.random.default_rng(0).standard_normal((5, 3, 2, 2)).astype(np.float32)
    empty = stats.moments(x[:0], axis=(0, 2, 3), dtype=np.float64)
    assert empty[0] == 0 and empty[1].shape == empty[2].shape == (3,)
    assert not empty[1].any() and not empty[2].any()
    whole = stats.moments(x, axis=(0, 2, 3), dtype=np.float64)
    for merged in (stats.chan_merge(*empty, *whole), stats.chan_merge(*whole, *empty)):
        for got, want in zip(merged, whole, strict=True):
            np.testing.assert_array_equal(got, want)
