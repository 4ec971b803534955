"""Figures of the chapters after training: after training (folding, shifted data) and at
scale (the variance's rounding error, batch norm split over devices).

Every function draws what it is given and computes nothing it shows; each draws inside
:func:`bnbook.style.styled`, at most :data:`bnbook.style.FULL_WIDTH` wide, with no text
smaller than the body text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from bnbook import i18n
from bnbook.style import FULL_WIDTH, styled

# --------------------------------------------------------------------------------------
# After training
# --------------------------------------------------------------------------------------


@styled
def affine_figure(z, eval_out, batches: Mapping[str, tuple], channels: Sequence[int], a, t):
    """Batch norm's output against its input, one panel per channel of ``channels``, on
    shared axes: every eval-mode value (grey) on its line ``a_c·z + t_c``, and each
    training-mode batch of ``batches`` (label → (input, output)) on a line of its own;
    ``a`` and ``t`` are each channel's slope and intercept in eval mode.

    ``z``, ``eval_out`` and the batches are ``(N, C, H, W)`` arrays."""
    fig = Figure(figsize=(FULL_WIDTH, 2.9), layout="constrained")
    axes = fig.subplots(1, len(channels), sharex=True, sharey=True)
    marks = ("x", "+", "1", "2")
    for ax, c in zip(axes, channels, strict=True):
        ax.plot(np.ravel(z[:, c]), np.ravel(eval_out[:, c]), ".", color="0.6", ms=2,
                label=i18n.t("eval mode, all test images"))  # fmt: skip
        for k, (label, (batch, out)) in enumerate(batches.items()):
            ax.plot(np.ravel(batch[:, c]), np.ravel(out[:, c]), marks[k], color=f"C{k + 1}",
                    ms=5, label=i18n.t("training mode: {batch}", batch=i18n.t(label)))  # fmt: skip
        ax.set_title(i18n.t("channel {c}", c=c))
        ax.text(0.04, 0.96, f"$a = {a[c]:.2f}$\n$t = {t[c]:.2f}$", transform=ax.transAxes,
                va="top")  # fmt: skip
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(i18n.t("BN output"))
    fig.supxlabel(i18n.t("conv output $z$"))
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=2, frameon=False,
               markerscale=2)  # fmt: skip
    return fig


@styled
def padding_error_figure(error_map) -> Figure:
    """The folding error at each output position of a padded convolution: a heat map."""
    fig = Figure(figsize=(4.0, 2.7), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(np.asarray(error_map), cmap="magma")
    ax.set_xticks(range(error_map.shape[1]))
    ax.set_yticks(range(error_map.shape[0]))
    ax.set(xlabel=i18n.t("column"), ylabel=i18n.t("row"))
    fig.colorbar(im, ax=ax, label=i18n.t("mean |folded − exact|"))
    return fig


@styled
def shift_figure(images: Sequence[tuple[str, np.ndarray]], accuracy, shifts: Sequence[str]):
    """Left, one test digit clean and under each shift; right, test accuracy (%) per shift:
    clean, shifted, and shifted after AdaBN, one marker per seed.

    ``accuracy`` has shape ``(shifts, seeds, 3)`` (clean, shifted, adapted), in [0, 1]."""
    fig = Figure(figsize=(FULL_WIDTH, 4.0), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 2.1])
    for ax, (label, image) in zip(top.subplots(1, len(images)), images, strict=True):
        ax.imshow(image, cmap="gray_r", vmin=0, vmax=20)
        ax.set_title(i18n.t(label))
        ax.set_axis_off()
    ax = bottom.subplots()
    acc = 100 * np.asarray(accuracy)
    kinds = ((i18n.t("clean"), "C0", "o"), (i18n.t("shifted"), "C3", "x"),
             (i18n.t("after AdaBN"), "C2", "s"))  # fmt: skip
    seeds = acc.shape[1]
    for j, (label, color, marker) in enumerate(kinds):
        for i in range(len(shifts)):
            xs = i + (j - 1) * 0.25 + np.linspace(-0.06, 0.06, seeds)
            ax.plot(xs, acc[i, :, j], marker, color=color, ms=6, ls="none",
                    label=label if i == 0 else None)  # fmt: skip
    ax.set_xticks(range(len(shifts)), [i18n.t(s) for s in shifts])
    ax.set(ylabel=i18n.t("test accuracy (%)"), ylim=(0, 102))
    ax.grid(axis="y", alpha=0.3)
    bottom.legend(loc="outside right center", frameon=False)
    return fig


# --------------------------------------------------------------------------------------
# At scale
# --------------------------------------------------------------------------------------


@styled
def variance_error_figure(means, errors: Mapping[str, np.ndarray], u: float) -> Figure:
    """Relative error of a float32 variance against the data's mean, on log axes: one
    marker per seed and method, a line through the medians, and the dashed (μ/σ)²·u.

    ``errors[method]`` has shape ``(seeds, len(means))``."""
    fig = Figure(figsize=(FULL_WIDTH, 5.2), layout="constrained")
    ax = fig.subplots()
    shown = np.asarray(means, dtype=float)
    markers = "osD^vPx*"
    for k, (name, err) in enumerate(errors.items()):
        style = dict(color=f"C{k}", marker=markers[k % len(markers)])
        ax.plot(shown, np.median(err, axis=0), "-", lw=1.2, label=i18n.t(name), **style)
        for row in err:
            ax.plot(shown, row, ls="none", ms=4, alpha=0.6, **style)
    ax.plot(shown, shown**2 * u, "k--", lw=1, label=r"$(\mu/\sigma)^2 u$")
    ax.set(xscale="log", yscale="log")
    ax.set_xlabel(i18n.t(r"mean of the data $\mu$ ($\sigma = 1$)"))
    ax.set_ylabel(i18n.t("relative error of the variance"))
    ax.grid(True, which="major", alpha=0.3)
    fig.legend(loc="outside lower center", ncol=2, frameon=False)
    return fig


@styled
def per_device_gap_figure(sizes: Sequence[int], gap, seeds: Sequence[int], predicted=None):
    """RMS difference between per-device and whole-batch batch norm against the images
    per device (one line per seed), and, dashed, ``predicted`` if given."""
    fig = Figure(figsize=(FULL_WIDTH, 3.4), layout="constrained")
    ax = fig.subplots()
    for i, seed in enumerate(seeds):
        ax.plot(sizes, gap[i], "o-", color=f"C{i}", label=i18n.t("seed {seed}", seed=seed))
    if predicted is not None:
        ax.plot(sizes, predicted, "k--", lw=1, label=r"$\sqrt{s\,(1/n - 1/N)}$")
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.minorticks_off()
    ax.invert_xaxis()
    ax.set(xlabel=i18n.t("images per device n"), ylabel=i18n.t("RMS(per device − whole)"))
    ax.grid(True, alpha=0.3)
    fig.legend(loc="outside right center", frameon=False)
    return fig


@styled
def per_device_training_figure(curves: Mapping[str, Sequence]) -> Figure:
    """Test accuracy (%) against the training step for each setting, one line per seed.

    ``curves[label]`` is a list of :class:`bnbook.train.History`."""
    fig = Figure(figsize=(FULL_WIDTH, 3.6), layout="constrained")
    ax = fig.subplots()
    for k, (label, histories) in enumerate(curves.items()):
        name = i18n.t(label)
        for s, history in enumerate(histories):
            ax.plot(history.eval_steps, 100 * np.asarray(history.test_accuracy), "o-",
                    color=f"C{k}", ms=3, lw=1.2, label=name if s == 0 else None)  # fmt: skip
    ax.set(xlabel=i18n.t("training step"), ylabel=i18n.t("test accuracy (%)"), ylim=(0, 100))
    ax.grid(alpha=0.3)
    fig.legend(loc="outside lower center", ncol=2, frameon=False)
    return fig
