// The metrics explorer (/metrics): curves of the metrics matching an AimQL query, one chart per
// value of "chart by", coloured and dashed by any field, optionally aggregated per group with a
// band, smoothed, on a step / epoch / relative-time / wall-time axis, updated live.

import { ApiError, getSeries } from "../api.js";
import { METRICS_DEFAULTS, chartWidth, metricsSearch } from "../boot.js";
import { Chart } from "../chart.js";
import { fmtNumber, h, markNav, setReady, setStatus } from "../dom.js";
import {
  DASHES, KeyIndex, PALETTE, aggregate, applyLiveAnswer, ema, groupKey, groupText, isolated, legendLabel,
  seriesColorKey, seriesLabel, toNullable,
} from "../series.js";
import { readState, writeState } from "../state.js";

const DEFAULTS = METRICS_DEFAULTS;
const X_LABELS = { step: "step", epoch: "epoch", relative: "relative time", wall: "time" };
const LIVE_INTERVAL_MS = 1000;
const state = readState(DEFAULTS);
let model = null;        // {xAxis, charts: [...], runs: {...}}
const charts = new Map(); // chart key -> {el, chart}
let generation = 0;
let liveTimer = 0;
let liveBusy = false;

markNav("metrics");
const app = document.getElementById("app");
const controls = {}; // state key -> its input, set again from the URL on back/forward
const field = (name, label, options) => {
  const select = h("select", { name, "aria-label": label },
    options.map(([value, text]) => h("option", { value, selected: state[name] === value }, text)));
  select.addEventListener("change", () => { state[name] = select.value; changed(name); });
  controls[name] = select;
  return h("label", { class: "inline" }, `${label} `, select);
};
const textField = (name, label, placeholder) => {
  const input = h("input", { name, type: "text", value: state[name], list: "fields", placeholder,
    autocomplete: "off", "aria-label": label, class: "field-input" });
  input.addEventListener("change", () => { state[name] = input.value.trim(); changed(name); });
  controls[name] = input;
  return h("label", { class: "inline" }, `${label} `, input);
};
const check = (name, label) => {
  const box = h("input", { type: "checkbox", name, checked: state[name] });
  box.addEventListener("change", () => { state[name] = box.checked; changed(name); });
  controls[name] = box;
  return h("label", { class: "inline" }, box, ` ${label}`);
};
const queryInput = h("input", {
  class: "query", type: "search", name: "q", spellcheck: false, autocomplete: "off", value: state.q,
  placeholder: "AimQL metric query, e.g. metric.name == 'loss' and run.hparams.lr > 0.001",
  "aria-label": "metric query",
});
const smoothInput = h("input", { type: "range", name: "smooth", min: 0, max: 0.99, step: 0.01, value: state.smooth });
const smoothText = h("span", { class: "mono" }, state.smooth.toFixed(2));
smoothInput.addEventListener("input", () => {
  state.smooth = Number(smoothInput.value);
  smoothText.textContent = state.smooth.toFixed(2);
  changed("smooth");
});
const errorBox = h("pre", { class: "error", hidden: true, role: "alert" });
const liveBadge = h("span", { class: "badge", hidden: true });
const root = h("div", { id: "metrics", class: "charts", dataset: { seriesCount: "0" } });
const fieldsList = h("datalist", { id: "fields" });
const emptyBox = h("div", { class: "empty", hidden: true });

app.append(
  h("form", { class: "searchbar", onsubmit: (e) => { e.preventDefault(); state.q = queryInput.value; changed("q", true); } },
    queryInput, h("button", { type: "submit", class: "primary" }, "Search")),
  errorBox,
  h("div", { class: "toolbar" },
    field("x", "x axis", [["step", "step"], ["epoch", "epoch"], ["relative", "relative time"], ["wall", "wall time"]]),
    textField("chart_by", "charts by", "metric.name"),
    textField("color_by", "colour by", "run.hparams.lr"),
    textField("stroke_by", "dash by", "metric.context.subset"),
    field("agg", "aggregate", [["none", "none"], ["mean", "mean"], ["median", "median"], ["min", "min"], ["max", "max"]]),
    field("band", "band", [["minmax", "min–max"], ["std", "± std dev"], ["stderr", "± std err"], ["none", "none"]]),
    h("label", { class: "inline" }, "EMA ", smoothInput, " ", smoothText),
    check("ylog", "log y"),
    check("live", "live"),
    liveBadge),
  emptyBox, root, fieldsList);

