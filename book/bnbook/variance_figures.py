"""Chapter 2's figures: the unbiased-variance pitfall and what ε does to the output.

Each function returns a ``matplotlib.figure.Figure`` and draws nothing it did not compute.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from bnbook.i18n import lang, t
from bnbook.style import CHANNEL_COLORS, FULL_WIDTH, linestyle, styled
from bnlib.functional import batch_norm, batch_stats


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
    fig = Figure(figsize=(FULL_WIDTH, 4.4), layout="constrained")
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
    fig.legend(loc="outside lower center")  # below the axes: off the data and the label
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
    fig = Figure(figsize=(FULL_WIDTH, 4.4), layout="constrained")
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
    fig.legend(loc="outside lower center", ncols=2)  # below the axes: off the curves
    ax.set_title(t("ε barely matters, until it is comparable to the channel's variance"))
    return fig
