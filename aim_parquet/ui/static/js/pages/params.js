// The params explorer (/params?q=AIMQL&params=a,b&metrics=loss&color=KEY): parallel coordinates
// over chosen params and the last value of chosen metrics, one line per run matching a run query,
// coloured by any of them. Drag along an axis to select a range (runs outside every selection
// fade); double click an axis to clear it. A click on a line opens that run. The selection opens
// in the metrics or runs explorer as a query: the page's own (nothing brushed), else the brushed
// ranges as conditions on their params and metrics (checked against the server before use), else
// the runs' hashes (at most MAX_LINKED_RUNS of them fit in one query).

import { ApiError, MAX_LINKED_RUNS, getJSON, hashesQuery } from "../api.js";
import { fmtValue, h, markNav, setReady, setStatus } from "../dom.js";
import { notesFor, viewState } from "../explorer.js";
import { clip, colorFor, columnsOf, cssVar, fitCanvas, scaleFor } from "../plot2d.js";

const DEFAULTS = { q: "", params: "", metrics: "", color: "" };
const TOP = 44, BOTTOM = 40, SIDE = 70, MISSING_GAP = 18, MAX_AUTO_AXES = 8;
const { state, save } = viewState(DEFAULTS, true);
let data = null, columns = [], axes = [], brushes = new Map(), hovered = -1, drag = null;

markNav("params");
const app = document.getElementById("app");
const queryInput = h("input", { class: "query", type: "search", name: "q", value: state.q, spellcheck: false, autocomplete: "off",
  placeholder: "AimQL run query, e.g. run.experiment == 'baseline'", "aria-label": "run query" });
const paramsInput = h("input", { type: "text", name: "params", value: state.params, class: "field-input", list: "param-keys",
  placeholder: "all that vary", "aria-label": "params to show", autocomplete: "off" });
const metricsInput = h("input", { type: "text", name: "metrics", value: state.metrics, class: "metrics-input", list: "metric-names",
  placeholder: "last value of: loss, acc", "aria-label": "metrics to show", autocomplete: "off" });
const colorSelect = h("select", { name: "color", "aria-label": "colour by" });
const paramKeys = h("datalist", { id: "param-keys" }), metricNames = h("datalist", { id: "metric-names" });
const errorBox = h("pre", { class: "error", hidden: true, role: "alert" });
const notes = h("div", {});
const count = h("span", { class: "count" });
const selection = h("span", { class: "actions" });
const selectionNote = h("p", { class: "error", role: "alert", hidden: true, id: "selection-note" });
let checkFailed = false; // the server named other runs than the brushed ones (see openChecked)
const canvas = h("canvas", {});
const tooltip = h("div", { class: "tooltip", hidden: true });
const area = h("div", { class: "plot-area", id: "params", dataset: { runCount: "0", selectedCount: "0" } }, canvas, tooltip);
const empty = h("div", { class: "empty", hidden: true });
app.append(
  h("form", { class: "searchbar", onsubmit: (e) => { e.preventDefault(); state.q = queryInput.value; save(true); load(); } },
    queryInput, h("button", { type: "submit", class: "primary" }, "Search")),
  errorBox,
  h("div", { class: "toolbar" }, count, h("label", { class: "inline" }, "Params ", paramsInput),
    h("label", { class: "inline" }, "Metrics ", metricsInput), h("label", { class: "inline" }, "colour by ", colorSelect), selection),
  selectionNote, paramKeys, metricNames, notes, empty, area);
paramsInput.addEventListener("change", () => { state.params = paramsInput.value.trim(); save(true); build(); draw(); });
metricsInput.addEventListener("change", () => { state.metrics = metricsInput.value.split(",").map((s) => s.trim()).filter(Boolean).join(","); save(true); load(); });
colorSelect.addEventListener("change", () => { state.color = colorSelect.value; save(); draw(); });
new ResizeObserver(() => draw()).observe(area);

