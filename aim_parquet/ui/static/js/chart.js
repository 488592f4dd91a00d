// The chart wrapper: one uPlot per chart (drawn on canvas; hundreds of thousands of points in
// tens of ms), with a hover tooltip naming the nearest series, drag-to-zoom (double click
// resets) and colours taken from the page's CSS, so dark mode follows the system.

import { fmtNumber, fmtTime, h } from "./dom.js";

const HEIGHT = 280;

function css(name, fallback) {
  const value = getComputedStyle(document.body).getPropertyValue(name).trim();
  return value || fallback;
}

/** Decimals that show `step` (a tick spacing: 1, 2, 2.5 or 5 times a power of ten) exactly. */
function decimalsOf(step) {
  for (let d = 0; d <= 15; d++) {
    const scaled = step * 10 ** d;
    if (Math.round(scaled) >= 1 && Math.abs(Math.round(scaled) - scaled) < 1e-6 * scaled) return d;
  }
  return 15;
}

const trimZeros = (text) => (text.includes(".") ? text.replace(/\.?0+$/, "") : text);

/** One axis tick label, short (12.5k, 3M, 2.5B, 1e-5, 4.6e18) yet with the digits that tell it
 * from its neighbours `step` away (1.2345679B, not 1.23B for ticks 10 apart). */
export function fmtTick(value, step = NaN) {
  if (typeof value !== "number" || !Number.isFinite(value)) return fmtNumber(value);
  const abs = Math.abs(value);
  if (abs === 0) return "0";
  const decimals = (unit) => (Number.isFinite(step) && step > 0 ? decimalsOf(step / unit) : 2);
  if (abs >= 1e15 || abs < 1e-3) {
    const unit = 10 ** Math.floor(Math.log10(abs));
    return value.toExponential(Math.min(15, decimals(unit))).replace(/\.?0+e/, "e").replace("e+", "e");
  }
  // [from, unit, suffix]: from 10,000 on in thousands (5000 stays 5000, 12,500 is 12.5k)
  for (const [from, unit, suffix] of [[1e12, 1e12, "T"], [1e9, 1e9, "B"], [1e6, 1e6, "M"], [1e4, 1e3, "k"]]) {
    if (abs >= from) return `${trimZeros((value / unit).toFixed(Math.min(15, decimals(unit))))}${suffix}`;
  }
  return trimZeros(value.toFixed(Math.min(15, decimals(1))));
}

/** The labels of an axis's ticks (their spacing decides the digits). */
export function fmtTicks(splits) {
  let step = Infinity;
  for (let i = 1; i < splits.length; i++) {
    const gap = Math.abs(splits[i] - splits[i - 1]);
    if (gap > 0 && gap < step) step = gap;
  }
  return splits.map((v) => fmtTick(v, step));
}

/** The y range: uPlot's, unless it is absurdly wider than the data (uPlot takes a curve near
 * 1e9 that varies by 0.05 for a flat line and shows 0..2e9: the curve was a flat line). */
function yRange(u, min, max) {
  const auto = uPlot.rangeNum(min, max, Y_RANGE);
  const span = max - min;
  if (min === null || max === null || !(span > 0) || !Number.isFinite(span)) return auto;
  if (auto[1] - auto[0] <= 1000 * span) return auto;
  return [min - span * 0.1, max + span * 0.1];
}

const Y_RANGE = { min: { pad: 0.1, soft: 0, mode: 3 }, max: { pad: 0.1, soft: 0, mode: 3 } };

/** A y axis as wide as its longest tick label (labels were cut at a fixed 64 px). */
function axisSize(u, values) {
  if (!values || !values.length) return 48;
  const longest = Math.max(...values.map((v) => (v === null || v === undefined ? 0 : String(v).length)));
  return Math.max(40, Math.ceil(longest * 7.5) + 16);
}

function xFormatter(xAxis) {
  if (xAxis === "wall") return (x) => fmtTime(x);
  if (xAxis === "relative") return (x) => `${fmtNumber(x)} s`;
  return (x) => fmtNumber(Math.round(x * 100) / 100);
}

function styleKey(lines) {
  return lines.map((l) => `${l.label}|${l.color}|${(l.dash || []).join()}|${l.width}|${l.fill}|${l.points}`).join("\n");
}

/**
 * lines: [{label, color, dash, width, values (Array, null = gap), detail (tooltip text),
 *          points (true: draw each value as a dot, for a line with a single value)}]
 * bands: [{upper: lineIndex, lower: lineIndex, fill}]  (indices into lines)
 */
export class Chart {
  constructor(container, { xAxis, xLabel, yLog = false, xLog = false, approximate = false, onZoom = null, height = HEIGHT }) {
    this.onZoom = onZoom;
    this.height = height;
    this.container = container;
    this.xAxis = xAxis;
    this.xLabel = xLabel;
    this.yLog = yLog;
    this.xLog = xLog;
    this.approximate = approximate;
    this.plot = null;
    this.zoomRange = null; // [min, max] of x while drag-zoomed
    this.tooltip = h("div", { class: "tooltip", hidden: true });
    this.canvasBox = h("div", { class: "plot" });
    container.append(this.canvasBox, this.tooltip);
    this.observer = new ResizeObserver(() => this.resize());
    this.observer.observe(this.canvasBox);
  }

  width() {
    return Math.max(200, Math.floor(this.canvasBox.clientWidth || this.container.clientWidth || 600));
  }

