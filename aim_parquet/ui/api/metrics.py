"""`/api/metrics`: metric series for charts, downsampled on the server and sent as binary.

    GET /api/metrics/search?q=AIMQL&x=step&width=800&chart_by=metric.name[&x_min=&x_max=]
    GET /api/metrics/live?q=...&x=...&width=...&chart_by=...&cursor=HASH:SEQ:STEP,...
    GET /api/metrics/names                      every metric name with its contexts (JSON)

`search` answers with the binary layout of `binary.py`: a header naming the charts (one per
distinct value of the `chart_by` fields), each with its shared x grid (`downsample.py`) and its
series' values on it, plus the matching runs' fields and flattened params (for grouping, colours
and tooltips in the browser). `x` is `step`, `epoch`, `relative` (seconds since the series' first
point) or `wall` (Unix seconds). `x_min`/`x_max` restrict the points to a zoomed range.

`live` sends only what a page has not seen: for each series of an unfinished run it lists in
`cursor` (`run hash:sequence id:last step seen`), the points after that step; for series of
unfinished runs it has never seen, the series itself (reduced to `width` min/max points). It also
says which of the cursor's runs are still active, so the page can stop asking for them.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aim_parquet.errors import CorruptFileError, FormatVersionError
from aim_parquet.format.meta import SequenceInfo
from aim_parquet.query.planner import plan_query
from aim_parquet.query.views import RunView
from aim_parquet.storage.index.run_records import RunRecord
from aim_parquet.storage.online.run_reader import read_metric_columns
from aim_parquet.ui.api.binary import MEDIA_TYPE, BufferWriter
from aim_parquet.ui.api.downsample import SeriesPoints, build_grid, clean, minmax_points
from aim_parquet.ui.api.errors import api_errors
from aim_parquet.ui.api.jsonout import JsonResponse
from aim_parquet.ui.api.metric_request import (
    chart_key,
    chart_title,
    parse_chart_by,
    parse_cursor,
    parse_float,
    parse_width,
    parse_x_axis,
)
from aim_parquet.ui.api.runs import context_label, flatten_params, run_fields
from aim_parquet.ui.api.state import UiState, damaged_json

MAX_SLOTS = 480_000
"""Values sent per request at most (float32: 1.9 MB, so a page with 1,000 series stays under
3 MB with its header and code; a series float32 cannot carry is sent as float64, see
`binary.values_dtype`); many series share them, each at least `MIN_COLUMNS` pixel columns, at
most the chart's width."""
MIN_COLUMNS = 64

Array = np.ndarray[Any, Any]


# -- reading ---------------------------------------------------------------------------------
# what reading one run's files may raise without being the request's fault: a damaged file, a
# link or FIFO in place of one (UnsafeFileError), a newer format, a file this user may not read
UNREADABLE = (CorruptFileError, FormatVersionError, PermissionError)


def read_series(
    state: UiState, record: RunRecord, info: SequenceInfo, x_axis: str
) -> tuple[Array, Array, Array]:
    """(steps, x, values) of one metric, through the run reader (live segments + Parquet)."""
    columns = ["value"]
    if x_axis == "epoch":
        columns.append("epoch")
    elif x_axis in ("relative", "wall"):
        columns.append("timestamp")
    steps, arrays = read_metric_columns(state.layout, record.hash, info, columns)
    if x_axis == "step":
        x = steps.astype(np.float64)
    elif x_axis == "epoch":
        x = arrays["epoch"].astype(np.float64)
    else:
        times = arrays["timestamp"]
        x = times - times[0] if x_axis == "relative" and times.size else times
    return steps, x, arrays["value"]


def run_info(state: UiState, record: RunRecord, now: float) -> dict[str, Any]:
    fields = run_fields(record, RunView(record, state.layout), now, state.layout)
    fields["params"] = flatten_params(record.params)
    return fields


