r"""Explorers for readers running a chapter in Jupyter: sliders that recompute with bnlib and
redraw one figure in place.

Three explorers, one idea each: ε (:func:`eps_explorer`), momentum on a drifting stream
(:func:`momentum_explorer`) and batch size (:func:`batch_size_explorer`). On the book's web
page (no kernel) their twins are computed in the page's JavaScript (``js/explorers.js``,
mounted where a chapter writes ``<div class="bnbook-live" data-bnbook-live="eps"></div>``), so
a chapter hides the Jupyter one from the page::

    ```{code-cell} ipython3
    :tags: [remove-cell]
    widgets.eps_explorer()
    ```

(replace ``eps`` by ``momentum`` or ``batch_size``). Each function takes its starting value
as an argument, e.g. ``widgets.momentum_explorer(momentum=0.3)``.

- A *live* explorer is an :class:`Explorer` (an ``ipywidgets.VBox``): a slider, a message
  line and one matplotlib figure. Moving the slider recomputes with bnlib (or with
  :mod:`bnbook.simulate`, which calls bnlib), updates the figure's *moving* artists in place
  (``set_data``) and re-renders: the still parts (axes, ticks, legends) are drawn once and
  kept as a background, and only the moving artists are drawn over it (blitting), which keeps
  a change well under 50 ms. Extreme settings (batch size 1, ε tiny, momentum 0 or 1) show a
  message in the widget, never a traceback.
- :func:`static_explorer` links a slider in the browser (``jslink``) to a ``Stack`` of frames
  computed at build time: the training explorer of chapter 6 (``bnbook.train_figures``), whose
  runs are too slow to recompute in a page, uses it.

What each slider value recomputes (the examples' constants, the data, the messages at
extreme values) is in :mod:`bnbook.explorer_data`; this module builds the widgets.

Both render at :data:`DPI` (twice the 72 dpi the figure is laid out for) and show the image
at the figure's size in CSS pixels, so text stays sharp on any screen.
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Callable, Sequence

import ipywidgets
import numpy as np
import PIL.Image
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

# The chapters also use widgets.EPS_CHANNEL_STDS, EPS_*_EXPONENT, MOMENTUM_WINDOW and
# BATCH_TRIALS, which live in bnbook.explorer_data.
from bnbook.explorer_data import (
    BATCH_SIZES,
    BATCH_TRIALS,
    EPS_CHANNEL_STDS,
    EPS_MAX_EXPONENT,
    EPS_MIN_EXPONENT,
    MOMENTUM_WINDOW,
    batch_size_data,
    batch_size_message,
    drift_stream,
    eps_input,
    eps_message,
    eps_outputs,
    momentum_message,
    momentum_running_mean,
)
from bnbook.i18n import N_, t
from bnbook.simulate import POPULATION_MEAN, POPULATION_STD
from bnbook.style import GREY, PALETTE, styled
from bnbook.style import color as palette_color

#: Resolution of the live figure and of the static frames: twice the 72 dpi layout.
DPI = 144

#: What the static explorers tell a reader about running them live.
RUN_LIVE = N_(
    "On this page the slider steps through frames computed with bnlib when the book was "
    "built. To move it freely and recompute live, open the chapter in Colab or Binder "
    "(rocket button at the top of the page) or download it as a notebook and run it in "
    "Jupyter; the cell <code>widgets.{name}()</code> is the live explorer."
)

# A draw function takes the slider's value, updates the figure's moving artists in place,
# and returns (caption, note): the caption says what the figure shows at this value, in
# HTML above it (crisp at any zoom, and read by screen readers); the note is a message for
# the reader ("" when there is nothing special to say).
DrawFunction = Callable[[float], tuple[str, str]]


# --------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------


class Renderer:
    """Render one figure again and again, redrawing only its moving artists.

    The first :meth:`png` draws the whole figure (``layout="constrained"`` is computed then
    and frozen, so the axes stay put), keeps everything but the ``moving`` artists as a
    background, and every call draws the moving artists over that background. The axes'
    limits must not change between calls. ``png(palette=True)`` stores 64 colours (small
    and deterministic, for frames saved in the page); :meth:`jpeg` is for the live
    explorer, where encoding a PNG would take most of a slider change's time budget.
    """

    def __init__(self, figure: Figure, moving: Sequence, dpi: int = DPI) -> None:
        self.figure = figure
        self.moving = list(moving)
        self.canvas = FigureCanvasAgg(figure)
        figure.set_dpi(dpi)
        self._background = None

    @property
    def css_width(self) -> int:
        """The figure's width in CSS pixels (72 per inch): the image is shown at this size."""
        return round(self.figure.get_figwidth() * 72)

    def _render(self) -> PIL.Image.Image:
        if self._background is None:
            self.canvas.draw()  # everything, to fix the layout with the moving artists in it
            if self.figure.get_layout_engine() is not None:
                self.figure.set_layout_engine("none")
            for artist in self.moving:
                artist.set_animated(True)
            self.canvas.draw()  # the still parts only
            self._background = self.canvas.copy_from_bbox(self.figure.bbox)
        else:
            self.canvas.restore_region(self._background)
        for artist in self.moving:
            self.figure.draw_artist(artist)
        size = self.canvas.get_width_height()
        return PIL.Image.frombuffer("RGBA", size, self.canvas.buffer_rgba()).convert("RGB")

    def png(self) -> bytes:
        """The figure as a 64-colour PNG (a static frame)."""
        buffer = io.BytesIO()
        self._render().quantize(colors=64).save(buffer, format="png", optimize=True)
        return buffer.getvalue()

    def jpeg(self) -> bytes:
        """The figure as a JPEG of quality 90 (the live explorer: a few ms to encode)."""
        buffer = io.BytesIO()
        self._render().save(buffer, format="jpeg", quality=90)
        return buffer.getvalue()


