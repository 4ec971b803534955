r"""Explorers: sliders that recompute with bnlib and redraw one figure in place.

Three explorers, each in three forms:

=====================  ======================================  ===========================
idea                   live (needs a kernel)                   static page (no kernel)
=====================  ======================================  ===========================
ε                      :func:`eps_explorer`                    :func:`eps_explorer_static`
                                                               :func:`eps_sweep`
momentum               :func:`momentum_explorer`               :func:`momentum_explorer_static`
                                                               :func:`momentum_sweep`
batch size             :func:`batch_size_explorer`             :func:`batch_size_explorer_static`
                                                               :func:`batch_size_sweep`
=====================  ======================================  ===========================

- A *live* explorer is an :class:`Explorer` (an ``ipywidgets.VBox``): a slider, a message
  line and one matplotlib figure. Moving the slider recomputes with bnlib, updates the
  figure's artists in place (``set_data``) and re-renders that same figure into an
  ``ipywidgets.Image``: no new figure per change. Extreme settings (batch size 1, ε tiny,
  momentum 0 or 1) show a message in the widget, never a traceback.
- A *static* explorer works on the rendered page with no kernel and no network: its frames
  are the same figure computed with bnlib at build time over the slider's range, and the
  slider is linked in the browser (``jslink``) to a ``Stack`` of those images.
- A *sweep* is one ordinary figure showing the slider's whole range at once (overlaid
  curves), for print and for readers who never touch a slider.

How a chapter uses them (copy these cells; ``remove-input`` hides the code on the page)::

    ```{code-cell} ipython3
    :tags: [remove-input]
    from bnlib import widgets

    widgets.eps_explorer_static()
    ```

    Run this page live (Colab or Binder from the rocket button, or Jupyter) to move ε
    continuously; on the static page the slider above steps through precomputed values.

    ```{code-cell} ipython3
    :tags: [remove-cell]
    # Live explorer: needs a running kernel (Jupyter, Colab, Binder); hidden on the web page.
    widgets.eps_explorer()
    ```

    ```{code-cell} ipython3
    :tags: [remove-input]
    widgets.eps_sweep()
    ```

(replace ``eps`` by ``momentum`` or ``batch_size``). Each function takes its starting value
as an argument, e.g. ``widgets.momentum_explorer(momentum=0.3)``. The sweep returns a closed
``matplotlib.figure.Figure``: as a cell's last value it is shown once.
"""

from __future__ import annotations

import functools
import html
import io
import math
from collections.abc import Callable, Sequence

import ipywidgets
import matplotlib.pyplot as plt
import numpy as np
import PIL.Image
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bnlib.functional import batch_norm, batch_stats
from bnlib.simulate import POPULATION_MEAN, POPULATION_STD, sample_batches, simulate_running_stats

#: Resolution of the live figure and of the static frames (pixels per inch).
LIVE_DPI = 80
FRAME_DPI = 72

#: What the static explorers tell a reader about running them live.
RUN_LIVE = (
    "On this page the slider steps through frames computed with bnlib when the book was "
    "built. To move it freely and recompute live, open the chapter in Colab or Binder "
    "(rocket button at the top of the page) or download it as a notebook and run it in "
    "Jupyter; the cell <code>widgets.{name}()</code> is the live explorer."
)

# A draw function takes the slider's value, updates the figure's artists in place, and
# returns a message for the reader ("" when there is nothing special to say).
DrawFunction = Callable[[float], str]


# --------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------


