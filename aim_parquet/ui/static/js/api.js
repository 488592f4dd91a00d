// The API client: every URL is relative to the page, so a base path or a proxy prefix just works.

export class ApiError extends Error {
  constructor(status, kind, message) {
    super(message);
    this.status = status;
    this.kind = kind;
  }
}

function url(path, params) {
  const u = new URL(path, document.baseURI);
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") u.searchParams.set(key, String(value));
  }
  return u;
}

async function check(response) {
  if (response.ok) return response;
  let kind = "http", message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    kind = body.error || kind;
    message = body.message || message;
  } catch (_) { /* not JSON */ }
  throw new ApiError(response.status, kind, message);
}

// Requests started early (by boot.js, before the page's code has loaded), by URL.
const early = new Map();

/** Start a GET now; the page's first getJSON/getSeries of the same URL takes its answer. */
export function prefetch(path, params) {
  const href = url(path, params).href;
  early.set(href, fetch(href));
}

function get(path, params, options) {
  const href = url(path, params).href;
  const started = early.get(href);
  early.delete(href);
  return started || fetch(href, { signal: options.signal });
}

export async function getJSON(path, params, options = {}) {
  const response = await get(path, params, options);
  return (await check(response)).json();
}

/** Most runs one query can name by hash: `run.hash in [...]` of 300 hashes is 8.4k characters
 * (a query may have 10,000). */
export const MAX_LINKED_RUNS = 300;

/** The AimQL run query naming exactly these runs. */
export function hashesQuery(hashes) {
  return `run.hash in [${hashes.map((x) => `"${x}"`).join(", ")}]`;
}

/** POST/DELETE with the header the server requires of changing requests. */
export async function send(method, path, body) {
  const response = await fetch(url(path), {
    method,
    headers: { "Content-Type": "application/json", "X-Requested-By": "aim-parquet" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return (await check(response)).json();
}

/**
 * Fetch a binary series response (see aim_parquet/ui/api/binary.py): returns
 * {header, read(ref)} where read gives a Float64Array/Float32Array view without copying.
 */
export async function getSeries(path, params, options = {}) {
  const response = await get(path, params, options);
  const buffer = await (await check(response)).arrayBuffer();
  return decodeSeries(buffer);
}

/** JSON.parse reviver: a step past 2**53 (steps go to 2**63 - 1) stays exact, as its digits; a
 * Number would round it (the page showed 4611686018427388000 for 2**62 + 1). */
function exactSteps(key, value, context) {
  if ((key === "last_step" || key === "max_step") && typeof value === "number" && !Number.isSafeInteger(value)) {
    return context && /^-?\d+$/.test(context.source) ? context.source : value;
  }
  return value;
}

export function decodeSeries(buffer) {
  const bytes = new Uint8Array(buffer);
  const magic = String.fromCharCode(...bytes.subarray(0, 4));
  if (magic !== "APQ1") throw new ApiError(0, "format", "unexpected series response");
  const length = new DataView(buffer).getUint32(4, true);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length)), exactSteps);
  const start = 8 + length + ((8 - ((8 + length) % 8)) % 8);
  const read = ([offset, count, dtype]) =>
    dtype === "f8" ? new Float64Array(buffer, start + offset, count) : new Float32Array(buffer, start + offset, count);
  return { header, read, bytes: buffer.byteLength };
}