async function load() {
  setReady(false);
  setStatus("loading…");
  try {
    data = await getJSON("api/runs", { q: state.q, metrics: state.metrics });
    errorBox.hidden = true;
    setStatus(`${data.count.toLocaleString("en-US")} run${data.count === 1 ? "" : "s"} · ${(data.elapsed_s * 1000).toFixed(0)} ms`);
  } catch (err) {
    data = { count: 0, columns: { hash: [], name: [] }, params: {}, metrics: [], damaged: [] };
    errorBox.hidden = false;
    errorBox.textContent = err instanceof ApiError ? err.message : `Cannot load runs: ${err.message || err}`;
    setStatus("");
  }
  columns = columnsOf(data);
  paramKeys.replaceChildren(...Object.keys(data.params).slice(0, 500).map((k) => h("option", { value: k })));
  notes.replaceChildren(notesFor(data) || "");
  brushes = new Map();
  build();
  draw();
  setReady(true);
}

/** The axes shown: the chosen params (else those that vary), then every metric column. */
function build() {
  const params = columns.filter((c) => c.key.startsWith("p:"));
  let chosen;
  if (state.params) {
    const wanted = state.params.split(",").map((s) => s.trim()).filter(Boolean);
    chosen = wanted.map((k) => params.find((c) => c.label === k)).filter(Boolean);
  } else {
    const varying = params.filter((c) => c.distinct > 1);
    chosen = (varying.length ? varying : params).slice(0, MAX_AUTO_AXES);
  }
  axes = [...chosen, ...columns.filter((c) => c.key.startsWith("m:"))].map((col) => ({ col, scale: scaleFor(col) }));
  const keep = state.color && axes.some((a) => a.col.key === state.color) ? state.color : (axes.length ? axes[axes.length - 1].col.key : "");
  colorSelect.replaceChildren(h("option", { value: "" }, "—"), ...axes.map((a) => h("option", { value: a.col.key, selected: a.col.key === keep }, a.col.label)));
  state.color = keep;
  const n = data.count;
  area.dataset.runCount = String(n);
  count.textContent = `${n.toLocaleString("en-US")} run${n === 1 ? "" : "s"}`;
  empty.hidden = n > 0 && axes.length > 0 || !errorBox.hidden;
  empty.textContent = n === 0 ? (state.q ? "No run matches this query." : "This repository has no runs yet.")
    : "These runs have no params to compare: name metrics above to compare their last values.";
  area.hidden = !empty.hidden || !errorBox.hidden || !axes.length;
}

function geometry(width, height) {
  const n = axes.length;
  const xs = axes.map((_, i) => (n === 1 ? width / 2 : SIDE + (i * (width - 2 * SIDE)) / (n - 1)));
  return { xs, top: TOP, bottom: height - BOTTOM - MISSING_GAP, missing: height - BOTTOM + 4 };
}

function yOf(g, axis, i) {
  const t = axis.scale.position(axis.col.values[i]);
  return t === null ? g.missing : g.bottom - t * (g.bottom - g.top);
}

function isSelected(g, i) {
  for (const [k, [a, b]] of brushes) {
    const axis = axes[k];
    if (!axis) continue;
    const y = yOf(g, axis, i);
    if (y < Math.min(a, b) || y > Math.max(a, b)) return false;
  }
  return true;
}

