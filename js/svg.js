/**
 * Figures drawn in SVG: sharp at any zoom, text at the page's size, colours from the page's
 * theme (CSS classes in bnbook.css). An `Axes` draws its frame, ticks and labels once; the
 * explorers then only rewrite the `d` attribute of their moving paths.
 *
 * @module svg
 */

const NS = "http://www.w3.org/2000/svg";

/** An SVG element with attributes. */
export function svgEl(tag, attrs = {}, text = null) {
  const node = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== null) node.textContent = text;
  return node;
}

/**
 * A figure: an <svg> of `width` × `height` user units that scales to the column's width,
 * with role="img" and `label` as its accessible name (the alt text).
 */
export function figure(width, height, label) {
  return svgEl("svg", {
    viewBox: `0 0 ${width} ${height}`,
    class: "bnbook-figure",
    role: "img",
    "aria-label": label,
  });
}

/** About `count` round tick values covering [lo, hi] (steps of 1, 2 or 5 × 10^k). */
export function ticks(lo, hi, count = 5) {
  const raw = (hi - lo) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((k) => k * power).find((s) => s >= raw);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    out.push(Math.abs(v) < step * 1e-9 ? 0 : Number(v.toPrecision(12)));
  }
  return out;
}

const round = (v) => Math.round(v * 10) / 10;

/**
 * Axes in a box of the figure (`left`, `top`, `width`, `height`), mapping `x` = [lo, hi] and
 * `y` = [lo, hi] onto it. Options: `xLabel`, `yLabel`, `xTicks`, `yTicks` (values, or
 * [value, text] pairs), `grid`.
 */
export class Axes {
  constructor(svg, box, x, y, options = {}) {
    Object.assign(this, { svg, box, xDomain: x, yDomain: y });
    this.group = svgEl("g", { class: "bnbook-axes" });
    svg.append(this.group);
    const { left, top, width, height } = box;
    const grid = svgEl("g", { class: "bnbook-grid" });
    const labels = svgEl("g", { class: "bnbook-ticks" });
    const xTicks = options.xTicks ?? ticks(...x);
    const yTicks = options.yTicks ?? ticks(...y);
    for (const tick of xTicks) {
      const [v, text] = Array.isArray(tick) ? tick : [tick, String(tick)];
      const px = round(this.x(v));
      if (options.grid !== false) {
        grid.append(svgEl("line", { x1: px, x2: px, y1: top, y2: top + height }));
      }
      labels.append(svgEl("text", { x: px, y: top + height + 18, "text-anchor": "middle" }, text));
    }
    for (const tick of yTicks) {
      const [v, text] = Array.isArray(tick) ? tick : [tick, String(tick)];
      const py = round(this.y(v));
      if (options.grid !== false) {
        grid.append(svgEl("line", { x1: left, x2: left + width, y1: py, y2: py }));
      }
      labels.append(svgEl("text", { x: left - 6, y: py + 5, "text-anchor": "end" }, text));
    }
    this.group.append(
      grid,
      svgEl("rect", { class: "bnbook-frame", x: left, y: top, width, height }),
      labels,
    );
    if (options.xLabel) {
      this.group.append(
        svgEl("text", { class: "bnbook-label", x: left + width / 2, y: top + height + 40, "text-anchor": "middle" }, options.xLabel),
      );
    }
    if (options.yLabel) {
      const cx = left - (options.yLabelOffset ?? 44);
      const cy = top + height / 2;
      this.group.append(
        svgEl("text", { class: "bnbook-label", x: cx, y: cy, "text-anchor": "middle", transform: `rotate(-90 ${cx} ${cy})` }, options.yLabel),
      );
    }
  }

  /** The horizontal position of the value `v`. */
  x(v) {
    const [lo, hi] = this.xDomain;
    return this.box.left + ((v - lo) / (hi - lo)) * this.box.width;
  }

  /** The vertical position of the value `v` (up is larger). */
  y(v) {
    const [lo, hi] = this.yDomain;
    return this.box.top + (1 - (v - lo) / (hi - lo)) * this.box.height;
  }

  /** A path in these axes, drawn with the CSS class `cls`. */
  path(cls, attrs = {}) {
    const p = svgEl("path", { class: cls, ...attrs });
    this.group.append(p);
    return p;
  }

  /** The `d` of a polyline through the points (xs[i], ys[i]), values clipped to the box. */
  line(xs, ys) {
    const [lo, hi] = this.yDomain;
    let d = "";
    for (let i = 0; i < xs.length; i++) {
      const v = Math.min(hi, Math.max(lo, ys[i]));
      d += `${i ? "L" : "M"}${round(this.x(xs[i]))} ${round(this.y(v))}`;
    }
    return d;
  }

  /** The `d` of dots of radius `r` at (xs[i], ys[i]). */
  dots(xs, ys, r = 3) {
    let d = "";
    for (let i = 0; i < xs.length; i++) {
      const px = round(this.x(xs[i]) - r);
      const py = round(this.y(ys[i]));
      d += `M${px} ${py}a${r} ${r} 0 1 0 ${2 * r} 0a${r} ${r} 0 1 0 ${-2 * r} 0`;
    }
    return d;
  }

  /** The `d` of a filled histogram: `heights[k]` over [edges[k], edges[k + 1]]. */
  stairs(edges, heights) {
    const base = round(this.y(this.yDomain[0]));
    let d = `M${round(this.x(edges[0]))} ${base}`;
    for (let k = 0; k < heights.length; k++) {
      const top = round(this.y(Math.min(heights[k], this.yDomain[1])));
      d += `V${top}H${round(this.x(edges[k + 1]))}`;
    }
    return `${d}V${base}Z`;
  }

  /** Text at a point of the axes (values), with the CSS class `cls`. */
  text(x, y, content, cls = "bnbook-note", anchor = "start") {
    const t = svgEl("text", { class: cls, x: round(this.x(x)), y: round(this.y(y)), "text-anchor": anchor }, content);
    this.group.append(t);
    return t;
  }
}
