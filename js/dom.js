/**
 * Small helpers for building the playground and the explorers: elements, labelled controls,
 * number formatting. Every control gets an accessible name (a <label> or aria-label), and
 * every slider a value text (aria-valuetext) that a screen reader reads out.
 *
 * @module dom
 */

let nextId = 0;

/** A unique id for label/for and aria-describedby pairs. */
export function uid(prefix = "bnbook") {
  nextId += 1;
  return `${prefix}-${nextId}`;
}

/**
 * `el("div", {class: "a", onclick: f}, child, "text")`: an element with attributes (on*
 * become listeners, `null`/`false` values are skipped) and children (nodes or strings).
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...children.flat().filter((c) => c !== null && c !== undefined));
  return node;
}

/**
 * A number for reading: `digits` significant digits; scientific notation for very small
 * or large magnitudes; "0" for a value that rounds to zero (no "-0").
 */
export function formatNumber(v, digits = 4) {
  if (!Number.isFinite(v)) return String(v);
  if (v === 0 || Math.abs(v) < 1e-300) return "0";
  const a = Math.abs(v);
  if (a < 1e-3 || a >= 1e5) return v.toExponential(digits - 1).replace("e+", "e");
  return String(Number(v.toPrecision(digits)));
}

/** A number as PyTorch prints a tensor's entries: 4 decimals, never "-0.0000". */
export function formatFixed(v, decimals = 4) {
  const s = v.toFixed(decimals);
  return /^-0\.?0*$/.test(s) ? s.slice(1) : s;
}

/** ε as the explorer shows it, to three digits (one keyboard step, 1/100 of a decade,
 * always changes the text): "1.00e-5". */
export function formatEps(v) {
  return v.toExponential(2).replace("e+", "e");
}

/**
 * Parses what a reader typed: a finite number (commas as decimal points are accepted,
 * and the Unicode minus sign), or null.
 */
export function parseNumber(text) {
  const s = String(text).trim().replace(/−/g, "-").replace(",", ".");
  if (s === "" || !/^[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i.test(s)) return null;
  const v = Number(s);
  return Number.isFinite(v) ? v : null;
}

/**
 * A text box for a number, with a label (or, with `shortLabel`, a short visible one and the
 * full `label` as its accessible name; with `hideLabel`, the accessible name alone);
 * `onValue(v)` on every valid entry.
 */
export function numberInput({ label, value, onValue, width = 7, className = "", hideLabel = false, shortLabel = null }) {
  const id = uid("num");
  const input = el("input", {
    id,
    type: "text",
    inputmode: "decimal",
    autocomplete: "off",
    spellcheck: "false",
    size: width,
    class: `bnbook-number ${className}`.trim(),
    value: String(value),
  });
  if (hideLabel || shortLabel) input.setAttribute("aria-label", label);
  input.addEventListener("input", () => {
    const v = parseNumber(input.value);
    input.setAttribute("aria-invalid", v === null ? "true" : "false");
    if (v !== null) onValue(v);
  });
  let parts = [el("label", { for: id }, label), input];
  if (hideLabel) parts = [input];
  else if (shortLabel) parts = [el("span", { "aria-hidden": "true" }, shortLabel), input];
  return { input, node: el("span", { class: "bnbook-field" }, parts) };
}

/** A whole-number field (type=number: arrow keys step it) with a label. */
export function integerInput({ label, value, min, max, onValue }) {
  const id = uid("int");
  const input = el("input", { id, type: "number", min, max, step: 1, value, class: "bnbook-int" });
  input.addEventListener("input", () => {
    const v = Number(input.value);
    const ok = input.value !== "" && Number.isInteger(v) && v >= min && v <= max;
    input.setAttribute("aria-invalid", ok ? "false" : "true");
    if (ok) onValue(v);
  });
  return { input, node: el("span", { class: "bnbook-field" }, el("label", { for: id }, label), input) };
}

/**
 * A slider with a typed value beside it. The slider moves over `position` (e.g. log10 ε),
 * `toValue(position)` gives the value, `fromValue(value)` the position; `format(value)` is
 * the value's text (shown in the box and read as aria-valuetext). Typing a value in the box
 * sets it exactly (the slider moves to the nearest position). `onValue(value)` on every
 * change, from pointer, keyboard or typing; a typed value outside [toValue(min), toValue(max)]
 * or refused by `accept(value)` is marked invalid and changes nothing.
 */
export function slider({
  label,
  min,
  max,
  step,
  value,
  toValue = (p) => p,
  fromValue = (v) => v,
  format = (v) => formatNumber(v),
  valueLabel,
  accept = () => true,
  onValue,
}) {
  const id = uid("slider");
  const labelId = uid("slider-label");
  // role and aria-value* repeat the native ones, for tools that look for the attributes
  const range = el("input", {
    id,
    type: "range",
    role: "slider",
    "aria-labelledby": labelId,
    "aria-valuemin": min,
    "aria-valuemax": max,
    min,
    max,
    step,
    value: fromValue(value),
    class: "bnbook-range",
  });
  const box = el("input", {
    type: "text",
    inputmode: "decimal",
    autocomplete: "off",
    spellcheck: "false",
    size: 8,
    class: "bnbook-number",
    "aria-label": valueLabel,
    value: format(value),
  });
  const set = (v, { fromBox = false } = {}) => {
    range.value = String(fromValue(v));
    range.setAttribute("aria-valuenow", range.value);
    range.setAttribute("aria-valuetext", format(v));
    if (!fromBox) box.value = format(v);
    box.setAttribute("aria-invalid", "false");
    onValue(v);
  };
  range.setAttribute("aria-valuenow", range.value);
  range.setAttribute("aria-valuetext", format(value));
  range.addEventListener("input", () => set(toValue(Number(range.value))));
  box.addEventListener("change", () => {
    const v = parseNumber(box.value);
    const lo = toValue(min);
    const hi = toValue(max);
    if (v === null || v < lo || v > hi || !accept(v)) {
      box.setAttribute("aria-invalid", "true");
      return;
    }
    set(v, { fromBox: true });
  });
  box.addEventListener("keydown", (event) => {
    if (event.key === "Enter") box.dispatchEvent(new Event("change"));
  });
  const node = el("div", { class: "bnbook-slider" }, el("label", { for: id, id: labelId }, label), range, box);
  return { range, box, node, set };
}
