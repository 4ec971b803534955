r"""Running statistics on a stream of batches: simulations and their closed forms.

A stream of batches is drawn from a known distribution, channel ``c`` having population
mean ``μ_c`` and standard deviation ``σ_c`` (values independent and Gaussian). A
:class:`bnlib.BatchNorm2d` in training mode sees the batches one after another and updates
its running statistics with PyTorch's rule

.. math::

    r_t = (1 - p)\,r_{t-1} + p\,b_t, \qquad r_0 = 0 \text{ (mean) or } 1 \text{ (variance)},

with momentum ``p`` and ``b_t`` the statistic of batch ``t`` (its mean, or its *unbiased*
variance). Unrolled, the running value is a weighted sum of the batches seen,

.. math::

    r_t = (1 - p)^t\,r_0 + \sum_{k=0}^{t-1} p\,(1 - p)^k\, b_{t-k},

so the batch seen ``k`` steps ago weighs ``p(1 − p)^k`` (:func:`ema_weights`). With
``momentum=None`` PyTorch uses ``p = 1/t`` at step ``t``: the plain average of the ``t``
batches so far.

Each batch pools ``m = N·H·W`` values per channel. Its mean then spreads around ``μ`` with
standard deviation ``σ/√m`` and its unbiased variance around ``σ²`` with ``σ²·√(2/(m − 1))``
(:func:`batch_stat_spread`).

Every function is pure: the same arguments (including ``seed``) give the same arrays.
Defaults are sized so that one call takes a few milliseconds (fast enough for a slider).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bnlib._validate import require_momentum
from bnlib.functional import batch_norm, batch_stats
from bnlib.module import BatchNorm2d

#: Population mean of each channel of the default stream (2 channels).
POPULATION_MEAN: tuple[float, ...] = (3.0, -1.0)
#: Population standard deviation of each channel of the default stream.
POPULATION_STD: tuple[float, ...] = (2.0, 0.5)


# --------------------------------------------------------------------------------------
# The stream
# --------------------------------------------------------------------------------------


def _population(mean: Sequence[float], std: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    mean = np.asarray(mean, dtype=np.float64)
    std = np.asarray(std, dtype=np.float64)
    if mean.ndim != 1 or mean.shape != std.shape or mean.size == 0:
        raise ValueError(
            "mean and std must be sequences of the same length, one value per channel, "
            f"got shapes {mean.shape} and {std.shape}"
        )
    if not np.all(std > 0):
        raise ValueError(f"std must be positive for every channel, got {std.tolist()}")
    return mean, std


def _check_count(value: int, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return int(value)


def sample_batches(
    steps: int,
    batch_size: int,
    mean: Sequence[float] = POPULATION_MEAN,
    std: Sequence[float] = POPULATION_STD,
    height: int = 1,
    width: int = 1,
    seed: int = 0,
) -> np.ndarray:
    r"""A stream of ``steps`` batches, shape ``(steps, N, C, H, W)``, float32.

    Every value of channel ``c`` is independent: :math:`x = \mu_c + \sigma_c z`,
    :math:`z \sim \mathcal N(0, 1)`, drawn from ``np.random.default_rng(seed)``.
    """
    steps = _check_count(steps, "steps", 1)
    batch_size = _check_count(batch_size, "batch_size", 1)
    height = _check_count(height, "height", 1)
    width = _check_count(width, "width", 1)
    mean, std = _population(mean, std)
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((steps, batch_size, mean.size, height, width), dtype=np.float32)
    return (mean.reshape(-1, 1, 1) + std.reshape(-1, 1, 1) * z).astype(np.float32)


#: The drifting stream: its population mean is 0 for DRIFT_HOLD steps, climbs linearly to
#: DRIFT_TOP over DRIFT_RAMP steps (as a layer's input does while earlier layers learn),
#: then stays there; the standard deviation stays DRIFT_STD.
DRIFT_STEPS, DRIFT_HOLD, DRIFT_RAMP = 300, 60, 180
DRIFT_TOP, DRIFT_STD = 3.0, 2.0


def drifting_mean(steps: int = DRIFT_STEPS) -> np.ndarray:
    """Population mean of the drifting stream at steps 1 … ``steps``, shape ``(steps,)``."""
    steps = _check_count(steps, "steps", 1)
    t = np.arange(steps, dtype=np.float64)
    return DRIFT_TOP * np.clip((t - DRIFT_HOLD) / DRIFT_RAMP, 0.0, 1.0)


def drifting_batches(
    batch_size: int = 16, steps: int = DRIFT_STEPS, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    r"""A one-channel stream whose mean drifts: ``(batches, mean)``.

    ``batches`` has shape ``(steps, N, 1, 1, 1)`` (float32), every value
    :math:`\mu_t + \sigma z` with :math:`\mu_t` = :func:`drifting_mean`,
    :math:`\sigma` = ``DRIFT_STD`` and :math:`z \sim \mathcal N(0, 1)` from
    ``np.random.default_rng(seed)``; ``mean`` is :math:`\mu_t`, shape ``(steps,)``.
    """
    batch_size = _check_count(batch_size, "batch_size", 1)
    mean = drifting_mean(steps)
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((mean.size, batch_size, 1, 1, 1), dtype=np.float32)
    batches = mean.reshape(-1, 1, 1, 1, 1) + DRIFT_STD * z
    return batches.astype(np.float32), mean


# --------------------------------------------------------------------------------------
# Running statistics of a stream, computed by bnlib.BatchNorm2d
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunningStatsTrace:
    """What a ``BatchNorm2d`` saw and remembered, step by step (arrays of shape ``(·, C)``).

    ``running_mean[t]`` and ``running_var[t]`` are the buffers after ``t`` batches (row 0 is
    the initial 0 and 1); ``batch_mean[t - 1]`` and ``batch_var[t - 1]`` are the mean and
    *unbiased* variance of batch ``t``, the values the update rule took in.
    """

    momentum: float | None
    batch_mean: np.ndarray  # (steps, C)
    batch_var: np.ndarray  # (steps, C), unbiased
    running_mean: np.ndarray  # (steps + 1, C)
    running_var: np.ndarray  # (steps + 1, C)

    @property
    def steps(self) -> int:
        """The number of batches seen."""
        return self.batch_mean.shape[0]


def track_running_stats(
    batches: np.ndarray,
    momentum: float | None = 0.1,
) -> RunningStatsTrace:
    r"""Feed ``batches``, shape (steps, N, C, H, W), to a new ``BatchNorm2d``.

    The module is in training mode, so each call updates its buffers:
    ``running ← (1 − p)·running + p·batch_stat`` with ``p = momentum``,
    or ``p = 1/t`` at step ``t`` when ``momentum`` is None (cumulative).
    """
    require_momentum(momentum, allow_none=True)
    batches = np.asarray(batches)
    if batches.ndim != 5:
        shape = batches.shape
        raise ValueError(f"batches must be (steps, N, C, H, W), got {shape}")
    steps, _, channels = batches.shape[:3]
    bn = BatchNorm2d(channels, momentum=momentum, affine=False)
    running_mean = np.empty((steps + 1, channels))  # float64
    running_var = np.empty((steps + 1, channels))
    batch_mean = np.empty((steps, channels))
    batch_var = np.empty((steps, channels))
    running_mean[0], running_var[0] = bn.running_mean, bn.running_var
    m = batches[0].size // channels  # values per channel in a batch: N·H·W
    for t, x in enumerate(batches):
        bn(x)  # training mode: normalizes x and updates the buffers
        running_mean[t + 1] = bn.running_mean
        running_var[t + 1] = bn.running_var
        mean, biased_var = batch_stats(x)
        batch_mean[t], batch_var[t] = mean, biased_var * m / (m - 1)
    return RunningStatsTrace(
        momentum,
        batch_mean,
        batch_var,
        running_mean,
        running_var,
    )


def simulate_running_stats(
    momentum: float | None = 0.1,
    batch_size: int = 16,
    steps: int = 200,
    mean: Sequence[float] = POPULATION_MEAN,
    std: Sequence[float] = POPULATION_STD,
    height: int = 1,
    width: int = 1,
    seed: int = 0,
) -> RunningStatsTrace:
    """Running statistics of ``BatchNorm2d(momentum)`` over a seeded stream of batches.

    :func:`sample_batches` then :func:`track_running_stats`. The same ``seed`` gives the
    same batches for every momentum, so traces for different momenta are comparable.
    About 5 ms for the defaults.
    """
    batches = sample_batches(steps, batch_size, mean, std, height, width, seed)
    return track_running_stats(batches, momentum)


# --------------------------------------------------------------------------------------
# Closed forms for the update rule
# --------------------------------------------------------------------------------------


def ema_weights(momentum: float, steps: int) -> np.ndarray:
    r"""Weight of each past batch in the running value after ``steps`` updates.

    ``w[k] = p·(1 − p)^k`` is the weight of the batch seen ``k`` steps ago
    (``k = 0`` is the latest); the initial value keeps the rest, ``(1 − p)^steps``, so
    ``w.sum() + (1 − p)**steps == 1``.
    """
    require_momentum(momentum)
    steps = _check_count(steps, "steps", 0)
    return momentum * (1.0 - momentum) ** np.arange(steps)


def expected_running(
    momentum: float, steps: int, initial: float | np.ndarray, population: float | np.ndarray
) -> np.ndarray:
    r"""Expected running value after ``t = 0 … steps`` updates, shape ``(steps + 1, C)``.

    Each batch statistic is an unbiased estimate of the population value ``v``
    (the mean, or the variance, which is why the buffer takes the unbiased variance), so

    .. math:: \mathrm E[r_t] = v + (r_0 - v)(1 - p)^t .

    The start is forgotten geometrically: by a factor ``1 − p`` per batch.
    """
    require_momentum(momentum)
    steps = _check_count(steps, "steps", 0)
    initial = np.atleast_1d(np.asarray(initial, dtype=np.float64))
    population = np.atleast_1d(np.asarray(population, dtype=np.float64))
    decay = (1.0 - momentum) ** np.arange(steps + 1)
    return population + (initial - population) * decay[:, None]


def steps_to_forget(momentum: float, fraction: float = 0.05) -> int:
    r"""Updates until the initial value weighs less than ``fraction``: smallest ``t`` with
    ``(1 − p)^t < fraction``, i.e. ``t > ln(fraction)/ln(1 − p)`` ≈ ``−ln(fraction)/p``
    (about ``3/p`` for 5 %)."""
    require_momentum(momentum)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    if momentum == 1.0:
        return 1
    if momentum == 0.0:
        raise ValueError("with momentum 0 the running value never changes: nothing is forgotten")
    return math.floor(math.log(fraction) / math.log(1.0 - momentum)) + 1


def stationary_std(momentum: float, batch_std: float | np.ndarray) -> float | np.ndarray:
    r"""Standard deviation of the running value around the population value, long run.

    With independent batch statistics of standard deviation ``s``,
    :math:`\mathrm{Var}[r] = \sum_k p^2 (1-p)^{2k} s^2 = \frac{p}{2 - p}\, s^2`: the same
    as averaging ``(2 − p)/p`` batches with equal weights.
    """
    require_momentum(momentum)
    return np.sqrt(momentum / (2.0 - momentum)) * np.asarray(batch_std, dtype=np.float64)


# --------------------------------------------------------------------------------------
# Batch size: how much batch statistics scatter
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchSpread:
    """Standard deviation, over many batches, of the batch mean and unbiased variance.

    Arrays have shape ``(C,)``; the ``*_theory`` ones are the closed forms for ``m``
    independent Gaussian values: ``σ/√m`` and ``σ²·√(2/(m − 1))``.
    """

    batch_size: int
    m: int  # values per channel per batch, N·H·W
    mean_std: np.ndarray
    var_std: np.ndarray
    mean_std_theory: np.ndarray
    var_std_theory: np.ndarray


def _trials_as_channels(
    trials: int,
    batch_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    height: int,
    width: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``trials`` independent batches laid side by side as channels of one array.

    Shape ``(N, trials·C, H, W)``: channel ``i·C + c`` of the result is channel ``c`` of
    trial ``i``. Batch norm treats channels independently, so one bnlib call on this array
    computes every trial's statistics (or outputs) at once.
    """
    trials = _check_count(trials, "trials", 2)
    batch_size = _check_count(batch_size, "batch_size", 1)
    mean, std = _population(mean, std)
    rng = np.random.default_rng(seed)
    shape = (batch_size, trials, mean.size, height, width)
    z = rng.standard_normal(shape, dtype=np.float32)
    x = mean.reshape(-1, 1, 1) + std.reshape(-1, 1, 1) * z
    return x.reshape(batch_size, trials * mean.size, height, width).astype(np.float32), mean, std


