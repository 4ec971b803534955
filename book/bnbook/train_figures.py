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
from matplotlib.figure import Figure

from bnbook.style import GREY, PALETTE, linestyle, styled
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
RUN_LIVE = (
    "On this page the slider steps through frames drawn when the book was built. Open the "
    "chapter in Colab or Binder (rocket button at the top of the page), or download it as a "
    "notebook, to run the live explorer, <code>figures.lr_explorer(runs_by_lr, LR)</code>, "
    "and the training runs themselves."
)
#: The training loss is plotted as a moving average over this many steps.
SMOOTH = 10


def smooth(values: np.ndarray, width: int = SMOOTH) -> np.ndarray:
    """Moving average over ``width`` steps (shorter at the start); NaN stays NaN."""
    values = np.asarray(values, dtype=float)
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    out = np.empty_like(values)
    for t in range(values.size):
        start = max(0, t + 1 - width)
        out[t] = (cumulative[t + 1] - cumulative[start]) / (t + 1 - start)
    return out


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
    figure, ax = plt.subplots(figsize=(6.4, 3.3), layout="constrained")
    xs = np.asarray(xs, dtype=float)
    for i, (label, acc) in enumerate(results.items()):
        color = (colors or COLORS).get(label, palette_color(i))
        acc = 100 * np.asarray(acc)
        ax.plot(xs, acc.mean(axis=1), color=color, ls=linestyle(i), lw=1.5, label=label)
        for s in range(acc.shape[1]):
            ax.plot(xs, acc[:, s], "o", color=color, ms=4, alpha=0.6)
    if log_x:
        ax.set_xscale("log")
    ax.set_xticks(xs, [f"{x:g}" for x in xs])
    ax.minorticks_off()
    ax.axhline(10, color=GREY, lw=0.8, ls=":")
    ax.set(xlabel=xlabel, ylabel="test accuracy (%)", ylim=(0, 102))
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower center")
    plt.close(figure)
    return figure


def _draw_curves(axes, runs: Mapping[str, Sequence], colors=None) -> None:
    ax_loss, ax_acc = axes
    for i, (label, histories) in enumerate(runs.items()):
        color = (colors or COLORS).get(label, palette_color(i))
        for s, history in enumerate(histories):
            loss = smooth(history.train_loss)
            steps = np.arange(1, loss.size + 1)
            name = label if s == 0 else None
            ax_loss.plot(steps, loss, color=color, ls=linestyle(i), lw=1, alpha=0.8, label=name)
            accuracy = 100 * np.asarray(history.test_accuracy)
            ax_acc.plot(history.eval_steps, accuracy, "o", color=color, ls=linestyle(i), ms=3, lw=1,
                        alpha=0.8)  # fmt: skip
    ax_loss.set_yscale("log")
    ax_loss.set(xlabel="training step", ylabel=f"training loss ({SMOOTH}-step mean)")
    ax_loss.set_ylim(0.005, 5)
    ax_acc.set(xlabel="training step", ylabel="test accuracy (%)", ylim=(0, 102))
    ax_loss.legend(fontsize=8, loc="lower left")


@styled
def curves_figure(runs: Mapping[str, Sequence], title: str) -> Figure:
    """Training loss and test accuracy against steps; one line per seed."""
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.2), layout="constrained")
    _draw_curves(axes, runs)
    figure.suptitle(title, fontsize=10)
    plt.close(figure)
    return figure


