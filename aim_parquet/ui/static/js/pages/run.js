// The run page (/runs/HASH?tab=NAME): the run's overview (name, experiment, tags, times, status,
// an editable description), its params as a collapsible tree, every metric in a small chart
// with the system metrics in their own section, its terminal logs and log records, and a tab
// for each kind of object the run has. A damaged run shows what can still be read.

import { ApiError, getJSON, getSeries, send } from "../api.js";
import { Chart } from "../chart.js";
import { fmtDuration, fmtNumber, fmtTime, fmtValue, h, markNav, setReady, setStatus } from "../dom.js";
import { LazyLoader, notesFor } from "../explorer.js";
import { PALETTE, contextLabel, isolated, toNullable } from "../series.js";
import { readState, writeState } from "../state.js";
import { mountAudios } from "../views/audios.js";
import { mountDistributions } from "../views/distributions.js";
import { mountFigures } from "../views/figures.js";
import { mountImages } from "../views/images.js";
import { mountLogRecords, mountLogs } from "../views/logs.js";
import { mountTexts } from "../views/texts.js";

const DEFAULTS = { tab: "overview" };
const SYSTEM = "__system__";
const KIND_TABS = [
  ["images", "Images", ["aim.image", "list(aim.image)"], mountImages],
  ["distributions", "Distributions", ["aim.distribution", "list(aim.distribution)"], mountDistributions],
  ["texts", "Texts", ["aim.text", "list(aim.text)"], mountTexts],
  ["audios", "Audio", ["aim.audio", "list(aim.audio)"], mountAudios],
  ["figures", "Figures", ["aim.figure", "list(aim.figure)"], mountFigures],
];
const REFRESH_MS = 5000;

markNav("runs");
const hash = decodeURIComponent(location.pathname.split("/").pop());
const state = readState(DEFAULTS);
const app = document.getElementById("app");
const root = h("div", { id: "run", class: "tab-panel", dataset: { runHash: hash } });
app.append(root);
let run = null;
const chartFrames = new Map(); // chart title -> its section (kept across an active run's refreshes)
let filterWords = []; // the metric filter's words
let refreshTimer = 0;
const chartLoader = new LazyLoader();

async function start() {
  setReady(false);
  setStatus("loading…");
  try {
    run = await getJSON(`api/runs/${hash}`);
  } catch (err) {
    if (err instanceof ApiError && err.kind === "damaged") return damaged(err);
    root.append(h("pre", { class: "error", role: "alert" }, err instanceof ApiError ? err.message : `Cannot load this run: ${err.message || err}`),
      h("p", {}, h("a", { href: "runs" }, "← all runs")));
    setStatus("");
    setReady(true);
    return;
  }
  document.title = `${run.name} · aim_parquet`;
  setStatus("");
  const kinds = new Set(run.sequences.map((s) => s.kind));
  const names = new Set(run.sequences.map((s) => s.name));
  const tabs = [["overview", "Overview", () => overview()]];
  if (names.has("logs")) tabs.push(["logs", "Logs", (panel) => mountLogs(panel, hash, { active: run.active })]);
  if (names.has("__log_records")) tabs.push(["records", "Log records", (panel) => mountLogRecords(panel, hash)]);
  for (const [key, label, dtypes, mount] of KIND_TABS) {
    if (dtypes.some((d) => kinds.has(d))) tabs.push([key, label, (panel) => mount(panel, { fixedQuery: `run.hash == "${hash}"`, inUrl: false })]);
  }
  root.append(header(), tabBar(tabs));
}

function header() {
  const status = run.active ? h("span", { class: "badge" }, "● active") : h("span", { class: "muted" }, run.ended ? "finished" : "not finished (no process writes it)");
  const description = h("textarea", { name: "description", rows: 2, placeholder: "add a description" }, run.description || "");
  const message = h("span", { class: "muted", role: "status" });
  const save = h("button", { type: "button", onclick: async () => {
    save.disabled = true;
    try {
      const updated = await send("POST", `api/runs/${hash}`, { description: description.value.trim() || null });
      run.description = updated.description;
      message.textContent = "saved";
    } catch (err) {
      message.textContent = err.message || String(err);
    }
    save.disabled = false;
  } }, "Save description");
  return h("section", { class: "panel" },
    h("div", { class: "run-head" }, h("h1", {}, run.name), status, run.archived ? h("span", { class: "muted" }, "archived") : null),
    h("dl", { class: "run-facts" },
      h("dt", {}, "hash"), h("dd", { class: "mono" }, run.hash),
      h("dt", {}, "experiment"), h("dd", {}, run.experiment),
      h("dt", {}, "tags"), h("dd", {}, run.tags.length ? run.tags.join(", ") : "—"),
      h("dt", {}, "created"), h("dd", {}, fmtTime(run.created)),
      h("dt", {}, run.ended ? "ended" : "running for"), h("dd", {}, run.ended ? `${fmtTime(run.ended)} (${fmtDuration(run.duration)})` : fmtDuration(run.duration))),
    h("div", { class: "description" }, description, h("div", { class: "toolbar" }, save, message,
      h("a", { class: "button", href: `metrics?q=${encodeURIComponent(`run.hash == "${hash}"`)}` }, "Open in metrics explorer"))));
}

