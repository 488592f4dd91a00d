// What the params and scatter views share: the runs' columns (params and last metric values,
// from /api/runs), scales for numeric and categorical values, tick values, colours and a
// canvas sized for the device's pixels.

import { fmtValue } from "./dom.js";
import { PALETTE } from "./series.js";

/** A value that is a finite number (the API sends NaN/inf as strings). */
export function isNumber(v) {
  return typeof v === "number" && Number.isFinite(v);
}

function nonFinite(v) {
  return v === "NaN" || v === "Infinity" || v === "-Infinity";
}

/** Every column of an /api/runs answer: params ("p:KEY") and last metric values ("m:LABEL"). */
export function columnsOf(data) {
  const out = [];
  for (const [key, values] of Object.entries(data.params || {})) out.push(column(`p:${key}`, key, values));
  for (const metric of data.metrics || []) out.push(column(`m:${metric.label}`, metric.label, metric.values));
  return out;
}

function column(key, label, values) {
  const present = values.filter((v) => v !== null && v !== undefined && !nonFinite(v));
  const numeric = present.length > 0 && present.every((v) => typeof v === "number");
  const distinct = new Set(present.map((v) => JSON.stringify(v)));
  return { key, label, values, numeric, distinct: distinct.size, present: present.length };
}

/**
 * A scale from a column's values to [0, 1] (0 = bottom/left). Numeric: linear or log between the
 * min and max (a single value sits in the middle); categorical: evenly spaced sorted values.
 * `position(v)` is null for a missing or non-finite value (drawn apart, or not at all).
 */
export function scaleFor(col, { log = false } = {}) {
  if (col.numeric) {
    let values = col.values.filter(isNumber);
    const canLog = log && values.some((v) => v > 0);
    if (canLog) values = values.filter((v) => v > 0);
    let lo = Math.min(...values), hi = Math.max(...values);
    const f = canLog ? Math.log10 : (v) => v;
    if (canLog) { lo = f(lo); hi = f(hi); }
    const span = hi - lo;
    return {
      numeric: true, log: canLog, lo, hi,
      position: (v) => {
        if (!isNumber(v) || (canLog && v <= 0)) return null;
        return span > 0 ? (f(v) - lo) / span : 0.5;
      },
      ticks: () => (canLog ? logTicks(lo, hi) : niceTicks(lo, hi, 5)).map((t) => ({
        at: span > 0 ? ((canLog ? Math.log10(t) : t) - lo) / span : 0.5, label: fmtValue(t),
      })),
    };
  }
  const cats = [...new Set(col.values.filter((v) => v !== null && v !== undefined).map((v) => fmtValue(v)))]
    .sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
  const index = new Map(cats.map((c, i) => [c, i]));
  const at = (i) => (cats.length > 1 ? i / (cats.length - 1) : 0.5);
  return {
    numeric: false, categories: cats,
    position: (v) => (v === null || v === undefined ? null : at(index.get(fmtValue(v)))),
    ticks: () => cats.slice(0, 40).map((c, i) => ({ at: at(cats.length > 40 ? index.get(c) : i), label: c })),
  };
}

export function niceTicks(lo, hi, count) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function logTicks(lo, hi) {
  const out = [];
  for (let e = Math.floor(lo); e <= Math.ceil(hi); e++) if (e >= lo - 1e-9 && e <= hi + 1e-9) out.push(10 ** e);
  return out.length >= 2 ? out : [10 ** lo, 10 ** hi];
}

const RAMP = [[37, 99, 235], [22, 163, 74], [217, 119, 6], [220, 38, 38]];

/** A colour function for a column: a blue-green-orange-red ramp for numbers, the palette for
 * categories, grey for runs without a value. */
export function colorFor(col) {
  if (!col) return () => PALETTE[0];
  const scale = scaleFor(col);
  if (!scale.numeric) {
    const cats = new Map(scale.categories.map((c, i) => [c, PALETTE[i % PALETTE.length]]));
    return (i) => (col.values[i] === null || col.values[i] === undefined ? "#9ca3af" : cats.get(fmtValue(col.values[i])));
  }
  return (i) => {
    const t = scale.position(col.values[i]);
    if (t === null) return "#9ca3af";
    const x = t * (RAMP.length - 1), k = Math.min(RAMP.length - 2, Math.floor(x)), f = x - k;
    const c = RAMP[k].map((a, j) => Math.round(a + (RAMP[k + 1][j] - a) * f));
    return `rgb(${c[0]},${c[1]},${c[2]})`;
  };
}

/** Size a canvas to its CSS box at the device's pixel ratio; returns its 2D context and size. */
export function fitCanvas(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const width = Math.max(200, canvas.clientWidth), height = Math.max(200, canvas.clientHeight);
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  return { ctx, width, height };
}

export function cssVar(name, fallback) {
  return getComputedStyle(document.body).getPropertyValue(name).trim() || fallback;
}

/** Shorten a label to fit `px` pixels (about 6.5 px per character at 11 px). */
export function clip(text, px) {
  const max = Math.max(4, Math.floor(px / 6.5));
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
