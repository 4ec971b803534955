/**
 * The playground of chapter 1: `torch.nn.BatchNorm2d` on a tensor the reader edits.
 *
 * The state is a module (its running statistics and batch count, as a fresh module starts:
 * 0, 1 and 0) and a batch `x`. What the page shows is the module after `bn(x)`: in training
 * mode the batch's statistics normalize and the running statistics move; in evaluation mode
 * the running statistics normalize and stay. "Another batch" keeps the module as it now is
 * and draws a new batch (the next seed); every other change recomputes `bn(x)` from the
 * module as it was before this batch. When the page opens, x is the blog's tensor and the
 * numbers are those PyTorch prints for `BatchNorm2d(2, affine=False)(x)`.
 *
 * @module playground
 */

import { forward } from "./bnlib.js";
import { el, formatFixed, formatNumber, integerInput, numberInput, parseNumber, uid } from "./dom.js";
import { normal } from "./random.js";

/** The blog's tensor (chapter 1), N, C, H, W order. */
export const BLOG_TENSOR = Object.freeze({
  shape: Object.freeze([2, 2, 2, 2]),
  values: Object.freeze([1, 1, 1, 2, -1, 1, 0, 1, 0, -1, 2, 2, 0, -1, 3, 1]),
});
/** How large each dimension may be: small enough to read. */
export const LIMITS = Object.freeze({ N: [1, 4], C: [1, 3], H: [1, 3], W: [1, 3] });

const index = ([, C, H, W], n, c, h, w) => ((n * C + c) * H + h) * W + w;

/** A batch of small numbers (one decimal) from `seed`. */
export function randomTensor(shape, seed) {
  const size = shape.reduce((a, b) => a * b);
  return normal(size, seed).map((z) => Math.round(15 * z + 5) / 10);
}

/** A fresh module's buffers for C channels. */
function freshModule(C) {
  return { runningMean: new Float64Array(C), runningVar: new Float64Array(C).fill(1), numBatchesTracked: 0 };
}

