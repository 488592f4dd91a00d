// Loaded first and on its own (async): starts the page's first data request while the rest of
// the page's code is still loading. The pages take their defaults and first request from here,
// so the early request is exactly the one the page makes (api.js hands its answer over).

import { prefetch } from "./api.js";
import { readState } from "./state.js";

export const METRICS_DEFAULTS = {
  q: "", x: "step", chart_by: "metric.name", color_by: "", stroke_by: "",
  agg: "none", band: "minmax", smooth: 0, ylog: false, live: true, zoom: "",
};

/** Pixel columns asked of the server: the width of the page's main area (a lone chart spans
 * it; the server caps the total for many series anyway). */
export function chartWidth() {
  return Math.max(200, Math.floor(document.documentElement.clientWidth - 56));
}

/** The metrics explorer's search request for a state. */
export function metricsSearch(state) {
  return ["api/metrics/search", { q: state.q, x: state.x, chart_by: state.chart_by, width: chartWidth() }];
}

if (/\/metrics$/.test(location.pathname)) prefetch(...metricsSearch(readState(METRICS_DEFAULTS)));
// the images explorer's listing (the same request views/grid.js makes first)
if (/\/images$/.test(location.pathname)) prefetch("api/images", readState({ q: "", step: "" }));