@styled
def activations_figure(runs: Mapping[str, object], layer_names: Sequence[str]) -> Figure:
    """Percentiles 15, 50, 85 of channel 0 of each layer's pre-activation during training.

    ``runs[label]`` is a :class:`bnbook.train.History` recorded with activations.
    """
    rows = len(runs)
    figure, axes = plt.subplots(
        rows, len(layer_names), figsize=(9, 1.9 * rows + 0.4), layout="constrained", sharex=True
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
            ax.set_title(f"{label}: {name}", fontsize=9)
            if r == rows - 1:
                ax.set_xlabel("training step")
        axes[r, 0].set_ylabel("input to ReLU")
    plt.close(figure)
    return figure


@styled
def batch_size_figure(
    batch_sizes: Sequence[int], panels: Mapping[str, Mapping[str, np.ndarray]]
) -> Figure:
    """Test accuracy against batch size, one panel per network, one line per normalization.

    ``panels[title][norm]`` has shape ``(len(batch_sizes), seeds)``.
    """
    figure, axes = plt.subplots(1, len(panels), figsize=(9, 3.2), layout="constrained")
    for ax, (title, results) in zip(np.atleast_1d(axes), panels.items(), strict=True):
        for i, (norm, acc) in enumerate(results.items()):
            acc = 100 * np.asarray(acc)
            color = COLORS.get(norm, palette_color(i))
            ax.plot(batch_sizes, acc.mean(axis=1), color=color, ls=linestyle(i), lw=1.5, label=norm)
            for s in range(acc.shape[1]):
                ax.plot(batch_sizes, acc[:, s], "o", color=color, ms=4, alpha=0.6)
        ax.set_xscale("log", base=2)
        ax.set_xticks(batch_sizes, [str(b) for b in batch_sizes])
        ax.minorticks_off()
        ax.set(xlabel="batch size N", ylabel="test accuracy (%)", ylim=(50, 100))
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8, loc="lower right")
    plt.close(figure)
    return figure


@styled
def landscape_figure(steps: Sequence[int], results: Mapping[str, dict]) -> Figure:
    """Santurkar et al.'s measurements at checkpoints: the range of the loss along the
    gradient step, and the effective β-smoothness; one line per seed.

    ``results[label]`` maps ``"loss_range"`` and ``"beta"`` to ``(checkpoints, seeds)``.
    """
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.2), layout="constrained")
    keys = (
        ("loss_range", "loss range along the step, max − min"),
        ("beta", r"effective $\beta$: max $\|\Delta\nabla L\| / \|\Delta\theta\|$"),
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
                    label=label if s == 0 else None,
                )
        ax.set_yscale("log")
        ax.set(xlabel="training step of the checkpoint", ylabel=ylabel)
        ax.legend(fontsize=8)
    plt.close(figure)
    return figure


# --------------------------------------------------------------------------------------
# The learning-rate explorer
# --------------------------------------------------------------------------------------


@styled
def _lr_figure(runs_by_lr: Mapping[float, Mapping[str, Sequence]]):
    """The explorer's figure, its moving parts (both axes, redrawn whole at each rate) and
    its draw function, which returns ``(caption, note)`` as :mod:`bnbook.widgets` expects."""
    figure = Figure(figsize=(9, 3.2), layout="constrained")
    axes = figure.subplots(1, 2)

    def draw(lr: float) -> tuple[str, str]:
        runs = runs_by_lr[float(lr)]
        for ax in axes:
            ax.clear()
        _draw_curves(axes, runs)
        final = {label: [h.final_accuracy for h in histories] for label, histories in runs.items()}
        caption = f"Learning rate {float(lr):g}: final test accuracy " + ", ".join(
            f"{label} {100 * min(a):.0f}–{100 * max(a):.0f} %" for label, a in final.items()
        )
        diverged = [label for label, hs in runs.items() if any(h.diverged for h in hs)]
        note = ""
        if diverged:
            note = (
                f"learning rate {float(lr):g}: the loss of {' and '.join(diverged)} became "
                "infinite or NaN in at least one seed (the run diverged)."
            )
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
    return Explorer("Training at one learning rate", slider, figure, {}, draw, moving)


def lr_explorer_static(
    runs_by_lr: Mapping[float, Mapping[str, Sequence]], lr: float
) -> ipywidgets.VBox:
    """Static page: one frame per learning rate of the sweep, switched in the browser."""
    figure, moving, draw = _lr_figure(runs_by_lr)
    renderer = Renderer(figure, moving)
    values = [float(v) for v in runs_by_lr]
    frames = []
    for value in values:
        caption, note = draw(value)
        frames.append((caption, note, renderer.png()))
    box = static_explorer(
        "Training at one learning rate (learning rate on the slider)",
        [f"{v:g}" for v in values],
        frames,
        values.index(float(lr)),
        "lr_explorer",
        renderer.css_width,
    )
    box.children[-1].value = f'<div style="font-size:0.85em;color:#555">{RUN_LIVE}</div>'
    return box
