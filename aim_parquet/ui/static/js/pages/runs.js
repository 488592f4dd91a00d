// The runs explorer (/runs, also the home page): a virtual table of the runs matching an AimQL
// run query, with sorting, column choice, last metric values, selection and run changes.

import { ApiError, getJSON, send } from "../api.js";
import { ask, fmtDuration, fmtNumber, fmtTime, fmtValue, h, markNav, setReady, setStatus } from "../dom.js";
import { readState, writeState } from "../state.js";
import { VirtualTable } from "../table.js";

const DEFAULTS = { q: "", metrics: "", sort: "created:desc", params: "", archived: false };
const DEFAULT_PARAM_COLUMNS = 40;
const state = readState(DEFAULTS);
const selected = new Set();
let data = null;   // the last /api/runs answer
let rows = [];     // row objects, sorted
let loading = null;

markNav("runs");
const app = document.getElementById("app");
const queryInput = h("input", {
  class: "query", type: "search", name: "q", spellcheck: false, autocomplete: "off",
  placeholder: "AimQL run query, e.g. run.hparams.lr > 0.001 and run.experiment == 'baseline'",
  value: state.q, "aria-label": "run query",
});
const metricsInput = h("input", {
  class: "metrics-input", type: "text", name: "metrics", list: "metric-names", autocomplete: "off",
  placeholder: "last value of: loss, acc", value: state.metrics, "aria-label": "metrics to show",
});
const archivedBox = h("input", { type: "checkbox", checked: state.archived, name: "archived" });
const errorBox = h("pre", { class: "error", hidden: true, role: "alert" });
const countEl = h("span", { class: "count" });
const actions = h("span", { class: "actions" });
const tableRoot = h("div", { class: "runs-table", id: "runs-table", dataset: { runCount: "0" } });
const datalist = h("datalist", { id: "metric-names" });
const columnsButton = h("button", { type: "button", onclick: () => chooseColumns() }, "Columns…");

app.append(
  h("form", { class: "searchbar", onsubmit: (e) => { e.preventDefault(); search(true); } },
    queryInput, h("button", { type: "submit", class: "primary" }, "Search")),
  errorBox,
  h("div", { class: "toolbar" },
    countEl,
    h("label", { class: "inline" }, archivedBox, " include archived"),
    h("label", { class: "inline" }, "Metrics ", metricsInput),
    columnsButton, actions),
  tableRoot, datalist);

archivedBox.addEventListener("change", () => search(true));
metricsInput.addEventListener("change", () => search(true));

const table = new VirtualTable(tableRoot, {
  rowKey: (row) => row.hash,
  onSort: (key) => {
    const [current, dir] = parseSort();
    state.sort = `${key}:${current === key && dir === "asc" ? "desc" : "asc"}`;
    writeState(state, DEFAULTS);
    applySort();
    renderColumns();
  },
  rowClass: (row) => `${selected.has(row.hash) ? "selected" : ""} ${row.archived ? "archived" : ""}`,
});

/** "param:hparams.lr:asc" -> ["param:hparams.lr", "asc"] (keys may hold colons). */
function parseSort() {
  const at = state.sort.lastIndexOf(":");
  return at < 0 ? [state.sort, "desc"] : [state.sort.slice(0, at), state.sort.slice(at + 1)];
}

function effectiveQuery() {
  const q = state.q.trim();
  if (!state.archived) return q;
  return q ? `(${q}) and run.archived in (True, False)` : "run.archived in (True, False)";
}

async function search(push = false) {
  state.q = queryInput.value;
  state.metrics = metricsInput.value.split(",").map((s) => s.trim()).filter(Boolean).join(",");
  state.archived = archivedBox.checked;
  writeState(state, DEFAULTS, push);
  await load();
}