  draw(x, lines, bands = []) {
    this.lines = lines;
    const data = [x, ...lines.map((l) => l.values)];
    if (this.plot && this.plot.series.length === lines.length + 1 && this.sameStyle(lines)) {
      this.plot.setData(data, !this.zoomRange);
      this.keepZoom();
      return;
    }
    if (this.plot) this.plot.destroy();
    const fg = css("--fg-muted", "#555"), grid = css("--grid", "#e5e7eb");
    const format = xFormatter(this.xAxis);
    const options = {
      width: this.width(),
      height: this.height,
      pxAlign: false,
      scales: {
        x: { time: this.xAxis === "wall", distr: this.xLog ? 3 : 1 },
        y: this.yLog ? { distr: 3 } : { distr: 1, range: yRange },
      },
      axes: [
        { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid },
          values: this.xAxis === "wall" ? undefined : (u, splits) => fmtTicks(splits) },
        { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, size: axisSize,
          values: (u, splits) => fmtTicks(splits) },
      ],
      series: [
        { label: this.xLabel, value: (u, v) => (v === null ? "" : format(v)) },
        ...lines.map((l) => ({
          // whole-pixel widths: a fractional width makes software canvas anti-alias every
          // segment (4x slower in headless Chromium)
          label: l.label, stroke: l.color, width: l.width ?? 1, dash: l.dash || [],
          fill: l.fill, spanGaps: true,
          // a line with a single value is a dot (uPlot draws no line through one point)
          points: { show: l.points ? true : l.width === 0 ? false : undefined, size: l.points ? 7 : 5, fill: l.color },
        })),
      ],
      bands: bands.map((b) => ({ series: [b.upper + 1, b.lower + 1], fill: b.fill })),
      legend: { show: false },
      cursor: { drag: { x: true, y: false, setScale: true }, points: { show: false }, focus: { prox: -1 } },
      hooks: {
        setCursor: [(u) => this.onCursor(u)],
        setSelect: [(u) => {
          if (u.select.width < 2) return;
          const lo = u.posToVal(u.select.left, "x"), hi = u.posToVal(u.select.left + u.select.width, "x");
          this.zoomRange = [lo, hi];
          if (this.onZoom) this.onZoom(lo, hi);
        }],
      },
    };
    this.styleKey = styleKey(lines);
    this.plot = new uPlot(options, data, this.canvasBox);
    this.keepZoom();
    this.plot.over.addEventListener("mouseleave", () => { this.tooltip.hidden = true; });
    this.plot.over.addEventListener("dblclick", () => {
      this.zoomRange = null;
      if (this.onZoom) this.onZoom(null, null);
    });
  }

  /** A drag-zoom stays until a double click: new data (a live run's next points, every
   * second) used to reset the axes, so a live curve could not be zoomed for more than 1 s. */
  keepZoom() {
    if (this.zoomRange) this.plot.setScale("x", { min: this.zoomRange[0], max: this.zoomRange[1] });
  }

  sameStyle(lines) {
    return styleKey(lines) === this.styleKey;
  }

  onCursor(u) {
    const idx = u.cursor.idx, top = u.cursor.top, left = u.cursor.left;
    if (idx === null || idx === undefined || top === undefined || top < 0) {
      this.tooltip.hidden = true;
      return;
    }
    let best = -1, bestDist = Infinity, bestValue = null, bestIdx = idx;
    const data = u.data;
    for (let s = 1; s < data.length; s++) {
      const line = this.lines[s - 1];
      if (!line || line.hidden) continue;
      const values = data[s];
      let j = idx, v = values[j];
      for (let step = 1; (v === null || v === undefined) && step <= 3; step++) {
        if (values[idx - step] != null) { j = idx - step; v = values[j]; }
        else if (values[idx + step] != null) { j = idx + step; v = values[j]; }
      }
      if (v === null || v === undefined) continue;
      const dist = Math.abs(u.valToPos(v, "y") - top);
      if (dist < bestDist) { bestDist = dist; best = s; bestValue = v; bestIdx = j; }
    }
    if (best < 0 || bestDist > 40) {
      this.tooltip.hidden = true;
      return;
    }
    const line = this.lines[best - 1];
    const x = data[0][bestIdx];
    const xText = xFormatter(this.xAxis)(x);
    this.tooltip.replaceChildren(
      h("div", { class: "tt-title" }, h("span", { class: "swatch" }), line.label),
      line.detail ? h("div", { class: "tt-detail" }, line.detail) : null,
      h("div", {}, `${this.xLabel} ${this.approximate ? "≈ " : ""}${xText}: `, h("b", {}, fmtNumber(bestValue))));
    this.tooltip.querySelector(".swatch").style.background = line.color;
    this.tooltip.hidden = false;
    const box = this.canvasBox.getBoundingClientRect();
    const overLeft = u.over.getBoundingClientRect().left - box.left;
    const tipWidth = this.tooltip.offsetWidth || 200;
    const pos = overLeft + left + 14;
    this.tooltip.style.left = `${pos + tipWidth > box.width ? Math.max(0, overLeft + left - tipWidth - 14) : pos}px`;
    this.tooltip.style.top = `${Math.max(0, top - 10)}px`;
  }

  resize() {
    const width = this.width();
    if (this.plot && width !== this.plot.width) this.plot.setSize({ width, height: this.height });
  }

  destroy() {
    this.observer.disconnect();
    if (this.plot) this.plot.destroy();
    this.container.remove();
  }
}
