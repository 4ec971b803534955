"""bnbook.simulate: running statistics of a batch stream, against torch and the closed forms."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from bnbook import simulate

momenta = st.sampled_from([None, 0.0, 0.01, 0.1, 0.3, 0.9, 1.0])


@given(
    momentum=momenta,
    steps=st.integers(1, 12),
    batch_size=st.integers(1, 5),
    channels=st.integers(1, 3),
    height=st.integers(1, 3),
    width=st.integers(1, 3),
    seed=st.integers(0, 2**32 - 1),
)
def test_track_running_stats_matches_torch(
    momentum, steps, batch_size, channels, height, width, seed
):
    if batch_size * height * width < 2:
        batch_size = 2
    rng = np.random.default_rng(seed)
    mean = rng.uniform(-3, 3, channels)
    std = rng.uniform(0.1, 3, channels)
    batches = simulate.sample_batches(steps, batch_size, mean, std, height, width, seed=seed)
    trace = simulate.track_running_stats(batches, momentum)

    bn = torch.nn.BatchNorm2d(channels, momentum=momentum, affine=False)
    np.testing.assert_array_equal(trace.running_mean[0], bn.running_mean.numpy())
    np.testing.assert_array_equal(trace.running_var[0], bn.running_var.numpy())
    for t, x in enumerate(batches, start=1):
        bn(torch.from_numpy(x))
        np.testing.assert_allclose(trace.running_mean[t], bn.running_mean, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(trace.running_var[t], bn.running_var, rtol=1e-5, atol=1e-5)
    assert bn.num_batches_tracked.item() == trace.steps == steps
    # the batch statistics the trace reports are torch's mean and unbiased variance
    xt = torch.from_numpy(batches).transpose(1, 2).reshape(steps, channels, -1).double()
    # (bnlib centres float32 input in float32, so agreement is to float32 rounding)
    np.testing.assert_allclose(trace.batch_mean, xt.mean(-1), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(trace.batch_var, xt.var(-1, unbiased=True), rtol=1e-6, atol=1e-6)


@given(momentum=st.sampled_from([0.0, 0.05, 0.1, 0.5, 0.99, 1.0]), steps=st.integers(1, 30))
def test_running_value_is_the_ema_weighted_sum(momentum, steps):
    """r_t = (1 − p)^t r_0 + Σ_k p(1 − p)^k b_{t−k}: the weight of the k-th past batch."""
    trace = simulate.simulate_running_stats(momentum, batch_size=4, steps=steps, seed=steps)
    w = simulate.ema_weights(momentum, steps)
    assert w.shape == (steps,)
    np.testing.assert_allclose(w.sum() + (1 - momentum) ** steps, 1.0, rtol=0, atol=1e-12)
    for stat, initial in [("mean", 0.0), ("var", 1.0)]:
        batch = getattr(trace, f"batch_{stat}")[::-1]  # batch_{t−k}, k = 0, 1, ...
        closed = (1 - momentum) ** steps * initial + w @ batch
        np.testing.assert_allclose(
            getattr(trace, f"running_{stat}")[-1], closed, rtol=1e-5, atol=1e-5
        )


def test_ema_weight_of_kth_batch():
    w = simulate.ema_weights(0.1, 5)
    np.testing.assert_allclose(w, [0.1, 0.09, 0.081, 0.0729, 0.06561], rtol=1e-12)


def test_momentum_none_is_the_plain_average():
    trace = simulate.simulate_running_stats(None, batch_size=8, steps=50, seed=3)
    for t in range(1, 51):
        np.testing.assert_allclose(
            trace.running_mean[t], trace.batch_mean[:t].mean(axis=0), rtol=1e-5, atol=1e-5
        )
        np.testing.assert_allclose(
            trace.running_var[t], trace.batch_var[:t].mean(axis=0), rtol=1e-5, atol=1e-5
        )


def test_momentum_one_keeps_only_the_last_batch():
    trace = simulate.simulate_running_stats(1.0, batch_size=8, steps=5, seed=1)
    np.testing.assert_allclose(trace.running_mean[1:], trace.batch_mean, rtol=1e-6)
    np.testing.assert_allclose(trace.running_var[1:], trace.batch_var, rtol=1e-6)


def test_expected_running_matches_many_seeds():
    """Averaged over independent streams, the trace follows v + (r_0 − v)(1 − p)^t."""
    p, steps, seeds = 0.1, 40, 300
    runs = [simulate.simulate_running_stats(p, 8, steps, seed=s) for s in range(seeds)]
    mean_trace = np.mean([r.running_mean for r in runs], axis=0)
    var_trace = np.mean([r.running_var for r in runs], axis=0)
    pop_mean = np.array(simulate.POPULATION_MEAN)
    pop_var = np.array(simulate.POPULATION_STD) ** 2
    expected_mean = simulate.expected_running(p, steps, 0.0, pop_mean)
    expected_var = simulate.expected_running(p, steps, 1.0, pop_var)
    assert expected_mean.shape == (steps + 1, 2)
    # the spread of a 300-run average is below 0.05·σ for the mean and 0.1·σ² for the var
    np.testing.assert_allclose(mean_trace, expected_mean, atol=0.05 * 2.0)
    np.testing.assert_allclose(var_trace, expected_var, atol=0.1 * 4.0)
    # the unbiased variance is what makes the limit the population variance, not (m−1)/m·σ²
    biased_limit = pop_var * 7 / 8
    assert np.all(np.abs(var_trace[-1] - pop_var) < np.abs(var_trace[-1] - biased_limit))


def test_stationary_std_matches_simulation():
    p = 0.1
    trace = simulate.simulate_running_stats(p, batch_size=8, steps=6000, seed=11)
    tail = trace.running_mean[1000:]
    predicted = simulate.stationary_std(p, np.array(simulate.POPULATION_STD) / math.sqrt(8))
    np.testing.assert_allclose(tail.std(axis=0), predicted, rtol=0.15)


def test_sample_batches_have_the_population_statistics():
    mean, std = (1.0, -2.0), (0.5, 3.0)
    x = simulate.sample_batches(50, 40, mean, std, height=2, width=2, seed=9)
    assert x.shape == (50, 40, 2, 2, 2) and x.dtype == np.float32
    per_channel = x.transpose(2, 0, 1, 3, 4).reshape(2, -1).astype(np.float64)
    n = per_channel.shape[1]  # 8000 values per channel
    # 4 standard errors of the sample mean; the sample sd is within ~1 % of σ
    assert np.all(np.abs(per_channel.mean(1) - mean) < 4 * np.array(std) / math.sqrt(n))
    np.testing.assert_allclose(per_channel.std(1), std, rtol=0.04)


def test_expected_running_starts_at_r0_and_tends_to_the_population():
    e = simulate.expected_running(0.2, 200, [0.0, 1.0], [3.0, 4.0])
    assert e.shape == (201, 2)
    np.testing.assert_array_equal(e[0], [0.0, 1.0])
    np.testing.assert_allclose(e[1], [0.8 * 0.0 + 0.2 * 3.0, 0.8 * 1.0 + 0.2 * 4.0])
    np.testing.assert_allclose(e[-1], [3.0, 4.0], rtol=0, atol=1e-12)


@pytest.mark.parametrize("p", [0.01, 0.1, 0.5, 1.0])
def test_stationary_std_is_the_root_sum_of_squared_weights(p):
    """Var[r] = Σ_k w_k² s² for independent batch statistics of sd s."""
    w = simulate.ema_weights(p, 20_000)
    np.testing.assert_allclose(
        simulate.stationary_std(p, 2.0), 2.0 * np.sqrt(np.sum(w**2)), rtol=1e-9
    )


@pytest.mark.parametrize("p", [0.01, 0.1, 0.5, 0.9, 1.0])
def test_steps_to_forget(p):
    t = simulate.steps_to_forget(p, 0.05)
    assert (1 - p) ** t < 0.05 <= (1 - p) ** (t - 1)


@pytest.mark.parametrize("batch_size", [2, 8, 32, 128])
def test_batch_stat_spread_matches_closed_form(batch_size):
    spread = simulate.batch_stat_spread(batch_size, trials=4000, seed=batch_size)
    assert spread.m == batch_size
    # the standard deviation of a 4000-sample std estimate is about 1-3 %
    np.testing.assert_allclose(spread.mean_std, spread.mean_std_theory, rtol=0.06)
    np.testing.assert_allclose(spread.var_std, spread.var_std_theory, rtol=0.1)


def test_batch_stat_spread_halves_when_batch_quadruples():
    small = simulate.batch_stat_spread(16, trials=4000, seed=0)
    large = simulate.batch_stat_spread(64, trials=4000, seed=1)
    np.testing.assert_allclose(large.mean_std / small.mean_std, 0.5, rtol=0.08)
    np.testing.assert_allclose(small.mean_std_theory / large.mean_std_theory, 2.0, rtol=1e-12)


def test_batch_stat_spread_counts_pixels():
    spread = simulate.batch_stat_spread(4, height=2, width=3, trials=10)
    assert spread.m == 24


def test_batch_stat_spread_uses_real_batch_statistics():
    """The side-by-side layout gives each trial the statistics of its own batch."""
    x, _, _ = simulate._trials_as_channels(5, 3, (1.0, 2.0), (1.0, 1.0), 1, 1, seed=0)
    xt = torch.from_numpy(x)
    per_trial = xt.reshape(3, 5, 2)  # (N, trial, C)
    spread = simulate.batch_stat_spread(3, trials=5, mean=(1.0, 2.0), std=(1.0, 1.0), seed=0)
    expected = per_trial.double().mean(0).std(0, unbiased=True).numpy()
    np.testing.assert_allclose(spread.mean_std, expected, rtol=1e-6)


def test_probe_outputs_match_torch_batchnorm_per_trial():
    train, ideal = simulate.probe_outputs(4, trials=20, seed=5)
    x, _, _ = simulate._trials_as_channels(
        20, 4, simulate.POPULATION_MEAN, simulate.POPULATION_STD, 1, 1, seed=5
    )
    probe = np.array(simulate.POPULATION_MEAN) + np.array(simulate.POPULATION_STD)
    bn = torch.nn.BatchNorm2d(2, affine=False)
    for trial in range(20):
        batch = x[:, 2 * trial : 2 * trial + 2].copy()
        batch[0, :, 0, 0] = probe
        y = bn(torch.from_numpy(batch))[0, :, 0, 0].detach().numpy()
        np.testing.assert_allclose(train[trial], y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ideal, 1.0, atol=1e-4)  # one σ above the mean


def test_probe_outputs_batch_of_two():
    """With two values per channel, batch norm outputs ±d/√(d² + ε), d = half their gap."""
    train, _ = simulate.probe_outputs(2, trials=50, seed=0)
    x, _, _ = simulate._trials_as_channels(
        50, 2, simulate.POPULATION_MEAN, simulate.POPULATION_STD, 1, 1, seed=0
    )
    probe = np.array(simulate.POPULATION_MEAN) + np.array(simulate.POPULATION_STD)
    d = (np.tile(probe, 50) - x[1, :, 0, 0].astype(np.float64)).reshape(50, 2) / 2
    np.testing.assert_allclose(train, d / np.sqrt(d**2 + 1e-5), rtol=1e-4, atol=1e-5)
    assert np.mean(np.abs(train) > 0.99) > 0.8  # mostly ±1, whatever the probe's value


def test_same_seed_same_stream():
    a = simulate.simulate_running_stats(0.1, 8, 20, seed=4)
    b = simulate.simulate_running_stats(0.3, 8, 20, seed=4)
    np.testing.assert_array_equal(a.batch_mean, b.batch_mean)
    assert not np.array_equal(a.running_mean, b.running_mean)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: simulate.simulate_running_stats(1.5), ValueError, "momentum must be in"),
        (lambda: simulate.simulate_running_stats("0.1"), TypeError, "momentum must be"),
        (lambda: simulate.sample_batches(0, 4), ValueError, "steps must be at least 1"),
        (lambda: simulate.sample_batches(3, 2.0), TypeError, "batch_size must be an int"),
        (lambda: simulate.sample_batches(3, 2, (0.0,), (1.0, 2.0)), ValueError, "same length"),
        (lambda: simulate.sample_batches(3, 2, (0.0,), (0.0,)), ValueError, "std must be"),
        (lambda: simulate.track_running_stats(np.zeros((2, 3))), ValueError, "steps, N, C"),
        (lambda: simulate.simulate_running_stats(0.1, 1), ValueError, "more than 1 value"),
        (lambda: simulate.batch_stat_spread(1), ValueError, "at least 2 values"),
        (lambda: simulate.probe_outputs(1), ValueError, "batch_size must be at least 2"),
        (lambda: simulate.steps_to_forget(0.0), ValueError, "never changes"),
    ],
)
def test_bad_input_raises_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_drifting_stream_holds_ramps_and_holds():
    from bnbook.simulate import DRIFT_HOLD, DRIFT_RAMP, DRIFT_STD, DRIFT_TOP, drifting_batches

    batches, mean = drifting_batches(batch_size=64, seed=3)
    assert batches.shape == (mean.size, 64, 1, 1, 1) and batches.dtype == np.float32
    assert np.all(mean[:DRIFT_HOLD] == 0) and np.all(mean[DRIFT_HOLD + DRIFT_RAMP :] == DRIFT_TOP)
    assert np.all(np.diff(mean[DRIFT_HOLD : DRIFT_HOLD + DRIFT_RAMP]) > 0)
    z = (batches[:, :, 0, 0, 0] - mean[:, None]) / DRIFT_STD  # standard normal, every step
    assert abs(z.mean()) < 0.02 and abs(z.std() - 1) < 0.02
    again, _ = drifting_batches(batch_size=64, seed=3)
    np.testing.assert_array_equal(batches, again)
