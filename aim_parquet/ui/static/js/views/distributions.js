// The distributions explorer: for each distribution sequence matching an AimQL query, a heat
// map of its histograms over steps (value up, step across, darker = more weight in that step)
// and one step's histogram as stored, chosen by hovering the heat map or with the slider.

import { ApiError, getSeries } from "../api.js";
import { fmtNumber, h, setReady, setStatus } from "../dom.js";
import { LazyLoader, fullQuery, notesFor, searchBar, sequenceTitle, viewState } from "../explorer.js";

export const DISTRIBUTIONS_DEFAULTS = { q: "" };
const HEAT_HEIGHT = 220, HIST_HEIGHT = 150, LEFT = 64, BOTTOM = 22;

function css(name, fallback) {
  return getComputedStyle(document.body).getPropertyValue(name).trim() || fallback;
}

function rgb(hex) {
  const m = /^#?([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex);
  return m ? [parseInt(m[1], 16), parseInt(m[2], 16), parseInt(m[3], 16)] : [37, 99, 235];
}

function canvas(height) {
  const el = h("canvas", { class: "dist-canvas" });
  el.style.height = `${height}px`;
  return el;
}

function sized(el) {
  const ratio = window.devicePixelRatio || 1;
  const width = Math.max(200, el.clientWidth || 600);
  const height = parseInt(el.style.height, 10);
  el.width = Math.round(width * ratio);
  el.height = Math.round(height * ratio);
  const ctx = el.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  return { ctx, width, height };
}

function ticks(lo, hi, count) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

class DistributionCard {
  constructor(seq, run, read) {
    this.seq = seq;
    this.steps = read(seq.steps);
    this.lo = read(seq.lo);
    this.hi = read(seq.hi);
    this.counts = read(seq.counts);
    this.weights = read(seq.weights);
    this.heat = read(seq.heat.values);
    this.offsets = new Array(this.steps.length);
    let at = 0;
    for (let i = 0; i < this.steps.length; i++) { this.offsets[i] = at; at += this.counts[i]; }
    this.at = this.steps.length - 1;
    this.heatCanvas = canvas(HEAT_HEIGHT);
    this.histCanvas = canvas(HIST_HEIGHT);
    this.label = h("span", { class: "mono" });
    this.slider = h("input", { type: "range", min: 0, max: Math.max(0, this.steps.length - 1), value: this.at, "aria-label": "step" });
    this.slider.addEventListener("input", () => this.select(Number(this.slider.value)));
    this.heatCanvas.addEventListener("mousemove", (e) => {
      const box = this.heatCanvas.getBoundingClientRect();
      const x = e.clientX - box.left - LEFT;
      const width = box.width - LEFT - 8;
      if (x < 0 || x > width || !this.steps.length) return;
      this.select(Math.min(this.steps.length - 1, Math.floor((x / width) * this.steps.length)));
    });
    const shown = seq.total_steps > this.steps.length ? ` · ${this.steps.length} of ${seq.total_steps} steps shown` : "";
    this.drawn = false;
    this.el = h("section", { class: "chart dist-card", dataset: { steps: String(this.steps.length) } },
      h("h3", {}, sequenceTitle(seq, run, "distributions"), h("small", {}, ` ${seq.total_steps} step${seq.total_steps === 1 ? "" : "s"}${shown}`)),
      this.heatCanvas,
      h("div", { class: "toolbar" }, h("label", { class: "inline" }, "step ", this.slider), this.label),
      this.histCanvas);
    if (!this.steps.length) {
      this.el.replaceChildren(this.el.firstChild, this.label,
        h("p", { class: "muted" }, "This sequence holds no histogram yet (its writer has not flushed one)."));
    }
    this.el._card = this;
  }

  draw() {
    if (!this.steps.length) { this.label.textContent = "no step"; return; }
    this.drawHeat();
    this.select(this.at);
  }

