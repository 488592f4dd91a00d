// What the object explorers (images, audio, figures, texts, distributions) share: the search
// bar, the step slider, grouping of sequences, the notes about damaged runs and unreadable
// sequences, and the object URLs. A view is mounted either as a page (its state in the URL) or
// inside the run page (its query fixed to one run, its state kept in memory).

import { fmtNumber, h } from "./dom.js";
import { readState, writeState } from "./state.js";
import { contextLabel } from "./series.js";

/** The query sent: the page's query, restricted to one run when the view is inside a run page. */
export function fullQuery(fixed, q) {
  const own = (q || "").trim();
  if (!fixed) return own;
  return own ? `(${fixed}) and (${own})` : fixed;
}

/** State kept in the URL (a page) or in memory (a view inside the run page). */
export function viewState(defaults, inUrl) {
  const state = inUrl ? readState(defaults) : { ...defaults };
  return {
    state,
    save(push = false) { if (inUrl) writeState(state, defaults, push); },
  };
}

export function searchBar(state, placeholder, label, onSearch) {
  const input = h("input", {
    class: "query", type: "search", name: "q", spellcheck: false, autocomplete: "off",
    value: state.q, placeholder, "aria-label": label,
  });
  const form = h("form", { class: "searchbar", onsubmit: (e) => { e.preventDefault(); state.q = input.value; onSearch(); } },
    input, h("button", { type: "submit", class: "primary" }, "Search"));
  return { form, input };
}

/** A slider over the steps the listing has; `onChange(step)` after the user lets go. */
export function stepSlider(onChange) {
  const range = h("input", { type: "range", name: "step", min: 0, max: 0, step: 1, value: 0, "aria-label": "step" });
  const text = h("span", { class: "mono step-value" });
  const wrap = h("label", { class: "inline step-slider" }, "step ", range, text);
  let steps = [];
  range.addEventListener("input", () => { text.textContent = fmtNumber(steps[Number(range.value)]); });
  range.addEventListener("change", () => onChange(steps[Number(range.value)]));
  return {
    el: wrap,
    set(allSteps, step) {
      steps = allSteps;
      wrap.hidden = steps.length < 2;
      range.max = String(Math.max(0, steps.length - 1));
      const at = steps.indexOf(step);
      range.value = String(at < 0 ? steps.length - 1 : at);
      text.textContent = step === null || step === undefined ? "" : fmtNumber(step);
    },
  };
}

/** The value of a grouping field for one sequence of a listing (`kind` is the query variable). */
export function groupValue(field, seq, run, kind) {
  if (field === "run.hash" || field === "run") return run ? `${run.name} · ${seq.run.slice(0, 8)}` : seq.run;
  if (field === "step") return seq.step === null ? "—" : `step ${fmtNumber(seq.step)}`;
  if (field === `${kind}.name` || field === "name") return seq.name;
  if (field === `${kind}.context`) return contextLabel(seq.context) || "(no context)";
  if (field.startsWith(`${kind}.context.`)) return String(seq.context[field.slice(kind.length + 9)] ?? "—");
  if (field.startsWith("run.") && run) {
    const path = field.slice(4);
    if (path in run) return String(run[path]);
    if (path in run.params) return `${path}=${JSON.stringify(run.params[path])}`;
    return `${path}=—`;
  }
  return "";
}

/** Sequences of a listing grouped by `field`, in order of first appearance. */
export function groupSequences(listing, field, kind) {
  const groups = new Map();
  for (const seq of listing.sequences) {
    const run = listing.runs[seq.run];
    const key = field ? groupValue(field, seq, run, kind) : "";
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(seq);
  }
  return [...groups.entries()].map(([label, seqs]) => ({ label, seqs }));
}

export function sequenceTitle(seq, run, kind) {
  const ctx = contextLabel(seq.context);
  const who = run ? run.name : seq.run.slice(0, 8);
  return `${who} · ${seq.name}${ctx ? ` (${ctx})` : ""}`;
}

/** The URL of one stored object (`size`: a thumbnail of at most that many pixels a side). */
export function objectUrl(seq, index, { size = 0, step = seq.step } = {}) {
  const params = new URLSearchParams();
  if (size) params.set("size", String(size));
  if (seq.version) params.set("v", seq.version);
  const query = params.toString();
  return `api/objects/${seq.run}/${seq.seq}/${step}/${index}${query ? `?${query}` : ""}`;
}

/** Notes under the toolbar: damaged runs skipped and sequences that could not be read. */
export function notesFor(answer) {
  const items = [];
  for (const bad of answer.damaged || []) {
    items.push(h("li", {}, h("b", {}, `run ${bad.hash.slice(0, 8)} is damaged and left out: `), bad.reason, ` (${bad.advice})`));
  }
  for (const bad of answer.unreadable || []) {
    const ctx = contextLabel(bad.context);
    items.push(h("li", {}, h("b", {}, `${bad.name}${ctx ? ` (${ctx})` : ""} of run ${bad.run.slice(0, 8)} cannot be read: `), bad.reason, ` (${bad.advice})`));
  }
  return items.length ? h("ul", { class: "notes", role: "note" }, items) : null;
}

/** Watches elements and calls `load(el)` once for each that comes near the viewport. The first
 * batch (what is on screen when the view is drawn) is returned as a promise of its loads, so a
 * view can say it is ready when its first screen is. */
export class LazyLoader {
  constructor(root = null) {
    this.first = null;
    this.firstDone = null;
    this.observer = new IntersectionObserver((entries) => this.seen(entries), { root, rootMargin: "300px 0px" });
  }

  watch(elements, load) {
    this.load = load;
    this.pending = new Set(elements);
    this.first = new Promise((resolve) => { this.firstDone = resolve; });
    if (!elements.length) this.firstDone();
    for (const el of elements) this.observer.observe(el);
    return this.first;
  }

  /** Watch more elements (with the same `load`), after the first batch. */
  more(elements) {
    for (const el of elements) this.observer.observe(el);
  }

  seen(entries) {
    const loads = [];
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      this.observer.unobserve(entry.target);
      loads.push(this.load(entry.target));
    }
    if (this.firstDone) {
      const done = this.firstDone;
      this.firstDone = null;
      Promise.allSettled(loads).then(() => done());
    }
  }

  disconnect() {
    this.observer.disconnect();
    if (this.firstDone) { this.firstDone(); this.firstDone = null; }
  }
}

/** A promise that settles when an <img>/<audio> has loaded or failed. */
export function settled(el, okEvent = "load") {
  return new Promise((resolve) => {
    el.addEventListener(okEvent, () => resolve(true), { once: true });
    el.addEventListener("error", () => resolve(false), { once: true });
  });
}

/** The server's JSON error message for a failed object URL (for a card that shows why). */
export async function objectError(url) {
  try {
    const response = await fetch(url);
    if (response.ok) return "";
    const body = await response.json();
    return body.message || `${response.status}`;
  } catch (err) {
    return String(err.message || err);
  }
}
