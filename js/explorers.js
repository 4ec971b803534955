/**
 * The explorers of chapters 2 and 3, computed live with bnlib.js: ε, momentum, batch size.
 *
 * Each is a slider with a typed value beside it, a caption that says what the figure shows
 * (a live region: screen readers hear the numbers), a note at extreme settings, and one SVG
 * figure whose moving paths are rewritten on every change. Each returns an object with
 * `set(value)` and `state()` (what was computed and drawn: the browser tests read it).
 *
 * @module explorers
 */

import { ONE_VALUE_ERROR, forward } from "./bnlib.js";
import { el, formatEps, formatNumber, slider, uid } from "./dom.js";
import { Axes, figure, svgEl } from "./svg.js";
import {
  BATCH,
  DRIFT,
  EPS,
  batchPool,
  batchSizeCase,
  channelStds,
  driftingBatches,
  driftingMean,
  epsInput,
  histogram,
  idealOutput,
  lagAndNoise,
  linspace,
  runningMeans,
} from "./simulate.js";

const fixed2 = (v) => v.toFixed(2);
/** Figures are laid out this many units wide: about the text column's width in CSS pixels,
 * so that their text shows at the page's size. */
const WIDTH = 660;

/** The frame every explorer shares: a title, controls, a note, a caption, the figure. */
function frame(root, t, titleKey, controls, svg) {
  const title = el("p", { class: "bnbook-title", id: uid("explorer-title") }, el("strong", {}, t(titleKey)));
  const note = el("p", { class: "bnbook-message", "aria-live": "polite" });
  const caption = el("p", { class: "bnbook-caption", "aria-live": "polite" });
  const box = el(
    "div",
    { class: "bnbook-explorer-live", role: "group", "aria-labelledby": title.id },
    title,
    controls,
    note,
    caption,
    el("div", { class: "bnbook-figure-box" }, svg),
  );
  root.replaceChildren(box);
  const show = (captionText, noteText) => {
    caption.textContent = captionText;
    note.textContent = noteText;
    note.hidden = !noteText;
  };
  return { show };
}

/** A legend of short line samples and labels, placed at (x, y) in figure units. */
function legend(svg, x, y, entries) {
  const g = svgEl("g", { class: "bnbook-legend" });
  entries.forEach(([cls, label, kind = "line"], i) => {
    const ly = y + i * 20;
    if (kind === "dot") g.append(svgEl("circle", { class: cls, cx: x + 12, cy: ly - 5, r: 3.5 }));
    else if (kind === "box") g.append(svgEl("rect", { class: cls, x, y: ly - 11, width: 24, height: 11 }));
    else g.append(svgEl("path", { class: cls, d: `M${x} ${ly - 5}h24` }));
    g.append(svgEl("text", { x: x + 30, y: ly }, label));
  });
  svg.append(g);
}

// ---------------------------------------------------------------------------------------
// ε
// ---------------------------------------------------------------------------------------

export function epsExplorer(root, t, start = 1e-5) {
  const { x, shape } = epsInput(0);
  const C = shape[1];
  const svg = figure(WIDTH, 290, t("epsFigure", { eps: formatEps(start) }));
  const power = (v) => (Math.round(Math.log10(v)) === 0 ? "1" : `1e${Math.round(Math.log10(v))}`);
  const rows = EPS.channelStds.map((s, c) => [c, t("epsRow", { v: power(s * s) })]);
  const axes = new Axes(svg, { left: 104, top: 8, width: WIDTH - 114, height: 220 }, [-2.6, 2.6], [C - 0.5, -0.5], {
    xTicks: [-2, -1, 0, 1, 2],
    yTicks: rows,
    xLabel: t("epsAxis"),
  });
  const dots = EPS.channelStds.map((_, c) => axes.path(`bnbook-dots bnbook-c${c}`));
  let state = null;

  const update = (eps) => {
    const { y } = forward(x, shape, { eps });
    const stds = channelStds(y, shape);
    const columns = Array.from({ length: C }, (_, c) => Array.from({ length: shape[0] }, (_, i) => y[i * C + c]));
    columns.forEach((values, c) => {
      dots[c].setAttribute("d", axes.dots(values, values.map(() => c), 4));
    });
    svg.setAttribute("aria-label", t("epsFigure", { eps: formatEps(eps) }));
    let note = "";
    if (eps < Math.min(...EPS.channelStds) ** 2 / 100) note = t("epsFarBelow", { eps: formatEps(eps) });
    else if (eps >= 0.1) note = t("epsLarge", { eps: formatEps(eps) });
    view.show(t("epsCaption", { eps: formatEps(eps), stds: stds.map((s) => s.toFixed(3)).join(", ") }), note);
    state = { eps, x, shape, y, stds, columns };
  };
  const control = slider({
    label: t("epsSlider"),
    valueLabel: `ε: ${t("value")}`,
    min: EPS.minExponent,
    max: EPS.maxExponent,
    step: 0.01,
    value: start,
    toValue: (p) => 10 ** p,
    fromValue: (v) => Math.log10(v),
    format: formatEps,
    onValue: update,
  });
  const view = frame(root, t, "epsTitle", control.node, svg);
  update(start);
  return { name: "eps", set: control.set, state: () => state, control };
}

