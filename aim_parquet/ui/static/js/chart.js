// The chart wrapper: one uPlot per chart (drawn on canvas; hundreds of thousands of points in
// tens of ms), with a hover tooltip naming the nearest series, drag-to-zoom (double click
// resets) and colours taken from the page's CSS, so dark mode follows the system.

import { fmtNumber, fmtTime, h } from "./dom.js";

const HEIGHT = 280;

function css(name, fallback) {
  const value = getComputedStyle(document.body).getPropertyValue(name).trim();
  return value || fallback;
}

function xFormatter(xAxis) {
  if (xAxis === "wall") return (x) => fmtTime(x);
  if (xAxis === "relative") return (x) => `${fmtNumber(x)} s`;
  return (x) => fmtNumber(Math.round(x * 100) / 100);
}

function styleKey(lines) {
  return lines.map((l) => `${l.label}|${l.color}|${(l.dash || []).join()}|${l.width}|${l.fill}`).join("\n");
}

/**
 * lines: [{label, color, dash, width, values (Array, null = gap), detail (tooltip text)}]
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
      this.plot.setData(data, true);
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
        y: { distr: this.yLog ? 3 : 1 },
      },
      axes: [
        { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid },
          values: this.xAxis === "wall" ? undefined : (u, splits) => splits.map((v) => fmtNumber(v)) },
        { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, size: 64,
          values: (u, splits) => splits.map((v) => fmtNumber(v)) },
      ],
      series: [
        { label: this.xLabel, value: (u, v) => (v === null ? "" : format(v)) },
        ...lines.map((l) => ({
          // whole-pixel widths: a fractional width makes software canvas anti-alias every
          // segment (4x slower in headless Chromium)
          label: l.label, stroke: l.color, width: l.width ?? 1, dash: l.dash || [],
          fill: l.fill, spanGaps: true,
          points: { show: l.width === 0 ? false : undefined, size: 5, fill: l.color },
        })),
      ],
      bands: bands.map((b) => ({ series: [b.upper + 1, b.lower + 1], fill: b.fill })),
      legend: { show: false },
      cursor: { drag: { x: true, y: false, setScale: true }, points: { show: false }, focus: { prox: -1 } },
      hooks: {
        setCursor: [(u) => this.onCursor(u)],
        setSelect: [(u) => {
          if (!this.onZoom || u.select.width < 2) return;
          const lo = u.posToVal(u.select.left, "x"), hi = u.posToVal(u.select.left + u.select.width, "x");
          this.onZoom(lo, hi);
        }],
      },
    };
    this.styleKey = styleKey(lines);
    this.plot = new uPlot(options, data, this.canvasBox);
    this.plot.over.addEventListener("mouseleave", () => { this.tooltip.hidden = true; });
    this.plot.over.addEventListener("dblclick", () => { if (this.onZoom) this.onZoom(null, null); });
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
