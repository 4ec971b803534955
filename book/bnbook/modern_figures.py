"""Figures of the chapter on batch norm in modern networks (:mod:`bnbook.modern`,
:mod:`bnbook.sequence`). Every function draws what it is given; nothing here trains.
Each seed is its own line or dot, so the spread over seeds shows. Every text drawn, the
names a chapter passes in included, goes through :func:`bnbook.i18n.t` (README, "中文版").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import ipywidgets
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from bnbook.i18n import t
from bnbook.style import BODY_PT, DPI, FULL_WIDTH, GREY, PIXEL_RATIO, color, linestyle, styled
from bnbook.train_figures import RUN_LIVE as RUN_LIVE_TEMPLATE
from bnbook.train_figures import SMOOTH, smooth
from bnbook.widgets import Explorer, Renderer, static_explorer

#: The live explorer's call, which the static depth explorer names (chapter 6's text,
#: :data:`bnbook.train_figures.RUN_LIVE`, tells a reader how to run it).
LIVE_CALL = "<code>mfig.depth_explorer(RES_LRS, by_depth, CHANCE, DEPTH)</code>"


def _dots(ax, xs, values, i: int, label: str | None, shift=0.0, spread=0.0) -> None:
    """Values ``(len(xs), seeds)``: a line through the means and a dot per seed. The
    series sits ``shift`` to the right of ``xs`` and its seeds' dots spread over
    ``±spread`` around it, so that series and seeds at the same x stay apart."""
    values = np.asarray(values, dtype=float)
    xs = np.asarray(xs, dtype=float) + shift
    name = None if label is None else t(label)
    ax.plot(xs, values.mean(axis=1), color=color(i), ls=linestyle(i), lw=1.5, label=name)
    seed_shifts = np.linspace(-spread, spread, values.shape[1])
    for s in range(values.shape[1]):
        ax.plot(xs + seed_shifts[s], values[:, s], "o", color=color(i), ms=4, alpha=0.6)


@styled
def stream_figure(variances: Mapping[str, np.ndarray]) -> Figure:
    """The variance of the residual stream entering each block, at initialisation.

    ``variances[label]`` has shape ``(seeds, depth + 1)``; one line per seed.
    """
    figure, ax = plt.subplots(figsize=(FULL_WIDTH, 2.8), layout="constrained")
    for i, (label, values) in enumerate(variances.items()):
        values = np.asarray(values)
        blocks = np.arange(values.shape[1])
        for s, row in enumerate(values):
            name = t(label) if s == 0 else None
            ax.plot(blocks, row, "o", color=color(i), ls=linestyle(i), ms=3, lw=1.2, label=name)
    ax.set(xlabel=t("block index l (input of block l; the last: the output)"))
    ax.set_ylabel(t("variance of the\nresidual stream"))
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    figure.legend(loc="outside right center", frameon=False)
    plt.close(figure)
    return figure


def _draw_lr_sweep(ax, lrs, losses: Mapping[str, np.ndarray], chance: float, top=None):
    for i, (label, values) in enumerate(losses.items()):
        _dots(ax, lrs, values, i, label)
    ax.axhline(chance, color=GREY, lw=0.8, ls=":")
    ax.set_xscale("log")
    ax.set_xticks(lrs, [f"{v:g}" for v in lrs])
    ax.minorticks_off()
    ax.set(xlabel=t("learning rate"), ylabel=t("training loss,\nlast 20 steps"), ylim=(0, top))
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=BODY_PT)  # ticks made when a frame is drawn keep the size


@styled
def lr_sweep_figure(lrs: Sequence[float], losses: Mapping[str, np.ndarray], chance: float):
    """Final training loss against the learning rate, one dot per seed, a line through
    the means; ``losses[label]`` has shape ``(len(lrs), seeds)``. Dotted: chance's loss."""
    figure, ax = plt.subplots(figsize=(FULL_WIDTH, 2.8), layout="constrained")
    _draw_lr_sweep(ax, lrs, losses, chance)
    figure.legend(loc="outside right center", frameon=False)
    plt.close(figure)
    return figure