export function playground(root, t, options = {}) {
  const shape = [...(options.shape ?? BLOG_TENSOR.shape)];
  let x = Float64Array.from(options.values ?? BLOG_TENSOR.values);
  let settings = { eps: 1e-5, momentum: 0.1, training: true, gamma: [1, 1], beta: [0, 0] };
  let module = freshModule(shape[1]);
  let seed = 0;
  let result = null;
  let error = "";

  const title = el("p", { class: "bnbook-title", id: uid("pg-title") }, el("strong", {}, t("playground")));
  const shapeBox = el("fieldset", { class: "bnbook-controls" }, el("legend", {}, t("shape")));
  const seedField = integerInput({ label: t("seed"), value: seed, min: 0, max: 1e9, onValue: (v) => (seed = v) });
  const dataButtons = el(
    "div",
    { class: "bnbook-controls" },
    el("button", { type: "button", onclick: () => randomise() }, t("randomise")),
    seedField.node,
    el("button", { type: "button", onclick: () => loadBlog() }, t("blogTensor")),
  );
  const inputGrid = el("div", { class: "bnbook-tensor" });
  const settingsBox = el("fieldset", { class: "bnbook-controls bnbook-settings" }, el("legend", {}, t("settings")));
  const affineBox = el("div", { class: "bnbook-controls" });
  const pooledNote = el("p", { class: "bnbook-note" });
  const pooledList = el("ul", { class: "bnbook-pooled" });
  const statsTable = el("table", { class: "bnbook-stats" });
  const runningNote = el("p", { class: "bnbook-note" });
  const stepButtons = el(
    "div",
    { class: "bnbook-controls" },
    el("button", { type: "button", onclick: () => anotherBatch() }, t("anotherBatch")),
    el("button", { type: "button", onclick: () => resetModule() }, t("resetRunning")),
  );
  const outputTitle = el("p", { class: "bnbook-subtitle" });
  const outputGrid = el("div", { class: "bnbook-tensor bnbook-output" });
  const errorLine = el("p", { class: "bnbook-message", role: "alert" });
  const live = el("div", { class: "bnbook-visually-hidden", "aria-live": "polite" });
  root.replaceChildren(
    el(
      "div",
      { class: "bnbook-playground", role: "group", "aria-labelledby": title.id },
      title,
      shapeBox,
      dataButtons,
      el("p", { class: "bnbook-subtitle" }, t("input")),
      inputGrid,
      settingsBox,
      affineBox,
      errorLine,
      pooledNote,
      pooledList,
      statsTable,
      runningNote,
      stepButtons,
      outputTitle,
      outputGrid,
      live,
    ),
  );

  // -- controls -------------------------------------------------------------------------

  for (const [i, key] of ["N", "C", "H", "W"].entries()) {
    const [min, max] = LIMITS[key];
    const field = integerInput({ label: t(key), value: shape[i], min, max, onValue: (v) => reshape(i, v) });
    shapeBox.append(field.node);
  }
  const eps = numberInput({ label: t("eps"), value: "1e-5", onValue: (v) => change({ eps: v }) });
  const momentum = numberInput({ label: t("momentum"), value: settings.momentum, onValue: (v) => change({ momentum: v }) });
  const noneId = uid("none");
  const none = el("input", { type: "checkbox", id: noneId });
  none.addEventListener("change", () => {
    momentum.input.disabled = none.checked;
    change({ momentum: none.checked ? null : (parseNumber(momentum.input.value) ?? 0.1) });
  });
  const modeName = uid("mode");
  const radio = (value, label) => {
    const id = uid("mode");
    const input = el("input", { type: "radio", name: modeName, id, value, checked: value === "train" });
    input.addEventListener("change", () => change({ training: value === "train" }));
    return el("span", { class: "bnbook-field" }, input, el("label", { for: id }, label));
  };
  const modeGroup = el(
    "div",
    { role: "radiogroup", "aria-label": t("mode"), class: "bnbook-field" },
    radio("train", t("training")),
    radio("eval", t("evaluation")),
  );
  settingsBox.append(
    eps.node,
    momentum.node,
    el("span", { class: "bnbook-field" }, none, el("label", { for: noneId }, t("cumulative"))),
    modeGroup,
  );

  function buildAffine() {
    affineBox.replaceChildren();
    for (let c = 0; c < shape[1]; c++) {
      const group = el("span", { class: `bnbook-field bnbook-affine bnbook-border-c${c}` }, t("channel", { c }));
      affineBox.append(group);
      for (const key of ["gamma", "beta"]) {
        const field = numberInput({
          label: t(key, { c }),
          shortLabel: t(`${key}Short`),
          value: settings[key][c],
          width: 5,
          onValue: (v) => {
            settings[key] = settings[key].map((old, k) => (k === c ? v : old));
            recompute();
          },
        });
        group.append(field.node);
      }
    }
  }

  // -- the tensors ----------------------------------------------------------------------

  /** An N × C layout of H × W maps; `cell(n, c, h, w)` makes each entry. */
  function tensorGrid(container, cell) {
    const [N, C, H, W] = shape;
    container.replaceChildren();
    for (let n = 0; n < N; n++) {
      const image = el("div", { class: "bnbook-image" }, el("span", { class: "bnbook-image-label" }, t("image", { n })));
      for (let c = 0; c < C; c++) {
        const rows = [];
        for (let h = 0; h < H; h++) {
          rows.push(el("tr", {}, Array.from({ length: W }, (_, w) => el("td", {}, cell(n, c, h, w)))));
        }
        image.append(
          el("table", { class: `bnbook-map bnbook-border-c${c}` },
            el("caption", {}, t("channel", { c })), el("tbody", {}, rows)),
        );
      }
      container.append(image);
    }
  }

  function buildInputGrid() {
    tensorGrid(inputGrid, (n, c, h, w) => {
      const i = index(shape, n, c, h, w);
      const field = numberInput({
        label: t("cell", { n, c, h, w }),
        value: x[i],
        width: 4,
        hideLabel: true,
        className: "bnbook-cell",
        onValue: (v) => {
          x[i] = v;
          recompute();
        },
      });
      field.input.dataset.index = String(i);
      return field.input;
    });
    buildViews();
  }

  // -- computing and showing --------------------------------------------------------------

  function recompute() {
    const opts = { ...settings, ...module };
    try {
      result = forward(x, shape, opts);
      error = "";
    } catch (err) {
      result = null;
      error = err.message;
    }
    render();
  }

  let outputCells = []; // the output grid's entries, N, C, H, W order
  let statCells = []; // the statistics table's entries: [channel][column]

  /** The output grid and the statistics table for this shape (render fills them in). */
  function buildViews() {
    const C = shape[1];
    outputCells = new Array(x.length);
    tensorGrid(outputGrid, (n, c, h, w) => {
      const cell = el("span", { class: "bnbook-num", title: t("outputCell", { n, c, h, w }) });
      outputCells[index(shape, n, c, h, w)] = cell;
      return cell;
    });
    const headers = ["colChannel", "colMean", "colBiased", "colUnbiased", "colRunningMean", "colRunningVar"];
    statCells = Array.from({ length: C }, () => Array.from({ length: 5 }, () => el("td", { class: "bnbook-num" })));
    statsTable.replaceChildren(
      el("caption", {}, t("statsCaption")),
      el("thead", {}, el("tr", {}, headers.map((key) => el("th", { scope: "col" }, t(key))))),
      el("tbody", {}, statCells.map((cells, c) =>
        el("tr", { class: `bnbook-row-c${c}` }, el("th", { scope: "row" }, String(c)), cells))),
    );
  }

  function render() {
    const [N, C, H, W] = shape;
    const m = N * H * W;
    errorLine.textContent = error;
    errorLine.hidden = !error;
    pooledNote.textContent = t("pooled", { m });
    const stats = result ?? batchOnlyStats();
    const running = result ? result : module;
    const fmt = (v) => (Number.isFinite(v) ? formatFixed(v) : "—");
    pooledList.replaceChildren(
      ...Array.from({ length: C }, (_, c) => {
        const groups = Array.from({ length: N }, (_, n) => {
          const values = [];
          for (let k = 0; k < H * W; k++) values.push(formatNumber(x[(n * C + c) * H * W + k]));
          return el("span", { class: "bnbook-pool" }, values.join(" "));
        });
        return el("li", { class: `bnbook-row-c${c}` }, `${t("channel", { c })}: `, groups);
      }),
    );
    statCells.forEach((cells, c) => {
      const values = [stats.mean[c], stats.var[c], stats.unbiasedVar[c], running.runningMean[c], running.runningVar[c]];
      cells.forEach((cell, k) => (cell.textContent = fmt(values[k])));
    });
    const count = result ? result.numBatchesTracked : module.numBatchesTracked;
    const p = settings.momentum === null ? "None" : formatNumber(settings.momentum);
    runningNote.textContent = settings.training ? t("runningNote", { count, p }) : t("runningNoteEval", { count });
    outputTitle.textContent = settings.training ? t("output") : t("outputEval");
    outputCells.forEach((cell, i) => (cell.textContent = result ? formatFixed(result.y[i]) : "—"));
    live.textContent = Array.from({ length: C }, (_, c) =>
      t("summary", { c, mean: fmt(stats.mean[c]), var: fmt(stats.var[c]), unbiased: fmt(stats.unbiasedVar[c]) }),
    ).join(" ");
  }

  /** The batch's statistics when the forward refused (one value per channel in training). */
  function batchOnlyStats() {
    return forward(x, shape, { ...settings, ...module, training: false });
  }

  // -- actions -----------------------------------------------------------------------------

  function change(patch) {
    settings = { ...settings, ...patch };
    recompute();
  }

  function reshape(axis, size) {
    const old = [...shape];
    const oldX = x;
    shape[axis] = size;
    const fresh = randomTensor(shape, seed);
    x = fresh.map((v, i) => {
      // keep the value at the same (n, c, h, w) where the old tensor had one
      let rest = i;
      const idx = [0, 0, 0, 0];
      for (let k = 3; k >= 0; k--) {
        idx[k] = rest % shape[k];
        rest = Math.floor(rest / shape[k]);
      }
      return idx.every((v2, k) => v2 < old[k]) ? oldX[index(old, ...idx)] : v;
    });
    if (axis === 1) {
      settings.gamma = Array.from({ length: size }, (_, c) => settings.gamma[c] ?? 1);
      settings.beta = Array.from({ length: size }, (_, c) => settings.beta[c] ?? 0);
      module = freshModule(size); // another number of channels: another module
      buildAffine();
    }
    buildInputGrid();
    recompute();
  }

  function setTensor(values) {
    x = Float64Array.from(values);
    buildInputGrid();
    recompute();
  }

  function randomise() {
    setTensor(randomTensor(shape, seed));
  }

  function loadBlog() {
    const same = shape.every((d, i) => d === BLOG_TENSOR.shape[i]);
    if (!same) {
      shape.splice(0, 4, ...BLOG_TENSOR.shape);
      shapeBox.querySelectorAll("input").forEach((input, i) => (input.value = String(shape[i])));
      settings.gamma = [1, 1];
      settings.beta = [0, 0];
      module = freshModule(shape[1]);
      buildAffine();
    }
    setTensor(BLOG_TENSOR.values);
  }

  function anotherBatch() {
    if (result) {
      const { runningMean, runningVar, numBatchesTracked } = result;
      module = { runningMean, runningVar, numBatchesTracked };
    }
    seed += 1;
    seedField.input.value = String(seed);
    randomise();
  }

  function resetModule() {
    module = freshModule(shape[1]);
    recompute();
  }

  buildAffine();
  buildInputGrid();
  recompute();
  return {
    name: "playground",
    state: () => ({ shape: [...shape], x: Float64Array.from(x), settings: { ...settings }, module, result, error }),
  };
}