def figure_png(figure: Figure, dpi: int = LIVE_DPI, palette: bool = False) -> bytes:
    """Render ``figure`` to PNG bytes with Agg (about 45 ms for an explorer's figure).

    The layout (``layout="constrained"``) is computed on the first render and then frozen,
    so the axes stay put from one value to the next. ``palette=True`` stores 64 colours
    (about 4× smaller, for the frames saved in the page); otherwise the PNG is compressed
    lightly, for speed.
    """
    canvas = figure.canvas
    if not isinstance(canvas, FigureCanvasAgg):
        canvas = FigureCanvasAgg(figure)
    figure.set_dpi(dpi)
    canvas.draw()
    if figure.get_layout_engine() is not None:
        figure.set_layout_engine("none")  # keep the first layout for every later value
    image = PIL.Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba())
    buffer = io.BytesIO()
    if palette:
        image.convert("RGB").quantize(colors=64).save(buffer, format="png", optimize=True)
    else:
        image.convert("RGB").save(buffer, format="png", compress_level=1)
    return buffer.getvalue()


def message_html(message: str) -> str:
    """A message line for a widget: a yellow note, or nothing."""
    if not message:
        return ""
    return (
        '<div style="background:#fff7e0;border-left:4px solid #e0a800;padding:4px 8px;'
        f'margin:2px 0;font-size:0.9em">{html.escape(message)}</div>'
    )


class Explorer(ipywidgets.VBox):
    """A live explorer: a slider, a message line, and one figure redrawn in place.

    Attributes: ``slider`` (the control), ``figure`` (the one matplotlib ``Figure``,
    never replaced), ``artists`` (name → matplotlib artist, what the figure plots),
    ``image`` (the ``ipywidgets.Image`` showing the figure), ``message`` (an
    ``ipywidgets.HTML`` with the current note). Setting ``slider.value`` recomputes.
    """

    def __init__(
        self,
        title: str,
        slider: ipywidgets.ValueWidget,
        figure: Figure,
        artists: dict,
        draw: DrawFunction,
    ) -> None:
        self.slider = slider
        self.figure = figure
        self.artists = artists
        self._draw = draw
        self.message = ipywidgets.HTML()
        self.image = ipywidgets.Image(format="png")
        heading = ipywidgets.HTML(f"<b>{html.escape(title)}</b>")
        super().__init__([heading, slider, self.message, self.image])
        slider.observe(self._on_change, names="value")
        self.update(slider.value)

    def _on_change(self, change: dict) -> None:
        self.update(change["new"])

    def update(self, value: float) -> None:
        """Recompute for ``value`` with bnlib, update the artists, re-render the figure."""
        try:
            note = self._draw(value)
        except (ValueError, TypeError) as exc:  # bnlib's clear errors become the message
            note = str(exc)
        self.message.value = message_html(note)
        self.image.value = figure_png(self.figure)


def static_explorer(
    title: str,
    labels: Sequence[str],
    frames: Sequence[tuple[str, bytes | None]],
    start: int,
    name: str,
) -> ipywidgets.VBox:
    """A slider linked in the browser to a ``Stack`` of precomputed frames.

    ``frames[i]`` is ``(message, png)`` for ``labels[i]``. The link (``jslink`` from the
    slider's ``index`` to the stack's ``selected_index``) lives in the page's JavaScript,
    so the slider works with the widget state saved in the page and no kernel.
    """
    if len(labels) != len(frames):
        raise ValueError(f"need one frame per label, got {len(labels)} and {len(frames)}")
    slider = ipywidgets.SelectionSlider(
        options=list(labels),
        index=start,
        description="",
        continuous_update=True,
        layout=ipywidgets.Layout(width="60%"),
    )
    pages = []
    for note, png in frames:
        parts = [ipywidgets.HTML(message_html(note))]
        if png is not None:
            parts.append(ipywidgets.Image(value=png, format="png"))
        pages.append(ipywidgets.VBox(parts))
    stack = ipywidgets.Stack(pages, selected_index=start)
    link = ipywidgets.jslink((slider, "index"), (stack, "selected_index"))
    note = ipywidgets.HTML(
        f'<div style="font-size:0.85em;color:#555">{RUN_LIVE.format(name=name)}</div>'
    )
    box = ipywidgets.VBox([ipywidgets.HTML(f"<b>{html.escape(title)}</b>"), slider, stack, note])
    box.add_class("bnbook-explorer")  # the browser tests find explorers by this class
    box.slider, box.stack, box.link = slider, stack, link  # for tests and the curious
    return box


