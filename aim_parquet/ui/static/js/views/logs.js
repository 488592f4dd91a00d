// A run's terminal logs (virtualised: only the lines in view exist, fetched in chunks, so
// 100,000 lines scroll smoothly; search jumps between matching lines) and its log records.

import { ApiError, getJSON } from "../api.js";
import { fmtTime, fmtValue, h, setReady } from "../dom.js";

const LINE = 18, CHUNK = 500, OVERSCAN = 20;

export function mountLogs(container, hash, { active = false } = {}) {
  let total = 0, matches = [], matchAt = -1, needle = "";
  let hitSet = new Set(), searchGeneration = 0; // a new search redraws every row
  const chunks = new Map(); // chunk index -> Promise<[step, text][]>
  const pool = [];
  let frame = 0;
  const search = h("input", { type: "search", name: "log-search", placeholder: "search the logs", "aria-label": "search logs", class: "metrics-input" });
  const found = h("span", { class: "muted", id: "log-matches" });
  const prev = h("button", { type: "button", onclick: () => jump(-1), disabled: true }, "▲");
  const next = h("button", { type: "button", onclick: () => jump(1), disabled: true }, "▼");
  const end = h("button", { type: "button", onclick: () => { box.scrollTop = box.scrollHeight; } }, "End");
  const reload = h("button", { type: "button", onclick: () => load(true), hidden: !active }, "Refresh");
  const info = h("span", { class: "count" });
  const body = h("div", { class: "logs-body" });
  const box = h("div", { class: "logs-box", id: "logs", tabindex: "0", dataset: { lineCount: "0" } }, body);
  const errorBox = h("pre", { class: "error", hidden: true, role: "alert" });
  container.append(h("div", { class: "toolbar" }, info, h("form", { class: "inline", onsubmit: (e) => { e.preventDefault(); find(); } }, search, prev, next, found), h("span", { class: "actions" }, reload, end)),
    errorBox, box);
  box.addEventListener("scroll", () => {
    box.style.setProperty("--sx", `${box.scrollLeft}px`); // the line numbers follow a sideways scroll
    schedule();
  }, { passive: true });
  new ResizeObserver(schedule).observe(box);

  function chunk(index) {
    if (!chunks.has(index)) {
      chunks.set(index, getJSON(`api/runs/${hash}/logs`, { offset: index * CHUNK, limit: CHUNK }).then((a) => a.lines)
        .catch((err) => { chunks.delete(index); throw err; }));
    }
    return chunks.get(index);
  }

  function schedule() {
    if (frame) return;
    frame = requestAnimationFrame(() => { frame = 0; render(); });
  }

  async function render() {
    const top = box.scrollTop, height = box.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / LINE) - OVERSCAN);
    const last = Math.min(total, Math.ceil((top + height) / LINE) + OVERSCAN);
    while (pool.length < last - first) {
      const el = h("div", { class: "log-line" }, h("span", { class: "ln" }), h("span", { class: "tx" }));
      body.append(el);
      pool.push(el);
    }
    const needed = new Set();
    for (let i = first; i < last; i++) needed.add(Math.floor(i / CHUNK));
    const loaded = new Map();
    try {
      for (const c of needed) loaded.set(c, await chunk(c));
    } catch (err) {
      errorBox.hidden = false;
      errorBox.textContent = `Cannot load the logs: ${err.message || err}`;
      return;
    }
    const hits = hitSet;
    pool.forEach((el, k) => {
      const i = first + k;
      if (i >= last) { el.hidden = true; return; }
      el.hidden = false;
      const shownAs = `${i}:${searchGeneration}`;
      if (el.dataset.shown === shownAs) return; // already this line (rows are only moved)
      el.dataset.shown = shownAs;
      const line = loaded.get(Math.floor(i / CHUNK))[i % CHUNK];
      el.style.transform = `translateY(${i * LINE}px)`;
      el.classList.toggle("hit", hits.has(i));
      el.firstChild.textContent = String(i + 1);
      const text = line ? line[1] : "";
      const tx = el.lastChild;
      if (needle && hits.has(i)) {
        const at = text.toLowerCase().indexOf(needle);
        tx.replaceChildren(text.slice(0, at), h("mark", {}, text.slice(at, at + needle.length)), text.slice(at + needle.length));
      } else if (tx.textContent !== text || tx.childElementCount) {
        tx.textContent = text;
      }
    });
  }

  async function load(again = false) {
    setReady(false);
    if (again) { chunks.clear(); searchGeneration++; }
    try {
      const answer = await getJSON(`api/runs/${hash}/logs`, { offset: 0, limit: CHUNK });
      total = answer.total;
      chunks.set(0, Promise.resolve(answer.lines));
      errorBox.hidden = !answer.problem; // a damaged file: the lines that can be read, and why not all
      errorBox.textContent = answer.problem || "";
    } catch (err) {
      total = 0;
      errorBox.hidden = false;
      errorBox.textContent = err instanceof ApiError ? err.message : `Cannot load the logs: ${err.message || err}`;
    }
    body.style.height = `${total * LINE}px`;
    box.dataset.lineCount = String(total);
    info.textContent = total ? `${total.toLocaleString("en-US")} lines` : "";
    if (!total && errorBox.hidden) body.replaceChildren(h("div", { class: "vt-empty" }, "This run has no terminal output (it is captured unless the run was made with capture_terminal_logs=False)."));
    await render();
    setReady(true);
  }

  async function find() {
    needle = search.value.trim().toLowerCase();
    matches = [];
    matchAt = -1;
    if (needle) {
      setReady(false);
      try {
        const answer = await getJSON(`api/runs/${hash}/logs`, { offset: 0, limit: 0, search: needle });
        matches = answer.matches || [];
        found.textContent = answer.match_count ? `${answer.match_count.toLocaleString("en-US")} match${answer.match_count === 1 ? "" : "es"}` +
          (answer.match_count > matches.length ? ` (first ${matches.length.toLocaleString("en-US")})` : "") : "no match";
      } catch (err) {
        found.textContent = `search failed: ${err.message || err}`;
      }
      setReady(true);
    } else {
      found.textContent = "";
    }
    prev.disabled = next.disabled = !matches.length;
    hitSet = new Set(matches);
    searchGeneration++;
    if (matches.length) jump(1); else render();
  }

  async function jump(direction) {
    if (!matches.length) return;
    matchAt = (matchAt + direction + matches.length) % matches.length;
    const line = matches[matchAt];
    box.scrollTop = Math.max(0, line * LINE - box.clientHeight / 3);
    found.textContent = found.textContent.replace(/^(\d+ of )?/, `${matchAt + 1} of `);
    await render();
    // sideways too: the match may lie far along a long line (or the view was scrolled away)
    const mark = pool.find((el) => !el.hidden && el.dataset.shown === `${line}:${searchGeneration}`)?.querySelector("mark");
    if (mark) {
      const x = mark.offsetLeft;
      box.scrollLeft = x + mark.offsetWidth < box.clientWidth - 16 ? 0 : Math.max(0, x - box.clientWidth / 3);
    }
  }

  load();
}

