"""Chapter 3's and the running-statistics appendix's figures: running statistics, the
weights of the moving average, batch-statistic spread, the probe's outputs and drift.

Each function returns a ``matplotlib.figure.Figure`` and draws nothing it did not compute.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from bnbook.i18n import t
from bnbook.simulate import ema_weights, expected_running
from bnbook.style import CHANNEL_COLORS, FULL_WIDTH, GREY, linestyle, styled
from bnbook.style import color as palette_color


def _momentum_label(momentum: float | None) -> str:
    if momentum is None:
        return t("momentum=None (cumulative)")
    return t("momentum = {p}", p=f"{momentum:g}")


@styled
def running_stats_figure(traces, population_mean, population_var, channel: int = 0) -> Figure:
    """Running mean (left) and running variance (right) of one channel against the step.

    ``traces`` are :class:`bnbook.simulate.RunningStatsTrace` objects computed on the same
    stream. Grey dots (gid ``"batch_mean"``, ``"batch_var"``): the statistics of each batch
    (from the first trace). One line per trace (gid ``"mean:<momentum>"``,
    ``"var:<momentum>"``); for a number momentum, a thin dotted line of the same colour is
    the expected value v + (r₀ − v)(1 − p)^t (:func:`bnbook.simulate.expected_running`).
    Dashed black: the population value.
    """
    fig = Figure(figsize=(FULL_WIDTH, 3.9), layout="constrained")
    axes = fig.subplots(1, 2, sharex=True)
    first = traces[0]
    steps = np.arange(first.steps + 1)
    population = {"mean": population_mean[channel], "var": population_var[channel]}
    for ax, stat, initial in zip(axes, ("mean", "var"), (0.0, 1.0), strict=True):
        batch = getattr(first, f"batch_{stat}")[:, channel]
        ax.plot(steps[1:], batch, ".", color=GREY, markersize=3, gid=f"batch_{stat}",
                label=t("each batch's statistic (variance: unbiased)"))  # fmt: skip
        for k, trace in enumerate(traces):
            color = "black" if trace.momentum is None else palette_color(k)
            running = getattr(trace, f"running_{stat}")[:, channel]
            ax.plot(steps, running, color=color, linestyle=linestyle(k), linewidth=1.8,
                    gid=f"{stat}:{trace.momentum}",
                    label=_momentum_label(trace.momentum))  # fmt: skip
            if trace.momentum is not None:
                expected = expected_running(trace.momentum, first.steps, initial,
                                            population[stat])[:, 0]  # fmt: skip
                ax.plot(steps, expected, ":", color=color, linewidth=1.2)
        ax.axhline(population[stat], color="black", linestyle="--", linewidth=1,
                   label=t("population value"))  # fmt: skip
        ax.plot([], [], ":", color="0.3", linewidth=1.2, label=t("expected: v + (r₀ − v)(1 − p)ᵗ"))
        ax.set_xlabel(t("step (batches seen)"))
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("running_mean")
    axes[1].set_ylabel("running_var")
    axes[0].set_title(t("running_mean, channel {c}", c=channel))
    axes[1].set_title(t("running_var, channel {c}", c=channel))
    handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2, frameon=False)
    return fig


@styled
def ema_weights_figure(momenta, steps: int = 60) -> Figure:
    """Weight p(1 − p)^k of the batch seen k steps ago, one line per momentum (log y axis).

    Each line (gid ``"weights:<p>"``) is :func:`bnbook.simulate.ema_weights`; a marker at
    k = 1/p (gid ``"memory:<p>"``) shows the effective memory.
    """
    fig = Figure(figsize=(FULL_WIDTH, 3.6), layout="constrained")
    ax = fig.subplots()
    k = np.arange(steps)
    for i, p in enumerate(momenta):
        w = ema_weights(p, steps)
        label = t("momentum {p}: memory 1/p = {memory} batches", p=f"{p:g}", memory=f"{1 / p:.3g}")
        ax.plot(k, w, color=palette_color(i), linestyle=linestyle(i), linewidth=1.8,
                gid=f"weights:{p:g}", label=label)  # fmt: skip
        kp = round(1 / p)
        if kp < steps:
            ax.plot([kp], [w[kp]], "o", color=palette_color(i), markersize=7, gid=f"memory:{p:g}")
    ax.set_yscale("log")
    ax.set_xlabel(t("k: how many steps ago the batch was seen"))
    ax.set_ylabel(t("weight in the running value"))
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="lower left")
    ax.set_title(t("Weight of the k-th past batch: momentum·(1 − momentum)^k"))
    return fig


@styled
def batch_spread_figure(spreads, population_std) -> Figure:
    """How far batch statistics scatter, relative to the population, against batch size.

    ``spreads`` are :class:`bnbook.simulate.BatchSpread` objects for increasing batch sizes.
    Left: sd of the batch mean divided by σ; right: sd of the unbiased batch variance
    divided by σ². Markers per channel (gid ``"mean:c<c>"``, ``"var:c<c>"``), lines the
    closed forms 1/√m and √(2/(m − 1)) (gid ``"mean:theory"``, ``"var:theory"``), log-log.
    """
    std = np.asarray(population_std, dtype=np.float64)
    m = np.array([s.m for s in spreads], dtype=np.float64)
    sizes = np.array([s.batch_size for s in spreads])
    fig = Figure(figsize=(FULL_WIDTH, 3.6), layout="constrained")
    axes = fig.subplots(1, 2, sharex=True)
    for ax, stat, scale, theory in [
        (axes[0], "mean", std, 1 / np.sqrt(m)),
        (axes[1], "var", std**2, np.sqrt(2 / (m - 1))),
    ]:
        closed = "1/√m" if stat == "mean" else "√(2/(m−1))"
        ax.plot(sizes, theory, "-", color="0.3", linewidth=1.5, gid=f"{stat}:theory",
                label=t("closed form: {f}", f=closed))  # fmt: skip
        for c in range(std.size):
            measured = np.array([getattr(s, f"{stat}_std")[c] for s in spreads]) / scale[c]
            ax.plot(sizes, measured, "o", color=CHANNEL_COLORS[c], markersize=5,
                    gid=f"{stat}:c{c}", label=t("channel {c} (simulated)", c=c))  # fmt: skip
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(t("batch size N (values per channel m = N·H·W)"))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="upper right")
    axes[0].set_ylabel(t("sd of batch mean / σ"))
    axes[1].set_ylabel(t("sd of batch variance / σ²"))
    axes[0].set_title(t("batch means scatter like 1/√m"))
    axes[1].set_title(t("batch variances scatter like √2/√m"))
    return fig


@styled
def probe_outputs_figure(outputs_by_size: dict, ideal: float, channel: int = 0) -> Figure:
    """Training-mode outputs of one fixed input in many random batches, per batch size.

    ``outputs_by_size`` maps a batch size to the ``train`` array of
    :func:`bnbook.simulate.probe_outputs`; each batch size is one row of jittered dots (gid
    ``"probe:N=<size>"``) with its 5–95 % range as a bar; the dashed line is ``ideal``, the
    output with the population statistics (what evaluation mode gives once converged).
    """
    sizes = list(outputs_by_size)
    fig = Figure(figsize=(FULL_WIDTH, 0.9 + 0.5 * len(sizes)), layout="constrained")
    ax = fig.subplots()
    rng = np.random.default_rng(0)  # jitter only: the dots' vertical position is cosmetic
    for row, size in enumerate(sizes):
        values = np.asarray(outputs_by_size[size])[:, channel]
        jitter = row + rng.uniform(-0.18, 0.18, values.size)
        ax.plot(values, jitter, ".", color=palette_color(row), markersize=2.5, alpha=0.5,
                gid=f"probe:N={size}")  # fmt: skip
        lo, hi = np.percentile(values, [5, 95])
        ax.plot([lo, hi], [row + 0.3, row + 0.3], "-", color=palette_color(row), linewidth=3)
    ax.axvline(ideal, color="black", linestyle="--", linewidth=1.2,
               label=t("with population statistics: {v}", v=f"{ideal:.3g}"))  # fmt: skip
    ax.set_yticks(range(len(sizes)), [f"N = {s}" for s in sizes])
    ax.set_ylim(len(sizes) - 0.4, -0.6)
    ax.set_xlabel(t("output of the same input value in training mode"))
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(loc="upper right")
    ax.set_title(t("One input, many batches: training-mode output depends on the batch"))
    return fig


@styled
def drift_figure(traces, population_mean, batch_mean) -> Figure:
    """Running means following a stream whose population mean drifts (one channel).

    ``traces`` are :class:`bnbook.simulate.RunningStatsTrace` objects computed on the same
    drifting stream (:func:`bnbook.simulate.drifting_batches`); ``population_mean`` is the
    stream's mean at each step and ``batch_mean`` each batch's mean. Left: the whole stream;
    right: the running mean minus the population mean, whose offset is the lag and whose
    wiggle is the noise.
    """
    fig = Figure(figsize=(FULL_WIDTH, 3.4), layout="constrained")
    ax, ax_err = fig.subplots(1, 2, width_ratios=(1.25, 1))
    steps = np.arange(1, len(population_mean) + 1)
    ax.plot(steps, batch_mean, ".", color=GREY, markersize=3, label=t("each batch's mean"))
    ax_err.axhline(0, color="black", linestyle="--", linewidth=1)
    for k, trace in enumerate(traces):
        color = "black" if trace.momentum is None else palette_color(k)
        running = trace.running_mean[1:, 0]
        ax.plot(steps, running, color=color, linestyle=linestyle(k), linewidth=1.6,
                label=_momentum_label(trace.momentum))  # fmt: skip
        ax_err.plot(steps, running - population_mean, color=color, ls=linestyle(k), lw=1.2)
    ax.plot(steps, population_mean, "--", color="black", linewidth=1.2, label=t("population mean"))
    ax.set(xlabel=t("step (batches seen)"), ylabel=t("mean"))
    ax.set_title(t("running_mean on a drifting stream"))
    ax_err.set(xlabel=t("step (batches seen)"), ylabel=t("running_mean − population mean"))
    ax_err.set_ylim(-2.0, 1.0)
    ax_err.set_title(t("the error: lag (offset) and noise (wiggle)"))
    for a in (ax, ax_err):
        a.grid(True, alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=3, frameon=False)
    return fig