const REFETCH = new Set(["q", "x", "chart_by"]);

function changed(name, push = false) {
  if (REFETCH.has(name)) state.zoom = ""; // another query or axis: the zoomed ranges meant other x
  writeState(state, DEFAULTS, push || REFETCH.has(name));
  if (REFETCH.has(name)) load();
  else if (name === "live") scheduleLive();
  else render();
}

async function load() {
  const mine = ++generation;
  setReady(false);
  setStatus("loading…");
  clearTimeout(liveTimer);
  const started = performance.now();
  try {
    const { header, read, bytes } = await getSeries(...metricsSearch(state));
    if (mine !== generation) return;
    performance.mark("aim_parquet:data");
    errorBox.hidden = true;
    model = {
      xAxis: header.x_axis,
      runs: header.runs,
      charts: header.charts.map((c) => ({
        key: JSON.stringify(c.key), title: c.title, mode: c.mode, maxStep: c.max_step,
        x: Array.from(read(c.x)),
        series: c.series.map((s) => ({ ...s, y: toNullable(read(s.y)) })),
      })),
    };
    render();
    await restoreZooms(mine);
    if (mine !== generation) return;
    performance.mark("aim_parquet:drawn");
    const ms = performance.now() - started;
    const damaged = (header.damaged.length ? ` · ${header.damaged.length} damaged run(s) skipped: run aim-parquet verify` : "") +
      (header.unreadable && header.unreadable.length ? ` · ${header.unreadable.length} series could not be read (${header.unreadable.map((u) => u.name).join(", ")}): run aim-parquet verify` : "");
    setStatus(`${header.series_count.toLocaleString("en-US")} series · ${header.points_read.toLocaleString("en-US")} points read · ${(bytes / 1024).toFixed(0)} KiB · ${ms.toFixed(0)} ms${damaged}`);
  } catch (err) {
    if (mine !== generation) return;
    model = { xAxis: state.x, runs: {}, charts: [] };
    render();
    errorBox.hidden = false;
    errorBox.textContent = err instanceof ApiError ? err.message : `Cannot load metrics: ${err.message || err}`;
    setStatus("");
  }
  fillFieldSuggestions();
  setReady(true);
  scheduleLive();
}

function fields(text) {
  return text.split(",").map((s) => s.trim()).filter(Boolean);
}

function render() {
  const colorFields = fields(state.color_by), strokeFields = fields(state.stroke_by);
  // one KeyIndex per page, not per chart: a run (and context) has the same colour in every chart
  const styles = {
    colorFields, strokeFields, colors: new KeyIndex(), dashes: new KeyIndex(), seriesColors: new KeyIndex(),
    nameInTitle: fields(state.chart_by).includes("metric.name"),
  };
  const shown = [];
  const seen = new Set();
  let seriesCount = 0;
  for (const c of model.charts) {
    seen.add(c.key);
    seriesCount += c.series.length;
    let entry = charts.get(c.key);
    if (!entry || entry.xAxis !== model.xAxis || entry.ylog !== state.ylog) {
      if (entry) entry.chart.destroy();
      const el = h("section", { class: "chart", dataset: { chartKey: c.key } });
      const title = h("h3", {});
      const legend = h("div", { class: "legend" });
      el.append(title);
      const key = c.key;
      const chart = new Chart(el, { xAxis: model.xAxis, xLabel: X_LABELS[model.xAxis], yLog: state.ylog,
        approximate: c.mode === "binned", onZoom: (lo, hi) => zoom(key, lo, hi) });
      el.append(legend);
      entry = { el, chart, title, legend, xAxis: model.xAxis, ylog: state.ylog };
      charts.set(c.key, entry);
    }
    root.append(entry.el);
    entry.chart.approximate = c.mode === "binned";
    if (!c.zoomed && !c.full) entry.chart.zoomRange = null; // fresh data: no zoom of old data
    entry.el.dataset.maxStep = c.maxStep === null || c.maxStep === undefined ? "" : String(c.maxStep);
    entry.el.dataset.seriesCount = String(c.series.length);
    entry.el.dataset.mode = c.full || c.zoomed ? `${c.mode} zoomed` : c.mode;
    if (!entry.title.textContent) entry.title.textContent = c.title;
    // colours in chart order, whichever charts are drawn first
    const styled = state.agg === "none" || colorFields.length || strokeFields.length;
    if (styled) for (const s of c.series) seriesStyle(s, styles);
    entry.pending = [c, styles];
    shown.push(entry);
  }
  for (const [key, entry] of charts) {
    if (!seen.has(key)) { lazy.unobserve(entry.el); entry.chart.destroy(); charts.delete(key); }
  }
  // only charts in or near the view are drawn now (one layout read for all); the others when
  // they are scrolled to: 1,000 charts took 11 s to redraw for one change of a control
  const near = shown.map((entry) => nearView(entry.el));
  shown.forEach((entry, i) => {
    if (near[i]) drawPending(entry);
    else if (!entry.observed) { lazy.observe(entry.el); entry.observed = true; }
  });
  root.dataset.seriesCount = String(seriesCount);
  emptyBox.hidden = model.charts.length > 0 || !errorBox.hidden;
  emptyBox.textContent = state.q ? "No metric matches this query." : "This repository has no metrics yet: track some with run.track(value, name=...).";
  const active = Object.values(model.runs).filter((r) => r.active).length;
  liveBadge.hidden = !active;
  liveBadge.textContent = `● ${active} active run${active === 1 ? "" : "s"}`;
}

