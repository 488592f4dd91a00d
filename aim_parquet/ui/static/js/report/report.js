// The static report (aim-parquet report): the runs table and one chart per metric, drawn from
// the data inside the file (no request is made). Bundled into the file by aim_parquet/ui/report.py.

import { fmtDuration, fmtNumber, fmtTime, fmtValue, h, setReady, setStatus } from "../dom.js";
import { PALETTE, contextLabel, isolated, toNullable } from "../series.js";
import { Chart } from "../chart.js";
import { decodeSeries } from "../api.js";

const MAX_PARAM_COLUMNS = 12;

function bytesOf(base64) {
  const text = atob(base64);
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out.buffer;
}

function main() {
  const started = performance.now();
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const { header, read } = decodeSeries(bytesOf(data.series));
  const runs = data.runs;
  const app = document.getElementById("app");
  const root = h("div", { id: "report", class: "tab-panel", dataset: { runCount: String(runs.count), seriesCount: String(header.series_count), imageCount: "0" } });
  app.append(root);
  const colors = new Map(runs.columns.hash.map((hash, i) => [hash, PALETTE[i % PALETTE.length]]));
  let extra = 0;
  for (const hash of Object.keys(header.runs)) if (!colors.has(hash)) colors.set(hash, PALETTE[(runs.count + extra++) % PALETTE.length]);

  root.append(h("section", { class: "panel" },
    h("p", { class: "muted" }, `Metric query: `, h("code", {}, data.query || "(all metrics)"),
      data.runs_query ? [" · run query: ", h("code", {}, data.runs_query)] : null,
      ` · ${runs.count} run${runs.count === 1 ? "" : "s"} · ${header.series_count} series · written ${fmtTime(data.created)}`),
    header.damaged.length ? h("p", { class: "error" }, `${header.damaged.length} damaged run(s) left out: run aim-parquet verify`) : null,
    (header.unreadable || []).map((bad) => h("p", { class: "error" },
      `${bad.name}${contextLabel(bad.context) ? ` (${contextLabel(bad.context)})` : ""} of run ${bad.run.slice(0, 8)} could not be read: ${bad.reason}`)),
    runsTable(runs, colors)));

  const grid = h("div", { class: "charts", id: "report-charts", dataset: { chartCount: String(header.charts.length) } });
  root.append(h("h2", { class: "section-title" }, "Metrics"), grid);
  if (!header.charts.length) grid.append(h("div", { class: "empty" }, "No metric matched this query."));
  for (const c of header.charts) {
    const el = h("section", { class: "chart", dataset: { maxStep: c.max_step ?? "", seriesCount: String(c.series.length), mode: c.mode } });
    const bad = c.series.reduce((n, s) => n + (s.nonfinite || 0), 0);
    el.append(h("h3", {}, h("span", {}, c.title), h("small", {},
      ` ${c.series.length} series · step ≤ ${fmtNumber(c.max_step)}${c.mode === "binned" ? " · min/max per pixel" : ""}${bad ? ` · ${bad} NaN/inf not drawn` : ""}`)));
    grid.append(el);
    const chart = new Chart(el, { xAxis: "step", xLabel: "step", approximate: c.mode === "binned", height: 240 });
    chart.draw(Array.from(read(c.x)), c.series.map((s) => {
      const run = header.runs[s.run];
      const ctx = contextLabel(s.context);
      const values = toNullable(read(s.y));
      return { label: `${run ? run.name : s.run.slice(0, 8)}${ctx ? ` (${ctx})` : ""}`, color: colors.get(s.run), values, points: isolated(values),
        detail: `run ${s.run.slice(0, 8)} · last ${fmtNumber(s.last_value)} at step ${fmtNumber(s.last_step)}` };
    }));
  }
  const names = new Map(runs.columns.hash.map((hash, i) => [hash, runs.columns.name[i]]));
  for (const [hash, run] of Object.entries(header.runs)) if (!names.has(hash)) names.set(hash, run.name);
  if (data.images) root.append(images(data.images, names, root));
  setStatus(`drawn in ${(performance.now() - started).toFixed(0)} ms`);
  setReady(true);
}

function runsTable(runs, colors) {
  const params = Object.keys(runs.params).filter((k) => new Set(runs.params[k].map((v) => JSON.stringify(v))).size > 1).slice(0, MAX_PARAM_COLUMNS);
  const head = ["", "run", "hash", "experiment", "created", "duration", ...runs.metrics.map((m) => m.label), ...params];
  const rows = runs.columns.hash.map((hash, i) => {
    const swatch = h("span", { class: "swatch" });
    swatch.style.background = colors.get(hash);
    return h("tr", {}, h("td", {}, swatch), h("td", {}, runs.columns.name[i]), h("td", { class: "mono" }, hash.slice(0, 8)),
      h("td", {}, runs.columns.experiment[i]), h("td", {}, fmtTime(runs.columns.created[i])), h("td", {}, fmtDuration(runs.columns.duration[i])),
      ...runs.metrics.map((m) => h("td", { class: "num" }, fmtNumber(m.values[i]))),
      ...params.map((k) => h("td", { class: "num" }, fmtValue(runs.params[k][i]))));
  });
  return h("div", { class: "report-table" }, h("table", { class: "records", id: "report-runs" },
    h("thead", {}, h("tr", {}, head.map((c) => h("th", {}, c)))), h("tbody", {}, rows)));
}

function images(found, names, root) {
  root.dataset.imageCount = String(found.items.length);
  const cards = found.items.map((item) => {
    const picture = item.src ? h("img", { src: item.src, alt: item.caption || item.name }) : h("div", { class: "broken" }, item.error || "cannot show this image");
    const side = Math.max(item.width || 0, item.height || 0);
    if (item.src && side && side < 160) picture.classList.add("fill"); // as the images explorer: small ones fill their box
    if (item.src && item.width && item.width <= 32) picture.classList.add("pixelated");
    return h("figure", { class: "image-card" }, h("div", { class: "thumb" }, picture),
      h("figcaption", {}, item.caption ? h("span", { class: "caption" }, item.caption) : null,
        h("span", { class: "where" }, `${names.get(item.run) || item.run.slice(0, 8)} · ${item.name} · step ${fmtNumber(item.step)} · #${item.index}`)));
  });
  const more = found.count > found.items.length ? ` (the first ${found.items.length} of ${found.count})` : "";
  return h("section", {}, h("h2", { class: "section-title" }, `Images at the last step${more}`),
    cards.length ? h("div", { class: "object-grid images-grid report-images" }, cards) : h("div", { class: "empty" }, "These runs have no images."));
}

main();