async function load() {
  setReady(false);
  setStatus("loading…");
  const token = {};
  loading = token;
  try {
    const answer = await getJSON("api/runs", { q: effectiveQuery(), metrics: state.metrics });
    if (loading !== token) return;
    data = answer;
    errorBox.hidden = true;
    buildRows();
    for (const hash of [...selected]) if (!rows.some((r) => r.hash === hash)) selected.delete(hash);
    renderColumns();
    applySort();
    const damaged = data.damaged.length ? ` · ${data.damaged.length} damaged run(s) skipped: run aim-parquet verify` : "";
    setStatus(`${data.count.toLocaleString("en-US")} runs in ${(data.elapsed_s * 1000).toFixed(0)} ms${damaged}`);
  } catch (err) {
    if (loading !== token) return;
    showError(err);
    data = { count: 0, columns: {}, params: {}, metrics: [], damaged: [] };
    rows = [];
    renderColumns();
    applySort();
    setStatus("");
  }
  tableRoot.dataset.runCount = String(rows.length);
  countEl.textContent = `${rows.length.toLocaleString("en-US")} run${rows.length === 1 ? "" : "s"}`;
  renderActions();
  setReady(true);
}

function showError(err) {
  errorBox.hidden = false;
  errorBox.textContent = err instanceof ApiError ? err.message : `Cannot load runs: ${err.message || err}`;
}

function buildRows() {
  const cols = data.columns;
  const n = data.count;
  rows = new Array(n);
  for (let i = 0; i < n; i++) {
    rows[i] = {
      i,
      hash: cols.hash[i], name: cols.name[i], experiment: cols.experiment[i], tags: cols.tags[i],
      description: cols.description[i], created: cols.created[i], ended: cols.ended[i],
      duration: cols.duration[i], active: cols.active[i], archived: cols.archived[i],
    };
  }
}

function paramKeys() {
  return Object.keys(data.params || {});
}

function shownParams() {
  const all = paramKeys();
  if (!state.params) return all.slice(0, DEFAULT_PARAM_COLUMNS);
  if (state.params === "-") return [];
  const wanted = state.params.split(",");
  return wanted.filter((k) => k in data.params);
}

function cmp(a, b) {
  if (a === b) return 0;
  if (a === null || a === undefined) return 1;
  if (b === null || b === undefined) return -1;
  if (typeof a === "number" && typeof b === "number") return a - b;
  return String(a).localeCompare(String(b), undefined, { numeric: true });
}

function sortValueFor(key) {
  if (key.startsWith("param:")) {
    const col = data.params[key.slice(6)] || [];
    return (row) => col[row.i];
  }
  if (key.startsWith("metric:")) {
    const metric = data.metrics.find((m) => m.label === key.slice(7));
    return (row) => (metric ? metric.values[row.i] : null);
  }
  if (key === "tags") return (row) => row.tags.join(",");
  return (row) => row[key];
}

function applySort() {
  const [key, dir] = parseSort();
  const value = sortValueFor(key);
  const sign = dir === "asc" ? 1 : -1;
  rows.sort((a, b) => {
    const va = value(a), vb = value(b);
    if (va === null || va === undefined) return vb === null || vb === undefined ? 0 : 1;
    if (vb === null || vb === undefined) return -1;
    return sign * cmp(va, vb);
  });
  table.setRows(rows, data && data.count === 0 ? "No run matches this query." : "");
}

// Row controls are made once per pooled row and patched while scrolling; clicks are handled
// once, on the table, by the row's data-key.
tableRoot.addEventListener("change", (event) => {
  const box = event.target;
  if (!(box instanceof HTMLInputElement) || box.dataset.action !== "select") return;
  const hash = box.closest(".vt-row").dataset.key;
  if (box.checked) selected.add(hash); else selected.delete(hash);
  table.refreshAll();
  renderActions();
});
tableRoot.addEventListener("click", (event) => {
  const button = event.target instanceof Element ? event.target.closest("button[data-action=edit]") : null;
  if (!button) return;
  const hash = button.closest(".vt-row").dataset.key;
  const row = rows.find((r) => r.hash === hash);
  if (row) editRun(row);
});