function draw() {
  if (!data) return;
  const { ctx, width, height } = fitCanvas(canvas);
  ctx.clearRect(0, 0, width, height);
  if (!axes.length) return;
  const g = geometry(width, height);
  const color = colorFor(axes.find((a) => a.col.key === state.color)?.col);
  const n = data.count;
  const selected = [];
  const faded = cssVar("--grid", "#e5e7eb");
  const line = (i) => {
    ctx.beginPath();
    axes.forEach((axis, k) => { const y = yOf(g, axis, i); if (k) ctx.lineTo(g.xs[k], y); else ctx.moveTo(g.xs[k], y); });
    ctx.stroke();
  };
  ctx.lineWidth = 1;
  for (let i = 0; i < n; i++) {
    if (isSelected(g, i)) { selected.push(i); continue; }
    ctx.strokeStyle = faded;
    line(i);
  }
  ctx.globalAlpha = n > 500 ? 0.5 : 0.85;
  for (const i of selected) { ctx.strokeStyle = color(i); line(i); }
  ctx.globalAlpha = 1;
  if (hovered >= 0 && hovered < n) { ctx.lineWidth = 3; ctx.strokeStyle = color(hovered); line(hovered); ctx.lineWidth = 1; }
  const fg = cssVar("--fg", "#1f2328"), muted = cssVar("--fg-muted", "#57606a");
  ctx.font = "11px system-ui, sans-serif";
  axes.forEach((axis, k) => {
    const x = g.xs[k];
    ctx.strokeStyle = muted;
    ctx.beginPath(); ctx.moveTo(x, g.top); ctx.lineTo(x, g.bottom); ctx.stroke();
    const brush = brushes.get(k);
    if (brush) {
      ctx.fillStyle = "rgba(37, 99, 235, 0.18)";
      ctx.fillRect(x - 9, Math.min(...brush), 18, Math.abs(brush[1] - brush[0]));
    }
    ctx.fillStyle = fg;
    ctx.textAlign = "center";
    ctx.textBaseline = "bottom";
    const room = axes.length > 1 ? (g.xs[1] - g.xs[0]) * 0.95 : width;
    ctx.fillText(clip(axis.col.label, room), x, g.top - 18);
    ctx.fillStyle = muted;
    ctx.textAlign = "left";
    ctx.textBaseline = "middle";
    for (const t of axis.scale.ticks()) ctx.fillText(clip(t.label, 60), x + 4, g.bottom - t.at * (g.bottom - g.top));
    if (axis.col.values.some((v) => axis.scale.position(v) === null)) {
      const last = k === axes.length - 1 && axes.length > 1;
      ctx.textAlign = last ? "right" : "left";
      ctx.fillText(last ? "none / NaN —" : "— none / NaN", last ? x - 4 : x + 4, g.missing);
    }
  });
  area.dataset.selectedCount = String(selected.length);
  const hashes = selected.map((i) => data.columns.hash[i]);
  const link = selectionQuery(g, hashes);
  if (hashes.length && !link) {
    selectionNote.textContent = `${hashes.length.toLocaleString("en-US")} runs cannot be named in one query: ` +
      `brush only params and metrics (not their none / NaN band), or select at most ${MAX_LINKED_RUNS}`;
    selectionNote.hidden = false;
  } else if (!checkFailed) {
    selectionNote.hidden = true;
  }
  const open = (page, label) => h("a", {
    class: `button${hashes.length && link ? "" : " disabled"}`, "aria-disabled": hashes.length && link ? "false" : "true",
    href: hashes.length && link ? pageUrl(page, link.q) : undefined,
    title: link ? "" : `brush only params and metrics (not their none / NaN band), or select at most ${MAX_LINKED_RUNS} runs, to open them`,
    onclick: (event) => { if (link && link.verify) { event.preventDefault(); openChecked(page, link.q, hashes); } },
  }, label);
  selection.replaceChildren(...[
    brushes.size ? h("span", {}, `${selected.length.toLocaleString("en-US")} selected `) : null,
    open("metrics", "Open in metrics"), open("runs", "Show in runs"),
    brushes.size ? h("button", { type: "button", onclick: () => { brushes.clear(); draw(); } }, "Clear selection") : null,
  ].filter(Boolean));
}

// -- the selection as a query -----------------------------------------------------------------

function pageUrl(page, q) {
  return q ? `${page}?q=${encodeURIComponent(q)}` : page;
}