def _frames(draw: DrawFunction, figure: Figure, values: Sequence[float]) -> list:
    """``(message, png)`` for each value; ``png`` is None when the value cannot be drawn."""
    frames = []
    for value in values:
        try:
            frames.append((draw(value), figure_png(figure, FRAME_DPI, palette=True)))
        except (ValueError, TypeError) as exc:
            frames.append((str(exc), None))
    return frames


# --------------------------------------------------------------------------------------
# ε: what the small constant under the square root does
# --------------------------------------------------------------------------------------

#: Standard deviation of each channel of the ε example: from ordinary to nearly constant.
EPS_CHANNEL_STDS: tuple[float, ...] = (1.0, 0.1, 0.01, 0.001)
#: The slider's range, as powers of ten.
EPS_MIN_EXPONENT, EPS_MAX_EXPONENT = -10, 0
EPS_STATIC_VALUES: tuple[float, ...] = tuple(
    10.0**k for k in range(EPS_MIN_EXPONENT, EPS_MAX_EXPONENT + 1)
)


@functools.cache
def eps_input() -> np.ndarray:
    """The ε example's input, shape (16, 4, 1, 1) float64: 16 values per channel.

    Channel ``c`` is ``5 + s_c·z`` with ``s_c`` from :data:`EPS_CHANNEL_STDS` and ``z``
    exactly standardized (mean 0, biased std 1), so its batch variance is exactly ``s_c²``.
    """
    z = np.random.default_rng(0).standard_normal(16)
    z = (z - z.mean()) / z.std()
    stds = np.asarray(EPS_CHANNEL_STDS)
    x = 5.0 + z[:, None] * stds[None, :]
    x.flags.writeable = False
    return x.reshape(16, len(stds), 1, 1)


def eps_outputs(eps: float) -> np.ndarray:
    """``bnlib.batch_norm(eps_input(), eps=eps)`` in training mode, as (16 values, 4 channels)."""
    y = batch_norm(eps_input(), training=True, eps=eps)
    return y.reshape(y.shape[0], y.shape[1])


def eps_output_std(eps: float) -> np.ndarray:
    """Standard deviation of each channel of ``bnlib.batch_norm(eps_input(), eps=eps)``."""
    return eps_outputs(eps).std(axis=0)


@functools.cache
def _eps_curve() -> tuple[np.ndarray, np.ndarray]:
    eps_grid = np.logspace(EPS_MIN_EXPONENT, EPS_MAX_EXPONENT, 61)
    return eps_grid, np.array([eps_output_std(float(e)) for e in eps_grid])


def eps_message(eps: float) -> str:
    """What a reader should notice at this ε (empty when nothing is extreme)."""
    smallest_var = min(EPS_CHANNEL_STDS) ** 2
    if eps < smallest_var / 100:
        return (
            f"ε = {eps:.0e} is far below every channel's variance: each channel is scaled "
            f"to standard deviation 1, even the nearly constant one (σ = "
            f"{min(EPS_CHANNEL_STDS)}), whose tiny noise now looks as large as real signal. "
            "For an exactly constant channel ε alone keeps 0/√(0 + ε) from dividing by zero."
        )
    if eps >= 0.1:
        return (
            f"ε = {eps:.0e} is as large as the variances themselves: it no longer just "
            "guards the division, it shrinks every output (std √(σ²/(σ² + ε)) < 1), "
            "so batch norm stops normalizing."
        )
    return ""


