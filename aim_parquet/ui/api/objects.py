"""`/api/images`, `/api/audios`, `/api/figures`, `/api/texts`: the objects matching a query.

    GET /api/images?q=AIMQL&step=N     JSON: the images of the matching sequences at step N
    GET /api/audios?q=...&step=N       the same for audio clips
    GET /api/figures?q=...&step=N      the same for figures
    GET /api/texts?q=...&search=WORDS&offset=0&limit=200   texts of every step, searched

An object listing never carries an object's bytes: each record names its address
(`run`, `seq`, `step`, `index`), which `GET /api/objects/...` (`media.py`) serves one at a time.
`steps` is the union of the steps at which the matching sequences have objects; each sequence
shows its objects at the latest of its steps at or before the chosen `step` (default: the last
step), so runs that log at different steps still line up. `count` is the number of objects
shown. A sequence that cannot be read is listed under `unreadable` with the reason; the others
are still shown.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aim_parquet.errors import CorruptFileError, MissingRunError
from aim_parquet.format.meta import SequenceInfo
from aim_parquet.query.planner import plan_query
from aim_parquet.storage.base.columns import to_numpy
from aim_parquet.storage.index.run_records import RunRecord
from aim_parquet.storage.online.object_read import read_object_rows
from aim_parquet.storage.online.run_reader import load_run_meta
from aim_parquet.ui.api.errors import BadRequest, api_errors
from aim_parquet.ui.api.jsonout import JsonResponse
from aim_parquet.ui.api.metrics import run_info, unreadable_json
from aim_parquet.ui.api.state import UiState, damaged_json

MAX_OBJECTS = 5_000
"""Objects listed per answer at most (the page says how many more there are)."""
MAX_TEXT_CHARS = 2_000
"""Characters of one text sent in a table row (the row says the full length)."""
MAX_TEXT_LIMIT = 1_000
LISTED_KINDS = {"images": "images", "audios": "audios", "figures": "figures"}
META_FIELDS = {
    "images": ("caption", "width", "height", "format", "mode"),
    "audios": ("caption", "format", "rate"),
    "figures": ("version",),
}


_WHOLE = re.compile(r"-?[0-9]{1,19}")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def whole(value: str, name: str) -> int:
    """A whole number of a URL: ASCII digits in the int64 range steps live in; BadRequest saying
    what is wrong otherwise (`int()` took '+1', ' 1', '1_0' and '٣', and a step past int64
    reached the reader as a 500)."""
    if _WHOLE.fullmatch(value) is None or not INT64_MIN <= int(value) <= INT64_MAX:
        raise BadRequest(f"{name} must be a whole number (int64), not {value!r}")
    return int(value)


def parse_int(value: str | None, name: str, default: int | None) -> int | None:
    """`whole(value)`, or `default` when the parameter is absent or empty."""
    return default if value is None or value == "" else whole(value, name)


def find_record(state: UiState, run_hash: str) -> RunRecord:
    """One readable run (metadata only); MissingRunError when there is none, CorruptFileError
    (saying why and what to do) when its sidecar cannot be read."""
    for record in state.records():
        if record.hash == run_hash:
            return record
    load_run_meta(state.layout, run_hash)  # raises the error that says why it is not listed
    raise MissingRunError(f"run {run_hash} is not in the run index yet; reload in a moment")


def sequence_steps(state: UiState, record: RunRecord, info: SequenceInfo) -> np.ndarray[Any, Any]:
    """The distinct steps at which an object sequence has objects (no payload read)."""
    table = read_object_rows(state.layout, record.hash, info, ["step"])
    return np.unique(to_numpy(table.column("step")))


def short_read(
    record: RunRecord, info: SequenceInfo, steps: Any, noun: str = "objects"
) -> CorruptFileError | None:
    """Why a finished run's sequence read short, or None: its catalogue's first or last step is
    not among the `steps` its data files gave. A reader skips a segment's incomplete tail (a
    writer may be writing it), so a truncated file of a finished run reads as fewer points, not
    as an error: without this, a run whose logs file was cut showed "no terminal output"."""
    if record.end_time is None or not info.count or info.last_step is None:
        return None
    found = np.asarray(steps)
    wanted = [s for s in (info.first_step, info.last_step) if s is not None]
    if found.size and all(bool((found == s).any()) for s in wanted):
        return None
    held = f"steps {int(found.min()):,} to {int(found.max()):,}" if found.size else "nothing"
    first = info.last_step if info.first_step is None else info.first_step
    return CorruptFileError(
        f"its catalogue lists {info.count:,} {noun if info.count != 1 else noun[:-1]} from step "
        f"{first:,} to {info.last_step:,}, "
        f"but its data files hold {held} (a file was cut short or lost)"
    )


def version_of(record: RunRecord) -> str:
    """What changes when a run's stored objects may have changed: '' while a process writes
    it (its objects are not cached for long), else its end time."""
    end = record.end_time
    return "" if end is None else repr(end)


def listing(state: UiState, seq_var: str, query: str, step: int | None) -> dict[str, Any]:
    """The objects of the sequences matching a `seq_var` query at `step` (see the docstring)."""
    started = time.perf_counter()
    plan = plan_query(query, seq_var)
    matches, damaged = state.matches(plan)
    found: list[tuple[RunRecord, SequenceInfo, np.ndarray[Any, Any]]] = []
    unreadable = []
    for match in matches:
        for info in match.sequences:
            state.check()
            try:
                steps = sequence_steps(state, match.record, info)
            except CorruptFileError as exc:
                unreadable.append(unreadable_json(match.record, info, exc))
                continue
            found.append((match.record, info, steps))
            short = short_read(match.record, info, steps)
            if short is not None:  # shown as far as it can be read
                unreadable.append(unreadable_json(match.record, info, short))
    every = [steps for _, _, steps in found]
    all_steps = np.unique(np.concatenate(every)).tolist() if every else []
    chosen = all_steps[-1] if step is None and all_steps else step
    fields = META_FIELDS[seq_var]
    sequences = []
    runs: dict[str, Any] = {}
    count = listed = 0
    now = time.time()
    for record, info, steps in found:
        shown = None
        if chosen is not None and steps.size:
            at = int(np.searchsorted(steps, chosen, side="right"))
            shown = int(steps[at - 1]) if at else None
        records = []
        if shown is not None:
            try:
                table = read_object_rows(state.layout, record.hash, info, ["meta"], steps=[shown])
            except CorruptFileError as exc:
                unreadable.append(unreadable_json(record, info, exc))
                continue
            indices = to_numpy(table.column("index")).tolist()
            metas = table.column("meta").to_pylist()
            count += len(indices)
            for index, meta_text in zip(indices, metas, strict=True):
                if listed >= MAX_OBJECTS:
                    break
                meta = parse_meta(meta_text)
                records.append({"index": int(index), **{k: meta.get(k) for k in fields}})
                listed += 1
        if record.hash not in runs:
            runs[record.hash] = run_info(state, record, now)
        sequences.append(
            {
                "run": record.hash,
                "seq": info.seq_id,
                "name": info.name,
                "context": info.context,
                "kind": info.kind,
                "steps": int(steps.size),
                "first_step": int(steps[0]) if steps.size else None,
                "last_step": int(steps[-1]) if steps.size else None,
                "step": shown,
                "version": version_of(record),
                "records": records,
            }
        )
    return {
        "query": query,
        "kind": seq_var,
        "steps": all_steps,
        "step": chosen,
        "count": count,
        "listed": listed,
        "sequences": sequences,
        "runs": runs,
        "unreadable": unreadable,
        "damaged": damaged_json(damaged),
        "elapsed_s": time.perf_counter() - started,
    }


def parse_meta(text: str | None) -> dict[str, Any]:
    """An object's stored meta JSON as a dict ({} when it is not one)."""
    try:
        meta = json.loads(text or "{}")
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