def batch_stat_spread(
    batch_size: int,
    trials: int = 1000,
    mean: Sequence[float] = POPULATION_MEAN,
    std: Sequence[float] = POPULATION_STD,
    height: int = 1,
    width: int = 1,
    seed: int = 0,
) -> BatchSpread:
    r"""How much the mean and unbiased variance of a batch scatter from batch to batch.

    Draws ``trials`` batches of ``batch_size`` images, computes their statistics with
    :func:`bnlib.batch_stats`, and returns the standard deviations over the trials with
    the closed forms beside them (``m = N·H·W``):

    .. math:: \operatorname{sd}[\bar x] = \frac{\sigma}{\sqrt m}, \qquad
              \operatorname{sd}[s^2] = \sigma^2 \sqrt{\frac{2}{m - 1}} .

    Both shrink like ``1/√m``: four times the batch, half the scatter.
    """
    x, _, std = _trials_as_channels(trials, batch_size, mean, std, height, width, seed)
    m = batch_size * height * width
    if m < 2:
        raise ValueError(
            f"a batch needs at least 2 values per channel for a variance, got m = N·H·W = {m}"
        )
    c = std.size
    batch_mean, biased_var = batch_stats(x)
    batch_mean = batch_mean.reshape(trials, c)
    unbiased_var = (biased_var * m / (m - 1)).reshape(trials, c)
    return BatchSpread(
        batch_size=batch_size,
        m=m,
        mean_std=batch_mean.std(axis=0, ddof=1),
        var_std=unbiased_var.std(axis=0, ddof=1),
        mean_std_theory=std / math.sqrt(m),
        var_std_theory=std**2 * math.sqrt(2.0 / (m - 1)),
    )