/** The query of the selected runs: {q, verify} (verify: built from the brushes, to be checked
 * against the server), or null when none can be made. */
function selectionQuery(g, hashes) {
  if (!brushes.size) return { q: state.q.trim(), verify: false };
  const terms = [];
  for (const [k, [a, b]] of brushes) {
    const axis = axes[k];
    if (!axis) continue;
    const inside = [];
    for (let i = 0; i < data.count; i++) {
      const y = yOf(g, axis, i);
      if (y >= Math.min(a, b) && y <= Math.max(a, b)) inside.push(axis.col.values[i]);
    }
    const term = axisTerm(axis, inside);
    if (term === null) { terms.length = 0; break; }
    terms.push(term);
  }
  const own = state.q.trim();
  const q = [own ? `(${own})` : "", ...terms].filter(Boolean).join(" and ");
  if (terms.length && q.length <= 9000) return { q, verify: true };
  return hashes.length <= MAX_LINKED_RUNS ? { q: hashesQuery(hashes), verify: false } : null;
}

const PYTHON_KEYWORDS = new Set(("False None True and as assert async await break class continue def del elif else " +
  "except finally for from global if import in is lambda nonlocal not or pass raise return try while with yield").split(" "));

/** The AimQL expression of an axis: a param (`run["hparams"].lr`: the first key subscripted,
 * as `run.name` is the run's name, not a param) or a metric's last value
 * (`run.metrics["loss", {"subset": "val"}].last`). */
function axisExpr(col) {
  const part = (name, i) => (i && /^[A-Za-z_]\w*$/.test(name) && !PYTHON_KEYWORDS.has(name) ? `.${name}` : `[${JSON.stringify(name)}]`);
  if (col.key.startsWith("p:")) return `run${col.label.split(".").map(part).join("")}`;
  const metric = data.metrics.find((m) => m.label === col.label);
  return metric ? `run.metrics[${JSON.stringify(metric.name)}, ${JSON.stringify(metric.context || {})}].last` : null;
}

/** The condition that holds for exactly the `values` inside an axis's brush, or null. */
function axisTerm(axis, values) {
  const expr = axisExpr(axis.col);
  if (expr === null || values.some((v) => axis.scale.position(v) === null)) return null; // the none / NaN band
  if (axis.scale.numeric) {
    if (!values.every((v) => Number.isFinite(v) && (!Number.isInteger(v) || Number.isSafeInteger(v)))) return null;
    const lo = Math.min(...values), hi = Math.max(...values);
    return `(${expr} >= ${lo} and ${expr} <= ${hi})`;
  }
  const literal = (v) => (typeof v === "boolean" ? (v ? "True" : "False")
    : typeof v === "string" || (typeof v === "number" && Number.isFinite(v)) ? JSON.stringify(v) : null);
  const items = [...new Set(values.map(literal))];
  return items.some((x) => x === null) ? null : `${expr} in [${items.join(", ")}]`;
}

/** Open the brushed runs by their conditions once the server agrees they name exactly these
 * runs (a param key holding a dot, say, would not), else by their hashes. */
async function openChecked(page, q, hashes) {
  checkFailed = false;
  let same = false;
  try {
    const answer = await getJSON("api/runs", { q, sparse: 1 });
    const wanted = new Set(hashes);
    same = answer.columns.hash.length === wanted.size && answer.columns.hash.every((x) => wanted.has(x));
  } catch (_) { /* fall back to the hashes */ }
  if (same) location.href = pageUrl(page, q);
  else if (hashes.length <= MAX_LINKED_RUNS) location.href = pageUrl(page, hashesQuery(hashes));
  else {
    selectionNote.textContent = `these ${hashes.length.toLocaleString("en-US")} runs cannot be named in one query: select at most ${MAX_LINKED_RUNS}`;
    selectionNote.hidden = false;
    checkFailed = true;
  }
}

