// The runs explorer (/runs, also the home page): a virtual table of the runs matching an AimQL
// run query, with sorting, column choice, last metric values, selection and run changes.

import { ApiError, MAX_LINKED_RUNS, getJSON, hashesQuery, send } from "../api.js";
import { ask, fmtDuration, fmtNumber, fmtTime, fmtValue, h, markNav, setReady, setStatus } from "../dom.js";
import { readState, writeState } from "../state.js";
import { VirtualTable, fitWidth } from "../table.js";

const DEFAULTS = { q: "", metrics: "", sort: "created:desc", params: "", archived: false };
const DEFAULT_PARAM_COLUMNS = 40;
const state = readState(DEFAULTS);
const selected = new Set();
let data = null;   // the last /api/runs answer
let rows = [];     // row objects, sorted
let loading = null;
let selectAllBox = null; // the header's "select all runs" box
const dense = new Map(); // param key -> its values, one per row (built when shown or sorted)

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
  moreColumns: true,
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
    const answer = await getJSON("api/runs", { q: effectiveQuery(), metrics: state.metrics, sparse: 1 });
    if (loading !== token) return;
    data = answer;
    dense.clear();
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

/** A param's values, one per row (the API sends a param few runs have as rows + values). */
function paramValues(key) {
  let values = dense.get(key);
  if (!values) {
    const column = data.params[key];
    if (Array.isArray(column)) values = column;
    else {
      values = new Array(data.count).fill(null);
      if (column) column.rows.forEach((row, j) => { values[row] = column.values[j]; });
    }
    dense.set(key, values);
  }
  return values;
}

function paramKeys() {
  return Object.keys(data.params || {});
}

/** The params shown by default: those most runs have, first (a key of one run's own must not
 * crowd out the learning rate every run has); alphabetical among equals. */
function defaultParams() {
  const runsWith = (key) => (Array.isArray(data.params[key]) ? data.count : data.params[key].rows.length);
  return paramKeys()
    .map((key, i) => [key, runsWith(key), i])
    .sort((a, b) => b[1] - a[1] || a[2] - b[2])
    .slice(0, DEFAULT_PARAM_COLUMNS)
    .map(([key]) => key);
}

function shownParams() {
  if (!state.params) return defaultParams();
  if (state.params === "-") return [];
  const wanted = state.params.split(",");
  return wanted.filter((k) => k in data.params);
}

// one collator for every comparison (localeCompare with options builds one per call: sorting
// 5,000 rows by name took 0.8 s)
const COLLATOR = new Intl.Collator(undefined, { numeric: true });

function cmp(a, b) {
  if (a === b) return 0;
  if (a === null || a === undefined) return 1;
  if (b === null || b === undefined) return -1;
  if (typeof a === "number" && typeof b === "number") return a - b;
  return COLLATOR.compare(String(a), String(b));
}

