"""Chapter 1's figures: the (N, C, H, W) tensor, and which values each normalization
pools (batch, layer, instance, group norm).

Each function returns a ``matplotlib.figure.Figure`` and draws nothing it did not compute.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from bnbook.i18n import N_, t
from bnbook.style import CHANNEL_COLORS, FULL_WIDTH, styled
from bnlib._validate import as_input
from bnlib.functional import batch_stats


@styled
def tensor_pooling_figure(x) -> Figure:
    """Draw an ``(N, C, H, W)`` tensor as N images × C channels, and its per-channel rows.

    Left: every value in its place, one column of boxes per channel, each channel framed in
    its colour and headed by the mean and biased variance that :func:`bnlib.batch_stats`
    computes from the values inside the frame. Right: the same values after
    ``x.transpose(1, 0, 2, 3).reshape(C, -1)``, one row per channel. Value texts carry the
    gid ``"x[n,c,h,w]"`` (left) and ``"row[c,j]"`` (right); channel headers ``"stats[c]"``.
    """
    x = as_input(x)
    if x.ndim != 4:
        raise ValueError(f"x must have shape (N, C, H, W), got shape {x.shape}")
    n_img, n_ch, h_px, w_px = x.shape
    if n_ch > len(CHANNEL_COLORS):
        raise ValueError(f"can draw at most {len(CHANNEL_COLORS)} channels, got {n_ch}")
    mean, var = batch_stats(x)
    rows = x.transpose(1, 0, 2, 3).reshape(n_ch, -1)
    m = rows.shape[1]
    gap, col_gap = 0.6, 3.2  # between images; between channel columns (room for μ, σ²)
    fig = Figure(figsize=(FULL_WIDTH, 1.4 + 0.5 * n_img * h_px + 0.8 * n_ch), layout="constrained")
    left, right = fig.subplots(2, 1, height_ratios=[n_img * (h_px + gap) + 2.5, n_ch * 1.5 + 2])

    def box(ax, x0, y0, color, alpha, text, gid):
        ax.add_patch(Rectangle((x0, y0), 1, 1, facecolor=color, alpha=alpha, edgecolor="white"))
        ax.text(x0 + 0.5, y0 + 0.5, text, ha="center", va="center", gid=gid)

    for c in range(n_ch):
        color = CHANNEL_COLORS[c]
        x0 = c * (w_px + col_gap)
        for n in range(n_img):
            y0 = n * (h_px + gap)
            for i in range(h_px):
                for j in range(w_px):
                    box(
                        left,
                        x0 + j,
                        y0 + i,
                        color,
                        0.25 + 0.2 * n,
                        f"{x[n, c, i, j]:g}",
                        f"x[{n},{c},{i},{j}]",
                    )
        height = n_img * h_px + (n_img - 1) * gap
        left.add_patch(
            Rectangle(
                (x0 - 0.12, -0.12),
                w_px + 0.24,
                height + 0.24,
                fill=False,
                edgecolor=color,
                linewidth=2.5,
            )
        )
        left.text(
            x0 + w_px / 2,
            -0.35,
            t(
                "channel {c}\nμ = {mean}, σ² = {var}",
                c=c,
                mean=f"{mean[c]:.4g}",
                var=f"{var[c]:.4g}",
            ),
            ha="center",
            va="bottom",
            color=color,
            gid=f"stats[{c}]",
        )
    for n in range(n_img):
        left.text(-0.3, n * (h_px + gap) + h_px / 2, t("image {n}", n=n), ha="right", va="center")
    left.set_xlim(-2.6, n_ch * (w_px + col_gap) - col_gap + 1.2)
    left.set_ylim(n_img * (h_px + gap) - gap + 0.2, -1.6)
    left.set_title(
        t("x: {n} images × {c} channels × {h}×{w} pixels", n=n_img, c=n_ch, h=h_px, w=w_px)
    )

    for c in range(n_ch):
        for j in range(m):
            box(
                right,
                j,
                c * 1.5,
                CHANNEL_COLORS[c],
                0.25 + 0.2 * (j // (h_px * w_px)),
                f"{rows[c, j]:g}",
                f"row[{c},{j}]",
            )
        right.text(
            -0.2,
            c * 1.5 + 0.5,
            t("channel {c}", c=c),
            ha="right",
            va="center",
            color=CHANNEL_COLORS[c],
        )
    for n in range(n_img):
        right.text(
            (n + 0.5) * h_px * w_px,
            -0.15,
            t("from image {n}", n=n),
            ha="center",
            va="bottom",
            color="0.35",
        )
    right.set_xlim(-2.3, m + 0.1)
    right.set_ylim(n_ch * 1.5 + 1.0, -0.9)
    right.set_aspect("equal")
    right.set_title(t("channels first, the rest flattened: {c} rows of N·H·W = {m}", c=n_ch, m=m))
    left.set_aspect("equal")
    for ax in (left, right):
        ax.set_axis_off()
    return fig


#: The normalization layers of chapter 1's family table, and what each pools.
POOLING_LAYERS = {
    "BatchNorm2d": N_("per channel,\nover batch and space"),
    "LayerNorm": N_("per image,\nover channels and space"),
    "InstanceNorm2d": N_("per image and channel,\nover space"),
    "GroupNorm": N_("per image and group,\nover its channels and space"),
}


def pooling_ids(shape: tuple[int, int, int, int], layer: str, groups: int = 2) -> np.ndarray:
    """For each element of an ``(N, C, H, W)`` tensor, the index of the (μ, σ²) it shares.

    Two elements get the same index exactly when ``layer`` (a key of
    :data:`POOLING_LAYERS`) normalizes them with the same mean and variance; GroupNorm
    uses ``groups`` groups of ``C // groups`` consecutive channels.
    """
    if len(shape) != 4:
        raise ValueError(f"shape must be (N, C, H, W), got {shape}")
    n, c = np.indices(shape)[:2]
    num_channels = shape[1]
    if layer == "BatchNorm2d":
        return c
    if layer == "LayerNorm":
        return n
    if layer == "InstanceNorm2d":
        return n * num_channels + c
    if layer == "GroupNorm":
        if groups < 1 or num_channels % groups:
            raise ValueError(f"groups must divide the {num_channels} channels, got {groups}")
        return n * groups + c // (num_channels // groups)
    raise ValueError(f"layer must be one of {list(POOLING_LAYERS)}, got {layer!r}")


@styled
def normalization_pooling_figure(
    shape: tuple[int, int, int, int] = (2, 4, 2, 2), groups: int = 2
) -> Figure:
    """One panel per layer of :data:`POOLING_LAYERS`: an ``(N, C, H, W)`` tensor drawn as
    N rows of images × C columns of channels of H×W pixels, each pixel coloured by the
    statistic it shares (:func:`pooling_ids`). Pixel patches carry the gid
    ``"<layer>:<n>,<c>,<h>,<w>:<id>"``.
    """
    n_img, n_ch, h_px, w_px = shape
    palette = [plt.get_cmap("tab10")(k) for k in range(10)]
    gap = 0.5
    fig = Figure(figsize=(FULL_WIDTH, 2 * (1.2 + 0.6 * n_img)), layout="constrained")
    axes = fig.subplots(2, 2).ravel()
    for ax, (layer, rule) in zip(axes, POOLING_LAYERS.items(), strict=True):
        ids = pooling_ids(shape, layer, groups)
        n_stats = len(np.unique(ids))
        for idx in np.ndindex(*shape):
            n, c, i, j = idx
            ax.add_patch(
                Rectangle(
                    (c * (w_px + gap) + j, n * (h_px + gap) + i),
                    1,
                    1,
                    facecolor=palette[ids[idx] % len(palette)],
                    edgecolor="white",
                    linewidth=1,
                    gid=f"{layer}:{n},{c},{i},{j}:{ids[idx]}",
                )
            )
        for c in range(n_ch):
            ax.text(c * (w_px + gap) + w_px / 2, -0.2, f"c{c}", ha="center", va="bottom")
        for n in range(n_img):
            ax.text(-0.2, n * (h_px + gap) + h_px / 2, f"n{n}", ha="right", va="center")
        name = t("GroupNorm ({groups} groups)", groups=groups) if layer == "GroupNorm" else layer
        ax.set_title(
            f"{name}\n{t(rule)}\n"
            + t("{k} statistics × {n} values", k=n_stats, n=ids.size // n_stats),
        )
        ax.set_xlim(-1.0, n_ch * (w_px + gap) - gap + 0.1)
        ax.set_ylim(n_img * (h_px + gap) - gap + 0.1, -0.9)
        ax.set_aspect("equal")
        ax.set_axis_off()
    fig.suptitle(
        t("Which values share a mean and variance (one colour per statistic)")
        + "\n"
        + t(
            "{n} images (rows n) × {c} channels (columns c) × {h}×{w} pixels",
            n=n_img,
            c=n_ch,
            h=h_px,
            w=w_px,
        ),
    )
    return fig