const LEVELS = [["0", "all levels"], ["20", "INFO and above"], ["30", "WARNING and above"], ["40", "ERROR and above"]];

export function mountLogRecords(container, hash) {
  const level = h("select", { name: "level", "aria-label": "minimum level" }, LEVELS.map(([v, t]) => h("option", { value: v }, t)));
  const info = h("span", { class: "count" });
  const table = h("table", { class: "records", id: "log-records", dataset: { recordCount: "0" } });
  const errorBox = h("pre", { class: "error", hidden: true, role: "alert" });
  container.append(h("div", { class: "toolbar" }, info, h("label", { class: "inline" }, "show ", level)), errorBox, table);
  let records = [], problem = "";
  level.addEventListener("change", draw);

  function draw() {
    const min = Number(level.value);
    const shown = records.filter((r) => r.level >= min);
    table.dataset.recordCount = String(shown.length);
    table.replaceChildren(
      h("thead", {}, h("tr", {}, ["time", "level", "message", "details", "where"].map((c) => h("th", {}, c)))),
      h("tbody", {}, shown.length ? shown.slice().reverse().map((r) => h("tr", {},
        h("td", { class: "mono" }, r.timestamp ? fmtTime(r.timestamp) : `#${r.step}`),
        h("td", { class: `level level-${r.level_name}` }, r.level_name),
        h("td", {}, r.message),
        h("td", { class: "mono" }, Object.entries(r.extra || {}).map(([k, v]) => `${k}=${fmtValue(v)}`).join(" ")),
        h("td", { class: "mono muted" }, r.logger ? `${String(r.logger[0]).split("/").pop()}:${r.logger[1]}` : "")))
        : h("tr", {}, h("td", { colspan: 5, class: "vt-empty" }, records.length ? "No record at this level."
          : problem ? "No record could be read." : "This run has no log records (run.log_info(...), log_warning, log_error)."))));
  }

  (async () => {
    setReady(false);
    try {
      const answer = await getJSON(`api/runs/${hash}/log-records`);
      records = answer.records;
      problem = answer.problem || "";
      errorBox.hidden = !problem;
      errorBox.textContent = problem;
      info.textContent = `${answer.total.toLocaleString("en-US")} record${answer.total === 1 ? "" : "s"}`;
    } catch (err) {
      errorBox.hidden = false;
      errorBox.textContent = err instanceof ApiError ? err.message : `Cannot load the log records: ${err.message || err}`;
    }
    draw();
    setReady(true);
  })();
}