// -- zoom: a chart downsampled per pixel column asks for the zoomed range at full resolution --
/** Zoomed ranges in the URL: {chart key: [min, max]} as JSON in `zoom`, so a link (or a
 * reload) shows the same zoom. */
function zooms() {
  try {
    const parsed = JSON.parse(state.zoom || "{}");
    return parsed && typeof parsed === "object" && !Array.isArray(parsed) ? parsed : {};
  } catch (_) {
    return {};
  }
}

function saveZoom(key, range) {
  const all = zooms();
  if (range) all[key] = range; else delete all[key];
  state.zoom = Object.keys(all).length ? JSON.stringify(all) : "";
  writeState(state, DEFAULTS);
}

async function restoreZooms(mine) {
  for (const [key, range] of Object.entries(zooms())) {
    const entry = charts.get(key);
    if (!entry || !Array.isArray(range) || range.length !== 2 || !range.every(Number.isFinite)) continue;
    entry.chart.zoomRange = [range[0], range[1]];
    await zoom(key, range[0], range[1], { restoring: true });
    if (mine !== generation) return;
  }
}

async function zoom(key, lo, hi, { restoring = false } = {}) {
  const chart = model.charts.find((c) => c.key === key);
  if (!chart) return;
  if (lo === null) {
    if (chart.full) { Object.assign(chart, chart.full); chart.full = null; }
    chart.zoomed = false;
    saveZoom(key, null);
    render();
    return;
  }
  chart.zoomed = true; // the chart keeps the range through live updates until a double click
  saveZoom(key, [lo, hi]);
  if (chart.mode !== "binned" && !chart.full) { render(); return; } // every point is there
  if (!restoring) setReady(false);
  try {
    const { header, read } = await getSeries("api/metrics/search", {
      q: state.q, x: state.x, chart_by: state.chart_by, width: chartWidth(), x_min: lo, x_max: hi,
    });
    const fresh = header.charts.find((c) => JSON.stringify(c.key) === key);
    if (fresh) {
      if (!chart.full) chart.full = { x: chart.x, series: chart.series, mode: chart.mode, maxStep: chart.maxStep };
      chart.maxStep = fresh.max_step;
      const ys = new Map(fresh.series.map((s) => [`${s.run}:${s.seq}`, toNullable(read(s.y))]));
      chart.x = Array.from(read(fresh.x));
      chart.mode = fresh.mode;
      chart.series = chart.series.map((s) => ({ ...s, y: ys.get(`${s.run}:${s.seq}`) || new Array(chart.x.length).fill(null) }));
      render();
    }
  } catch (err) {
    setStatus(`zoom failed: ${err.message || err}`);
  }
  if (!restoring) setReady(true);
}