def _eps_figure() -> tuple[Figure, dict, DrawFunction]:
    figure = Figure(figsize=(9, 3.3), layout="constrained")
    ax_std, ax_out = figure.subplots(1, 2, width_ratios=(1.3, 1))
    eps_grid, stds = _eps_curve()
    artists: dict = {"curves": [], "markers": []}
    for c, s in enumerate(EPS_CHANNEL_STDS):
        (curve,) = ax_std.semilogx(eps_grid, stds[:, c], color=f"C{c}", label=f"σ = {s:g}")
        (marker,) = ax_std.plot([], [], "o", color=f"C{c}")
        artists["curves"].append(curve)
        artists["markers"].append(marker)
    artists["eps_line"] = ax_std.axvline(1e-5, color="0.3", lw=1, ls="--")
    ax_std.set(xlabel="ε", ylabel="std of the output", ylim=(-0.05, 1.1))
    ax_std.set_title("output std of each channel against ε", fontsize=10)
    ax_std.legend(fontsize=8, loc="lower left", title="channel", title_fontsize=8)
    nearly_constant = len(EPS_CHANNEL_STDS) - 1
    n = eps_input().shape[0]
    (artists["outputs"],) = ax_out.plot(np.arange(n), np.zeros(n), "o", color=f"C{nearly_constant}")
    ax_out.axhline(0, color="0.7", lw=0.8)
    ax_out.set(xlabel="value index in the batch", ylabel="normalized output", ylim=(-2.6, 2.6))
    title_out = ax_out.set_title("", fontsize=10)

    def draw(eps: float) -> str:
        eps = float(eps)
        y = eps_outputs(eps)
        stds = y.std(axis=0)
        for c, marker in enumerate(artists["markers"]):
            marker.set_data([eps], [stds[c]])
        artists["eps_line"].set_xdata([eps, eps])
        artists["outputs"].set_ydata(y[:, nearly_constant])
        title_out.set_text(
            f"channel σ = {EPS_CHANNEL_STDS[nearly_constant]:g} at ε = {eps:.1e}: "
            f"std {stds[nearly_constant]:.3f}"
        )
        return eps_message(eps)

    return figure, artists, draw


def eps_explorer(eps: float = 1e-5) -> Explorer:
    """Live: move ε (log scale, 1e-10 … 1) and see each channel's output std and the
    outputs of a nearly constant channel, recomputed by :func:`bnlib.batch_norm`."""
    figure, artists, draw = _eps_figure()
    slider = ipywidgets.FloatLogSlider(
        value=eps,
        base=10,
        min=EPS_MIN_EXPONENT,
        max=EPS_MAX_EXPONENT,
        step=0.1,
        description="ε",
        readout_format=".1e",
        continuous_update=True,
        layout=ipywidgets.Layout(width="60%"),
    )
    return Explorer("ε under the square root", slider, figure, artists, draw)


def eps_explorer_static(eps: float = 1e-5) -> ipywidgets.VBox:
    """Static page: the ε explorer's figure at ε = 1e-10, 1e-9, …, 1, switched in the browser."""
    figure, _, draw = _eps_figure()
    values = EPS_STATIC_VALUES
    start = int(np.argmin(np.abs(np.log10(values) - math.log10(eps))))
    labels = [f"{v:.0e}" for v in values]
    return static_explorer(
        "ε under the square root (ε on the slider)",
        labels,
        _frames(draw, figure, values),
        start,
        "eps_explorer",
    )


def eps_sweep() -> Figure:
    """Every ε at once: output std against ε, and the nearly constant channel's outputs for
    several ε overlaid (darker = larger ε)."""
    eps_grid, stds = _eps_curve()
    figure, (ax_std, ax_out) = plt.subplots(
        1, 2, figsize=(9, 3.3), layout="constrained", width_ratios=(1.3, 1)
    )
    for c, s in enumerate(EPS_CHANNEL_STDS):
        ax_std.semilogx(eps_grid, stds[:, c], color=f"C{c}", label=f"σ = {s:g}")
        ax_std.axvline(s**2, color=f"C{c}", lw=0.8, ls=":")
    ax_std.set(xlabel="ε", ylabel="std of the output", ylim=(-0.05, 1.1))
    ax_std.set_title("output std against ε (dotted: ε = σ²)", fontsize=10)
    ax_std.legend(fontsize=8, loc="lower left", title="channel", title_fontsize=8)
    nearly_constant = len(EPS_CHANNEL_STDS) - 1
    sweep = (1e-8, 1e-7, 1e-6, 1e-5, 1e-4)
    for i, eps in enumerate(sweep):
        y = eps_outputs(eps)[:, nearly_constant]
        shade = plt.cm.viridis(i / (len(sweep) - 1))
        ax_out.plot(np.sort(y), "o-", ms=3, color=shade, label=f"ε = {eps:.0e}")
    ax_out.set(xlabel="output, sorted", ylabel="normalized output", ylim=(-2.6, 2.6))
    ax_out.set_title(f"channel σ = {EPS_CHANNEL_STDS[nearly_constant]:g}", fontsize=10)
    ax_out.legend(fontsize=7, loc="upper left")
    plt.close(figure)
    return figure


