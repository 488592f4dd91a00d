// The figures explorer: the Plotly figures of the sequences matching an AimQL figures query at
// one step, drawn by the plotly.js that the `plotly` Python package ships (served by this
// server, loaded only on this page and only when the package is installed).

import { getJSON } from "../api.js";
import { fmtNumber, h } from "../dom.js";
import { objectError, objectUrl, sequenceTitle } from "../explorer.js";
import { mountGrid } from "./grid.js";

export const FIGURES_DEFAULTS = { q: "", step: "", group_by: "run.hash" };

let plotly = null; // a promise of window.Plotly, or of null when the package is missing

function loadPlotly() {
  if (plotly) return plotly;
  plotly = (async () => {
    const info = await getJSON("api/info", { plotly: 1 });
    if (!info.plotly) return null;
    // plotly.js's run-time CSS, without inline <style> elements (see aim_parquet/ui/plotly_asset.py)
    for (const id of info.plotly_style_ids) document.head.append(h("meta", { id, name: "plotly-style-placeholder" }));
    await Promise.all([["plotly.js-style-global", "static/plotly-host.css"], ["", "vendor/plotly/styles.css"]].map(([id, href]) =>
      new Promise((resolve) => {
        const sheet = h("link", { rel: "stylesheet", id: id || null, href });
        sheet.addEventListener("load", resolve, { once: true });
        sheet.addEventListener("error", resolve, { once: true });
        document.head.append(sheet);
      })));
    await new Promise((resolve, reject) => {
      const script = h("script", { src: `vendor/plotly/plotly.min.js?v=${encodeURIComponent(info.version)}` });
      script.addEventListener("load", resolve, { once: true });
      script.addEventListener("error", () => reject(new Error("plotly.js could not be loaded from this server")), { once: true });
      document.head.append(script);
    });
    return window.Plotly;
  })();
  return plotly;
}

const MISSING = "Figures are drawn with plotly.js from the plotly Python package, which is not installed where " +
  "aim-parquet up runs: pip install 'aim_parquet[figures]' (or pip install plotly) and restart the server. " +
  "The figures are listed below; each one's JSON can still be downloaded.";

export function mountFigures(container, where = {}) {
  const notice = h("p", { class: "error", hidden: true, role: "alert", id: "plotly-missing" }, MISSING);
  container.append(notice);
  return mountGrid(container, "figures", {
    defaults: FIGURES_DEFAULTS,
    noun: "figure",
    countAttr: "figureCount",
    placeholder: "AimQL figures query, e.g. figures.name == 'confusion'",
    emptyHint: "This repository has no figures yet: track some with run.track(aim.Figure(plotly_figure), name=...).",
    card(seq, run, rec) {
      const url = objectUrl(seq, rec.index);
      const plot = h("div", { class: "figure-plot" });
      const el = h("figure", { class: "figure-card" },
        h("figcaption", {}, h("b", {}, sequenceTitle(seq, run, "figures")),
          h("span", { class: "where" }, ` step ${fmtNumber(seq.step)} · #${rec.index}`),
          h("a", { href: url, download: `${seq.name}-${seq.step}-${rec.index}.json`, class: "json-link" }, "JSON")),
        plot);
      plot._load = async () => {
        let Plotly = null;
        try { Plotly = await loadPlotly(); } catch (err) { plot.replaceChildren(h("p", { class: "broken" }, String(err.message || err))); return; }
        if (!Plotly) {
          notice.hidden = false;
          plot.style.minHeight = "0";
          plot.replaceChildren(h("p", { class: "muted" }, "(not drawn: plotly is not installed; the JSON link above has the figure)"));
          return;
        }
        try {
          const response = await fetch(url);
          if (!response.ok) throw new Error(await objectError(url));
          const figure = await response.json();
          const layout = { ...(figure.layout || {}), autosize: true, height: 360, margin: { l: 48, r: 16, t: 40, b: 40 } };
          await Plotly.newPlot(plot, figure.data || [], layout, { displaylogo: false, responsive: true });
        } catch (err) {
          plot.replaceChildren(h("p", { class: "broken" }, `cannot draw this figure: ${err.message || err}`));
        }
      };
      return { el, target: plot };
    },
  }, where);
}