  drawHeat() {
    const { ctx, width, height } = sized(this.heatCanvas);
    const n = this.steps.length, bins = this.seq.heat.bins;
    const fg = css("--fg-muted", "#57606a"), accent = rgb(css("--accent", "#2563eb")), bg = rgb(css("--bg", "#ffffff"));
    ctx.clearRect(0, 0, width, height);
    const plotW = width - LEFT - 8, plotH = height - BOTTOM - 4;
    if (n && bins) {
      const image = new ImageData(n, bins);
      for (let i = 0; i < n; i++) {
        let max = 0;
        for (let b = 0; b < bins; b++) max = Math.max(max, this.heat[i * bins + b]);
        for (let b = 0; b < bins; b++) {
          const t = max > 0 ? this.heat[i * bins + b] / max : 0;
          const p = ((bins - 1 - b) * n + i) * 4;
          for (let c = 0; c < 3; c++) image.data[p + c] = Math.round(bg[c] + (accent[c] - bg[c]) * t);
          image.data[p + 3] = 255;
        }
      }
      const off = new OffscreenCanvas(n, bins);
      off.getContext("2d").putImageData(image, 0, 0);
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(off, LEFT, 4, plotW, plotH);
    }
    ctx.fillStyle = fg;
    ctx.strokeStyle = fg;
    ctx.font = "11px system-ui, sans-serif";
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    const { lo, hi } = this.seq.heat;
    for (const v of ticks(lo, hi, 5)) {
      const y = 4 + plotH - ((v - lo) / (hi - lo)) * plotH;
      ctx.fillText(fmtNumber(v), LEFT - 6, y);
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    if (n) {
      const first = this.steps[0], last = this.steps[n - 1];
      for (const s of ticks(first, last, 6)) {
        const i = this.steps.findIndex((x) => x >= s);
        if (i < 0) continue;
        ctx.fillText(fmtNumber(Math.round(this.steps[i])), LEFT + ((i + 0.5) / n) * plotW, height - BOTTOM + 4);
      }
    }
    this.plotBox = { plotW, plotH };
  }

  select(i) {
    if (!this.steps.length) {
      this.label.textContent = "no step";
      return;
    }
    this.at = i;
    this.slider.value = String(i);
    const count = this.counts[i], start = this.offsets[i];
    const weights = this.weights.subarray(start, start + count);
    let total = 0, max = 0;
    for (const w of weights) { if (Number.isFinite(w)) { total += w; max = Math.max(max, w); } }
    this.label.textContent = `step ${fmtNumber(this.steps[i])} · ${count} bins over [${fmtNumber(this.lo[i])}, ${fmtNumber(this.hi[i])}] · total weight ${fmtNumber(total)}`;
    const { ctx, width, height } = sized(this.histCanvas);
    ctx.clearRect(0, 0, width, height);
    const plotW = width - LEFT - 8, plotH = height - BOTTOM - 4;
    ctx.fillStyle = css("--accent", "#2563eb");
    for (let b = 0; b < count; b++) {
      const w = Number.isFinite(weights[b]) ? weights[b] : 0;
      const bh = max > 0 ? (w / max) * plotH : 0;
      ctx.fillRect(LEFT + (b / count) * plotW, 4 + plotH - bh, Math.max(1, plotW / count - 1), bh);
    }
    ctx.fillStyle = css("--fg-muted", "#57606a");
    ctx.font = "11px system-ui, sans-serif";
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    ctx.fillText(fmtNumber(max), LEFT - 6, 8);
    ctx.fillText("0", LEFT - 6, 4 + plotH);
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    const lo = this.lo[i], hi = this.hi[i];
    for (const v of ticks(lo, hi, 6)) ctx.fillText(fmtNumber(v), LEFT + (hi > lo ? (v - lo) / (hi - lo) : 0.5) * plotW, height - BOTTOM + 4);
    // the chosen step on the heat map
    this.drawHeat();
    const hctx = this.heatCanvas.getContext("2d");
    hctx.strokeStyle = css("--danger", "#cf222e");
    hctx.lineWidth = 1;
    const x = LEFT + ((i + 0.5) / this.steps.length) * this.plotBox.plotW;
    hctx.beginPath();
    hctx.moveTo(x, 4);
    hctx.lineTo(x, 4 + this.plotBox.plotH);
    hctx.stroke();
  }
}

export function mountDistributions(container, { fixedQuery = "", inUrl = true } = {}) {
  const { state, save } = viewState(DISTRIBUTIONS_DEFAULTS, inUrl);
  let generation = 0;
  let cards = [];
  const { form, input } = searchBar(state, "AimQL distributions query, e.g. distributions.name == 'weights'",
    "distributions query", () => { save(true); load(); });
  const errorBox = h("pre", { class: "error", hidden: true, role: "alert" });
  const notes = h("div", {});
  const count = h("span", { class: "count" });
  const root = h("div", { id: "distributions", class: "charts dist-charts", dataset: { sequenceCount: "0" } });
  const empty = h("div", { class: "empty", hidden: true });
  container.append(form, errorBox, h("div", { class: "toolbar" }, count), notes, empty, root);
  new ResizeObserver(() => { for (const c of cards) if (c.drawn) c.draw(); }).observe(root);
  const lazy = new LazyLoader(); // a card is drawn when it comes near the screen

  async function load() {
    const mine = ++generation;
    setReady(false);
    lazy.disconnect();
    setStatus("loading…");
    let header = { sequences: [], runs: {}, unreadable: [], damaged: [] }, read = null;
    try {
      ({ header, read } = await getSeries("api/distributions", { q: fullQuery(fixedQuery, state.q) }));
      if (mine !== generation) return;
      errorBox.hidden = true;
      setStatus(`${header.count.toLocaleString("en-US")} distribution${header.count === 1 ? "" : "s"} · ${(header.elapsed_s * 1000).toFixed(0)} ms`);
    } catch (err) {
      if (mine !== generation) return;
      errorBox.hidden = false;
      errorBox.textContent = err instanceof ApiError ? err.message : `Cannot load distributions: ${err.message || err}`;
      setStatus("");
    }
    cards = header.sequences.map((seq) => new DistributionCard(seq, header.runs[seq.run], read));
    root.replaceChildren(...cards.map((c) => c.el));
    await lazy.watch(cards.map((c) => c.el), (el) => { el._card.drawn = true; el._card.draw(); });
    notes.replaceChildren(notesFor(fixedQuery ? { unreadable: header.unreadable } : header) || "");
    const matched = header.count ?? cards.length;
    root.dataset.sequenceCount = String(matched);
    count.textContent = `${matched.toLocaleString("en-US")} distribution${matched === 1 ? "" : "s"}` +
      (matched > cards.length ? ` (the first ${cards.length.toLocaleString("en-US")} shown: narrow the query)` : "");
    empty.hidden = cards.length > 0 || !errorBox.hidden;
    empty.textContent = state.q || fixedQuery ? "No distribution matches this query."
      : "This repository has no distributions yet: track some with run.track(aim.Distribution(values), name=...).";
    setReady(true);
  }

  if (inUrl) window.addEventListener("popstate", () => { Object.assign(state, viewState(DISTRIBUTIONS_DEFAULTS, true).state); input.value = state.q; load(); });
  load();
  return { reload: load };
}
