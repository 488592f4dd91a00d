// Page state lives in the URL's query string, so a link reproduces the view.

/** Read the state: every key of `defaults`, typed like its default. */
export function readState(defaults) {
  const params = new URLSearchParams(location.search);
  const state = {};
  for (const [key, def] of Object.entries(defaults)) {
    const raw = params.get(key);
    if (raw === null) state[key] = def;
    else if (typeof def === "boolean") state[key] = raw === "1" || raw === "true";
    else if (typeof def === "number") state[key] = Number.isFinite(Number(raw)) ? Number(raw) : def;
    else state[key] = raw;
  }
  return state;
}

/** Write the state (keys equal to their default are left out); `push` adds a history entry. */
export function writeState(state, defaults, push = false) {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(state)) {
    if (!(key in defaults) || value === defaults[key]) continue;
    params.set(key, typeof value === "boolean" ? (value ? "1" : "0") : String(value));
  }
  const search = params.toString();
  const target = location.pathname + (search ? `?${search}` : "");
  if (target === location.pathname + location.search) return;
  if (push) history.pushState(null, "", target);
  else history.replaceState(null, "", target);
}
