// The run page (/runs/HASH?tab=NAME): the run's overview (name, experiment, tags, times, status,
// an editable description), its params as a collapsible tree, every metric in a small chart
// with the system metrics in their own section, its terminal logs and log records, and a tab
// for each kind of object the run has. A damaged run shows what can still be read.

import { ApiError, getJSON, getSeries, send } from "../api.js";
import { Chart } from "../chart.js";
import { fmtDuration, fmtNumber, fmtTime, fmtValue, h, markNav, setReady, setStatus } from "../dom.js";
import { LazyLoader, notesFor } from "../explorer.js";
import { PALETTE, contextLabel, toNullable } from "../series.js";
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
let charts = [];
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
    const words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
    for (const el of [...metricsBox.children, ...systemBox.children]) {
      const title = (el.querySelector("h3 span") || el).textContent.toLowerCase();
      el.hidden = !words.every((w) => title.includes(w));
    }
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
    return h("div", { class: "leaf" }, h("span", { class: "key" }, `${k}: `), fmtValue(v));
  }));
  return h("div", { class: "params-tree", id: "params-tree" }, node(params, 0));
}

async function loadCharts(metricsBox, systemBox, systemTitle, notes) {
  setReady(false);
  const width = Math.max(320, Math.floor((metricsBox.clientWidth || 1200) / 3));
  let answer;
  try {
    answer = await getSeries("api/metrics/search", { q: `run.hash == "${hash}"`, x: "step", chart_by: "metric.name", width });
  } catch (err) {
    metricsBox.replaceChildren(h("pre", { class: "error" }, err.message || String(err)));
    setReady(true);
    return;
  }
  const { header, read } = answer;
  for (const c of charts) c.destroy();
  charts = [];
  metricsBox.replaceChildren();
  systemBox.replaceChildren();
  let series = 0;
  // every chart's frame at once, its drawing when it comes near the screen (a run may have
  // hundreds of metrics)
  const frames = [];
  for (const c of header.charts) {
    const system = c.title.startsWith(SYSTEM);
    const el = h("section", { class: "chart small-chart", dataset: { maxStep: c.max_step ?? "", mode: c.mode } });
    const bad = c.series.reduce((n, s) => n + (s.nonfinite || 0), 0);
    el.append(h("h3", {}, h("span", {}, system ? c.title.slice(SYSTEM.length) : c.title),
      h("small", {}, ` ${c.series.length} series · last step ${fmtNumber(c.max_step)}${bad ? ` · ${bad} NaN/inf not drawn` : ""}`)));
    (system ? systemBox : metricsBox).append(el);
    el._draw = () => {
      const chart = new Chart(el, { xAxis: "step", xLabel: "step", approximate: c.mode === "binned", height: 180 });
      const lines = c.series.map((s, i) => ({
        label: contextLabel(s.context) || s.name, color: PALETTE[i % PALETTE.length], values: toNullable(read(s.y)),
        detail: `last value ${fmtNumber(s.last_value)} at step ${fmtNumber(s.last_step)}`,
      }));
      chart.draw(Array.from(read(c.x)), lines);
      el.append(h("div", { class: "legend" }, lines.map((l) => {
        const swatch = h("span", { class: "swatch" });
        swatch.style.background = l.color;
        return h("span", { class: "legend-item" }, swatch, l.label);
      })));
      charts.push(chart);
    };
    frames.push(el);
    series += c.series.length;
  }
  chartLoader.disconnect();
  const drawn = chartLoader.watch(frames, (el) => el._draw());
  const userCharts = metricsBox.childElementCount;
  metricsBox.dataset.chartCount = String(userCharts);
  metricsBox.dataset.seriesCount = String(series);
  systemBox.dataset.chartCount = String(systemBox.childElementCount);
  systemTitle.hidden = systemBox.childElementCount === 0;
  if (!userCharts) metricsBox.append(h("div", { class: "empty" }, "This run has no metrics (track some with run.track(value, name=...))."));
  notes.replaceChildren(notesFor({ unreadable: header.unreadable || [] }) || "");
  await drawn; // the charts on the first screen
  setReady(true);
  clearTimeout(refreshTimer);
  if (run.active) refreshTimer = setTimeout(() => loadCharts(metricsBox, systemBox, systemTitle, notes), REFRESH_MS);
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
