"""The explorers' data: what each slider value recomputes with bnlib, apart from the
widgets that show it (:mod:`bnbook.widgets`).

For each explorer, its example's constants (shared with the chapter's figures and with the
page's JavaScript twins, ``js/explorers.js``), the function that recomputes its data at one
slider value, and the message for a reader at an extreme value ("" when nothing is extreme).
"""

from __future__ import annotations

import functools

import numpy as np

from bnbook.i18n import t
from bnbook.simulate import (
    DRIFT_HOLD,
    DRIFT_RAMP,
    POPULATION_MEAN,
    POPULATION_STD,
    _trials_as_channels,
    drifting_batches,
    probe_outputs,
    track_running_stats,
)
from bnlib.functional import batch_norm, batch_stats

# --------------------------------------------------------------------------------------
# ε: what the small constant under the square root does
# --------------------------------------------------------------------------------------

#: Standard deviation of each channel of the ε example: from ordinary to nearly constant.
#: (The chapter's figure uses the same channels, quoted by their variances 1 … 1e-6.)
EPS_CHANNEL_STDS: tuple[float, ...] = (1.0, 0.1, 0.01, 0.001)
#: The slider's range, as powers of ten (the chapter's figure spans the same range).
EPS_MIN_EXPONENT, EPS_MAX_EXPONENT = -10, 0


@functools.cache
def eps_input() -> np.ndarray:
    """The ε example's input, shape (16, 4, 1, 1) float64: 16 values per channel.

    Channel ``c`` is ``5 + s_c·z`` with ``s_c`` from :data:`EPS_CHANNEL_STDS` and ``z``
    exactly standardized (mean 0, biased std 1), so its batch variance is exactly ``s_c²``.
    """
    z = np.random.default_rng(0).standard_normal(16)
    z = (z - z.mean()) / z.std()
    stds = np.asarray(EPS_CHANNEL_STDS)
    x = 5.0 + z[:, None] * stds[None, :]
    x.flags.writeable = False
    return x.reshape(16, len(stds), 1, 1)


def eps_outputs(eps: float) -> np.ndarray:
    """``bnlib.batch_norm(eps_input(), eps=eps)`` in training mode, as (16 values, 4 channels)."""
    y = batch_norm(eps_input(), training=True, eps=eps)
    return y.reshape(y.shape[0], y.shape[1])


def eps_message(eps: float) -> str:
    """What a reader should notice at this ε (empty when nothing is extreme)."""
    smallest_var = min(EPS_CHANNEL_STDS) ** 2
    if eps < smallest_var / 100:
        return t(
            "ε = {eps} is far below every channel's variance: each channel is scaled "
            "to standard deviation 1, even the nearly constant one (σ² = "
            "{var}), whose tiny noise now looks as large as real signal.",
            eps=f"{eps:.0e}",
            var=f"{smallest_var:.0e}",
        )
    if eps >= 0.1:
        return t(
            "ε = {eps} is as large as the variances themselves: it no longer just "
            "guards the division, it shrinks every output (std √(σ²/(σ² + ε)) < 1), "
            "so batch norm stops normalizing.",
            eps=f"{eps:.0e}",
        )
    return ""


# --------------------------------------------------------------------------------------
# Momentum: how the running mean follows a drifting stream
# --------------------------------------------------------------------------------------

#: The momentum example: the drifting stream of bnbook.simulate (one channel, batches of 16
#: values, DRIFT_STEPS steps), the same as the chapter's drift figure.
MOMENTUM_BATCH_SIZE = 16
#: Where lag and noise are measured: the second half of the ramp.
MOMENTUM_WINDOW = slice(DRIFT_HOLD + DRIFT_RAMP // 2, DRIFT_HOLD + DRIFT_RAMP)


@functools.cache
def drift_stream() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(batches, batch means, population mean) of the drifting stream: the batches of shape
    (steps, N, 1, 1, 1) from :func:`bnbook.simulate.drifting_batches`, their means and the
    population mean of shape (steps,)."""
    batches, population = drifting_batches(MOMENTUM_BATCH_SIZE, seed=0)
    means = batches.mean(axis=(1, 2, 3, 4), dtype=np.float64)
    for array in (batches, means):
        array.flags.writeable = False
    return batches, means, population


def momentum_running_mean(momentum: float) -> np.ndarray:
    """``running_mean`` after each batch of the drifting stream, shape ``(steps,)``: a fresh
    :class:`bnlib.BatchNorm2d` with this momentum fed the stream batch by batch
    (:func:`bnbook.simulate.track_running_stats`)."""
    batches, _, _ = drift_stream()
    return track_running_stats(batches, float(momentum)).running_mean[1:, 0]


def momentum_message(momentum: float) -> str:
    """What a reader should notice at this momentum (empty when nothing is extreme)."""
    if momentum == 0:
        return t(
            "momentum = 0: the running mean never moves from its start, 0; evaluation mode "
            "would normalize with that, whatever the data do."
        )
    if momentum == 1:
        return t(
            "momentum = 1: the running mean is just the last batch's mean; nothing is "
            "averaged, so evaluation mode inherits one batch's noise."
        )
    return ""


# --------------------------------------------------------------------------------------
# Batch size: how much batch statistics scatter, and what that does to the outputs
# --------------------------------------------------------------------------------------

#: Batches drawn per batch size (as in the chapter's figure), and the slider's values.
BATCH_TRIALS = 400
BATCH_SIZES: tuple[int, ...] = (1, 2, 3, 4, 8, 16, 32, 64, 128)


def batch_size_data(batch_size: int) -> dict[str, np.ndarray | float]:
    r"""Statistics of ``BATCH_TRIALS`` batches of ``batch_size`` values (1×1 pixels) from
    channel 0 of bnbook.simulate's population (mean 3, std 2).

    Returns ``output`` and ``ideal`` from :func:`bnbook.simulate.probe_outputs` (the
    training-mode output of a fixed probe value ``μ + σ`` put in place of each batch's first
    value, computed by bnlib; and ``(probe − μ)/√(σ² + ε)``, what evaluation mode with
    converged statistics gives), and ``mean`` and ``var``, the mean and biased variance of
    the same batches before the probe went in (:func:`bnlib.batch_stats`). Batch size 1
    raises a ValueError: one value per channel has no variance.
    """
    batch_size = int(batch_size)
    population = {"mean": POPULATION_MEAN[:1], "std": POPULATION_STD[:1], "seed": batch_size}
    output, ideal = probe_outputs(batch_size, trials=BATCH_TRIALS, **population)
    # the same batches probe_outputs drew, laid side by side as channels: (N, trials, 1, 1)
    batches, _, _ = _trials_as_channels(BATCH_TRIALS, batch_size, height=1, width=1, **population)
    mean, var = batch_stats(batches)
    return {"mean": mean, "var": var, "output": output[:, 0], "ideal": float(ideal[0])}


def batch_size_message(batch_size: int) -> str:
    """What a reader should notice at this batch size (empty when nothing is extreme)."""
    if batch_size == 2:
        return t(
            "batch size 2: two values normalized by their own mean and variance always "
            "become −1 and +1, whatever they were: the output says only which one is larger."
        )
    if batch_size == 3:
        return t(
            "batch size 3: no output can pass ±√2 ≈ 1.41 (the bound √(m − 1)), and the "
            "probe's outputs pile up just below it whenever the other two values are close."
        )
    if batch_size == 4:
        return t(
            "batch size 4: batch statistics scatter widely, so the same input gives very "
            "different training-mode outputs from batch to batch."
        )
    return ""