def probe_outputs(
    batch_size: int,
    probe: Sequence[float] | None = None,
    trials: int = 500,
    mean: Sequence[float] = POPULATION_MEAN,
    std: Sequence[float] = POPULATION_STD,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    r"""Training-mode outputs of one fixed image in ``trials`` different batches.

    The probe image (1×1 pixels, one value per channel; default ``μ + σ``, one standard
    deviation above the mean) is put in a batch with ``batch_size − 1`` random companions
    and normalized with the batch's statistics, as ``BatchNorm2d`` does in training mode.
    Returns ``(train, ideal)``: ``train`` of shape ``(trials, C)`` holds the probe's output
    in each batch, ``ideal`` of shape ``(C,)`` is ``(probe − μ)/√(σ² + ε)``, what a model
    in evaluation mode with converged running statistics outputs, every time.
    """
    batch_size = _check_count(batch_size, "batch_size", 2)
    x, mean_arr, std_arr = _trials_as_channels(trials, batch_size, mean, std, 1, 1, seed)
    c = mean_arr.size
    probe_arr = mean_arr + std_arr if probe is None else np.asarray(probe, dtype=np.float64)
    if probe_arr.shape != (c,):
        raise ValueError(f"probe must have one value per channel ({c}), got {probe_arr.shape}")
    x[0, :, 0, 0] = np.tile(probe_arr, trials)  # image 0 of every trial is the probe
    y = batch_norm(x, training=True)
    train = y[0, :, 0, 0].astype(np.float64).reshape(trials, c)
    ideal = (probe_arr - mean_arr) / np.sqrt(std_arr**2 + 1e-5)
    return train, ideal