function prepare(values) {
  let out = state.smooth ? ema(values, state.smooth) : values;
  if (state.ylog) out = out.map((v) => (v !== null && v <= 0 ? null : v));
  return out;
}

const NEAR_VIEW_PX = 600;
const lazy = new IntersectionObserver((items) => {
  for (const item of items) if (item.isIntersecting) drawPending(entryOf(item.target));
}, { rootMargin: `${NEAR_VIEW_PX}px 0px` });

function entryOf(el) {
  for (const entry of charts.values()) if (entry.el === el) return entry;
  return null;
}

function nearView(el) {
  const box = el.getBoundingClientRect();
  return box.bottom > -NEAR_VIEW_PX && box.top < window.innerHeight + NEAR_VIEW_PX;
}

function drawPending(entry) {
  if (!entry || !entry.pending) return;
  const [c, styles] = entry.pending;
  entry.pending = null;
  drawChart(entry, c, styles);
}

/** A series' colour and dash (and the group keys they come from); the same for a series in
 * every chart, whichever chart asks first. */
function seriesStyle(s, styles) {
  const run = model.runs[s.run];
  const { colorFields, strokeFields } = styles;
  const ck = groupKey(colorFields, s, run), sk = groupKey(strokeFields, s, run);
  const index = colorFields.length ? styles.colors.index(ck) : styles.seriesColors.index(seriesColorKey(s, styles.nameInTitle));
  const color = PALETTE[index % PALETTE.length];
  const dash = DASHES[(strokeFields.length ? styles.dashes.index(sk) : 0) % DASHES.length];
  return { ck, sk, color, dash };
}

function drawChart(entry, c, styles) {
  const runs = model.runs;
  const lines = [], bands = [], legend = new Map();
  const { colorFields, strokeFields, nameInTitle } = styles;
  const styleOf = (s) => seriesStyle(s, styles);
  if (state.agg === "none") {
    c.series.forEach((s) => {
      const run = runs[s.run];
      const style = styleOf(s);
      const nonfinite = s.nonfinite ? ` · ${s.nonfinite} NaN/inf value${s.nonfinite === 1 ? "" : "s"} not drawn` : "";
      const values = prepare(s.y);
      lines.push({
        label: seriesLabel(s, run), color: style.color, dash: style.dash, values, points: isolated(values),
        detail: `${run && run.active ? "● live · " : ""}run ${s.run.slice(0, 8)}${run ? ` · ${run.experiment}` : ""} · last step ${fmtNumber(s.last_step)}${nonfinite}`,
      });
      const label = colorFields.length || strokeFields.length
        ? groupText(colorFields, strokeFields, s, run) : legendLabel(s, run, nameInTitle);
      const key = `${style.color}|${style.dash}|${label}`;
      if (!legend.has(key)) legend.set(key, { label, color: style.color, dash: style.dash, active: run && run.active, count: 0 });
      legend.get(key).count++;
    });
  } else {
    const groups = new Map();
    c.series.forEach((s) => {
      const run = runs[s.run];
      const style = colorFields.length || strokeFields.length ? styleOf(s) : { ck: "", sk: "", color: PALETTE[0], dash: [] };
      const key = `${style.ck}|${style.sk}`;
      if (!groups.has(key)) groups.set(key, { style, rows: [], label: groupText(colorFields, strokeFields, s, run) || "all series" });
      groups.get(key).rows.push(prepare(s.y));
    });
    for (const g of groups.values()) {
      const { line, lower, upper } = aggregate(g.rows, state.agg, state.band, c.x);
      const label = `${state.agg} of ${g.rows.length} · ${g.label}`;
      lines.push({ label, color: g.style.color, dash: g.style.dash, values: line, width: 2, points: isolated(line),
        detail: `${g.rows.length} series` });
      if (state.band !== "none") {
        const upperIndex = lines.length;
        lines.push({ label: `${label} upper`, color: "transparent", width: 0, values: upper, hidden: true });
        lines.push({ label: `${label} lower`, color: "transparent", width: 0, values: lower, hidden: true });
        bands.push({ upper: upperIndex, lower: upperIndex + 1, fill: `${g.style.color}33` });
      }
      legend.set(label, { label, color: g.style.color, dash: g.style.dash, count: g.rows.length });
    }
  }
  const maxStep = c.maxStep === null || c.maxStep === undefined ? "" : ` · step ≤ ${fmtNumber(c.maxStep)}`;
  const bad = c.series.reduce((sum, s) => sum + (s.nonfinite || 0), 0);
  const badText = bad ? ` · ${bad} NaN/inf not drawn` : "";
  const noX = c.series.reduce((sum, s) => sum + (s.no_x || 0), 0);
  const noXText = noX ? ` · ${noX.toLocaleString("en-US")} point${noX === 1 ? "" : "s"} without ${model.xAxis === "epoch" ? "an epoch" : `a ${X_LABELS[model.xAxis]}`} not drawn` : "";
  entry.title.replaceChildren(h("span", { dir: "auto" }, c.title),
    h("small", {}, ` ${c.series.length} series${maxStep}${c.mode === "binned" ? " · min/max per pixel" : ""}${badText}${noXText}${c.full || c.zoomed ? " · zoomed (double-click resets)" : ""}`));
  entry.chart.draw(c.x, lines, bands);
  entry.el.classList.toggle("no-points", c.x.length === 0);
  entry.el.dataset.emptyText = model.xAxis === "epoch"
    ? "No point of these series has an epoch: track with epoch=... or use the step axis."
    : "No points in this range.";
  const items = [...legend.values()];
  const shown = items.slice(0, 24);
  entry.legend.replaceChildren(
    ...shown.map((item) => {
      const swatch = h("span", { class: "swatch" });
      swatch.style.background = item.color;
      if (item.dash && item.dash.length) swatch.classList.add("dashed");
      return h("span", { class: "legend-item", title: item.label }, swatch,
        item.active ? h("span", { class: "dot live", title: "active" }) : null,
        h("bdi", {}, item.label), item.count > 1 && state.agg === "none" ? ` (${item.count})` : "");
    }),
    ...(items.length > shown.length ? [h("span", { class: "legend-more" }, `… and ${items.length - shown.length} more`)] : []));
}

