// The scatter view (/scatters?q=AIMQL&metrics=loss&x=KEY&y=KEY&color=KEY): one dot per run
// matching a run query, a metric's last value against a param or another metric. Hover a dot to
// see the run; click it to open the run.

import { ApiError, getJSON } from "../api.js";
import { fmtValue, h, markNav, setReady, setStatus } from "../dom.js";
import { notesFor, viewState } from "../explorer.js";
import { clip, colorFor, columnsOf, cssVar, fitCanvas, scaleFor } from "../plot2d.js";

const DEFAULTS = { q: "", metrics: "", x: "", y: "", color: "", xlog: false, ylog: false };
const LEFT = 72, RIGHT = 20, TOP = 16, BOTTOM = 44, PAD = 0.04;
const inset = (t) => PAD + t * (1 - 2 * PAD); // dots on the edges stay whole
const { state, save } = viewState(DEFAULTS, true);
let data = null, columns = [], dots = [], hovered = -1;

markNav("scatters");
const app = document.getElementById("app");
const queryInput = h("input", { class: "query", type: "search", name: "q", value: state.q, spellcheck: false, autocomplete: "off",
  placeholder: "AimQL run query, e.g. run.hparams.lr > 0.0001", "aria-label": "run query" });
const metricsInput = h("input", { type: "text", name: "metrics", value: state.metrics, class: "metrics-input", list: "metric-names",
  placeholder: "last value of: loss, acc", "aria-label": "metrics to use", autocomplete: "off" });
const selects = {};
const choose = (name, label) => {
  const select = h("select", { name, "aria-label": label });
  select.addEventListener("change", () => { state[name] = select.value; save(true); draw(); });
  selects[name] = select;
  return h("label", { class: "inline" }, `${label} `, select);
};
const logBox = (name, label) => {
  const box = h("input", { type: "checkbox", name, checked: state[name] });
  box.addEventListener("change", () => { state[name] = box.checked; save(); draw(); });
  return h("label", { class: "inline" }, box, ` ${label}`);
};
const metricNames = h("datalist", { id: "metric-names" });
const errorBox = h("pre", { class: "error", hidden: true, role: "alert" });
const notes = h("div", {});
const count = h("span", { class: "count" });
const canvas = h("canvas", {});
const tooltip = h("div", { class: "tooltip", hidden: true });
const area = h("div", { class: "plot-area", id: "scatter", dataset: { runCount: "0", dotCount: "0" } }, canvas, tooltip);
const empty = h("div", { class: "empty", hidden: true });
app.append(
  h("form", { class: "searchbar", onsubmit: (e) => { e.preventDefault(); state.q = queryInput.value; save(true); load(); } },
    queryInput, h("button", { type: "submit", class: "primary" }, "Search")),
  errorBox,
  h("div", { class: "toolbar" }, count, h("label", { class: "inline" }, "Metrics ", metricsInput),
    choose("x", "x"), logBox("xlog", "log x"), choose("y", "y"), logBox("ylog", "log y"), choose("color", "colour by")),
  metricNames, notes, empty, area);
metricsInput.addEventListener("change", () => { state.metrics = metricsInput.value.split(",").map((s) => s.trim()).filter(Boolean).join(","); save(true); load(); });
new ResizeObserver(() => draw()).observe(area);

async function load() {
  setReady(false);
  setStatus("loading…");
  try {
    data = await getJSON("api/runs", { q: state.q, metrics: state.metrics });
    errorBox.hidden = true;
    setStatus(`${data.count.toLocaleString("en-US")} run${data.count === 1 ? "" : "s"} · ${(data.elapsed_s * 1000).toFixed(0)} ms`);
  } catch (err) {
    data = { count: 0, columns: { hash: [], name: [], experiment: [] }, params: {}, metrics: [], damaged: [] };
    errorBox.hidden = false;
    errorBox.textContent = err instanceof ApiError ? err.message : `Cannot load runs: ${err.message || err}`;
    setStatus("");
  }
  columns = columnsOf(data);
  notes.replaceChildren(notesFor(data) || "");
  const metrics = columns.filter((c) => c.key.startsWith("m:"));
  const numeric = columns.filter((c) => c.present > 0);
  // defaults: y the first metric, x a param that varies (else another metric)
  if (!columns.some((c) => c.key === state.y)) state.y = metrics.length ? metrics[0].key : (numeric[0] || {}).key || "";
  if (!columns.some((c) => c.key === state.x)) {
    const other = numeric.find((c) => c.key !== state.y && c.key.startsWith("p:") && c.distinct > 1 && c.numeric) ||
      numeric.find((c) => c.key !== state.y && c.distinct > 1) || numeric.find((c) => c.key !== state.y);
    state.x = other ? other.key : "";
  }
  for (const name of ["x", "y", "color"]) {
    selects[name].replaceChildren(h("option", { value: "" }, "—"),
      ...columns.map((c) => h("option", { value: c.key, selected: c.key === state[name] }, c.label)));
  }
  area.dataset.runCount = String(data.count);
  count.textContent = `${data.count.toLocaleString("en-US")} run${data.count === 1 ? "" : "s"}`;
  draw();
  setReady(true);
}