# --------------------------------------------------------------------------------------
# Momentum: how the running statistics follow a stream of batches
# --------------------------------------------------------------------------------------

#: The momentum example: a stream of batches of 16 values per channel (1×1 pixels),
#: channel 0 of bnlib.simulate's population (mean 3, std 2).
MOMENTUM_STEPS = 200
MOMENTUM_BATCH_SIZE = 16
MOMENTUM_STATIC_VALUES: tuple[float, ...] = (0.0, 0.01, 0.03, 0.1, 0.3, 0.6, 1.0)


def momentum_trace(momentum: float):
    """The running statistics of ``bnlib.BatchNorm2d(momentum=momentum)`` over the stream.

    A :class:`bnlib.simulate.RunningStatsTrace` (seed 0: the same batches for every
    momentum).
    """
    return simulate_running_stats(
        momentum, batch_size=MOMENTUM_BATCH_SIZE, steps=MOMENTUM_STEPS, seed=0
    )


def momentum_message(momentum: float) -> str:
    """What a reader should notice at this momentum (empty when nothing is extreme)."""
    mu, var = POPULATION_MEAN[0], POPULATION_STD[0] ** 2
    if momentum == 0:
        return (
            "momentum = 0: the running statistics never move from their start (mean 0, "
            f"variance 1); evaluation mode would normalize with those, not with the data's "
            f"mean {mu:g} and variance {var:g}."
        )
    if momentum == 1:
        return (
            "momentum = 1: the running statistics are just the last batch's; nothing is "
            "averaged, so evaluation mode inherits one batch's noise."
        )
    remaining = (1 - momentum) ** MOMENTUM_STEPS
    if remaining > 0.05:
        return (
            f"momentum = {momentum:g}: after {MOMENTUM_STEPS} batches the starting values "
            f"still weigh (1 − {momentum:g})^{MOMENTUM_STEPS} = {remaining:.2f}; "
            "the running statistics have not converged yet."
        )
    return ""


def _momentum_figure() -> tuple[Figure, dict, DrawFunction]:
    figure = Figure(figsize=(9, 3.3), layout="constrained")
    axes = figure.subplots(1, 2)
    steps = np.arange(MOMENTUM_STEPS + 1)
    population = (POPULATION_MEAN[0], POPULATION_STD[0] ** 2)
    artists: dict = {}
    for ax, key, label, value in zip(
        axes, ("mean", "var"), ("mean", "variance"), population, strict=True
    ):
        (artists[f"batch_{key}"],) = ax.plot(
            steps[1:], np.zeros(MOMENTUM_STEPS), ".", ms=2, color="0.7", label=f"batch {label}"
        )
        (artists[f"running_{key}"],) = ax.plot(
            steps, np.zeros(steps.size), color="C0", lw=1.8, label=f"running_{key}"
        )
        ax.axhline(value, color="C3", ls="--", lw=1, label=f"population {label} {value:g}")
        ax.set(xlabel="batches seen (training steps)", ylabel=label)
        ax.legend(fontsize=7, loc="lower right")
    axes[0].set_ylim(-0.5, 6.0)
    axes[1].set_ylim(0.0, 10.0)
    suptitle = figure.suptitle("", fontsize=10)

    def draw(momentum: float) -> str:
        momentum = float(momentum)
        trace = momentum_trace(momentum)
        artists["batch_mean"].set_ydata(trace.batch_mean[:, 0])
        artists["batch_var"].set_ydata(trace.batch_var[:, 0])
        artists["running_mean"].set_ydata(trace.running_mean[:, 0])
        artists["running_var"].set_ydata(trace.running_var[:, 0])
        suptitle.set_text(
            f"momentum = {momentum:g}: after {MOMENTUM_STEPS} batches of "
            f"{MOMENTUM_BATCH_SIZE}, running_mean = {trace.running_mean[-1, 0]:.2f}, "
            f"running_var = {trace.running_var[-1, 0]:.2f}"
        )
        return momentum_message(momentum)

    return figure, artists, draw