function renderColumns() {
  const [sortKey, sortDir] = parseSort();
  const arrow = (key) => (key === sortKey ? (sortDir === "asc" ? " ▲" : " ▼") : "");
  const col = (key, label, width, render, extra = {}) =>
    ({ key, label: label + arrow(key), width, render, sortValue: true, ...extra });
  const columns = [
    { key: "select", label: "", width: 36, className: "center",
      create: () => h("input", { type: "checkbox", dataset: { action: "select" } }),
      update: (box, r) => { box.checked = selected.has(r.hash); box.setAttribute("aria-label", `select ${r.name}`); },
      header: () => {
        const all = h("input", { type: "checkbox", "aria-label": "select all runs",
          checked: rows.length > 0 && selected.size === rows.length });
        all.addEventListener("change", () => {
          if (all.checked) for (const r of rows) selected.add(r.hash); else selected.clear();
          table.refreshAll();
          renderActions();
        });
        return all;
      } },
    col("active", "", 28, null, { className: "center", create: () => h("span", { class: "dot" }),
      update: (dot, r) => {
        dot.className = r.active ? "dot live" : "dot";
        dot.title = r.active ? "active: a process is writing this run" : "finished";
      } }),
    col("name", "Name", 220, null, { create: () => h("a", {}),
      update: (a, r) => {
        a.href = `metrics?q=${encodeURIComponent(`run.hash == "${r.hash}"`)}`;
        a.title = r.description ? `${r.name}\n${r.description}` : r.name;
        a.textContent = r.name;
      } }),
    col("hash", "Hash", 96, null, { className: "mono", create: () => h("a", {}),
      update: (a, r) => { a.href = `runs/${r.hash}`; a.textContent = r.hash.slice(0, 8); a.title = `open the run page of ${r.hash}`; } }),
    col("experiment", "Experiment", 120, (r) => r.experiment),
    col("tags", "Tags", 130, (r) => r.tags.join(", ")),
    col("created", "Created", 170, (r) => fmtTime(r.created)),
    col("duration", "Duration", 90, (r) => fmtDuration(r.duration)),
  ];
  columns.push({ key: "edit", label: "", width: 40, className: "center",
    create: () => h("button", { type: "button", class: "link edit", "aria-label": "edit run", dataset: { action: "edit" } }, "✎"),
    update: (button, r) => { button.title = `edit name, description and tags of ${r.hash}`; } });
  if (state.archived) columns.push(col("archived", "Archived", 80, (r) => (r.archived ? "yes" : "")));
  for (const metric of data ? data.metrics : []) {
    const values = metric.values;
    columns.push(col(`metric:${metric.label}`, metric.label, labelWidth(metric.label), (r) => fmtNumber(values[r.i]), { className: "num" }));
  }
  for (const key of data ? shownParams() : []) {
    const values = data.params[key];
    columns.push(col(`param:${key}`, key, labelWidth(key), (r) => fmtValue(values[r.i]), { className: "num" }));
  }
  table.sort = { key: sortKey, dir: sortDir === "asc" ? 1 : -1 };
  table.setColumns(columns);
}

/** A column wide enough for its header (and the sort arrow), within reason. */
function labelWidth(label) {
  return Math.max(100, Math.min(240, Math.round(label.length * 7.5) + 36));
}

function renderActions() {
  const n = selected.size;
  const hashes = [...selected];
  const list = hashes.map((x) => `"${x}"`).join(", ");
  actions.replaceChildren(
    h("a", { class: `button${n ? "" : " disabled"}`, href: n ? `metrics?q=${encodeURIComponent(`run.hash in [${list}]`)}` : "metrics", "aria-disabled": n ? "false" : "true" },
      n ? `Open ${n} in metrics` : "Metrics explorer"),
    h("button", { type: "button", disabled: !n, onclick: () => archive(hashes, true) }, "Archive"),
    h("button", { type: "button", disabled: !n, onclick: () => archive(hashes, false) }, "Unarchive"),
    h("button", { type: "button", class: "danger", disabled: !n, onclick: () => remove(hashes) }, "Delete…"));
}