def texts(state: UiState, query: str, search: str, offset: int, limit: int) -> dict[str, Any]:
    """Rows (run, name, context, step, index, text) of the texts matching `query` whose text
    contains every word of `search` (case-insensitive), `limit` rows from `offset`."""
    started = time.perf_counter()
    plan = plan_query(query, "texts")
    matches, damaged = state.matches(plan)
    words = [w for w in search.lower().split() if w]
    rows: list[dict[str, Any]] = []
    unreadable = []
    runs: dict[str, Any] = {}
    total = 0
    now = time.time()
    for match in matches:
        record = match.record
        for info in match.sequences:
            state.check()
            try:
                table = read_object_rows(state.layout, record.hash, info, ["payload"])
            except CorruptFileError as exc:
                unreadable.append(unreadable_json(record, info, exc))
                continue
            short = short_read(record, info, to_numpy(table.column("step")))
            if short is not None:  # searched as far as it can be read
                unreadable.append(unreadable_json(record, info, short))
            steps = to_numpy(table.column("step")).tolist()
            indices = to_numpy(table.column("index")).tolist()
            for step, index, payload in zip(
                steps, indices, table.column("payload").to_pylist(), strict=True
            ):
                text = bytes(payload).decode("utf-8", "replace")
                if words and not all(w in text.lower() for w in words):
                    continue
                if offset <= total < offset + limit:
                    if record.hash not in runs:
                        runs[record.hash] = run_info(state, record, now)
                    rows.append(
                        {
                            "run": record.hash,
                            "seq": info.seq_id,
                            "name": info.name,
                            "context": info.context,
                            "step": int(step),
                            "index": int(index),
                            "text": text[:MAX_TEXT_CHARS],
                            "length": len(text),
                            # said, not inferred: a page's string length counts an emoji twice
                            "truncated": len(text) > MAX_TEXT_CHARS,
                        }
                    )
                total += 1
    return {
        "query": query,
        "search": search,
        "total": total,
        "offset": offset,
        "rows": rows,
        "runs": runs,
        "unreadable": unreadable,
        "damaged": damaged_json(damaged),
        "elapsed_s": time.perf_counter() - started,
    }


def routes(state: UiState) -> list[Route]:
    def listing_endpoint(seq_var: str) -> Any:
        @api_errors
        async def endpoint(request: Request) -> Response:
            params = request.query_params
            step = parse_int(params.get("step"), "step", None)
            return JsonResponse(
                await state.call(listing, state, seq_var, params.get("q", ""), step)
            )

        return endpoint

    @api_errors
    async def texts_endpoint(request: Request) -> Response:
        params = request.query_params
        offset = max(0, parse_int(params.get("offset"), "offset", 0) or 0)
        limit = min(MAX_TEXT_LIMIT, max(1, parse_int(params.get("limit"), "limit", 200) or 200))
        answer = await state.call(
            texts, state, params.get("q", ""), params.get("search", ""), offset, limit
        )
        return JsonResponse(answer)

    return [
        *(Route(f"/api/{name}", listing_endpoint(name), methods=["GET"]) for name in LISTED_KINDS),
        Route("/api/texts", texts_endpoint, methods=["GET"]),
    ]