function tabBar(tabs) {
  const panels = new Map();
  const bar = h("div", { class: "tabs", role: "tablist" });
  const holder = h("div", { class: "tab-panel" });
  const select = (key) => {
    if (!tabs.some((t) => t[0] === key)) key = "overview";
    state.tab = key;
    writeState(state, DEFAULTS);
    for (const b of bar.children) b.setAttribute("aria-selected", b.dataset.tab === key ? "true" : "false");
    for (const [k, p] of panels) p.hidden = k !== key;
    if (!panels.has(key)) {
      const panel = h("div", { class: "tab-panel", dataset: { tab: key } });
      panels.set(key, panel);
      holder.append(panel);
      const tab = tabs.find((t) => t[0] === key);
      if (key === "overview") panel.append(tab[2]()); else tab[2](panel);
    }
  };
  for (const [key, label] of tabs) bar.append(h("button", { type: "button", role: "tab", dataset: { tab: key }, onclick: () => select(key) }, label));
  select(state.tab);
  return h("div", { class: "tab-panel" }, bar, holder);
}

function overview() {
  const metricsBox = h("div", { class: "charts small-charts", id: "run-metrics", dataset: { chartCount: "0", seriesCount: "0" } });
  const systemBox = h("div", { class: "charts small-charts", id: "run-system", dataset: { chartCount: "0" } });
  const notes = h("div", {});
  const systemTitle = h("h2", { class: "section-title", hidden: true }, "System");
  const filter = h("input", { type: "search", name: "metric-filter", placeholder: "filter metrics by name",
    "aria-label": "filter metrics", class: "metrics-input" });
  filter.addEventListener("input", () => {
    filterWords = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    for (const el of chartFrames.values()) el.hidden = !passesFilter(el);
  });
  const panel = h("div", { class: "tab-panel" },
    h("section", { class: "panel" }, h("h2", {}, "Params"), paramsTree(run.params)),
    h("div", { class: "toolbar" }, h("h2", { class: "section-title" }, "Metrics"), filter),
    notes, metricsBox, systemTitle, systemBox);
  loadCharts(metricsBox, systemBox, systemTitle, notes);
  return panel;
}

function paramsTree(params) {
  const keys = Object.keys(params || {});
  if (!keys.length) return h("p", { class: "muted", id: "params-tree" }, "This run has no params (set them with run[\"hparams\"] = {...}).");
  const node = (value, depth) => h("div", {}, Object.entries(value).map(([k, v]) => {
    if (v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length) {
      return h("details", { open: depth < 2 }, h("summary", {}, h("span", { class: "key" }, k), ` {${Object.keys(v).length}}`), node(v, depth + 1));
    }
    return h("div", { class: "leaf" }, h("span", { class: "key" }, `${k}: `), v === null ? "None" : fmtValue(v));
  }));
  return h("div", { class: "params-tree", id: "params-tree" }, node(params, 0));
}

/** Whether a chart's title holds every word of the metric filter. */
function passesFilter(el) {
  const title = (el.querySelector("h3 span") || el).textContent.toLowerCase();
  return filterWords.every((w) => title.includes(w));
}

/** The run's charts. Each chart's frame is made at once and drawn when it comes near the
 * screen (a run may have hundreds of metrics). An active run's refresh updates the charts in
 * place, so the filter, a drag-zoom and the scroll position stay (they were rebuilt, every
 * 5 s, unfiltered and unzoomed). */