@styled
def _depth_figure(lrs, losses_by_depth: Mapping[int, Mapping[str, np.ndarray]], chance):
    """The depth explorer's figure (:func:`lr_sweep_figure` for one depth at a time, on
    fixed axes), its moving part (the axes, redrawn whole) and its draw function, which
    returns ``(caption, note)`` as :mod:`bnbook.widgets` expects."""
    figure = Figure(figsize=(FULL_WIDTH, 2.8), layout="constrained")
    ax = figure.subplots()
    every = [np.max(v) for per in losses_by_depth.values() for v in per.values()]
    top = 1.05 * max(chance, *every)
    labels = list(next(iter(losses_by_depth.values())))
    handles = [
        plt.Line2D([], [], color=color(i), ls=linestyle(i), marker="o", ms=4)
        for i in range(len(labels))
    ]
    figure.legend(handles, [t(label) for label in labels], loc="outside right center",
                  frameon=False)  # fmt: skip

    @styled  # the axes are redrawn at every depth: their texts too get the book's style
    def draw(depth: int) -> tuple[str, str]:
        losses = losses_by_depth[int(depth)]
        ax.clear()
        _draw_lr_sweep(ax, lrs, losses, chance, top)
        means = {label: np.asarray(v).mean(axis=1) for label, v in losses.items()}
        first, second = list(means)
        caption = t(
            "{depth} residual blocks: final loss (mean of the seeds) at rates {rates}: "
            "{first} {first_losses}; {second} {second_losses}.",
            depth=int(depth),
            rates=", ".join(f"{lr:g}" for lr in lrs),
            first=t(first),
            first_losses=", ".join(f"{v:.2f}" for v in means[first]),
            second=t(second),
            second_losses=", ".join(f"{v:.2f}" for v in means[second]),
        )
        lower = int(np.sum(means[second] < means[first]))
        note = t(
            "{second} ends lower than {first} at {lower} of the {n} rates.",
            second=t(second),
            first=t(first),
            lower=lower,
            n=len(lrs),
        )
        return caption, note

    return figure, [ax], draw


def depth_explorer_static(
    lrs: Sequence[float],
    losses_by_depth: Mapping[int, Mapping[str, np.ndarray]],
    chance: float,
    depth: int,
) -> ipywidgets.VBox:
    """Static page: one frame per depth, switched in the browser."""
    figure, moving, draw = _depth_figure(lrs, losses_by_depth, chance)
    renderer = Renderer(figure, moving, dpi=PIXEL_RATIO * DPI)
    frames = []
    for value in losses_by_depth:
        caption, note = draw(value)
        frames.append((caption, note, renderer.png()))
    box = static_explorer(
        t("Zero γ at several depths (number of residual blocks on the slider)"),
        [str(d) for d in losses_by_depth],
        frames,
        list(losses_by_depth).index(depth),
        "depth_explorer",
        round(figure.get_figwidth() * DPI),
    )
    run_live = t(RUN_LIVE_TEMPLATE, code=LIVE_CALL)
    box.children[-1].value = f'<div style="font-size:0.85em;color:#555">{run_live}</div>'
    return box


def depth_explorer(
    lrs: Sequence[float],
    losses_by_depth: Mapping[int, Mapping[str, np.ndarray]],
    chance: float,
    depth: int,
) -> Explorer:
    """Live (with a kernel): pick a depth and see the precomputed sweep at that depth."""
    figure, moving, draw = _depth_figure(lrs, losses_by_depth, chance)
    slider = ipywidgets.SelectionSlider(
        options=list(losses_by_depth),
        value=depth,
        description=t("blocks"),
        continuous_update=True,
        layout=ipywidgets.Layout(width="60%"),
    )
    return Explorer(t("Zero γ at several depths"), slider, figure, {}, draw, moving)