function draw() {
  if (!data) return;
  const xCol = columns.find((c) => c.key === state.x), yCol = columns.find((c) => c.key === state.y);
  const ready = xCol && yCol;
  empty.hidden = Boolean(ready) || !errorBox.hidden;
  empty.textContent = data.count === 0 ? (state.q ? "No run matches this query." : "This repository has no runs yet.")
    : "Choose what to plot: name metrics above (their last values) and pick x and y.";
  area.hidden = !ready;
  dots = [];
  if (!ready) { area.dataset.dotCount = "0"; return; }
  const { ctx, width, height } = fitCanvas(canvas);
  ctx.clearRect(0, 0, width, height);
  const xs = scaleFor(xCol, { log: state.xlog }), ys = scaleFor(yCol, { log: state.ylog });
  const plotW = width - LEFT - RIGHT, plotH = height - TOP - BOTTOM;
  const color = colorFor(columns.find((c) => c.key === state.color));
  const fg = cssVar("--fg", "#1f2328"), muted = cssVar("--fg-muted", "#57606a"), grid = cssVar("--grid", "#eaeef2");
  ctx.font = "11px system-ui, sans-serif";
  ctx.strokeStyle = grid;
  ctx.fillStyle = muted;
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  for (const t of xs.ticks()) {
    const x = LEFT + inset(t.at) * plotW;
    ctx.beginPath(); ctx.moveTo(x, TOP); ctx.lineTo(x, TOP + plotH); ctx.stroke();
    ctx.fillText(clip(t.label, 90), x, TOP + plotH + 4);
  }
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (const t of ys.ticks()) {
    const y = TOP + plotH - inset(t.at) * plotH;
    ctx.beginPath(); ctx.moveTo(LEFT, y); ctx.lineTo(LEFT + plotW, y); ctx.stroke();
    ctx.fillText(clip(t.label, LEFT - 8), LEFT - 6, y);
  }
  ctx.fillStyle = fg;
  ctx.textAlign = "center";
  ctx.textBaseline = "bottom";
  ctx.fillText(clip(xCol.label, plotW), LEFT + plotW / 2, height - 4);
  let missing = 0;
  for (let i = 0; i < data.count; i++) {
    const px = xs.position(xCol.values[i]), py = ys.position(yCol.values[i]);
    if (px === null || py === null) { missing++; continue; }
    const jitter = xs.numeric ? 0 : ((i * 7919) % 13 - 6) * 0.8;
    dots.push({ i, x: LEFT + inset(px) * plotW + jitter, y: TOP + plotH - inset(py) * plotH });
  }
  for (const d of dots) {
    ctx.fillStyle = color(d.i);
    ctx.globalAlpha = 0.85;
    ctx.beginPath(); ctx.arc(d.x, d.y, d.i === hovered ? 6 : 4, 0, 2 * Math.PI); ctx.fill();
  }
  ctx.globalAlpha = 1;
  ctx.save();
  ctx.translate(12, TOP + plotH / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.textBaseline = "top";
  ctx.fillStyle = fg;
  ctx.fillText(clip(yCol.label, plotH), 0, 0);
  ctx.restore();
  area.dataset.dotCount = String(dots.length);
  if (missing) {
    ctx.fillStyle = muted;
    ctx.textAlign = "right";
    ctx.textBaseline = "top";
    ctx.fillText(`${missing} run${missing === 1 ? "" : "s"} without both values (or NaN/inf) not drawn`, LEFT + plotW, TOP + 2);
  }
}

canvas.addEventListener("mousemove", (event) => {
  const box = canvas.getBoundingClientRect();
  const x = event.clientX - box.left, y = event.clientY - box.top;
  let best = -1, dist = 10;
  for (const d of dots) {
    const dd = Math.hypot(d.x - x, d.y - y);
    if (dd < dist) { dist = dd; best = d.i; }
  }
  if (best !== hovered) { hovered = best; draw(); }
  canvas.style.cursor = best >= 0 ? "pointer" : "default";
  if (best < 0) { tooltip.hidden = true; return; }
  const xCol = columns.find((c) => c.key === state.x), yCol = columns.find((c) => c.key === state.y);
  const cCol = columns.find((c) => c.key === state.color);
  tooltip.replaceChildren(h("div", { class: "tt-title" }, data.columns.name[best]),
    h("div", { class: "tt-detail" }, `run ${data.columns.hash[best].slice(0, 8)} · ${data.columns.experiment[best]}`),
    h("div", {}, `${xCol.label}: `, h("b", {}, fmtValue(xCol.values[best]))),
    h("div", {}, `${yCol.label}: `, h("b", {}, fmtValue(yCol.values[best]))),
    cCol ? h("div", {}, `${cCol.label}: `, h("b", {}, fmtValue(cCol.values[best]) || "—")) : null);
  tooltip.hidden = false;
  tooltip.style.left = `${Math.min(x + 14, box.width - 260)}px`;
  tooltip.style.top = `${Math.max(0, y - 10)}px`;
});
canvas.addEventListener("mouseleave", () => { tooltip.hidden = true; if (hovered >= 0) { hovered = -1; draw(); } });
canvas.addEventListener("click", () => { if (hovered >= 0) location.href = `runs/${data.columns.hash[hovered]}`; });

async function loadMetricNames() {
  try {
    const answer = await getJSON("api/metrics/names");
    metricNames.replaceChildren(...answer.metrics.map((m) => h("option", { value: m.name })));
  } catch (_) { /* suggestions only */ }
}

window.addEventListener("popstate", () => {
  Object.assign(state, viewState(DEFAULTS, true).state);
  queryInput.value = state.q; metricsInput.value = state.metrics;
  load();
});
load().then(loadMetricNames);