// ---------------------------------------------------------------------------------------
// Momentum
// ---------------------------------------------------------------------------------------

export function momentumExplorer(root, t, start = 0.1) {
  const batches = driftingBatches(0);
  const population = driftingMean();
  const n = DRIFT.batchSize;
  const steps = Array.from(population, (_, i) => i + 1);
  const means = Array.from(population, (_, i) => batches.subarray(i * n, (i + 1) * n).reduce((a, b) => a + b) / n);
  const svg = figure(WIDTH, 318, "");
  const box = { top: 30, height: 220 };
  const left = new Axes(svg, { left: 56, width: 270, ...box }, [0, DRIFT.steps], [-2.5, 5.5], {
    xLabel: t("step"),
    yLabel: t("meanAxis"),
    yLabelOffset: 38,
  });
  const right = new Axes(svg, { left: 385, width: WIDTH - 405, ...box }, [0, DRIFT.steps], [-3.3, 1.5], {
    xLabel: t("step"),
    yTicks: [-3, -2, -1, 0, 1],
  });
  svg.append(svgEl("text", { class: "bnbook-label", x: WIDTH - 20, y: 20, "text-anchor": "end" }, t("errorAxis")));
  const [w0, w1] = DRIFT.window;
  right.group.insertBefore(
    svgEl("rect", {
      class: "bnbook-window",
      x: right.x(steps[w0]),
      y: box.top,
      width: right.x(steps[w1 - 1]) - right.x(steps[w0]),
      height: box.height,
    }),
    right.group.children[1],
  );
  left.path("bnbook-dots bnbook-muted", { d: left.dots(steps, means, 1.6) });
  left.path("bnbook-line bnbook-dashed", { d: left.line(steps, population) });
  right.path("bnbook-line bnbook-dashed", { d: right.line([0, DRIFT.steps], [0, 0]) });
  const runningPath = left.path("bnbook-line bnbook-c0 bnbook-thick");
  const errorPath = right.path("bnbook-line bnbook-c0");
  legend(svg, 64, box.top + 22, [
    ["bnbook-muted", t("batchMeans"), "dot"],
    ["bnbook-line bnbook-dashed", t("populationMean")],
    ["bnbook-line bnbook-c0 bnbook-thick", t("runningMean")],
  ]);
  legend(svg, 300, 312, [["bnbook-window", t("window"), "box"]]);
  let state = null;
  let momentum = start;
  let cumulative = false;

  const update = () => {
    const p = cumulative ? null : momentum;
    const running = runningMeans(batches, p);
    const error = running.map((r, i) => r - population[i]);
    runningPath.setAttribute("d", left.line(steps, running));
    errorPath.setAttribute("d", right.line(steps, error));
    const shown = p === null ? "None" : formatNumber(p, 4);
    const { lag, noise } = lagAndNoise(running, population);
    svg.setAttribute("aria-label", t("momentumFigure", { steps: DRIFT.steps, p: shown }));
    let note = "";
    if (p === 0) note = t("momentumZero");
    else if (p === 1) note = t("momentumOne");
    view.show(t("momentumCaption", { p: shown, lag: fixed2(lag), noise: fixed2(noise) }), note);
    state = { momentum: p, batches, population, running, lag, noise };
  };
  const control = slider({
    label: t("momentumSlider"),
    valueLabel: `${t("momentum")}: ${t("value")}`,
    min: 0,
    max: 1,
    step: 0.01,
    value: start,
    format: (v) => formatNumber(v, 4),
    onValue: (v) => {
      momentum = v;
      update();
    },
  });
  const noneBox = el("input", { type: "checkbox", id: uid("none") });
  noneBox.addEventListener("change", () => {
    cumulative = noneBox.checked;
    control.range.disabled = cumulative;
    control.box.disabled = cumulative;
    update();
  });
  const controls = el(
    "div",
    {},
    control.node,
    el("div", { class: "bnbook-field" }, noneBox, el("label", { for: noneBox.id }, t("cumulative"))),
  );
  const view = frame(root, t, "momentumTitle", controls, svg);
  update();
  return {
    name: "momentum",
    set: control.set,
    setCumulative: (on) => {
      noneBox.checked = on;
      noneBox.dispatchEvent(new Event("change"));
    },
    state: () => state,
    control,
  };
}