function fillFieldSuggestions() {
  const names = new Set(["metric.name", "metric.context", "run.hash", "run.name", "run.experiment"]);
  for (const c of model.charts) for (const s of c.series) for (const k of Object.keys(s.context)) names.add(`metric.context.${k}`);
  for (const run of Object.values(model.runs)) for (const k of Object.keys(run.params)) names.add(`run.${k}`);
  fieldsList.replaceChildren(...[...names].slice(0, 500).map((n) => h("option", { value: n })));
}

// -- live updates: only points after the last step seen are fetched ---------------------------
function scheduleLive() {
  clearTimeout(liveTimer);
  if (state.live) liveTimer = setTimeout(pollLive, LIVE_INTERVAL_MS);
}

async function pollLive() {
  if (!state.live || !model || liveBusy) return scheduleLive();
  if (document.visibilityState === "hidden") return scheduleLive();
  const mine = generation;
  const cursors = [];
  for (const c of model.charts) {
    for (const s of c.series) {
      const run = model.runs[s.run];
      if (run && run.ended === null && s.last_step !== null) cursors.push(`${s.run}:${s.seq}:${s.last_step}`);
    }
  }
  liveBusy = true;
  try {
    const { header, read } = await getSeries("api/metrics/live", {
      q: state.q, x: state.x, chart_by: state.chart_by, width: chartWidth(), cursor: cursors.join(","),
    });
    if (mine !== generation) return;
    if (applyLiveAnswer(model, header, read)) render();
  } catch (err) {
    setStatus(`live update failed: ${err.message || err}`);
  } finally {
    liveBusy = false;
    if (mine === generation) scheduleLive();
  }
}


window.addEventListener("popstate", () => {
  Object.assign(state, readState(DEFAULTS));
  queryInput.value = state.q;
  for (const [name, input] of Object.entries(controls)) {
    if (input.type === "checkbox") input.checked = state[name];
    else input.value = state[name];
  }
  smoothInput.value = state.smooth;
  smoothText.textContent = state.smooth.toFixed(2);
  load();
});

load();
