"""What the run page needs beyond `/api/runs/HASH`: terminal logs, log records, and what can be
shown of a damaged run.

    GET /api/runs/HASH/logs?offset=0&limit=500&search=TEXT
        the run's terminal output (sequence `logs`), lines `offset`..`offset+limit` as
        `[step, text]` (escape codes removed; of a line rewritten with carriage returns, its
        last state), `total` lines, and with `search` the positions of the lines containing it
        (case-insensitive; the first `MAX_MATCHES`) and `match_count`
    GET /api/runs/HASH/log-records?limit=N
        the run's `__log_records` (run.log_info(...) & co.), the last `limit`: step, level,
        level name, message, timestamp, extra arguments, logger location
    GET /api/runs/HASH/salvage
        for a run whose sidecar cannot be read: why, the fields and params the run index last
        saw, and the sequences found in its data files (read-only; `aim-parquet verify --repair`
        rebuilds the sidecar)
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import OrderedDict
from dataclasses import replace
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aim_parquet.errors import AimParquetError, CorruptFileError, MissingRunError
from aim_parquet.format.meta import RunMeta
from aim_parquet.format.paths import validate_run_hash
from aim_parquet.format.run_fields import LOG_RECORDS_SEQUENCE, LOGS_SEQUENCE
from aim_parquet.storage.base.columns import to_numpy
from aim_parquet.storage.online.object_read import read_object_rows
from aim_parquet.ui.api.errors import BadRequest, api_errors
from aim_parquet.ui.api.jsonout import JsonResponse
from aim_parquet.ui.api.media import find_sequence
from aim_parquet.ui.api.objects import find_record, parse_int, short_read, version_of
from aim_parquet.ui.api.state import UiState

MAX_LINES = 5_000
MAX_MATCHES = 10_000
MAX_RECORDS = 10_000
LOG_CACHE_RUNS = 8
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")


def clean_line(text: str) -> str:
    """A captured terminal line as shown: escape codes removed, the last carriage-return
    rewrite kept (a progress bar's final state)."""
    text = _ESCAPES.sub("", text).rstrip("\r\n")
    if "\r" in text:
        parts = [p for p in text.split("\r") if p]
        text = parts[-1] if parts else ""
    return text


Lines = tuple[list[int], list[str], str | None]
"""A run's log lines: their steps, their texts, and why some could not be read (or None)."""


class LogCache:
    """The decoded lines of the last few finished runs' logs (an active run's are read anew)."""

    def __init__(self) -> None:
        self._items: OrderedDict[tuple[str, str, str], Lines] = OrderedDict()
        self._lock = threading.Lock()

    def lines(self, state: UiState, run_hash: str) -> Lines | None:
        record = find_record(state, run_hash)
        entry = next((e for e in record.catalogue() if e.name == LOGS_SEQUENCE), None)
        if entry is None:
            try:
                _, info = find_sequence(state, run_hash, _logs_seq_id())
            except MissingRunError:
                return None
        else:
            info = entry.info
        key = (run_hash, info.seq_id, version_of(record))
        with self._lock:
            found = self._items.get(key)
        if found is not None:
            return found
        table = read_object_rows(state.layout, run_hash, info, ["payload"])
        steps = to_numpy(table.column("step"))
        texts = [
            clean_line(bytes(p).decode("utf-8", "replace"))
            for p in table.column("payload").to_pylist()
        ]
        short = short_read(record, info, steps, "lines")
        found = (steps.tolist(), texts, None if short is None else problem_text(short))
        if key[2]:
            with self._lock:
                self._items[key] = found
                while len(self._items) > LOG_CACHE_RUNS:
                    self._items.popitem(last=False)
        return found


def problem_text(short: Exception) -> str:
    """A short read as the run page says it (with what to do)."""
    return f"Not all of it can be read: {short}. Run `aim-parquet verify --repair` to repair it."


def _logs_seq_id() -> str:
    from aim_parquet.format.paths import sequence_id

    return sequence_id(LOGS_SEQUENCE, {})


def logs(
    state: UiState, cache: LogCache, run_hash: str, offset: int, limit: int, search: str
) -> dict[str, Any]:
    found = cache.lines(state, run_hash)
    if found is None:
        return {"total": 0, "offset": 0, "lines": [], "matches": None, "match_count": 0}
    steps, texts, problem = found
    answer: dict[str, Any] = {
        "total": len(texts),
        "offset": offset,
        "lines": [[steps[i], texts[i]] for i in range(offset, min(len(texts), offset + limit))],
        "matches": None,
        "match_count": 0,
        "problem": problem,
    }
    if search:
        needle = search.lower()
        hits = [i for i, text in enumerate(texts) if needle in text.lower()]
        answer["matches"] = hits[:MAX_MATCHES]
        answer["match_count"] = len(hits)
    return answer


def log_records(state: UiState, run_hash: str, limit: int) -> dict[str, Any]:
    record = find_record(state, run_hash)
    entry = next((e for e in record.catalogue() if e.name == LOG_RECORDS_SEQUENCE), None)
    if entry is None:
        return {"total": 0, "records": []}
    table = read_object_rows(state.layout, run_hash, entry.info, ["payload"])
    short = short_read(record, entry.info, to_numpy(table.column("step")), "records")
    steps = to_numpy(table.column("step")).tolist()
    payloads = table.column("payload").to_pylist()
    start = max(0, len(payloads) - limit)
    records = []
    for step, payload in zip(steps[start:], payloads[start:], strict=True):
        try:
            fields = json.loads(bytes(payload).decode("utf-8", "replace"))
            level = int(fields.get("log_level", 0))
            records.append(
                {
                    "step": step,
                    "level": level,
                    "level_name": logging.getLevelName(level),
                    "message": str(fields.get("message", "")),
                    "timestamp": fields.get("timestamp"),
                    "extra": fields.get("extra_args") or {},
                    "logger": fields.get("logger_info"),
                }
            )
        except (ValueError, TypeError, AttributeError):
            records.append(
                {"step": step, "level": 40, "level_name": "UNREADABLE", "message": repr(payload)}
            )
    return {
        "total": len(payloads),
        "records": records,
        "problem": None if short is None else problem_text(short),
    }


def salvage(state: UiState, run_hash: str) -> dict[str, Any]:
    """What can be shown of a run whose sidecar cannot be read (see the module docstring)."""
    from aim_parquet.storage.maintenance.salvage import cached_sidecar, data_catalogue
    from aim_parquet.storage.online.run_reader import load_run_meta

    try:
        load_run_meta(state.layout, run_hash)
        return {"damaged": False}
    except CorruptFileError as exc:
        reason = str(exc)
    cached = cached_sidecar(state.layout, run_hash)
    base = None
    if cached is not None:
        try:
            base = RunMeta.from_json(cached, f"cached sidecar of {run_hash}")
        except AimParquetError:  # the cached copy is only a hint; the data is still listed
            base = None
    sequences: list[dict[str, Any]] = []
    problem = None
    try:
        start = RunMeta(hash=run_hash, creation_time=0.0) if base is None else base
        for info in data_catalogue(state.layout, run_hash, replace(start, sequences=())):
            sequences.append(
                {"name": info.name, "context": info.context, "kind": info.kind, "count": info.count}
            )
    except Exception as exc:  # what cannot be scanned is said, not raised
        problem = f"its data files could not be scanned either: {exc}"
    return {
        "damaged": True,
        "hash": run_hash,
        "reason": reason,
        "advice": "run `aim-parquet verify --repair` to rebuild it from its data files",
        "cached": None if base is None else _cached_fields(base),
        "sequences": sequences,
        "scan_problem": problem,
    }


def _cached_fields(meta: RunMeta) -> dict[str, Any]:
    return {
        "name": meta.name,
        "experiment": meta.experiment,
        "tags": list(meta.tags),
        "description": meta.description,
        "created": meta.creation_time,
        "ended": meta.end_time,
        "params": meta.params,
    }


def routes(state: UiState) -> list[Route]:
    cache = LogCache()

    @api_errors
    async def logs_endpoint(request: Request) -> Response:
        run_hash = validate_run_hash(request.path_params["hash"])
        params = request.query_params
        offset = max(0, parse_int(params.get("offset"), "offset", 0) or 0)
        limit = parse_int(params.get("limit"), "limit", 500) or 0
        if not 0 <= limit <= MAX_LINES:
            raise BadRequest(f"limit must be 0..{MAX_LINES}")
        search = params.get("search", "")[:1000]
        return JsonResponse(await state.call(logs, state, cache, run_hash, offset, limit, search))

    @api_errors
    async def records_endpoint(request: Request) -> Response:
        run_hash = validate_run_hash(request.path_params["hash"])
        limit = parse_int(request.query_params.get("limit"), "limit", MAX_RECORDS) or 0
        limit = min(MAX_RECORDS, max(1, limit))
        return JsonResponse(await state.call(log_records, state, run_hash, limit))

    @api_errors
    async def salvage_endpoint(request: Request) -> Response:
        run_hash = validate_run_hash(request.path_params["hash"])
        if not state.layout.run_dir(run_hash).is_dir():
            raise MissingRunError(f"no run {run_hash} in {state.layout.root}")
        return JsonResponse(await state.call(salvage, state, run_hash))

    return [
        Route("/api/runs/{hash}/logs", logs_endpoint, methods=["GET"]),
        Route("/api/runs/{hash}/log-records", records_endpoint, methods=["GET"]),
        Route("/api/runs/{hash}/salvage", salvage_endpoint, methods=["GET"]),
    ]