function sortValueFor(key) {
  if (key.startsWith("param:")) {
    const col = paramValues(key.slice(6));
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
  // widths fit the header and the values (a sample of rows): a fixed 240 px per metric pushed
  // the requested metrics and every param off the right edge of a 1280 px window
  const col = (key, label, render, extra = {}) => {
    const column = { key, label: label + arrow(key), render, sortValue: true, ...extra };
    column.width = column.width || fitWidth(column, rows);
    return column;
  };
  const columns = [
    { key: "select", label: "", width: 36, className: "center", sticky: true,
      create: () => h("input", { type: "checkbox", dataset: { action: "select" } }),
      update: (box, r) => { box.checked = selected.has(r.hash); box.setAttribute("aria-label", `select ${r.name}`); },
      header: () => {
        const all = h("input", { type: "checkbox", "aria-label": "select all runs" });
        selectAllBox = all;
        syncSelectAll();
        all.addEventListener("change", () => {
          if (all.checked) for (const r of rows) selected.add(r.hash); else selected.clear();
          table.refreshAll();
          renderActions();
        });
        return all;
      } },
    col("active", "", null, { width: 28, className: "center", sticky: true, create: () => h("span", { class: "dot" }),
      update: (dot, r) => {
        dot.className = r.active ? "dot live" : "dot";
        dot.title = r.active ? "active: a process is writing this run" : "finished";
      } }),
    col("name", "Name", null, { sticky: true, slack: 30, text: shownName, create: () => h("a", { dir: "auto" }),
      update: (a, r) => {
        a.href = `metrics?q=${encodeURIComponent(`run.hash == "${r.hash}"`)}`;
        a.title = r.description ? `${r.name}\n${r.description}` : r.name;
        a.textContent = shownName(r);
      } }),
    col("hash", "Hash", null, { className: "mono", width: 92, create: () => h("a", {}),
      update: (a, r) => { a.href = `runs/${r.hash}`; a.textContent = r.hash.slice(0, 8); a.title = `open the run page of ${r.hash}`; } }),
    col("experiment", "Experiment", (r) => r.experiment),
    col("tags", "Tags", (r) => r.tags.join(", ")),
    col("created", "Created", (r) => fmtTime(r.created)),
    col("duration", "Duration", (r) => fmtDuration(r.duration)),
  ];
  columns.push({ key: "edit", label: "", width: 36, className: "center",
    create: () => h("button", { type: "button", class: "link edit", "aria-label": "edit run", dataset: { action: "edit" } }, "✎"),
    update: (button, r) => { button.title = `edit name, description and tags of ${r.hash}`; } });
  if (state.archived) columns.push(col("archived", "Archived", (r) => (r.archived ? "yes" : "")));
  for (const metric of data ? orderedMetrics() : []) {
    const values = metric.values;
    const context = metric.label.slice(metric.name.length).trim().replace(/^\(|\)$/g, "");
    columns.push(col(`metric:${metric.label}`, metric.label, (r) => fmtNumber(values[r.i]),
      { className: "num", lines: [metric.name, context], title: metric.label }));
  }
  for (const key of data ? shownParams() : []) {
    const values = paramValues(key);
    const dot = key.lastIndexOf(".");
    columns.push(col(`param:${key}`, key, (r) => fmtValue(values[r.i]),
      { className: "num", lines: [key.slice(dot + 1), dot > 0 ? key.slice(0, dot) : ""], title: key }));
  }
  for (const column of columns) {
    if (column.lines) {
      const [main, detail] = column.lines;
      column.header = () => h("span", { class: "two-line" },
        h("span", { dir: "auto" }, main + arrow(column.key)), detail ? h("small", { dir: "auto" }, detail) : null);
    }
  }
  table.sort = { key: sortKey, dir: sortDir === "asc" ? 1 : -1 };
  table.setColumns(columns);
}

/** The name cell: the run's own name, or "Run: " and the short hash (the full default name
 * repeats the hash column). */
function shownName(r) {
  return r.name === `Run: ${r.hash}` ? `Run: ${r.hash.slice(0, 8)}` : r.name;
}

/** The metrics asked for, in the order they were asked for (contexts of one name together). */
function orderedMetrics() {
  const wanted = state.metrics.split(",").map((m) => m.trim());
  const rank = (m) => (wanted.indexOf(m.name) < 0 ? wanted.length : wanted.indexOf(m.name));
  return [...data.metrics].sort((a, b) => rank(a) - rank(b) || a.label.localeCompare(b.label));
}

/** The metrics explorer's link for the selected runs: the run query itself when every run of
 * it is selected, their hashes when they are few enough for a query (a 10,000-run selection
 * made a 360 KB URL the server refused), else null. */
function metricsLink(hashes) {
  if (hashes.length && hashes.length === rows.length) {
    const q = effectiveQuery();
    return q ? `metrics?q=${encodeURIComponent(q)}` : "metrics";
  }
  if (hashes.length > MAX_LINKED_RUNS) return null;
  return `metrics?q=${encodeURIComponent(hashesQuery(hashes))}`;
}

/** The header's box follows the rows' boxes: checked when all are, a dash when some are. */
function syncSelectAll() {
  if (!selectAllBox) return;
  selectAllBox.checked = rows.length > 0 && selected.size === rows.length;
  selectAllBox.indeterminate = selected.size > 0 && selected.size < rows.length;
}

function renderActions() {
  syncSelectAll();
  const n = selected.size;
  const hashes = [...selected];
  const link = n ? metricsLink(hashes) : "metrics";
  actions.replaceChildren(
    h("a", { class: `button${link ? "" : " disabled"}`, href: link || undefined, "aria-disabled": link ? "false" : "true",
      title: link ? "" : `select at most ${MAX_LINKED_RUNS} runs, or every run of the query, to open them together` },
      n ? `Open ${n.toLocaleString("en-US")} in metrics` : "Metrics explorer"),
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
  const before = { name: name.value, description: description.value, tags: tags.value };
  const answer = await ask("Edit run", body, [{ label: "Cancel", value: "cancel" }, { label: "Save", value: "save", class: "primary" }]);
  if (answer !== "save") return;
  // only what this form changed: another tab's edit of the other fields is kept
  const changes = {};
  if (name.value !== before.name) changes.name = name.value.trim() || null;
  if (description.value !== before.description) changes.description = description.value.trim() || null;
  if (tags.value !== before.tags) changes.tags = tags.value.split(",").map((t) => t.trim()).filter(Boolean);
  if (!Object.keys(changes).length) return;
  await each([row.hash], "edit", (hash) => send("POST", `api/runs/${hash}`, changes));
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