function nearestAxis(x, g) {
  let best = -1, dist = 14;
  g.xs.forEach((ax, k) => { if (Math.abs(ax - x) < dist) { dist = Math.abs(ax - x); best = k; } });
  return best;
}

function nearestRun(x, y, g) {
  let k = g.xs.findIndex((ax) => ax >= x);
  if (k <= 0) k = 1;
  if (axes.length < 2) return -1;
  const x0 = g.xs[k - 1], x1 = g.xs[k], f = (x - x0) / (x1 - x0 || 1);
  let best = -1, dist = 6;
  for (let i = 0; i < data.count; i++) {
    if (!isSelected(g, i)) continue;
    const yy = yOf(g, axes[k - 1], i) * (1 - f) + yOf(g, axes[k], i) * f;
    if (Math.abs(yy - y) < dist) { dist = Math.abs(yy - y); best = i; }
  }
  return best;
}

function local(event) {
  const box = canvas.getBoundingClientRect();
  return [event.clientX - box.left, event.clientY - box.top, box];
}

canvas.addEventListener("mousedown", (event) => {
  const [x, y, box] = local(event);
  const g = geometry(box.width, box.height);
  const k = nearestAxis(x, g);
  if (k < 0) return;
  drag = { k, start: y, moved: false };
  checkFailed = false;
  event.preventDefault();
});
window.addEventListener("mousemove", (event) => {
  if (!data || !axes.length) return;
  const [x, y, box] = local(event);
  const g = geometry(box.width, box.height);
  if (drag) {
    if (Math.abs(y - drag.start) > 3) drag.moved = true;
    if (drag.moved) brushes.set(drag.k, [Math.max(g.top, Math.min(g.missing + 8, drag.start)), Math.max(g.top, Math.min(g.missing + 8, y))]);
    draw();
    return;
  }
  if (event.target !== canvas) return;
  const i = nearestRun(x, y, g);
  if (i !== hovered) { hovered = i; draw(); }
  canvas.style.cursor = i >= 0 ? "pointer" : nearestAxis(x, g) >= 0 ? "ns-resize" : "default";
  if (i < 0) { tooltip.hidden = true; return; }
  tooltip.replaceChildren(h("div", { class: "tt-title" }, data.columns.name[i]),
    h("div", { class: "tt-detail" }, `run ${data.columns.hash[i].slice(0, 8)} · ${data.columns.experiment[i]}`),
    ...axes.map((a) => h("div", {}, `${a.col.label}: `, h("b", {}, fmtValue(a.col.values[i]) || "—"))));
  tooltip.hidden = false;
  tooltip.style.left = `${Math.min(x + 14, box.width - 260)}px`;
  tooltip.style.top = `${Math.max(0, y - 10)}px`;
});
let justBrushed = false;
window.addEventListener("mouseup", () => {
  if (!drag) return;
  justBrushed = drag.moved;
  drag = null;
  draw();
});
canvas.addEventListener("dblclick", (event) => {
  const [x, , box] = local(event);
  const k = nearestAxis(x, geometry(box.width, box.height));
  if (k >= 0) { brushes.delete(k); draw(); }
});
canvas.addEventListener("mouseleave", () => { tooltip.hidden = true; if (hovered >= 0) { hovered = -1; draw(); } });
canvas.addEventListener("click", (event) => {
  if (hovered >= 0 && !justBrushed) location.href = `runs/${data.columns.hash[hovered]}`;
  justBrushed = false;
  event.preventDefault();
});

async function loadMetricNames() {
  try {
    const answer = await getJSON("api/metrics/names");
    metricNames.replaceChildren(...answer.metrics.map((m) => h("option", { value: m.name })));
  } catch (_) { /* suggestions only */ }
}

window.addEventListener("popstate", () => {
  Object.assign(state, viewState(DEFAULTS, true).state);
  queryInput.value = state.q; paramsInput.value = state.params; metricsInput.value = state.metrics;
  load();
});
load().then(loadMetricNames);