def momentum_explorer(momentum: float = 0.1) -> Explorer:
    """Live: move momentum (0 … 1) and watch running_mean and running_var follow a stream of
    batches, recomputed by :class:`bnlib.BatchNorm2d` (via :mod:`bnlib.simulate`)."""
    figure, artists, draw = _momentum_figure()
    slider = ipywidgets.FloatSlider(
        value=momentum,
        min=0.0,
        max=1.0,
        step=0.01,
        description="momentum",
        readout_format=".2f",
        continuous_update=True,
        layout=ipywidgets.Layout(width="60%"),
    )
    return Explorer("Running statistics and momentum", slider, figure, artists, draw)


def momentum_explorer_static(momentum: float = 0.1) -> ipywidgets.VBox:
    """Static page: the momentum explorer's figure at 0, 0.01, 0.03, 0.1, 0.3, 0.6 and 1."""
    figure, _, draw = _momentum_figure()
    values = MOMENTUM_STATIC_VALUES
    start = int(np.argmin(np.abs(np.asarray(values) - momentum)))
    return static_explorer(
        "Running statistics and momentum (momentum on the slider)",
        [f"{v:g}" for v in values],
        _frames(draw, figure, values),
        start,
        "momentum_explorer",
    )


def momentum_sweep(momenta: Sequence[float] = (0.01, 0.03, 0.1, 0.3, 1.0)) -> Figure:
    """Every momentum at once: running_mean and running_var against step, one curve each."""
    figure, axes = plt.subplots(1, 2, figsize=(9, 3.3), layout="constrained")
    population = (POPULATION_MEAN[0], POPULATION_STD[0] ** 2)
    for i, momentum in enumerate(momenta):
        trace = momentum_trace(momentum)
        shade = plt.cm.viridis(i / max(len(momenta) - 1, 1))
        axes[0].plot(trace.running_mean[:, 0], color=shade, lw=1.2, label=f"{momentum:g}")
        axes[1].plot(trace.running_var[:, 0], color=shade, lw=1.2, label=f"{momentum:g}")
    for ax, label, value in zip(axes, ("running_mean", "running_var"), population, strict=True):
        ax.axhline(value, color="C3", ls="--", lw=1)
        ax.set(xlabel="batches seen (training steps)", ylabel=label)
    axes[0].set_ylim(-0.5, 6.0)
    axes[1].set_ylim(0.0, 10.0)
    axes[1].legend(fontsize=7, title="momentum", title_fontsize=7, loc="lower right")
    figure.suptitle(
        f"batches of {MOMENTUM_BATCH_SIZE} from a population with mean {population[0]:g} "
        f"and variance {population[1]:g} (dashed)",
        fontsize=10,
    )
    plt.close(figure)
    return figure


# --------------------------------------------------------------------------------------
# Batch size: how much batch statistics scatter, and what that does to the outputs
# --------------------------------------------------------------------------------------

