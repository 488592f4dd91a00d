// Small DOM and formatting helpers shared by every page.

/** Create an element: h("div", {class: "x", onclick: fn}, child, "text", ...). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** The `data-ready` contract: "true" once the page's data is drawn, "false" while loading. */
export function setReady(ready) {
  document.body.dataset.ready = ready ? "true" : "false";
}

export function setStatus(text) {
  const el = document.getElementById("status");
  if (el) el.textContent = el.title = text || "";
}

export function markNav(page) {
  for (const a of document.querySelectorAll("[data-nav]")) {
    a.classList.toggle("active", a.dataset.nav === page);
  }
}

/** Numbers as a person reads them: 6 significant digits, NaN/inf spelled out. */
export function fmtNumber(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") {
    if (value === "NaN" || value === "Infinity" || value === "-Infinity") return value.replace("Infinity", "inf");
    return value;
  }
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value !== "number") return JSON.stringify(value);
  if (Number.isNaN(value)) return "NaN";
  if (!Number.isFinite(value)) return value > 0 ? "inf" : "-inf";
  if (Number.isInteger(value) && Math.abs(value) < 1e15) return value.toLocaleString("en-US");
  const abs = Math.abs(value);
  if (abs !== 0 && (abs < 1e-4 || abs >= 1e9)) return value.toExponential(4);
  return String(Number(value.toPrecision(6)));
}

export function fmtValue(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number" || typeof value === "string" || typeof value === "boolean") return fmtNumber(value);
  return JSON.stringify(value);
}

export function fmtTime(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const d = new Date(seconds * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

/** A modal <dialog> with a message and buttons; resolves to the chosen button's value. */
export function ask(title, body, buttons) {
  return new Promise((resolve) => {
    const dialog = h("dialog", { class: "modal" },
      h("form", { method: "dialog" },
        h("h2", {}, title),
        body,
        h("div", { class: "buttons" },
          buttons.map((b) => h("button", { value: b.value, class: b.class || "", type: "submit" }, b.label)))));
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue);
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}