async function loadCharts(metricsBox, systemBox, systemTitle, notes) {
  setReady(false);
  const width = Math.max(320, Math.floor((metricsBox.clientWidth || 1200) / 3));
  let answer = null;
  try {
    answer = await getSeries("api/metrics/search", { q: `run.hash == "${hash}"`, x: "step", chart_by: "metric.name", width });
  } catch (err) {
    notes.replaceChildren(h("pre", { class: "error", role: "alert" }, err.message || String(err)));
  }
  if (answer) {
    const { header, read } = answer;
    const fresh = [];
    let series = 0;
    for (const c of header.charts) {
      const system = c.title.startsWith(SYSTEM);
      let el = chartFrames.get(c.title);
      if (!el) {
        el = h("section", { class: "chart small-chart" },
          h("h3", {}, h("span", {}, system ? c.title.slice(SYSTEM.length) : c.title), h("small", {})));
        (system ? systemBox : metricsBox).append(el);
        chartFrames.set(c.title, el);
        el.hidden = !passesFilter(el);
        fresh.push(el);
      }
      const bad = c.series.reduce((n, s) => n + (s.nonfinite || 0), 0);
      el.dataset.maxStep = c.max_step ?? "";
      el.dataset.mode = c.mode;
      el.querySelector("h3 small").textContent = ` ${c.series.length} series · last step ${fmtNumber(c.max_step)}${bad ? ` · ${bad} NaN/inf not drawn` : ""}`;
      el._draw = () => drawChart(el, c, read);
      if (el._chart) el._draw(); // drawn before: new data, same chart
      series += c.series.length;
    }
    const drawn = chartLoader.watch(fresh, (el) => el._draw());
    const userCharts = metricsBox.querySelectorAll(":scope > section.chart").length;
    metricsBox.dataset.chartCount = String(userCharts);
    metricsBox.dataset.seriesCount = String(series);
    systemBox.dataset.chartCount = String(systemBox.querySelectorAll(":scope > section.chart").length);
    systemTitle.hidden = systemBox.dataset.chartCount === "0";
    const unreadable = header.unreadable || [];
    metricsBox.querySelector(":scope > .empty")?.remove();
    if (!userCharts) {
      metricsBox.append(h("div", { class: "empty" }, unreadable.length ? "No metric of this run can be read (see above)."
        : "This run has no metrics (track some with run.track(value, name=...))."));
    }
    notes.replaceChildren(notesFor({ unreadable }) || "");
    await drawn; // the charts on the first screen
  }
  setReady(true);
  clearTimeout(refreshTimer);
  if (run.active) refreshTimer = setTimeout(() => loadCharts(metricsBox, systemBox, systemTitle, notes), REFRESH_MS);
}

/** Draw (or redraw with new data) one chart of the run; a single value is drawn as a dot. */
function drawChart(el, c, read) {
  const lines = c.series.map((s, i) => {
    const values = toNullable(read(s.y));
    const name = s.name.startsWith(SYSTEM) ? s.name.slice(SYSTEM.length) : s.name;
    return { label: contextLabel(s.context) || name, color: PALETTE[i % PALETTE.length], values, points: isolated(values),
      detail: `last value ${fmtNumber(s.last_value)} at step ${fmtNumber(s.last_step)}` };
  });
  if (!el._chart) el._chart = new Chart(el, { xAxis: "step", xLabel: "step", approximate: c.mode === "binned", height: 180 });
  el._chart.approximate = c.mode === "binned";
  el._chart.draw(Array.from(read(c.x)), lines);
  const legend = h("div", { class: "legend" }, lines.map((l) => {
    const swatch = h("span", { class: "swatch" });
    swatch.style.background = l.color;
    return h("span", { class: "legend-item" }, swatch, l.label);
  }));
  if (el._legend) el._legend.replaceWith(legend); else el.append(legend);
  el._legend = legend;
}

async function damaged(err) {
  let salvage = null;
  try { salvage = await getJSON(`api/runs/${hash}/salvage`); } catch (_) { /* the banner still says why */ }
  const cached = salvage && salvage.cached;
  root.append(h("section", { class: "panel damage", role: "alert" },
    h("h1", {}, cached && cached.name ? cached.name : `Run ${hash}`),
    h("p", {}, h("b", {}, "This run is damaged: "), salvage ? salvage.reason : err.message),
    h("p", {}, `To see its charts again, ${salvage ? salvage.advice : "run `aim-parquet verify --repair`"}. Until then, this is what can still be read:`)));
  if (cached) {
    root.append(h("section", { class: "panel" }, h("h2", {}, "Last known properties (from the run index)"),
      h("dl", { class: "run-facts" },
        h("dt", {}, "hash"), h("dd", { class: "mono" }, hash),
        h("dt", {}, "experiment"), h("dd", {}, cached.experiment || "—"),
        h("dt", {}, "tags"), h("dd", {}, (cached.tags || []).join(", ") || "—"),
        h("dt", {}, "created"), h("dd", {}, fmtTime(cached.created))),
      h("h2", {}, "Params"), paramsTree(cached.params)));
  }
  const seqs = salvage ? salvage.sequences : [];
  root.append(h("section", { class: "panel", id: "salvaged-sequences", dataset: { sequenceCount: String(seqs.length) } },
    h("h2", {}, "Sequences found in its data files"),
    seqs.length ? h("table", { class: "records" }, h("thead", {}, h("tr", {}, ["name", "context", "kind", "points"].map((c) => h("th", {}, c)))),
      h("tbody", {}, seqs.map((s) => h("tr", {}, h("td", {}, s.name), h("td", {}, contextLabel(s.context)), h("td", { class: "mono" }, s.kind), h("td", {}, fmtNumber(s.count))))))
      : h("p", { class: "muted" }, salvage && salvage.scan_problem ? salvage.scan_problem : "No readable sequence was found.")));
  setStatus("damaged run");
  setReady(true);
}

start();
