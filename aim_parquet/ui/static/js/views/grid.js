// A grid explorer of stored objects (images, audio clips, figures) at one step: the search bar,
// the step slider, grouping, and cards whose content loads as it scrolls into view. The kind's
// module supplies the card; this one does the rest.

import { ApiError, getJSON } from "../api.js";
import { fmtNumber, h, setReady, setStatus } from "../dom.js";
import { LazyLoader, fullQuery, groupSequences, notesFor, searchBar, stepSlider, viewState } from "../explorer.js";

const FIRST_CARDS = 96, CHUNK_CARDS = 200;

/**
 * kind: "images" | "audios" | "figures" (the query variable and the API path)
 * options: {defaults, placeholder, noun, emptyHint, toolbar(state, redraw) -> [elements],
 *           card(seq, run, rec, state) -> {el, target, load(target) -> Promise}}
 */
export function mountGrid(container, kind, options, { fixedQuery = "", inUrl = true } = {}) {
  const { state, save } = viewState(options.defaults, inUrl);
  let generation = 0;
  let listing = null;
  const lazy = new LazyLoader();
  const { form, input } = searchBar(state, options.placeholder, `${kind} query`,
    () => { state.step = ""; save(true); load(); });
  const errorBox = h("pre", { class: "error", hidden: true, role: "alert" });
  const notes = h("div", {});
  const count = h("span", { class: "count" });
  const slider = stepSlider((step) => { state.step = String(step); save(true); load(); });
  const listId = `${kind}-group-fields`;
  const groupInput = h("input", { type: "text", name: "group_by", value: state.group_by, class: "field-input",
    list: listId, "aria-label": "group by", autocomplete: "off" });
  const groupList = h("datalist", { id: listId },
    ["run.hash", "run.experiment", `${kind}.name`, `${kind}.context`, "step"].map((v) => h("option", { value: v })));
  groupInput.addEventListener("change", () => { state.group_by = groupInput.value.trim(); save(); render(); });
  const grid = h("div", { id: kind, class: `object-groups ${kind}-groups` });
  grid.dataset[options.countAttr || "objectCount"] = "0";
  const empty = h("div", { class: "empty", hidden: true });
  const extra = options.toolbar ? options.toolbar(state, () => { save(); render(); }) : [];
  container.append(form, errorBox,
    h("div", { class: "toolbar" }, count, slider.el, h("label", { class: "inline" }, "group by ", groupInput), groupList, ...extra),
    notes, empty, grid);

  async function load() {
    const mine = ++generation;
    setReady(false);
    setStatus("loading…");
    lazy.disconnect();
    try {
      const answer = await getJSON(`api/${kind}`, { q: fullQuery(fixedQuery, state.q), step: state.step });
      if (mine !== generation) return;
      listing = answer;
      errorBox.hidden = true;
      setStatus(`${answer.count.toLocaleString("en-US")} ${options.noun}${answer.count === 1 ? "" : "s"} · ${(answer.elapsed_s * 1000).toFixed(0)} ms`);
    } catch (err) {
      if (mine !== generation) return;
      listing = { steps: [], step: null, count: 0, listed: 0, sequences: [], runs: {}, unreadable: [], damaged: [] };
      errorBox.hidden = false;
      errorBox.textContent = err instanceof ApiError ? err.message : `Cannot load ${kind}: ${err.message || err}`;
      setStatus("");
    }
    await render();
  }

  async function render() {
    const mine = generation;
    setReady(false);
    lazy.disconnect();
    slider.set(listing.steps, listing.step);
    notes.replaceChildren(notesFor(fixedQuery ? { unreadable: listing.unreadable } : listing) || "");
    if (options.beforeRender) options.beforeRender(grid, state);
    // The first FIRST_CARDS cards (more than a screen of them) are made at once; the others
    // after the first screen is drawn, a chunk per frame, so a page of thousands of objects
    // shows its first screen as fast as a page of a hundred.
    const pending = [];
    const groups = groupSequences(listing, state.group_by, kind);
    grid.replaceChildren(...groups.map((group) => {
      const items = [];
      for (const seq of group.seqs) for (const rec of seq.records) items.push([seq, rec]);
      if (!items.length) return null;
      const box = h("div", { class: `object-grid ${kind}-grid` });
      pending.push(...items.map(([seq, rec]) => [box, seq, rec]));
      return h("section", { class: "object-group" },
        group.label ? h("h3", {}, group.label, h("small", {}, ` ${items.length} ${options.noun}${items.length === 1 ? "" : "s"}`)) : null,
        box);
    }));
    const make = (count) => {
      const targets = [];
      for (const [box, seq, rec] of pending.splice(0, count)) {
        const made = options.card(seq, listing.runs[seq.run], rec, state);
        if (made.target) targets.push(made.target);
        box.append(made.el);
      }
      return targets;
    };
    const targets = make(FIRST_CARDS);
    grid.dataset[options.countAttr || "objectCount"] = String(listing.count);
    const more = listing.count > listing.listed ? ` (the first ${listing.listed.toLocaleString("en-US")} shown: narrow the query)` : "";
    count.textContent = `${listing.count.toLocaleString("en-US")} ${options.noun}${listing.count === 1 ? "" : "s"}` +
      (listing.step === null || listing.step === undefined ? "" : ` at step ${fmtNumber(listing.step)}`) + more;
    empty.hidden = listing.count > 0 || !errorBox.hidden;
    empty.textContent = state.q || fixedQuery ? `No ${options.noun} matches this query at this step.` : options.emptyHint;
    await lazy.watch(targets, (target) => target._load());
    if (mine === generation) setReady(true);
    while (pending.length && mine === generation) {
      await new Promise((resolve) => requestAnimationFrame(resolve));
      if (mine === generation) lazy.more(make(CHUNK_CARDS));
    }
  }

  if (inUrl) {
    window.addEventListener("popstate", () => {
      Object.assign(state, viewState(options.defaults, true).state);
      input.value = state.q;
      groupInput.value = state.group_by;
      load();
    });
  }
  load();
  return { reload: load };
}
