"""`/api/distributions`: histograms over steps, for heat maps, sent as binary.

    GET /api/distributions?q=AIMQL&rows=400&bins=128

For each distribution sequence matching the query: at most `rows` of its steps (evenly chosen,
the first and last always in; fewer when many sequences match, so one answer stays under
`MAX_VALUES` values), each step's histogram as stored (`weights`, with `counts` bins
per step and the step's `lo`/`hi` range), and the same histograms rebinned onto one value grid
shared by all steps of the sequence (`heat`: `bins` equal bins from `lo` to `hi`, one row per
step), which a page draws as a heat map of value against step. Rebinning spreads each stored
bin's weight uniformly over its width. Where a list of distributions was tracked at one step,
its first one (index 0) is shown. The layout is `binary.py`'s; the header also names the
matching runs and any sequence that cannot be read.

However many sequences match (a model's 200 layers over 50 runs are 10,000), the answer stays
under `MAX_VALUES`: only the first sequences that fit with at least `MIN_ROWS` steps each are
read and sent; `count` says how many matched, `listed` how many the answer holds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aim_parquet.errors import CorruptFileError, InvalidObjectError
from aim_parquet.format.meta import SequenceInfo
from aim_parquet.query.planner import plan_query
from aim_parquet.storage.base.columns import to_numpy
from aim_parquet.storage.online.object_read import read_object_rows
from aim_parquet.ui.api.binary import MEDIA_TYPE, BufferWriter
from aim_parquet.ui.api.errors import api_errors
from aim_parquet.ui.api.metrics import run_info, unreadable_json
from aim_parquet.ui.api.objects import parse_int, parse_meta, short_read
from aim_parquet.ui.api.state import UiState, damaged_json

Array = np.ndarray[Any, Any]
MAX_ROWS = 2_000
MAX_BINS = 512
MAX_VALUES = 2_000_000
"""Values (float32) in one answer at most, over all sequences (8 MB)."""
MIN_ROWS = 16


def pick_rows(n: int, rows: int) -> Array:
    """At most `rows` positions out of `n`, evenly spread, first and last included."""
    if n <= rows:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, rows)).astype(np.int64))


def rebin(weights: Array, lo: float, hi: float, edges: Array) -> Array:
    """The weight of one histogram (`weights` over equal bins from `lo` to `hi`) in each bin
    of `edges`, each stored bin's weight spread uniformly over its width."""
    out = np.zeros(edges.size - 1, np.float64)
    total = float(weights.sum())
    if weights.size == 0 or not np.isfinite(total):
        return out
    if hi <= lo:  # every sample had one value: all the weight in the bin holding it
        at = int(np.clip(np.searchsorted(edges, lo, side="right") - 1, 0, out.size - 1))
        out[at] = total
        return out
    source = np.linspace(lo, hi, weights.size + 1)
    cdf = np.concatenate(([0.0], np.cumsum(weights)))
    return np.diff(np.interp(edges, source, cdf))


@dataclass(frozen=True)
class HeatMap:
    """A sequence's histograms on one value grid: `values` is (steps, bins), `lo`..`hi`."""

    lo: float
    hi: float
    bins: int
    values: Array


def read_histograms(
    state: UiState, record: Any, info: SequenceInfo, rows: int
) -> tuple[Array, list[Any], int, CorruptFileError | None]:
    """(steps shown, their histograms, the sequence's number of steps, why it read short): at
    most `rows` steps."""
    from aim_parquet.objects import Distribution

    table = read_object_rows(state.layout, record.hash, info, ["payload", "meta"])
    first = to_numpy(table.column("index")) == 0
    steps = to_numpy(table.column("step"))[first]
    short = short_read(record, info, steps)
    picked = pick_rows(int(steps.size), rows)
    payloads = table.column("payload").take(np.flatnonzero(first)[picked])
    metas = table.column("meta").take(np.flatnonzero(first)[picked])
    hists = [
        Distribution.from_record(p.as_py(), parse_meta(m.as_py()))
        for p, m in zip(payloads, metas, strict=True)
    ]
    return steps[picked], hists, int(first.sum()), short