def search(
    state: UiState,
    query: str,
    x_axis: str,
    width: int,
    chart_by: list[str],
    x_range: tuple[float | None, float | None],
) -> bytes:
    started = time.perf_counter()
    plan = plan_query(query, "metric")
    matches, damaged = state.matches(plan)
    pairs = [(m.record, info) for m in matches for info in m.sequences]
    columns = min(width, max(MIN_COLUMNS, MAX_SLOTS // (2 * max(len(pairs), 1))))
    charts: dict[tuple[Any, ...], list[int]] = {}
    points: list[SeriesPoints] = []
    nonfinite: list[int] = []
    meta: list[dict[str, Any]] = []
    points_read = 0
    lo, hi = x_range
    unreadable: list[dict[str, Any]] = []
    for record, info in pairs:
        state.check()
        try:
            steps, x, y = read_series(state, record, info, x_axis)
        except UNREADABLE as exc:  # one damaged series: the others are still drawn
            unreadable.append(unreadable_json(record, info, exc))
            continue
        points_read += int(steps.size)
        no_x = int(x.size - np.count_nonzero(np.isfinite(x)))  # e.g. points tracked without epoch
        if lo is not None or hi is not None:
            keep = np.ones(x.size, bool)
            if lo is not None:
                keep &= x >= lo
            if hi is not None:
                keep &= x <= hi
            steps, x, y = steps[keep], x[keep], y[keep]
        cleaned, bad = clean(x, y)
        charts.setdefault(chart_key(chart_by, record, info), []).append(len(points))
        points.append(cleaned)
        nonfinite.append(bad)
        meta.append(
            {
                "run": record.hash,
                "seq": info.seq_id,
                "name": info.name,
                "context": info.context,
                "count": int(steps.size),
                "last_step": int(steps[-1]) if steps.size else None,
                "last_value": float(y[-1]) if y.size else None,
                "no_x": no_x,
            }
        )
    buffers = BufferWriter()
    chart_list = []
    for key, members in charts.items():
        grid = build_grid([points[i] for i in members], [nonfinite[i] for i in members], columns)
        series = []
        for i, row in zip(members, grid.ys, strict=True):
            series.append({**meta[i], "nonfinite": nonfinite[i], "y": buffers.add(row, "values")})
        shown = [s["last_step"] for s in series if s["last_step"] is not None]
        chart_list.append(
            {
                "key": list(key),
                "title": chart_title(chart_by, key),
                "mode": grid.mode,
                "x": buffers.add(grid.x, "f8"),
                "max_step": max(shown) if shown else None,
                "series": series,
            }
        )
    now = time.time()
    runs = {m.record.hash: run_info(state, m.record, now) for m in matches}
    header = {
        "query": query,
        "x_axis": x_axis,
        "chart_by": chart_by,
        "columns": columns,
        "series_count": len(pairs),
        "points_read": points_read,
        "charts": chart_list,
        "runs": runs,
        "damaged": damaged_json(damaged),
        "unreadable": unreadable,
        "elapsed_s": time.perf_counter() - started,
    }
    return buffers.encode(header)


def unreadable_json(record: RunRecord, info: SequenceInfo, exc: Exception) -> dict[str, Any]:
    """A sequence that could not be read, as the API reports it (with what to do): a damaged
    file, a link or FIFO in place of one, a newer format, or a file this user may not read."""
    if isinstance(exc, PermissionError):
        advice = "permission denied, not damage: read it as a user who may, or ask its owner"
    elif isinstance(exc, FormatVersionError):
        advice = "written by a newer aim_parquet: upgrade it (pip install -U aim_parquet)"
    else:
        advice = "run `aim-parquet verify --repair` to repair or quarantine the damaged file"
    return {
        "run": record.hash,
        "seq": info.seq_id,
        "name": info.name,
        "context": info.context,
        "reason": str(exc),
        "advice": advice,
    }


def live(
    state: UiState,
    query: str,
    x_axis: str,
    width: int,
    chart_by: list[str],
    cursors: dict[tuple[str, str], int],
) -> bytes:
    plan = plan_query(query, "metric")
    matches, _ = state.matches(plan)
    cursor_runs = {run for run, _ in cursors}
    buffers = BufferWriter()
    now = time.time()
    series = []
    runs: dict[str, dict[str, Any]] = {}
    for match in matches:
        record = match.record
        if record.end_time is not None and record.hash not in cursor_runs:
            continue  # finished before the page saw it: the next search shows it
        runs[record.hash] = run_info(state, record, now)
        for info in match.sequences:
            state.check()
            after = cursors.get((record.hash, info.seq_id))
            try:
                steps, x, y = read_series(state, record, info, x_axis)
            except UNREADABLE:  # reported by the next search
                continue
            if after is not None:
                start = int(np.searchsorted(steps, after, side="right"))
                steps, x, y = steps[start:], x[start:], y[start:]
                if steps.size == 0:
                    continue
            no_x = int(x.size - np.count_nonzero(np.isfinite(x)))
            cleaned, bad = clean(x, y)
            sx, sy = minmax_points(cleaned.x, cleaned.y, width)
            key = chart_key(chart_by, record, info)
            series.append(
                {
                    "run": record.hash,
                    "seq": info.seq_id,
                    "name": info.name,
                    "context": info.context,
                    "is_new": after is None,
                    "chart_key": list(key),
                    "chart_title": chart_title(chart_by, key),
                    "last_step": int(steps[-1]) if steps.size else after,
                    "last_value": float(y[-1]) if y.size else None,
                    "nonfinite": bad,
                    "no_x": no_x,
                    "count": int(steps.size),
                    "x": buffers.add(sx, "f8"),
                    "y": buffers.add(sy, "values"),
                }
            )
    active = sorted(h for h, r in runs.items() if r["active"])
    finished = sorted(h for h in cursor_runs if h not in runs or runs[h]["ended"] is not None)
    header = {"x_axis": x_axis, "series": series, "runs": runs, "active": active,
              "finished": finished}  # fmt: skip
    return buffers.encode(header)


def metric_names(state: UiState) -> dict[str, Any]:
    names: dict[str, dict[str, dict[str, Any]]] = {}
    for record in state.records():
        for entry in record.catalogue():
            if entry.is_metric:
                names.setdefault(entry.name, {}).setdefault(
                    context_label(entry.context), entry.context
                )
    return {
        "metrics": [
            {"name": name, "contexts": [contexts[k] for k in sorted(contexts)]}
            for name, contexts in sorted(names.items())
        ]
    }


def routes(state: UiState) -> list[Route]:
    @api_errors
    async def search_endpoint(request: Request) -> Response:
        params = request.query_params
        body = await state.call(
            search,
            state,
            params.get("q", ""),
            parse_x_axis(params.get("x")),
            parse_width(params.get("width")),
            parse_chart_by(params.get("chart_by")),
            (parse_float(params.get("x_min"), "x_min"), parse_float(params.get("x_max"), "x_max")),
        )
        return Response(body, media_type=MEDIA_TYPE)

    @api_errors
    async def live_endpoint(request: Request) -> Response:
        params = request.query_params
        body = await state.call(
            live,
            state,
            params.get("q", ""),
            parse_x_axis(params.get("x")),
            parse_width(params.get("width")),
            parse_chart_by(params.get("chart_by")),
            parse_cursor(params.get("cursor")),
        )
        return Response(body, media_type=MEDIA_TYPE)

    @api_errors
    async def names_endpoint(request: Request) -> Response:
        return JsonResponse(await state.call(metric_names, state))

    return [
        Route("/api/metrics/search", search_endpoint, methods=["GET"]),
        Route("/api/metrics/live", live_endpoint, methods=["GET"]),
        Route("/api/metrics/names", names_endpoint, methods=["GET"]),
    ]
