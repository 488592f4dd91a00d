// The texts explorer: a table of the texts matching an AimQL texts query (run, name, context,
// step, index, text) with a search over their content; a click shows a text in full.

import { ApiError, getJSON } from "../api.js";
import { fmtNumber, h, setReady, setStatus } from "../dom.js";
import { fullQuery, notesFor, objectUrl, searchBar, viewState } from "../explorer.js";
import { contextLabel } from "../series.js";
import { VirtualTable } from "../table.js";

export const TEXTS_DEFAULTS = { q: "", search: "", offset: 0 };
const PAGE = 1000;

export function mountTexts(container, { fixedQuery = "", inUrl = true } = {}) {
  const { state, save } = viewState(TEXTS_DEFAULTS, inUrl);
  let generation = 0;
  let answer = null;
  let rows = [];
  const { form, input } = searchBar(state, "AimQL texts query, e.g. texts.name == 'predictions'", "texts query",
    () => { state.offset = 0; save(true); load(); });
  const searchInput = h("input", { type: "search", name: "search", value: state.search, placeholder: "find words in the texts",
    "aria-label": "search texts", class: "metrics-input" });
  searchInput.addEventListener("change", () => { state.search = searchInput.value.trim(); state.offset = 0; save(true); load(); });
  const errorBox = h("pre", { class: "error", hidden: true, role: "alert" });
  const notes = h("div", {});
  const count = h("span", { class: "count" });
  const prev = h("button", { type: "button", onclick: () => page(-1) }, "◀ Previous");
  const next = h("button", { type: "button", onclick: () => page(1) }, "Next ▶");
  const tableRoot = h("div", { class: "runs-table texts-table", id: "texts", dataset: { textCount: "0" } });
  container.append(form, errorBox,
    h("div", { class: "toolbar" }, count, h("label", { class: "inline" }, "Find ", searchInput), h("span", { class: "actions" }, prev, next)),
    notes, tableRoot);
  const table = new VirtualTable(tableRoot, { rowKey: (r) => `${r.run}:${r.seq}:${r.step}:${r.index}`, onSort: () => {}, rowClass: () => "" });
  table.setColumns([
    { key: "run", label: "Run", width: 200, render: (r) => (answer.runs[r.run] ? answer.runs[r.run].name : r.run.slice(0, 8)) },
    { key: "name", label: "Name", width: 140, render: (r) => r.name },
    { key: "context", label: "Context", width: 140, render: (r) => contextLabel(r.context) },
    { key: "step", label: "Step", width: 80, className: "num", render: (r) => fmtNumber(r.step) },
    { key: "index", label: "#", width: 44, className: "num", render: (r) => String(r.index) },
    { key: "text", label: "Text", width: 900, className: "text-cell", render: (r) => (r.text === "" ? "(empty)" : r.text.replace(/\s+/g, " ")) },
  ]);
  tableRoot.addEventListener("click", (event) => {
    const row = event.target instanceof Element ? event.target.closest(".vt-row") : null;
    const found = row && rows.find((r) => `${r.run}:${r.seq}:${r.step}:${r.index}` === row.dataset.key);
    if (found) show(found);
  });

  function page(direction) {
    state.offset = Math.max(0, Number(state.offset) + direction * PAGE);
    save(true);
    load();
  }

  async function load() {
    const mine = ++generation;
    setReady(false);
    setStatus("loading…");
    try {
      answer = await getJSON("api/texts", { q: fullQuery(fixedQuery, state.q), search: state.search, offset: state.offset, limit: PAGE });
      if (mine !== generation) return;
      errorBox.hidden = true;
      setStatus(`${answer.total.toLocaleString("en-US")} texts · ${(answer.elapsed_s * 1000).toFixed(0)} ms`);
    } catch (err) {
      if (mine !== generation) return;
      answer = { total: 0, offset: 0, rows: [], runs: {}, unreadable: [], damaged: [] };
      errorBox.hidden = false;
      errorBox.textContent = err instanceof ApiError ? err.message : `Cannot load texts: ${err.message || err}`;
      setStatus("");
    }
    rows = answer.rows;
    notes.replaceChildren(notesFor(fixedQuery ? { unreadable: answer.unreadable } : answer) || "");
    const none = state.search ? `No text contains “${state.search}”.` : (state.q || fixedQuery ? "No text matches this query."
      : "This repository has no texts yet: track some with run.track(aim.Text(string), name=...).");
    table.setRows(rows, none);
    tableRoot.dataset.textCount = String(answer.total);
    const first = answer.total ? answer.offset + 1 : 0;
    count.textContent = answer.total > rows.length
      ? `${first.toLocaleString("en-US")}–${(answer.offset + rows.length).toLocaleString("en-US")} of ${answer.total.toLocaleString("en-US")} texts`
      : `${answer.total.toLocaleString("en-US")} text${answer.total === 1 ? "" : "s"}`;
    prev.disabled = answer.offset <= 0;
    next.disabled = answer.offset + rows.length >= answer.total;
    prev.hidden = next.hidden = answer.total <= PAGE;
    setReady(true);
  }

  async function show(row) {
    const body = h("pre", { class: "full-text" }, row.truncated ? "loading…" : row.text);
    const dialog = h("dialog", { class: "modal text-modal" },
      h("form", { method: "dialog" },
        h("h2", {}, `${row.name} · step ${fmtNumber(row.step)} · #${row.index}`),
        h("p", { class: "muted" }, `${answer.runs[row.run] ? answer.runs[row.run].name : row.run} ${contextLabel(row.context)} · ${row.length.toLocaleString("en-US")} characters`),
        body, h("div", { class: "buttons" }, h("button", { type: "submit", class: "primary" }, "Close"))));
    dialog.addEventListener("close", () => dialog.remove());
    document.body.append(dialog);
    dialog.showModal();
    if (row.truncated) {
      const response = await fetch(objectUrl({ run: row.run, seq: row.seq, step: row.step, version: "" }, row.index));
      body.textContent = response.ok ? await response.text() : `cannot load the text (${response.status})`;
    }
  }

  if (inUrl) window.addEventListener("popstate", () => { Object.assign(state, viewState(TEXTS_DEFAULTS, true).state); input.value = state.q; searchInput.value = state.search; load(); });
  load();
  return { reload: load };
}
