"""The figures of the chapter "Beyond batch norm: fixes and successors" (08b).

- :func:`dots_figure`: one panel per measurement, one column per setting, a dot per seed
  and a bar at their mean;
- :func:`depth_figure`: a quantity along the depth of a network, one line per seed and
  setting, on a log scale, beside a :func:`dots_figure`-style panel;
- :func:`matrices_figure`: channel-by-channel matrices side by side on one colour scale.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from bnbook.i18n import t
from bnbook.style import FULL_WIDTH, color, linestyle, styled

#: A Chinese character (CJK unified ideograph).
_IDEOGRAPH = re.compile("[\u4e00-\u9fff]")


def _wrap(line: str, width: int = 9) -> str:
    """A column's label, on lines of about WIDTH letters. Chinese (no spaces, each character
    about two letters wide) may break between any two characters: a word wider than
    WIDTH // 2 characters is halved, 批量归一化 → 批量 / 归一化."""
    if _IDEOGRAPH.search(line) and " " not in line and len(line) > width // 2:
        return line[: len(line) // 2] + "\n" + line[len(line) // 2 :]
    return textwrap.fill(line, width)


def _dots(ax, results: Mapping[str, Sequence[float]], ylabel: str, ylim=None) -> None:
    """One column per setting: a dot per seed (spread sideways), a bar at the mean."""
    for i, values in enumerate(results.values()):
        values = np.asarray(values, dtype=float)
        offsets = np.linspace(-0.12, 0.12, len(values))
        ax.plot(i + offsets, values, "o", color=color(i), ms=6, alpha=0.8)
        ax.plot([i - 0.25, i + 0.25], [values.mean()] * 2, color=color(i), lw=2.5)
    labels = ["\n".join(_wrap(line) for line in t(key).split("\n")) for key in results]
    ax.set_xticks(range(len(results)), labels)
    ax.set_xlim(-0.6, len(results) - 0.4)
    ax.set_ylabel(t(ylabel))
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.grid(axis="y", alpha=0.3)


@styled
def dots_figure(
    panels: Mapping[str, Mapping[str, Sequence[float]]],
    ylabels: Sequence[str],
    ylims: Sequence | None = None,
    height: float = 3.0,
) -> Figure:
    """``panels[title][setting]`` holds one value per seed; ``ylabels`` one per panel."""
    figure, axes = plt.subplots(
        1, len(panels), figsize=(FULL_WIDTH, height), layout="constrained", squeeze=False
    )
    ylims = ylims or [None] * len(panels)
    for ax, (title, results), ylabel, ylim in zip(
        axes[0], panels.items(), ylabels, ylims, strict=True
    ):
        _dots(ax, results, ylabel, ylim)
        ax.set_title(t(title))
    plt.close(figure)
    return figure


@styled
def depth_figure(
    along_depth: Mapping[str, np.ndarray],
    results: Mapping[str, Mapping[str, Sequence[float]]],
    ylabel: str,
    results_ylabel: str,
) -> Figure:
    """Left: ``along_depth[setting]`` ``(seeds, depth)``, one line per seed, log scale, a
    legend below the figure. Right: a panel per ``results[title][setting]`` (one value per
    seed), a row per setting: a dot per seed, a bar at the mean."""
    figure, axes = plt.subplots(
        1, 1 + len(results), figsize=(FULL_WIDTH, 3.6), layout="constrained",
        width_ratios=[1.4] + [1] * len(results),
    )  # fmt: skip
    ax = axes[0]
    for i, (label, values) in enumerate(along_depth.items()):
        values = np.asarray(values)
        blocks = np.arange(1, values.shape[1] + 1)
        for j, row in enumerate(values):
            ax.plot(blocks, row, color=color(i), ls=linestyle(i), lw=1.5, alpha=0.8,
                    label=t(label) if j == 0 else None)  # fmt: skip
    ax.set_yscale("log")
    ax.set(xlabel=t("residual block"), ylabel=t(ylabel), title=t("at initialisation"))
    ax.grid(alpha=0.3)
    for k, (ax, (title, panel)) in enumerate(zip(axes[1:], results.items(), strict=True)):
        for i, values in enumerate(panel.values()):  # one row per setting, top to bottom
            values = np.asarray(values, dtype=float)
            y = len(panel) - 1 - i
            offsets = np.linspace(-0.12, 0.12, len(values))
            ax.plot(values, y + offsets, "o", color=color(i), ms=6, alpha=0.8)
            ax.plot([values.mean()] * 2, [y - 0.25, y + 0.25], color=color(i), lw=2.5)
        ax.set_yticks(range(len(panel)), [t(name) for name in panel][::-1] if k == 0 else [])
        ax.set(xlim=(0, 100), ylim=(-0.6, len(panel) - 0.4), xlabel=t(results_ylabel))
        ax.set_xticks([0, 40, 80])
        ax.set_title(t(title))
        ax.grid(axis="x", alpha=0.3)
    figure.legend(loc="outside lower center", ncol=len(along_depth), frameon=False)
    plt.close(figure)
    return figure


@styled
def matrices_figure(matrices: Mapping[str, np.ndarray], label: str) -> Figure:
    """Square matrices side by side, one diverging colour scale (−1 to 1) and colour bar."""
    figure, axes = plt.subplots(
        1, len(matrices), figsize=(FULL_WIDTH, 2.9), layout="constrained", squeeze=False
    )
    for ax, (title, matrix) in zip(axes[0], matrices.items(), strict=True):
        image = ax.imshow(matrix, cmap="RdBu_r", vmin=-1, vmax=1)
        ax.set_title(t(title))
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_xlabel(t("channel"))
    axes[0, 0].set_ylabel(t("channel"))
    figure.colorbar(image, ax=axes[0].tolist(), label=t(label), shrink=0.9)
    plt.close(figure)
    return figure