// ---------------------------------------------------------------------------------------
// Batch size
// ---------------------------------------------------------------------------------------

/** Histogram bins of the batch mean, the batch variance and the probe's output. */
export const BATCH_BINS = Object.freeze({
  mean: linspace(-1, 7, 41),
  var: linspace(0, 16, 41),
  output: linspace(-3, 3, 61),
});

export function batchSizeExplorer(root, t, start = 8) {
  const pool = batchPool(0);
  const { mean: mu, std: sigma, trials, maxSize } = BATCH;
  const ideal = idealOutput();
  const svg = figure(WIDTH, 290, "");
  const box = { top: 8, height: 220, width: 184 };
  const top = 0.55; // one y axis for the three panels: fractions of the same trials
  const ticks = [0, 0.1, 0.2, 0.3, 0.4, 0.5];
  const panels = [
    ["mean", t("batchMean"), mu, t("populationMeanIs", { v: mu })],
    ["var", t("batchVar"), sigma ** 2, t("populationVarIs", { v: sigma ** 2 })],
    ["output", t("batchOutput"), ideal, t("evalOutputIs", { v: ideal.toFixed(2) })],
  ].map(([key, xLabel, line, lineLabel], i) => {
    const edges = BATCH_BINS[key];
    const left = 58 + i * (box.width + 12);
    const axes = new Axes(svg, { left, ...box }, [edges[0], edges[edges.length - 1]], [0, top], {
      xLabel,
      yLabel: i === 0 ? t("fraction", { trials }) : null,
      yLabelOffset: 42,
      yTicks: ticks.map((v) => [v, i === 0 ? v.toFixed(1) : ""]),
    });
    const bars = axes.path("bnbook-bars");
    axes.path("bnbook-line bnbook-dashed bnbook-c3", { d: axes.line([line, line], [0, top]) });
    legend(svg, left + 6, 28, [["bnbook-line bnbook-dashed bnbook-c3", lineLabel]]);
    return { key, axes, bars, edges };
  });
  let state = null;

  const update = (size) => {
    let data;
    let note = "";
    let caption = "";
    try {
      data = batchSizeCase(pool, size);
    } catch (err) {
      if (!String(err.message).includes(ONE_VALUE_ERROR)) throw err;
      data = null;
      note = t("batchOne", { error: ONE_VALUE_ERROR });
    }
    for (const { key, axes, bars, edges } of panels) {
      const heights = data ? histogram(data[key], edges) : new Float64Array(edges.length - 1);
      bars.setAttribute("d", axes.stairs(edges, heights));
    }
    if (data) {
      const sd = (values) => {
        const m = values.reduce((a, b) => a + b) / values.length;
        return Math.sqrt(values.reduce((a, v) => a + (v - m) ** 2, 0) / values.length);
      };
      caption = t("batchCaption", {
        n: size,
        sd: fixed2(sd(data.mean)),
        theory: fixed2(sigma / Math.sqrt(size)),
        osd: fixed2(sd(data.output)),
      });
      note = { 2: t("batchTwo"), 3: t("batchThree"), 4: t("batchFour") }[size] ?? "";
    }
    svg.setAttribute("aria-label", t("batchFigure", { trials, n: size }));
    view.show(caption, note);
    state = { size, pool, data };
  };
  const control = slider({
    label: t("batchSlider", { max: maxSize }),
    valueLabel: `${t("batchSlider", { max: maxSize })}: ${t("value")}`,
    min: 1,
    max: maxSize,
    step: 1,
    value: start,
    toValue: (p) => Math.round(p),
    fromValue: (v) => Math.round(v),
    format: (v) => String(Math.round(v)),
    accept: Number.isInteger,
    onValue: (v) => update(Math.round(v)),
  });
  const view = frame(root, t, "batchTitle", control.node, svg);
  update(start);
  return { name: "batch-size", set: control.set, state: () => state, control };
}
