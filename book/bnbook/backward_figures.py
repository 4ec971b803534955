"""Chapter 4's and the backward appendix's figures: the forward graph with the gradient
each node receives, and the gradient as a projection.

Each function returns a ``matplotlib.figure.Figure`` and draws nothing it did not compute.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from bnbook.i18n import N_, t
from bnbook.style import FULL_WIDTH, linestyle, styled
from bnbook.style import color as palette_color
from bnlib.functional import batch_norm, batch_norm_backward, batch_stats

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
