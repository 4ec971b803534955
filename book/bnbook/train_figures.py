"""Figures and the learning-rate explorer of the training chapter (needs torch through
:mod:`bnbook.train`'s histories, matplotlib and ipywidgets).

Every function draws what it is given (results of :func:`bnbook.train.train_many`); nothing
here trains. The explorer follows :mod:`bnbook.widgets`: a live :class:`~bnbook.widgets.Explorer`
with a kernel, precomputed frames switched in the browser on the static page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import ipywidgets
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import ticker
from matplotlib.figure import Figure

from bnbook.i18n import N_, t
from bnbook.style import BODY_PT, DPI, FULL_WIDTH, GREY, PALETTE, PIXEL_RATIO, linestyle, styled
from bnbook.style import color as palette_color
from bnbook.widgets import Explorer, Renderer, static_explorer

#: Colours of the normalizations, the same in every figure of the chapter.
COLORS = {
    "batch": PALETTE[0],
    "none": PALETTE[3],
    "group": PALETTE[2],
    "layer": PALETTE[4],
}
#: What the static explorer tells a reader about running it live.
RUN_LIVE = N_(
    "On this page the slider steps through frames drawn when the book was built. Open the "
    "chapter in Colab or Binder (rocket button at the top of the page), or download it as a "
    "notebook, to run the live explorer, {code}, and the training runs themselves."
)
#: The training loss is plotted as a moving average over this many steps.
SMOOTH = 10


def smooth(values: np.ndarray, width: int = SMOOTH) -> np.ndarray:
    """Moving average over ``width`` steps (shorter at the start); NaN stays NaN."""
    values = np.asarray(values, dtype=float)
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    out = np.empty_like(values)
    for i in range(values.size):
        start = max(0, i + 1 - width)
        out[i] = (cumulative[i + 1] - cumulative[start]) / (i + 1 - start)
    return out


def percent_range(fractions: Sequence[float], digits: int = 0) -> str:
    """Fractions as a range of percentages, ``"94–97 %"``, or one value when the ends
    agree at that precision, ``"96 %"``."""
    lo, hi = (f"{100 * v:.{digits}f}" for v in (min(fractions), max(fractions)))
    return f"{lo} %" if lo == hi else f"{lo}–{hi} %"


@styled
def digits_figure(images, labels) -> Figure:
    """A row of digit images, each titled with its label."""
    figure, axes = plt.subplots(
        1, len(images), figsize=(FULL_WIDTH, 1.25), layout="constrained", squeeze=False
    )
    for ax, image, label in zip(axes[0], images, labels, strict=True):
        ax.imshow(np.asarray(image), cmap="gray_r")
        ax.set_title(str(int(label)))
        ax.set_axis_off()
    plt.close(figure)
    return figure


@styled
def sweep_figure(
    xs: Sequence[float],
    results: Mapping[str, np.ndarray],
    xlabel: str,
    title: str,
    colors: Mapping[str, str] | None = None,
    log_x: bool = True,
) -> Figure:
    """Final test accuracy against a setting: one dot per seed, a line through the means.

    ``results[label]`` has shape ``(len(xs), seeds)``, accuracies in [0, 1].
    """
    figure, ax = plt.subplots(figsize=(FULL_WIDTH, 2.9), layout="constrained")
    xs = np.asarray(xs, dtype=float)
    for i, (label, acc) in enumerate(results.items()):
        color = (colors or COLORS).get(label, palette_color(i))
        acc = 100 * np.asarray(acc)
        ax.plot(xs, acc.mean(axis=1), color=color, ls=linestyle(i), lw=1.5, label=t(label))
        for s in range(acc.shape[1]):
            ax.plot(xs, acc[:, s], "o", color=color, ms=4, alpha=0.6)
    if log_x:
        ax.set_xscale("log")
    ax.set_xticks(xs, [f"{x:g}" for x in xs])
    ax.minorticks_off()
    ax.axhline(10, color=GREY, lw=0.8, ls=":")
    ax.set(xlabel=t(xlabel), ylabel=t("test accuracy (%)"), ylim=(0, 102))
    ax.set_title(t(title))
    figure.legend(loc="outside right center", frameon=False)
    plt.close(figure)
    return figure


def _loss_ceiling(histories: Sequence) -> float:
    """An upper y-limit for training losses that shows every finite (smoothed) loss."""
    finite = [
        np.nanmax(np.where(np.isfinite(v), v, np.nan))
        for h in histories
        for v in [smooth(h.train_loss)]
        if np.isfinite(v).any()
    ]
    return max(5.0, 1.5 * max(finite, default=5.0))


def _draw_curves(axes, runs: Mapping[str, Sequence], colors=None, ceiling=None) -> None:
    """Training loss (left) and test accuracy (right) against the step, one line per seed;
    a run whose loss became infinite ends in a cross at the top of the loss axis."""
    ax_loss, ax_acc = axes
    ceiling = ceiling or _loss_ceiling([h for hs in runs.values() for h in hs])
    for i, (label, histories) in enumerate(runs.items()):
        color = (colors or COLORS).get(label, palette_color(i))
        for s, history in enumerate(histories):
            loss = smooth(history.train_loss)
            steps = np.arange(1, loss.size + 1)
            name = t(label) if s == 0 else None
            ax_loss.plot(steps, loss, color=color, ls=linestyle(i), lw=1, alpha=0.8, label=name)
            if history.diverged:  # where it stopped: the first step that is not finite
                stop = int(np.argmax(~np.isfinite(history.train_loss)))
                ax_loss.plot([max(stop, 1)], [ceiling / 1.15], "x", color=color, ms=9, mew=2)
            accuracy = 100 * np.asarray(history.test_accuracy)
            ax_acc.plot(history.eval_steps, accuracy, "o", color=color, ls=linestyle(i), ms=3, lw=1,
                        alpha=0.8)  # fmt: skip
    ax_loss.set_yscale("log")
    ax_loss.set(xlabel=t("training step"), ylabel=t("training loss\n({n}-step mean)", n=SMOOTH))
    ax_loss.set_ylim(0.005, ceiling)
    ax_acc.set(xlabel=t("training step"), ylabel=t("test accuracy (%)"), ylim=(0, 102))
    for ax in axes:  # ticks made later, when a frame is rendered, keep the book's size
        ax.tick_params(labelsize=BODY_PT)


@styled
def curves_figure(runs: Mapping[str, Sequence], title: str) -> Figure:
    """Training loss and test accuracy against steps; one line per seed."""
    figure, axes = plt.subplots(1, 2, figsize=(FULL_WIDTH, 3.1), layout="constrained")
    _draw_curves(axes, runs)
    figure.suptitle(t(title))
    figure.legend(loc="outside lower center", ncol=len(runs), frameon=False)
    plt.close(figure)
    return figure


@styled
def activations_figure(runs: Mapping[str, object], layer_names: Sequence[str]) -> Figure:
    """Percentiles 15, 50, 85 of channel 0 of each layer's pre-activation during training.

    ``runs[label]`` is a :class:`bnbook.train.History` recorded with activations. Every
    panel has the same axes, so that a band that moves in one and not in another shows.
    """
    rows = len(runs)
    figure, axes = plt.subplots(
        rows,
        len(layer_names),
        figsize=(FULL_WIDTH, 1.75 * rows + 0.5),
        layout="constrained",
        sharex=True,
        sharey=True,
        squeeze=False,
    )
    for r, (label, history) in enumerate(runs.items()):
        color = COLORS.get(label, palette_color(r))
        for c, name in enumerate(layer_names):
            ax = axes[r, c]
            q = history.activations[c][:, 0, :]  # (records, 3): channel 0
            steps = history.activation_steps
            ax.fill_between(steps, q[:, 0], q[:, 2], color=color, alpha=0.25, lw=0)
            ax.plot(steps, q[:, 1], color=color, lw=1.5)
            ax.axhline(0, color=GREY, lw=0.7)
            ax.set_title(f"{t(label)}: {t(name)}")
        axes[r, 0].set_ylabel(t("input to ReLU"))
    figure.supxlabel(t("training step"))
    plt.close(figure)
    return figure


@styled
def batch_size_figure(
    batch_sizes: Sequence[int],
    panels: Mapping[str, Mapping[str, np.ndarray]],
    ylim: tuple[float, float] = (50, 100),
) -> Figure:
    """Test accuracy against batch size, one panel per setting, one line per normalization,
    the panels on shared axes. ``panels[title][norm]`` has shape ``(len(batch_sizes), seeds)``.
    """
    figure, axes = plt.subplots(
        1,
        len(panels),
        figsize=(FULL_WIDTH, 3.1),
        layout="constrained",
        sharey=True,
        squeeze=False,
    )
    for ax, (title, results) in zip(axes[0], panels.items(), strict=True):
        for i, (norm, acc) in enumerate(results.items()):
            acc = 100 * np.asarray(acc)
            color = COLORS.get(norm, palette_color(i))
            label = t(norm) if ax is axes[0, 0] else None
            mean = acc.mean(axis=1)
            ax.plot(batch_sizes, mean, color=color, ls=linestyle(i), lw=1.5, label=label)
            for s in range(acc.shape[1]):
                ax.plot(batch_sizes, acc[:, s], "o", color=color, ms=4, alpha=0.6)
        ax.set_xscale("log", base=2)
        ax.set_xticks(batch_sizes, [str(b) for b in batch_sizes])
        ax.minorticks_off()
        ax.set(xlabel=t("batch size N"), ylim=ylim)
        ax.set_title(t(title))
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel(t("test accuracy (%)"))
    figure.legend(loc="outside lower center", ncol=len(next(iter(panels.values()))), frameon=False)
    plt.close(figure)
    return figure


@styled
def batch_spread_figure(
    batch_sizes: Sequence[int],
    spreads: Mapping[str, tuple[np.ndarray, np.ndarray]],
    pixels: int,
) -> Figure:
    """How far a batch's mean (left) and variance (right) land from the whole set's, against
    the batch size N, on log axes shared by both panels.

    ``spreads[label]`` is :func:`bnbook.batch_noise.batch_spread`'s pair for one kind of
    input. Dashed: 1/√N (all the variance between images); dotted: 1/√(N·H·W) with
    ``pixels`` = H·W (independent pixels).
    """
    figure, axes = plt.subplots(
        1, 2, figsize=(FULL_WIDTH, 3.3), layout="constrained", sharex=True, sharey=True
    )
    n = np.asarray(batch_sizes, dtype=float)
    titles = (t("spread of the batch mean"), t("spread of the batch variance"))
    for ax, which, title in zip(axes, (0, 1), titles, strict=True):
        ax.plot(n, 1 / np.sqrt(n), "--", color="0.35", lw=1, label="1/√N")
        ax.plot(n, 1 / np.sqrt(n * pixels), ":", color="0.35", lw=1.3, label="1/√(N·H·W)")
        for i, (label, pair) in enumerate(spreads.items()):
            ax.plot(n, pair[which], "o-", color=f"C{i}", ms=4, lw=1.3, label=t(label))
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(n, [f"{b:g}" for b in batch_sizes])
        ax.minorticks_off()
        ax.set_title(title)
        ax.set_xlabel(t("batch size N"))
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(t("sd over batches\n(units of σ, σ²)"))
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncol=2, frameon=False)
    plt.close(figure)
    return figure


@styled
def landscape_figure(steps: Sequence[int], results: Mapping[str, dict]) -> Figure:
    """Santurkar et al.'s measurements at checkpoints: the range of the loss along the
    gradient step, and the smoothness ℓ (their "effective β-smoothness"); one line per seed.

    ``results[label]`` maps ``"loss_range"`` and ``"smoothness"`` to ``(checkpoints, seeds)``.
    """
    figure, axes = plt.subplots(1, 2, figsize=(FULL_WIDTH, 3.0), layout="constrained")
    keys = (
        ("loss_range", t("loss range along the step")),
        ("smoothness", t(r"smoothness $\ell$")),
    )
    for ax, (key, ylabel) in zip(axes, keys, strict=True):
        for i, (label, values) in enumerate(results.items()):
            color = COLORS.get(label, palette_color(i))
            values = np.asarray(values[key])
            for s in range(values.shape[1]):
                ax.plot(
                    steps,
                    values[:, s],
                    "o",
                    color=color,
                    linestyle=linestyle(i),
                    ms=3,
                    lw=1,
                    alpha=0.8,
                    label=t(label) if s == 0 and ax is axes[0] else None,
                )
        ax.set_yscale("log")
        low, high = ax.get_ylim()
        if np.log10(high / low) < 3:  # a few decades: 1, 2, 5 times each power of ten
            ax.yaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        ax.set(ylabel=ylabel)
        ax.grid(alpha=0.3, which="both")
    figure.supxlabel(t("training step of the checkpoint"))
    figure.legend(loc="outside right center", frameon=False)
    plt.close(figure)
    return figure


# --------------------------------------------------------------------------------------
# The learning-rate explorer
# --------------------------------------------------------------------------------------


@styled
def _lr_figure(runs_by_lr: Mapping[float, Mapping[str, Sequence]]):
    """The explorer's figure, its moving parts (both axes, redrawn whole at each rate) and
    its draw function, which returns ``(caption, note)`` as :mod:`bnbook.widgets` expects."""
    figure = Figure(figsize=(FULL_WIDTH, 3.1), layout="constrained")
    axes = figure.subplots(1, 2)
    # one loss axis for every rate, high enough for the largest finite loss of any
    everything = [h for runs in runs_by_lr.values() for hs in runs.values() for h in hs]
    ceiling = _loss_ceiling(everything)
    labels = list(next(iter(runs_by_lr.values())))
    handles = [plt.Line2D([], [], color=COLORS.get(n, f"C{i}")) for i, n in enumerate(labels)]
    names = [t(label) for label in labels]
    figure.legend(handles, names, loc="outside lower center", ncol=len(labels), frameon=False)

    @styled  # the axes are redrawn at every rate: their texts too get the book's style
    def draw(lr: float) -> tuple[str, str]:
        runs = runs_by_lr[float(lr)]
        for ax in axes:
            ax.clear()
        _draw_curves(axes, runs, ceiling=ceiling)
        final = {label: [h.final_accuracy for h in histories] for label, histories in runs.items()}
        caption = t("Learning rate {lr}: final test accuracy ", lr=f"{float(lr):g}") + ", ".join(
            f"{t(label)} {percent_range(a)}" for label, a in final.items()
        )
        diverged = [label for label, hs in runs.items() if any(h.diverged for h in hs)]
        # a note on every frame, one line long, so that the figure never moves
        note = t("No run diverged at this rate.")
        if diverged:
            which = t(" and ").join(t(label) for label in diverged)
            note = t("Diverged (loss infinite) in a seed: {runs}; × marks where.", runs=which)
        return caption, note

    return figure, list(axes), draw


def lr_explorer(runs_by_lr: Mapping[float, Mapping[str, Sequence]], lr: float) -> Explorer:
    """Live (with a kernel): pick a learning rate and see the precomputed runs at that rate."""
    figure, moving, draw = _lr_figure(runs_by_lr)
    slider = ipywidgets.SelectionSlider(
        options=[float(v) for v in runs_by_lr],
        value=float(lr),
        description="lr",
        continuous_update=True,
        layout=ipywidgets.Layout(width="60%"),
    )
    return Explorer(t("Training at one learning rate"), slider, figure, {}, draw, moving)


def lr_explorer_static(
    runs_by_lr: Mapping[float, Mapping[str, Sequence]], lr: float
) -> ipywidgets.VBox:
    """Static page: one frame per learning rate of the sweep, switched in the browser."""
    figure, moving, draw = _lr_figure(runs_by_lr)
    # frames at the book's resolution (bnbook.style), shown at the figure's layout size
    renderer = Renderer(figure, moving, dpi=PIXEL_RATIO * DPI)
    values = [float(v) for v in runs_by_lr]
    frames = []
    for value in values:
        caption, note = draw(value)
        frames.append((caption, note, renderer.png()))
    box = static_explorer(
        t("Training at one learning rate (learning rate on the slider)"),
        [f"{v:g}" for v in values],
        frames,
        values.index(float(lr)),
        "lr_explorer",
        round(figure.get_figwidth() * DPI),
    )
    run_live = t(RUN_LIVE, code="<code>figures.lr_explorer(runs_by_lr, LR)</code>")
    box.children[-1].value = f'<div style="font-size:0.85em;color:#555">{run_live}</div>'
    return box