@styled
def sequence_figure(
    losses: Mapping[str, np.ndarray], accuracy: Mapping[str, Mapping[str, Sequence[float]]]
) -> Figure:
    """Left: training loss of each seed (``losses[norm]`` ``(seeds, steps)``). Right: the
    share of test sequences sorted exactly, ``accuracy[norm][mode]`` one value per seed."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(FULL_WIDTH, 3.4), layout="constrained")
    for i, rows in enumerate(losses.values()):
        for row in np.asarray(rows):
            steps = np.arange(1, row.size + 1)
            left.plot(steps, smooth(row), color=color(i), ls=linestyle(i), lw=1)
    left.set_yscale("log")
    left.set(xlabel=t("training step"), ylabel=t("training loss\n({n}-step mean)", n=SMOOTH))
    modes = list(next(iter(accuracy.values())))
    offsets = np.linspace(-0.15, 0.15, len(accuracy))
    markers = "osD^"
    for i, by_mode in enumerate(accuracy.values()):
        for m, mode in enumerate(modes):
            values = 100 * np.asarray(by_mode[mode])
            ys = np.full(values.size, m + offsets[i])
            right.plot(values, ys, markers[i % 4], color=color(i), ms=5, alpha=0.7)
    right.set_yticks(range(len(modes)), [t(mode) for mode in modes])
    right.invert_yaxis()
    right.set(xlabel=t("test sequences\nsorted exactly (%)"), xlim=(-3, 103))
    right.grid(alpha=0.3, axis="x")
    handles = [
        plt.Line2D([], [], color=color(i), ls=linestyle(i), marker=markers[i % 4], ms=5)
        for i in range(len(losses))
    ]
    names = [t(label) for label in losses]
    figure.legend(handles, names, loc="outside lower center", ncol=len(losses), frameon=False)
    plt.close(figure)
    return figure


@styled
def dropout_figure(
    ps: Sequence[float],
    ratios: Mapping[str, np.ndarray],
    predicted: np.ndarray,
    accuracy: Mapping[str, np.ndarray],
) -> Figure:
    """Left: the second batch norm's running variance over the variance it sees in eval
    mode (``ratios[place]`` ``(len(ps), seeds)``), and the prediction for dropout before
    it (``predicted`` ``(len(ps), seeds)``, dotted). Right: test accuracy (same shapes),
    ``accuracy[label]`` in the same order as ``ratios`` (plus any more), labelled; each
    series a little to the side of the others at every p, each seed apart."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(FULL_WIDTH, 3.2), layout="constrained")
    for i, values in enumerate(ratios.values()):
        _dots(left, ps, values, i, None)
    left.plot(ps, np.asarray(predicted).mean(axis=1), ":", color="0.2", lw=1.5,
              label=t("predicted (before)"))  # fmt: skip
    left.set(xlabel=t("dropout probability p"), ylabel=t("running var ÷ eval-mode var"))
    step = 0.06 * (max(ps) - min(ps))  # the series side by side at each p, seeds apart
    for i, (place, values) in enumerate(accuracy.items()):
        shift = (i - (len(accuracy) - 1) / 2) * step
        _dots(right, ps, 100 * np.asarray(values), i, place, shift, step / 3)
    right.set(xlabel=t("dropout probability p"), ylabel=t("test accuracy (%)"))
    for ax in (left, right):
        ax.set_xticks(ps, [f"{p:g}" for p in ps])
        ax.grid(alpha=0.3)
    figure.legend(loc="outside lower center", ncol=3, frameon=False)
    plt.close(figure)
    return figure


@styled
def decay_figure(norms: Mapping[str, np.ndarray], lr: float) -> Figure:
    """Left: ‖w‖ of a convolution's weight against the step; right: the effective step
    η/‖w‖². ``norms[label]`` has shape ``(steps + 1, seeds)``; one line per seed."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(FULL_WIDTH, 3.2), layout="constrained")
    for i, (label, values) in enumerate(norms.items()):
        values = np.asarray(values)
        steps = np.arange(values.shape[0])
        for s in range(values.shape[1]):
            name = t(label) if s == 0 else None
            left.plot(steps, values[:, s], color=color(i), ls=linestyle(i), lw=1.2, label=name)
            right.plot(steps, lr / values[:, s] ** 2, color=color(i), ls=linestyle(i), lw=1.2)
    left.set(xlabel=t("training step"), ylabel="‖w‖", ylim=(0, None))
    right.set(xlabel=t("training step"), ylabel=t("effective step η/‖w‖²"))
    right.set_yscale("log")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    figure.legend(loc="outside lower center", ncol=len(norms), frameon=False)
    plt.close(figure)
    return figure