#: Batches drawn per batch size, and the slider's values.
BATCH_TRIALS = 400
BATCH_SIZES: tuple[int, ...] = (1, 2, 3, 4, 8, 16, 32, 64, 128)
#: Histogram bins for the batch mean, the batch variance and the probe's output.
_MEAN_BINS = np.linspace(-1.0, 7.0, 41)
_VAR_BINS = np.linspace(0.0, 16.0, 41)
_OUT_BINS = np.linspace(-3.0, 3.0, 41)


def batch_size_data(batch_size: int) -> dict[str, np.ndarray | float]:
    r"""Statistics of ``BATCH_TRIALS`` batches of ``batch_size`` values (1×1 pixels) from
    channel 0 of bnlib.simulate's population (mean 3, std 2), all computed by bnlib.

    Returns ``mean`` and ``var`` (each batch's mean and biased variance, from
    :func:`bnlib.batch_stats`), ``output`` (the training-mode output of a fixed probe value
    ``μ + σ`` put in place of each batch's first value, from :func:`bnlib.batch_norm`) and ``ideal``
    (``(probe − μ)/√(σ² + ε)``, what evaluation mode with converged statistics gives).
    Batch size 1 raises bnlib's ValueError: one value per channel has no variance.
    """
    batch_size = int(batch_size)
    mu, sigma = POPULATION_MEAN[0], POPULATION_STD[0]
    stream = sample_batches(BATCH_TRIALS, batch_size, seed=batch_size)  # (T, N, C, 1, 1)
    # Channel 0 of every trial, trials laid side by side as channels: (N, T, 1, 1). Batch
    # norm treats channels independently, so one bnlib call handles every trial at once.
    x = np.ascontiguousarray(stream[:, :, 0].transpose(1, 0, 2, 3))
    mean, var = batch_stats(x)
    probe = mu + sigma
    x[0] = probe  # now image 0 of every batch is the same probe value
    output = batch_norm(x, training=True)[0, :, 0, 0]  # raises for batch size 1
    return {
        "mean": mean,
        "var": var,
        "output": output.astype(np.float64),
        "ideal": (probe - mu) / math.sqrt(sigma**2 + 1e-5),
    }


def batch_size_message(batch_size: int) -> str:
    """What a reader should notice at this batch size (empty when nothing is extreme)."""
    if batch_size == 2:
        return (
            "batch size 2: two values normalized by their own mean and variance always "
            "become −1 and +1, whatever they were: the output says only which one is larger."
        )
    if batch_size <= 4:
        return (
            f"batch size {batch_size}: batch statistics scatter widely, so the same input "
            "gives very different training-mode outputs from batch to batch."
        )
    return ""