async function each(hashes, what, fn) {
  setReady(false);
  const failures = [];
  for (const hash of hashes) {
    try { await fn(hash); } catch (err) { failures.push(`${hash.slice(0, 8)}: ${err.message}`); }
  }
  if (failures.length) {
    errorBox.hidden = false;
    errorBox.textContent = `Could not ${what} ${failures.length} run(s):\n${failures.join("\n")}`;
  }
  await load();
  if (failures.length) { errorBox.hidden = false; }
}

function archive(hashes, archived) {
  return each(hashes, archived ? "archive" : "unarchive",
    (hash) => send("POST", `api/runs/${hash}/archive`, { archived }));
}

async function remove(hashes) {
  const answer = await ask(`Delete ${hashes.length} run${hashes.length === 1 ? "" : "s"}?`,
    h("p", {}, "Their files are removed from the repository. This cannot be undone."),
    [{ label: "Cancel", value: "cancel" }, { label: "Delete", value: "delete", class: "danger" }]);
  if (answer !== "delete") return;
  await each(hashes, "delete", async (hash) => {
    await send("DELETE", `api/runs/${hash}`);
    selected.delete(hash);
  });
}

async function editRun(row) {
  const name = h("input", { name: "name", value: row.name.startsWith("Run: ") ? "" : row.name, placeholder: row.name });
  const description = h("textarea", { name: "description", rows: 3 }, row.description || "");
  const tags = h("input", { name: "tags", value: row.tags.join(", "), placeholder: "tag1, tag2" });
  const body = h("div", { class: "form" },
    h("p", { class: "mono" }, row.hash),
    h("label", {}, "Name", name), h("label", {}, "Description", description), h("label", {}, "Tags (comma separated)", tags));
  const answer = await ask("Edit run", body, [{ label: "Cancel", value: "cancel" }, { label: "Save", value: "save", class: "primary" }]);
  if (answer !== "save") return;
  await each([row.hash], "edit", (hash) => send("POST", `api/runs/${hash}`, {
    name: name.value.trim() || null,
    description: description.value.trim() || null,
    tags: tags.value.split(",").map((t) => t.trim()).filter(Boolean),
  }));
}

async function chooseColumns() {
  const keys = paramKeys();
  const shown = new Set(shownParams());
  const filter = h("input", { type: "search", placeholder: `filter ${keys.length} params` });
  const boxes = keys.map((key) => h("label", { class: "check", dataset: { key } },
    h("input", { type: "checkbox", value: key, checked: shown.has(key) }), " ", key));
  const list = h("div", { class: "column-list" }, boxes.length ? boxes : h("p", {}, "These runs have no params."));
  filter.addEventListener("input", () => {
    const f = filter.value.toLowerCase();
    for (const b of boxes) b.hidden = !b.dataset.key.toLowerCase().includes(f);
  });
  const answer = await ask("Param columns", h("div", {}, filter, list),
    [{ label: "Cancel", value: "cancel" }, { label: "Show chosen", value: "ok", class: "primary" }]);
  if (answer !== "ok") return;
  const chosen = boxes.map((b) => b.querySelector("input")).filter((i) => i.checked).map((i) => i.value);
  state.params = chosen.length ? chosen.join(",") : "-";
  writeState(state, DEFAULTS, true);
  renderColumns();
}

async function loadMetricNames() {
  try {
    const answer = await getJSON("api/metrics/names");
    datalist.replaceChildren(...answer.metrics.map((m) => h("option", { value: m.name })));
  } catch (_) { /* suggestions only */ }
}

window.addEventListener("popstate", () => {
  Object.assign(state, readState(DEFAULTS));
  queryInput.value = state.q;
  metricsInput.value = state.metrics;
  archivedBox.checked = state.archived;
  load();
});

load().then(loadMetricNames);
