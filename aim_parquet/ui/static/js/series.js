// Pure computations on chart data: grouping fields, colours and dashes, EMA smoothing,
// aggregation of a group of series on their shared x grid. No DOM here.

export const PALETTE = [
  "#2563eb", "#dc2626", "#16a34a", "#d97706", "#9333ea", "#0891b2", "#db2777", "#65a30d",
  "#7c3aed", "#ea580c", "#0d9488", "#be123c", "#4f46e5", "#ca8a04", "#059669", "#c026d3",
];
export const DASHES = [[], [8, 4], [2, 3], [12, 4, 2, 4], [4, 4], [1, 6]];

/** The value of a grouping field (same names as the server's chart_by) for one series. */
export function fieldValue(field, series, run) {
  if (field === "metric.name") return series.name;
  if (field === "metric.context") return contextLabel(series.context);
  if (field.startsWith("metric.context.")) return series.context[field.slice(15)];
  if (!field.startsWith("run.")) return undefined;
  const path = field.slice(4);
  if (!run) return undefined;
  if (["hash", "name", "experiment", "archived", "active"].includes(path)) return run[path];
  if (path in run.params) return run.params[path];
  const prefix = `${path}.`;
  const nested = Object.keys(run.params).filter((k) => k.startsWith(prefix));
  if (!nested.length) return undefined;
  return JSON.stringify(Object.fromEntries(nested.map((k) => [k.slice(prefix.length), run.params[k]])));
}

export function contextLabel(context) {
  return Object.keys(context || {}).sort().map((k) => `${k}=${context[k]}`).join(", ");
}

/** A run as a legend names it: its name, or its short hash when it has none of its own. */
export function runLabel(run, hash) {
  if (!run || run.name === `Run: ${hash}`) return hash.slice(0, 8);
  return run.name;
}

export function seriesLabel(series, run) {
  const ctx = contextLabel(series.context);
  return `${runLabel(run, series.run)} · ${series.name}${ctx ? ` (${ctx})` : ""}`;
}

/** The legend's short text for a series: the metric name is left out when the chart's title
 * already says it. */
export function legendLabel(series, run, nameInTitle) {
  const ctx = contextLabel(series.context);
  const what = nameInTitle ? ctx : `${series.name}${ctx ? ` (${ctx})` : ""}`;
  return what ? `${runLabel(run, series.run)} · ${what}` : runLabel(run, series.run);
}

/** The key that gives a series the same colour in every chart (its run and context, and its
 * metric name when the charts are not one per name). */
export function seriesColorKey(series, nameInTitle) {
  return `${series.run}|${contextLabel(series.context)}${nameInTitle ? "" : `|${series.name}`}`;
}

/** Whether step `a` is after step `b` (either may be a digit string: steps past 2**53). */
export function laterStep(a, b) {
  if (b === null || b === undefined) return a !== null && a !== undefined;
  if (a === null || a === undefined) return false;
  return BigInt(a) > BigInt(b);
}

/** Key of a series under a list of fields ("" when no field). */
export function groupKey(fields, series, run) {
  if (!fields.length) return "";
  return JSON.stringify(fields.map((f) => fieldValue(f, series, run) ?? null));
}

/** Assign an index to each distinct key in order of first appearance. */
export class KeyIndex {
  constructor() { this.map = new Map(); }
  index(key) {
    if (!this.map.has(key)) this.map.set(key, this.map.size);
    return this.map.get(key);
  }
}

/** EMA with debiasing (TensorBoard's smoothing); null stays null. alpha in [0, 1). */
export function ema(values, alpha) {
  if (!alpha) return values;
  const out = new Array(values.length);
  let last = 0, weight = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined) { out[i] = null; continue; }
    last = last * alpha + (1 - alpha) * v;
    weight = weight * alpha + (1 - alpha);
    out[i] = last / weight;
  }
  return out;
}

/** A row with its inner gaps (null between two values) filled by linear interpolation on x,
 * so series tracked at different steps can be aggregated; before its first value and after
 * its last it stays null. */
export function fillGaps(row, x) {
  const out = row.slice();
  let prev = -1;
  for (let i = 0; i < row.length; i++) {
    const v = row[i];
    if (v === null || v === undefined) continue;
    if (prev >= 0 && i - prev > 1) {
      const x0 = x[prev], y0 = row[prev], slope = (v - y0) / (x[i] - x0);
      for (let j = prev + 1; j < i; j++) out[j] = y0 + slope * (x[j] - x0);
    }
    prev = i;
  }
  return out;
}

/**
 * Aggregate several rows (same length, null = no value) into {line, lower, upper}.
 * how: mean | median | min | max; band: none | minmax | std | stderr. With `x` (the rows'
 * shared grid), each row's inner gaps are interpolated first: a run tracked at even steps and
 * one at odd steps average to their mean, not to a zigzag between the two.
 */