def _counts(values: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """Fraction of values per bin; values outside the bins count in the end bins."""
    clipped = np.clip(values, bins[0], bins[-1])
    return np.histogram(clipped, bins)[0] / values.size


def _batch_size_figure() -> tuple[Figure, dict, DrawFunction]:
    figure = Figure(figsize=(9, 3.1), layout="constrained")
    axes = figure.subplots(1, 3)
    mu, sigma = POPULATION_MEAN[0], POPULATION_STD[0]
    artists: dict = {}
    panels = (
        ("mean", _MEAN_BINS, "batch mean", mu, f"population mean {mu:g}"),
        ("var", _VAR_BINS, "batch variance (biased)", sigma**2, f"population var {sigma**2:g}"),
        ("output", _OUT_BINS, "training output of x = μ + σ", None, "eval output"),
    )
    for ax, (key, bins, xlabel, line, line_label) in zip(axes, panels, strict=True):
        artists[key] = ax.stairs(np.zeros(bins.size - 1), bins, fill=True, color="C0")
        if line is None:
            artists["ideal"] = ax.axvline(1.0, color="C3", ls="--", lw=1, label=line_label)
        else:
            ax.axvline(line, color="C3", ls="--", lw=1, label=line_label)
        ax.set(xlabel=xlabel, xlim=(bins[0], bins[-1]))
        ax.legend(fontsize=8, loc="upper right" if key == "var" else "upper left")
    axes[0].set_ylabel(f"fraction of {BATCH_TRIALS} batches")
    suptitle = figure.suptitle("", fontsize=10)

    def draw(batch_size: float) -> str:
        batch_size = int(batch_size)
        try:
            data = batch_size_data(batch_size)
        except ValueError as exc:
            for key in ("mean", "var", "output"):
                artists[key].set_data(np.zeros_like(artists[key].get_data().values))
            suptitle.set_text(f"batch size {batch_size}: no training-mode batch norm")
            # (not quoting bnlib's message: its shape is the trials laid out as channels)
            raise ValueError(
                f"batch size {batch_size}: bnlib, like PyTorch, refuses to normalize in "
                "training mode (ValueError: Expected more than 1 value per channel when "
                "training). A batch of one 1×1 feature map has a single value per channel, "
                "so its variance is 0 and its output would always be 0."
            ) from exc
        for key, bins in (("mean", _MEAN_BINS), ("var", _VAR_BINS), ("output", _OUT_BINS)):
            counts = _counts(np.asarray(data[key]), bins)
            artists[key].set_data(counts)
            artists[key].axes.set_ylim(0, max(counts.max(), 0.05) * 1.15)
        artists["ideal"].set_xdata([data["ideal"], data["ideal"]])
        suptitle.set_text(
            f"batch size {batch_size}: batch means spread with std "
            f"{np.std(data['mean']):.2f} (σ/√N = {sigma / math.sqrt(batch_size):.2f}), "
            f"the same input's training output with std {np.std(data['output']):.2f}"
        )
        return batch_size_message(batch_size)

    return figure, artists, draw


def batch_size_explorer(batch_size: int = 8) -> Explorer:
    """Live: pick a batch size and see how batch means, batch variances and the training-mode
    output of one fixed input scatter across 400 batches, recomputed by bnlib."""
    figure, artists, draw = _batch_size_figure()
    slider = ipywidgets.SelectionSlider(
        options=list(BATCH_SIZES),
        value=batch_size,
        description="batch size",
        continuous_update=True,
        layout=ipywidgets.Layout(width="60%"),
    )
    return Explorer("Batch size and noisy batch statistics", slider, figure, artists, draw)


def batch_size_explorer_static(batch_size: int = 8) -> ipywidgets.VBox:
    """Static page: the batch-size explorer's figure at every batch size of the slider."""
    figure, _, draw = _batch_size_figure()
    return static_explorer(
        "Batch size and noisy batch statistics (batch size on the slider)",
        [str(b) for b in BATCH_SIZES],
        _frames(draw, figure, BATCH_SIZES),
        BATCH_SIZES.index(batch_size),
        "batch_size_explorer",
    )


def batch_size_sweep() -> Figure:
    """Every batch size at once: the spread of batch statistics and of the training output
    against batch size (log-log), with σ/√N for comparison."""
    sizes = np.array(BATCH_SIZES[1:])
    spreads = np.array(
        [[np.std(batch_size_data(int(b))[k]) for k in ("mean", "var", "output")] for b in sizes]
    )
    sigma = POPULATION_STD[0]
    figure, ax = plt.subplots(figsize=(6.5, 3.5), layout="constrained")
    ax.loglog(sizes, spreads[:, 0], "o-", label="batch mean")
    ax.loglog(sizes, sigma / np.sqrt(sizes), "k:", lw=1, label="σ/√N")
    ax.loglog(sizes, spreads[:, 1], "s-", label="batch variance")
    ax.loglog(sizes, spreads[:, 2], "^-", label="training output of x = μ + σ")
    ax.set(xlabel="batch size N", ylabel=f"std over {BATCH_TRIALS} batches")
    ax.set_xticks(sizes, [str(b) for b in sizes])
    ax.legend(fontsize=8)
    ax.set_title("bigger batches, steadier statistics", fontsize=10)
    plt.close(figure)
    return figure