def image_widget(data: bytes, css_width: int, format: str = "png") -> ipywidgets.Image:
    """An image at twice the resolution, shown ``css_width`` pixels wide (or 100%)."""
    return ipywidgets.Image(
        value=data,
        format=format,
        layout=ipywidgets.Layout(width=f"{css_width}px", max_width="100%", height="auto"),
    )


def caption_html(caption: str) -> str:
    """What the figure shows at this value, as a line above it."""
    return f'<div style="font-size:0.95em;margin:2px 0">{html.escape(caption)}</div>'


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
    ``image`` (the ``ipywidgets.Image`` showing the figure), ``caption`` and ``message``
    (``ipywidgets.HTML``: what the figure shows, and the current note). Setting
    ``slider.value`` recomputes.
    """

    def __init__(
        self,
        title: str,
        slider: ipywidgets.ValueWidget,
        figure: Figure,
        artists: dict,
        draw: DrawFunction,
        moving: Sequence,
    ) -> None:
        self.slider = slider
        self.figure = figure
        self.artists = artists
        self._draw = draw
        self._renderer = Renderer(figure, moving)
        self.caption, self.message = ipywidgets.HTML(), ipywidgets.HTML()
        self._show_text(slider.value)
        css_width = self._renderer.css_width
        self.image = image_widget(self._renderer.jpeg(), css_width, format="jpeg")
        heading = ipywidgets.HTML(f"<b>{html.escape(title)}</b>")
        super().__init__([heading, slider, self.message, self.caption, self.image])
        slider.observe(self._on_change, names="value")

    def _on_change(self, change: dict) -> None:
        self.update(change["new"])

    def _show_text(self, value: float) -> None:
        try:
            caption, note = self._draw(value)
        except (ValueError, TypeError) as exc:  # bnlib's clear errors become the message
            caption, note = "", str(exc)
        self.caption.value = caption_html(caption)
        self.message.value = message_html(note)

    def update(self, value: float) -> None:
        """Recompute for ``value`` with bnlib, update the artists, re-render the figure."""
        self._show_text(value)
        self.image.value = self._renderer.jpeg()


def static_explorer(
    title: str,
    labels: Sequence[str],
    frames: Sequence[tuple[str, bytes | None]],
    start: int,
    name: str,
    css_width: int,
) -> ipywidgets.VBox:
    """A slider linked in the browser to a ``Stack`` of precomputed frames.

    ``frames[i]`` is ``(caption, message, png)`` for ``labels[i]``. The link (``jslink`` from the
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
    for caption, note, png in frames:
        parts = [ipywidgets.HTML(message_html(note))]
        if png is not None:
            parts += [ipywidgets.HTML(caption_html(caption)), image_widget(png, css_width)]
        pages.append(ipywidgets.VBox(parts))
    stack = ipywidgets.Stack(pages, selected_index=start)
    link = ipywidgets.jslink((slider, "index"), (stack, "selected_index"))
    note = ipywidgets.HTML(
        f'<div style="font-size:0.85em;color:#555">{t(RUN_LIVE, name=name)}</div>'
    )
    box = ipywidgets.VBox([ipywidgets.HTML(f"<b>{html.escape(title)}</b>"), slider, stack, note])
    box.add_class("bnbook-explorer")  # the browser tests find explorers by this class
    box.slider, box.stack, box.link = slider, stack, link  # for tests and the curious
    return box


# --------------------------------------------------------------------------------------
# ε: what the small constant under the square root does
# --------------------------------------------------------------------------------------


@styled
def _eps_figure() -> tuple[Figure, dict, DrawFunction, list]:
    """What the ε figure above the explorer cannot show: every channel's 16 outputs at one ε."""
    figure = Figure(figsize=(9, 3.4), layout="constrained")
    ax = figure.subplots()
    n, channels = eps_input().shape[:2]
    artists: dict = {"outputs": []}
    for c, s in enumerate(EPS_CHANNEL_STDS):
        (dots,) = ax.plot(
            np.zeros(n),
            np.full(n, c),
            "o",
            ms=6,
            alpha=0.7,
            color=palette_color(c),
            label=f"{s**2:.0e}",
        )
        artists["outputs"].append(dots)
    ax.set_yticks(range(channels), [f"σ² = {s**2:.0e}" for s in EPS_CHANNEL_STDS])
    ax.set_ylim(channels - 0.5, -0.5)
    ax.set_xlim(-2.6, 2.6)
    ax.axvline(0, color=GREY, lw=0.8)
    ax.set_xlabel(t("normalized output of each of the 16 values of the channel"))
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_title(t("the 16 outputs of each channel (its variance σ² on the left)"), fontsize=11)

    def draw(eps: float) -> tuple[str, str]:
        eps = float(eps)
        y = eps_outputs(eps)
        for c, dots in enumerate(artists["outputs"]):
            dots.set_xdata(y[:, c])
        stds = ", ".join(f"{v:.3f}" for v in y.std(axis=0))
        caption = t(
            "ε = {eps}: output std of the four channels, top to bottom: {stds}",
            eps=f"{eps:.1e}",
            stds=stds,
        )
        return caption, eps_message(eps)

    return figure, artists, draw, artists["outputs"]


def eps_explorer(eps: float = 1e-5) -> Explorer:
    """Live: move ε (log scale, 1e-10 … 1) and see the outputs of four channels, from
    ordinary to nearly constant, recomputed by :func:`bnlib.batch_norm`."""
    figure, artists, draw, moving = _eps_figure()
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
    return Explorer(t("ε under the square root"), slider, figure, artists, draw, moving)


# --------------------------------------------------------------------------------------
# Momentum: how the running mean follows a drifting stream
# --------------------------------------------------------------------------------------


@styled
def _momentum_figure() -> tuple[Figure, dict, DrawFunction, list]:
    figure = Figure(figsize=(9, 3.4), layout="constrained")
    ax, ax_err = figure.subplots(1, 2, width_ratios=(1.25, 1))
    _, means, population = drift_stream()
    steps = np.arange(1, means.size + 1)
    ax.plot(steps, means, ".", ms=2.5, color=GREY, label=t("each batch's mean"))
    ax.plot(steps, population, "--", color="black", lw=1.2, label=t("population mean"))
    (running,) = ax.plot(
        steps, np.zeros(steps.size), color=PALETTE[0], lw=1.8, label=t("running_mean")
    )
    ax.set(xlabel=t("step (batches seen)"), ylabel=t("mean"), ylim=(-2.5, 5.5))
    ax.legend(fontsize=8, loc="upper left")
    ax_err.axhline(0, color="black", ls="--", lw=1)
    window = steps[MOMENTUM_WINDOW]
    ax_err.axvspan(window[0], window[-1], color="0.92", label=t("where lag and noise are measured"))
    (error,) = ax_err.plot(steps, np.zeros(steps.size), color=PALETTE[0], lw=1.2)
    ax_err.set(xlabel=t("step (batches seen)"), ylabel=t("running_mean − population mean"))
    ax_err.set_ylim(-3.3, 1.5)
    ax_err.legend(fontsize=8, loc="lower left")
    for a in (ax, ax_err):
        a.grid(True, alpha=0.3)
    artists = {"running_mean": running, "error": error}

    def draw(momentum: float) -> tuple[str, str]:
        momentum = float(momentum)
        r = momentum_running_mean(momentum)
        running.set_ydata(r)
        error.set_ydata(r - population)
        err = (r - population)[MOMENTUM_WINDOW]
        caption = t(
            "momentum = {p}: in the grey window the running mean lags behind the "
            "population mean by {lag} on average, and its noise (std) is {noise}",
            p=f"{momentum:g}",
            lag=f"{-err.mean():.2f}",
            noise=f"{err.std():.2f}",
        )
        return caption, momentum_message(momentum)

    return figure, artists, draw, [running, error]


def momentum_explorer(momentum: float = 0.1) -> Explorer:
    """Live: move momentum (0 … 1) and watch running_mean follow a drifting stream."""
    figure, artists, draw, moving = _momentum_figure()
    slider = ipywidgets.FloatSlider(
        value=momentum,
        min=0.0,
        max=1.0,
        step=0.01,
        description=t("momentum"),
        readout_format=".2f",
        continuous_update=True,
        layout=ipywidgets.Layout(width="60%"),
    )
    return Explorer(t("Momentum on a drifting stream"), slider, figure, artists, draw, moving)


# --------------------------------------------------------------------------------------
# Batch size: how much batch statistics scatter, and what that does to the outputs
# --------------------------------------------------------------------------------------

#: Histogram bins for the batch mean, the batch variance and the probe's output.
_MEAN_BINS = np.linspace(-1.0, 7.0, 41)
_VAR_BINS = np.linspace(0.0, 16.0, 41)
_OUT_BINS = np.linspace(-3.0, 3.0, 61)


def _counts(values: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """Fraction of values per bin; values outside the bins count in the end bins."""
    clipped = np.clip(values, bins[0], bins[-1])
    return np.histogram(clipped, bins)[0] / values.size


@styled
def _batch_size_figure() -> tuple[Figure, dict, DrawFunction, list]:
    figure = Figure(figsize=(9, 3.4), layout="constrained")
    axes = figure.subplots(1, 3)
    mu, sigma = POPULATION_MEAN[0], POPULATION_STD[0]
    artists: dict = {}
    panels = (
        ("mean", _MEAN_BINS, t("batch mean"), mu, t("population mean {mu}", mu=f"{mu:g}"), 0.45),
        (
            "var",
            _VAR_BINS,
            t("batch variance (biased)"),
            sigma**2,
            t("population σ² {v}", v=f"{sigma**2:g}"),
            0.45,
        ),
        ("output", _OUT_BINS, t("training output of x = μ + σ"), None, t("eval output"), 0.55),
    )
    for ax, (key, bins, xlabel, line, line_label, top) in zip(axes, panels, strict=True):
        artists[key] = ax.stairs(np.zeros(bins.size - 1), bins, fill=True, color=PALETTE[0])
        if line is None:
            ideal = (sigma) / math.sqrt(sigma**2 + 1e-5)
            ax.axvline(ideal, color=PALETTE[3], ls="--", lw=1, label=f"{line_label} {ideal:.2f}")
        else:
            ax.axvline(line, color=PALETTE[3], ls="--", lw=1, label=line_label)
        ax.set(xlabel=xlabel, xlim=(bins[0], bins[-1]), ylim=(0, top))
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.legend(fontsize=8, loc="upper right" if key == "var" else "upper left")
    axes[0].set_ylabel(t("fraction of {n} batches", n=BATCH_TRIALS))

    def draw(batch_size: float) -> tuple[str, str]:
        batch_size = int(batch_size)
        try:
            data = batch_size_data(batch_size)
        except ValueError as exc:
            for key in ("mean", "var", "output"):
                artists[key].set_data(np.zeros_like(artists[key].get_data().values))
            # (not quoting bnlib's message: its shape is the trials laid out as channels)
            message = t(
                "batch size {n}: bnlib, like PyTorch, refuses to normalize in "
                "training mode (ValueError: Expected more than 1 value per channel when "
                "training). A batch of one 1×1 feature map has a single value per channel, "
                "so its variance is 0 and its output would always be 0.",
                n=batch_size,
            )
            raise ValueError(message) from exc
        for key, bins in (("mean", _MEAN_BINS), ("var", _VAR_BINS), ("output", _OUT_BINS)):
            artists[key].set_data(_counts(np.asarray(data[key]), bins))
        caption = t(
            "batch size {n}: batch means spread with std {mean_std} (σ/√N = {bound}), "
            "the same input's training output with std {out_std}",
            n=batch_size,
            mean_std=f"{np.std(data['mean']):.2f}",
            bound=f"{sigma / math.sqrt(batch_size):.2f}",
            out_std=f"{np.std(data['output']):.2f}",
        )
        return caption, batch_size_message(batch_size)

    moving = [artists["mean"], artists["var"], artists["output"]]
    return figure, artists, draw, moving


def batch_size_explorer(batch_size: int = 8) -> Explorer:
    """Live: pick a batch size and see how batch means, batch variances and the training-mode
    output of one fixed input scatter across 400 batches, recomputed by bnlib."""
    figure, artists, draw, moving = _batch_size_figure()
    slider = ipywidgets.SelectionSlider(
        options=list(BATCH_SIZES),
        value=batch_size,
        description=t("batch size"),
        continuous_update=True,
        layout=ipywidgets.Layout(width="60%"),
    )
    return Explorer(
        t("Batch size and noisy batch statistics"), slider, figure, artists, draw, moving
    )