export function aggregate(inputs, how, band, x = null) {
  const rows = x ? inputs.map((row) => fillGaps(row, x)) : inputs;
  const n = rows[0] ? rows[0].length : 0;
  const line = new Array(n), lower = new Array(n), upper = new Array(n);
  const column = [];
  for (let i = 0; i < n; i++) {
    column.length = 0;
    for (const row of rows) {
      const v = row[i];
      if (v !== null && v !== undefined) column.push(v);
    }
    if (!column.length) { line[i] = lower[i] = upper[i] = null; continue; }
    let sum = 0, min = Infinity, max = -Infinity;
    for (const v of column) { sum += v; if (v < min) min = v; if (v > max) max = v; }
    const mean = sum / column.length;
    let value = mean;
    if (how === "median") {
      const sorted = column.slice().sort((a, b) => a - b);
      const mid = sorted.length >> 1;
      value = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    } else if (how === "min") value = min;
    else if (how === "max") value = max;
    line[i] = value;
    if (band === "minmax") { lower[i] = min; upper[i] = max; }
    else if (band === "std" || band === "stderr") {
      let sq = 0;
      for (const v of column) sq += (v - mean) * (v - mean);
      let spread = Math.sqrt(sq / column.length);
      if (band === "stderr") spread /= Math.sqrt(column.length);
      lower[i] = value - spread; upper[i] = value + spread;
    } else { lower[i] = upper[i] = null; }
  }
  return { line, lower, upper };
}

/** Float32Array with NaN for "no point" -> Array with null (what uPlot draws gaps from). */
export function toNullable(typed) {
  const out = new Array(typed.length);
  for (let i = 0; i < typed.length; i++) {
    const v = typed[i];
    out[i] = v === v ? v : null;
  }
  return out;
}

/** Merge new points (xs sorted, ys) of some series into a chart's grid (x, rows). */
export function mergePoints(chart, updates) {
  const extra = [];
  for (const u of updates) for (const x of u.xs) extra.push(x);
  if (!extra.length) return;
  const merged = Array.from(new Set([...chart.x, ...extra])).sort((a, b) => a - b);
  const position = new Map(merged.map((x, i) => [x, i]));
  for (const s of chart.series) {
    const row = new Array(merged.length).fill(null);
    for (let i = 0; i < chart.x.length; i++) row[position.get(chart.x[i])] = s.y[i];
    s.y = row;
  }
  chart.x = merged;
  for (const u of updates) {
    const row = u.series.y;
    for (let i = 0; i < u.xs.length; i++) row[position.get(u.xs[i])] = u.ys[i];
  }
}

/** Whether a line has at most one value to show: it is drawn as a dot (a line needs two). */
export function isolated(values) {
  let seen = 0;
  for (const v of values) if (v !== null && v !== undefined && ++seen > 1) return false;
  return seen === 1;
}

/** `field=value, ...` of a series under the colour and dash fields. */
export function groupText(colorFields, strokeFields, s, run) {
  const parts = [];
  for (const f of [...colorFields, ...strokeFields]) {
    const key = groupKey([f], s, run);
    parts.push(`${f}=${JSON.parse(key)[0] ?? "—"}`);
  }
  return parts.join(", ");
}

/** Merge a live answer (api/metrics/live) into a page's model {runs, charts}: new runs and
 * states, new points of known series, new series and charts. Whether anything changed. */
export function applyLiveAnswer(model, header, read) {
  let changedAny = false;
  for (const [hash, run] of Object.entries(header.runs)) {
    const old = model.runs[hash];
    if (!old || old.active !== run.active || old.ended !== run.ended) changedAny = true;
    model.runs[hash] = run;
  }
  const byChart = new Map();
  for (const s of header.series) {
    const key = JSON.stringify(s.chart_key);
    let chart = model.charts.find((c) => c.key === key);
    if (!chart) {
      chart = { key, title: s.chart_title, mode: "exact", maxStep: null, x: [], series: [] };
      model.charts.push(chart);
    }
    let series = chart.series.find((t) => t.run === s.run && t.seq === s.seq);
    if (!series) {
      series = { run: s.run, seq: s.seq, name: s.name, context: s.context, nonfinite: 0, last_step: null, y: new Array(chart.x.length).fill(null) };
      chart.series.push(series);
    }
    series.nonfinite += s.nonfinite;
    series.no_x = (series.no_x || 0) + (s.no_x || 0);
    series.last_step = s.last_step;
    series.last_value = s.last_value;
    if (laterStep(s.last_step, chart.maxStep)) chart.maxStep = s.last_step;
    if (!byChart.has(chart)) byChart.set(chart, []);
    byChart.get(chart).push({ series, xs: Array.from(read(s.x)), ys: Array.from(read(s.y)) });
    changedAny = true;
  }
  for (const [chart, updates] of byChart) mergePoints(chart, updates);
  for (const hash of header.finished) {
    if (model.runs[hash] && model.runs[hash].ended === null) model.runs[hash].ended = Date.now() / 1000;
  }
  return changedAny;
}