def heat_map(hists: list[Any], bins: int) -> HeatMap:
    """The histograms rebinned onto one grid of at most `bins` bins over all their ranges."""
    los = np.array([h.range[0] for h in hists], np.float64)
    his = np.array([h.range[1] for h in hists], np.float64)
    finite = np.isfinite(los) & np.isfinite(his)
    lo = float(los[finite].min()) if finite.any() else 0.0
    hi = float(his[finite].max()) if finite.any() else 1.0
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    most = max((h.bin_count for h in hists), default=1)
    grid_bins = int(min(bins, max(most, 8)))
    edges = np.linspace(lo, hi, grid_bins + 1)
    values = np.zeros((len(hists), grid_bins), np.float32)
    for i, h in enumerate(hists):
        if finite[i]:
            values[i] = rebin(np.nan_to_num(h.weights), h.range[0], h.range[1], edges)
    return HeatMap(lo, hi, grid_bins, values)


def distributions(state: UiState, query: str, rows: int, bins: int) -> bytes:
    started = time.perf_counter()
    plan = plan_query(query, "distributions")
    matches, damaged = state.matches(plan)
    buffers = BufferWriter()
    sequences: list[dict[str, Any]] = []
    unreadable = []
    runs: dict[str, Any] = {}
    now = time.time()
    found = [(match.record, info) for match in matches for info in match.sequences]
    # each listed sequence gets its share of MAX_VALUES (a stored histogram and a heat map row
    # per step), at least MIN_ROWS steps; the sequences past what fits are counted, not read
    fit = max(1, MAX_VALUES // (2 * bins * MIN_ROWS))
    rows = min(rows, max(MIN_ROWS, MAX_VALUES // (2 * bins * max(min(len(found), fit), 1))))
    used = 0
    for record, info in found[:fit]:
        state.check()
        try:
            steps, hists, total, short = read_histograms(state, record, info, rows)
        except (CorruptFileError, InvalidObjectError, ValueError) as exc:
            unreadable.append(unreadable_json(record, info, exc))
            continue
        if short is not None:  # drawn as far as it can be read
            unreadable.append(unreadable_json(record, info, short))
        heat = heat_map(hists, bins)
        weights = np.concatenate([h.weights for h in hists]) if hists else np.zeros(0)
        size = weights.size + heat.values.size + 4 * steps.size
        if sequences and used + size > MAX_VALUES:
            break  # stored histograms with more bins than the heat map's: fewer fit
        used += size
        if record.hash not in runs:
            runs[record.hash] = run_info(state, record, now)
        sequences.append(
            {
                "run": record.hash,
                "seq": info.seq_id,
                "name": info.name,
                "context": info.context,
                "total_steps": total,
                "steps": buffers.add(steps.astype(np.float64), "f8"),
                "lo": buffers.add(np.array([h.range[0] for h in hists], np.float64), "f8"),
                "hi": buffers.add(np.array([h.range[1] for h in hists], np.float64), "f8"),
                "counts": buffers.add(np.array([h.bin_count for h in hists], np.float64), "f8"),
                "weights": buffers.add(weights, "f4"),
                "heat": {
                    "lo": heat.lo,
                    "hi": heat.hi,
                    "bins": heat.bins,
                    "values": buffers.add(heat.values.ravel(), "f4"),
                },
            }
        )
    header = {
        "query": query,
        "count": len(found),
        "listed": len(sequences),
        "sequences": sequences,
        "runs": runs,
        "unreadable": unreadable,
        "damaged": damaged_json(damaged),
        "elapsed_s": time.perf_counter() - started,
    }
    return buffers.encode(header)


def routes(state: UiState) -> list[Route]:
    @api_errors
    async def endpoint(request: Request) -> Response:
        params = request.query_params
        rows = min(MAX_ROWS, max(2, parse_int(params.get("rows"), "rows", 400) or 400))
        bins = min(MAX_BINS, max(2, parse_int(params.get("bins"), "bins", 128) or 128))
        body = await state.call(distributions, state, params.get("q", ""), rows, bins)
        return Response(body, media_type=MEDIA_TYPE)

    return [Route("/api/distributions", endpoint, methods=["GET"])]
