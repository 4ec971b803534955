"""Figures for the book, drawn with matplotlib from bnlib's own computations.

Each function returns a ``matplotlib.figure.Figure`` and draws nothing it did not compute.
Functions are grouped by the chapter that first uses them.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from bnbook.i18n import N_, lang, t
from bnbook.simulate import ema_weights, expected_running
from bnbook.style import FULL_WIDTH, GREY, PALETTE, linestyle, styled
from bnbook.style import color as palette_color
from bnlib._validate import as_input
from bnlib.functional import batch_norm, batch_norm_backward, batch_stats

# ======================================================================================
# Chapters 1-2
# ======================================================================================

CHANNEL_COLORS = PALETTE[:5]  # each ≥ 3:1 against the white background


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


def unbiased_normalization_variance(
    ms, eps: float = 1e-5, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    r"""Normalize with the *unbiased* variance and measure the output's variance.

    For each ``m`` in ``ms``, one channel of ``m`` random values (shape ``(m, 1, 1, 1)``,
    float64) is normalized by :func:`bnlib.batch_norm` in evaluation mode with its own mean
    and unbiased variance :math:`s^2 = \sigma^2 m/(m-1)`; the output's biased variance is
    then :math:`\sigma^2/(s^2 + \varepsilon) \approx (m-1)/m` instead of 1.

    Returns ``(m, output_variance)`` as float64 arrays.
    """
    ms = np.asarray(ms, dtype=np.int64)
    if ms.ndim != 1 or ms.size == 0 or np.any(ms < 2):
        raise ValueError(f"ms must be a non-empty 1D list of integers >= 2, got {ms}")
    rng = np.random.default_rng(seed)
    out = np.empty(len(ms))
    for k, m in enumerate(ms):
        x = rng.standard_normal((int(m), 1, 1, 1))
        mean, var = batch_stats(x)
        unbiased = var * m / (m - 1)
        y = batch_norm(x, mean, unbiased, training=False, eps=eps)
        out[k] = batch_stats(y)[1][0]
    return ms.astype(np.float64), out


@styled
def unbiased_pitfall_figure(ms, eps: float = 1e-5, seed: int = 0, mark: int | None = 8) -> Figure:
    """The output variance when normalizing with the unbiased variance, against m.

    Line 0 (gid ``"theory"``): (m − 1)/m on every integer m in range. Markers (gid
    ``"measured"``): :func:`unbiased_normalization_variance` on random tensors.
    ``mark`` highlights one m (the book's 2×2×2×2 tensor has m = 8).
    """
    m_measured, v_measured = unbiased_normalization_variance(ms, eps=eps, seed=seed)
    m_line = np.arange(2, int(m_measured.max()) + 1, dtype=np.float64)
    fig = Figure(figsize=(FULL_WIDTH, 3.8), layout="constrained")
    ax = fig.subplots()
    ax.axhline(
        1.0,
        color="tab:green",
        linestyle="--",
        linewidth=1.5,
        label=t("biased variance (what BatchNorm does): 1"),
    )
    ax.plot(
        m_line,
        (m_line - 1) / m_line,
        color="tab:red",
        linewidth=2,
        gid="theory",
        label=t("unbiased variance: $(m-1)/m$"),
    )
    ax.plot(
        m_measured,
        v_measured,
        "o",
        color="black",
        markersize=5,
        gid="measured",
        label=t("measured on random tensors (bnlib)"),
    )
    if mark is not None:
        ax.annotate(
            f"m = {mark}: {(mark - 1) / mark:.4g}",
            xy=(mark, (mark - 1) / mark),
            xytext=(mark * 3, 0.62),
            arrowprops=dict(arrowstyle="->", color="0.3"),
        )
    ax.set_xscale("log", base=2)
    ax.set_xlabel(t("m = N·H·W, values per channel (log scale)"))
    ax.set_ylabel(t("variance of the output"))
    ax.set_ylim(0.45, 1.05)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(t("Normalizing with the unbiased variance shrinks the output"))
    return fig


def output_std_vs_eps(
    variances, eps_values, shape: tuple[int, int, int] = (4, 4, 4), seed: int = 0
) -> np.ndarray:
    r"""The output's standard deviation after batch norm, per channel variance and per ε.

    Builds one float64 tensor of shape ``(N, len(variances), H, W)`` (``shape`` is
    ``(N, H, W)``) whose channel ``c`` has exactly the biased variance ``variances[c]``
    (and mean 3), runs :func:`bnlib.batch_norm` in training mode for every ε, and returns
    the output's per-channel standard deviation, shape ``(len(variances), len(eps_values))``.
    Theory: :math:`\sqrt{\sigma^2 / (\sigma^2 + \varepsilon)}`.
    """
    variances = np.asarray(variances, dtype=np.float64)
    if variances.ndim != 1 or variances.size == 0 or np.any(variances < 0):
        raise ValueError(f"variances must be a non-empty 1D list of numbers >= 0, got {variances}")
    n, h, w = shape
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, variances.size, h, w))
    z_mean, z_var = batch_stats(z)
    z = (z - z_mean.reshape(1, -1, 1, 1)) / np.sqrt(z_var).reshape(1, -1, 1, 1)
    x = 3.0 + z * np.sqrt(variances).reshape(1, -1, 1, 1)
    out = np.empty((variances.size, len(eps_values)))
    for k, eps in enumerate(eps_values):
        y = batch_norm(x, training=True, eps=float(eps))
        out[:, k] = np.sqrt(batch_stats(y)[1])
    return out


SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def power_of_ten(v: float) -> str:
    """``1e-05`` as the label ``$10^{-5}$`` (in the Chinese edition ``10⁻⁵``: a label with
    ``$…$`` is drawn by mathtext, whose fonts have no CJK glyphs); other numbers as ``{v:g}``."""
    if v > 0 and v != 1 and float(np.log10(v)).is_integer():
        exponent = int(np.log10(v))
        if lang() == "zh":
            return "10" + str(exponent).translate(SUPERSCRIPT)
        return f"$10^{{{exponent}}}$"
    return f"{v:g}"


@styled
def eps_sweep_figure(variances, eps_values, default_eps: float = 1e-5, seed: int = 0) -> Figure:
    """Output std against ε (log axis), one line per channel variance (gid ``"var=<σ²>"``).

    The lines' y-data are :func:`output_std_vs_eps`; a dotted vertical line marks
    ``default_eps`` (PyTorch's 1e-5).
    """
    eps_values = np.asarray(eps_values, dtype=np.float64)
    stds = output_std_vs_eps(variances, eps_values, seed=seed)
    fig = Figure(figsize=(FULL_WIDTH, 3.8), layout="constrained")
    ax = fig.subplots()
    for k, v in enumerate(np.asarray(variances, dtype=np.float64)):
        ax.plot(
            eps_values,
            stds[k],
            linewidth=2,
            color=CHANNEL_COLORS[k % len(CHANNEL_COLORS)],
            linestyle=linestyle(k),
            gid=f"var={v:g}",
            label=t("channel variance σ² = {v}", v=power_of_ten(v)),
        )
    ax.axvline(
        default_eps,
        color="0.3",
        linestyle=":",
        linewidth=1.5,
        label=t("PyTorch's default ε = {eps}", eps=power_of_ten(default_eps)),
    )
    ax.set_xscale("log")
    ax.set_xlabel(t("ε (log scale)"))
    ax.set_ylabel(t("standard deviation of the output"))
    ax.set_ylim(0, 1.08)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="lower left")
    ax.set_title(t("ε barely matters, until it is comparable to the channel's variance"))
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


# --------------------------------------------------------------------------------------
# Chapter 4: the backward pass
# --------------------------------------------------------------------------------------

# The forward graph of training-mode batch norm: name -> (x, y, label, per_channel).
# Per-channel nodes hold one number per channel; the others are full (N, C, H, W) tensors.
_BACKWARD_GRAPH_NODES = {
    "x": (0.0, 0.0, r"$x$", False),
    "mu": (1.5, 1.5, r"$\mu = \frac{1}{m}\sum x$", True),
    "xc": (3.0, 0.0, r"$\tilde x = x - \mu$", False),
    "var": (4.5, 1.5, r"$\sigma^2 = \frac{1}{m}\sum \tilde x^2$", True),
    "s": (7.5, 1.5, r"$\rho = (\sigma^2 + \varepsilon)^{-1/2}$", True),
    "xhat": (7.3, 0.0, r"$\hat x = \tilde x\, \rho$", False),
    "gamma": (10.2, 1.5, r"$\gamma$", True),
    "beta": (10.2, -1.5, r"$\beta$", True),
    "y": (10.2, 0.0, r"$y = \gamma \hat x + \beta$", False),
}
_BACKWARD_GRAPH_EDGES = [
    ("x", "mu"), ("x", "xc"), ("mu", "xc"), ("xc", "var"), ("var", "s"),
    ("xc", "xhat"), ("s", "xhat"), ("xhat", "y"), ("gamma", "y"), ("beta", "y"),
]  # fmt: skip
# The gradient each node receives in the backward pass (d<name> = ∂L/∂<name>).
_BACKWARD_GRAPH_GRADIENTS = {
    "y": N_(r"$dy$ (given)"),
    "gamma": r"$d\gamma = \sum dy\,\hat x$",
    "beta": r"$d\beta = \sum dy$",
    "xhat": r"$d\hat x = \gamma\, dy$",
    "s": r"$d\rho = \sum d\hat x\, \tilde x$",
    "var": r"$d\sigma^2 = -\frac{1}{2}(\sigma^2+\varepsilon)^{-3/2} d\rho$",
    "xc": r"$d\tilde x = \rho\, d\hat x + \frac{2}{m} \tilde x\, d\sigma^2$",
    "mu": r"$d\mu = -\sum d\tilde x$",
    "x": r"$dx = d\tilde x + \frac{1}{m} d\mu$",
}
_GRADIENT_LABEL_SHIFT = {"y": -1.5}  # clear of arrows and each other
# How far above (per-channel row) or below (tensor row) its node each gradient sits:
# alternate heights, so that neighbouring labels never collide.
_GRADIENT_LABEL_RISE = {
    "mu": 0.6,
    "var": 1.25,
    "s": 0.6,
    "gamma": 1.25,
    "x": 0.55,
    "xc": 1.2,
    "xhat": 0.55,
    "y": 1.2,
    "beta": 0.55,
}


@styled
def backward_graph_figure() -> plt.Figure:
    """The computational graph of batch norm's forward pass, with each node's gradient.

    Black arrows: the forward pass. Under (or over) each node, in red, the gradient of the
    loss with respect to that node, as the backward pass computes it. Rounded grey boxes are
    full tensors (N, C, H, W); square blue boxes hold one number per channel, so the
    backward sums over the m = N·H·W values of the channel when it reaches them.
    """
    fig, ax = plt.subplots(figsize=(FULL_WIDTH, 5.2), layout="constrained")
    boxes = {}
    for name, (x, y, label, per_channel) in _BACKWARD_GRAPH_NODES.items():
        style = "square,pad=0.35" if per_channel else "round,pad=0.35"
        color = "#dbe9f6" if per_channel else "#eeeeee"
        boxes[name] = ax.text(
            x, y, label, ha="center", va="center", zorder=3,
            bbox=dict(boxstyle=style, facecolor=color, edgecolor="#333333"),
        )  # fmt: skip
    for start, end in _BACKWARD_GRAPH_EDGES:
        # Anchor each arrow on the facing sides of the two labels (fractions of each label's
        # extent, so it holds however the figure is later cropped), then shrink it clear of
        # the box padding.
        rise = _BACKWARD_GRAPH_NODES[end][1] - _BACKWARD_GRAPH_NODES[start][1]
        if rise == 0:
            tail, head = (1.0, 0.5), (0.0, 0.5)
        elif rise > 0:
            tail, head = (0.7, 1.0), (0.3, 0.0)
        else:
            tail, head = (0.7, 0.0), (0.3, 1.0)
        ax.annotate(
            "", xy=head, xycoords=boxes[end], xytext=tail, textcoords=boxes[start],
            arrowprops=dict(arrowstyle="-|>", color="#333333", lw=1.3, shrinkA=7, shrinkB=7),
        )  # fmt: skip
    for name, grad in _BACKWARD_GRAPH_GRADIENTS.items():
        x, y, _, _ = _BACKWARD_GRAPH_NODES[name]
        above = y > 0
        rise = _GRADIENT_LABEL_RISE[name]
        ax.text(
            x + _GRADIENT_LABEL_SHIFT.get(name, 0.0), y + (rise if above else -rise), t(grad),
            ha="center", va="bottom" if above else "top", color="#b2182b",
        )  # fmt: skip
    legend = [
        Patch(facecolor="#eeeeee", edgecolor="#333333", label=t("tensor of shape (N, C, H, W)")),
        Patch(facecolor="#dbe9f6", edgecolor="#333333", label=t("one number per channel")),
        Line2D([], [], color="#333333", marker=">", label=t("forward pass")),
        Line2D(
            [], [], color="#b2182b", lw=0, marker="$d$", label=t("gradient received (backward)")
        ),
    ]
    fig.legend(handles=legend, loc="outside lower center", ncol=2, frameon=False)
    ax.set_xlim(-0.6, 11.6)
    ax.set_ylim(-2.9, 3.3)
    ax.axis("off")
    return fig


@styled
def gradient_projection_figure(
    x: np.ndarray, dy: np.ndarray, weight: np.ndarray | None, eps_values: np.ndarray
) -> plt.Figure:
    r"""How far dx is from orthogonal to 1 and to x̂, per channel, as ε varies (log-log).

    For each ε, dx comes from :func:`bnlib.batch_norm_backward` in float64. Plotted per
    channel: \|Σ dx·x̂\| (dots), the exact value γ·ε·s³·\|Σ dy·x̂\| with s = (σ² + ε)^(-1/2)
    (line), and \|Σ dx\| (crosses), which is zero up to rounding for every ε (an exact
    zero is drawn at 1e-17, the bottom of the plot).
    """
    x = np.asarray(x, dtype=np.float64)
    dy = np.asarray(dy, dtype=np.float64)
    gamma = np.ones(x.shape[1]) if weight is None else np.asarray(weight, np.float64)
    _, var = batch_stats(x)
    sums, projections, predicted = [], [], []
    for eps in eps_values:
        dx, _, _ = batch_norm_backward(dy, x, gamma, eps=float(eps))
        xhat = batch_norm(x, training=True, eps=float(eps))
        sums.append(np.abs(dx.sum(axis=(0, 2, 3))))  # |Σ dx|
        projections.append(np.abs((dx * xhat).sum(axis=(0, 2, 3))))  # |Σ dx·x̂|
        s = (var + eps) ** -0.5
        predicted.append(np.abs(gamma * eps * s**3 * (dy * xhat).sum(axis=(0, 2, 3))))
    sums, projections, predicted = map(np.array, (sums, projections, predicted))
    fig, ax = plt.subplots(figsize=(FULL_WIDTH, 4.4))
    for c in range(x.shape[1]):
        color = palette_color(c)
        ax.loglog(eps_values, predicted[:, c], color=color, lw=1.2, ls=linestyle(c))
        ax.loglog(eps_values, projections[:, c], "o", color=color, ms=4,
                  label=t(r"channel {c}: $|\sum dx\,\hat x|$", c=c))  # fmt: skip
        ax.loglog(eps_values, np.maximum(sums[:, c], 1e-17), "x", color=color, ms=4, alpha=0.6)
    ax.plot([], [], "k-", lw=1.2, label=r"$\gamma\,\varepsilon\,\rho^3\,|\sum dy\,\hat x|$")
    ax.plot([], [], "kx", alpha=0.6, label=t(r"$|\sum dx|$ (rounding level)"))
    ax.set_xlabel(r"$\varepsilon$", fontsize=14)
    ax.set_ylabel(t("per-channel sum (absolute value)"))
    ax.set_ylim(3e-18, 10 * max(projections.max(), predicted.max()))
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3,
              frameon=False)  # fmt: skip
    ax.grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------
# Chapter 3: running statistics
# --------------------------------------------------------------------------------------


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
