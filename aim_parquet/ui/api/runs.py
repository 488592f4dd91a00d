"""`/api/runs`: the runs table (columnar JSON) and the changes a user makes to runs.

    GET    /api/runs?q=AIMQL&metrics=loss,acc[&sparse=1]   runs matching a run query, newest first
    GET    /api/runs/{hash}                     one run: fields, all params, its sequences
    POST   /api/runs/{hash}                     {"name"?, "description"?, "tags"?}: edit
    POST   /api/runs/{hash}/archive             {"archived": true|false}
    DELETE /api/runs/{hash}                     delete (moved to .aim/trash first, as the CLI)

The table is columnar (`columns`: one list per field, `params`: one list per flattened param key,
`metrics`: last values of the metrics asked for), so 10,000 runs cost one short key per column,
not per cell. Changes are refused for a run a live process writes (409, `run_locked`).
"""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from aim_parquet.errors import MissingRunError
from aim_parquet.format.paths import RepoLayout, validate_run_hash
from aim_parquet.format.run_fields import duration_s
from aim_parquet.query.planner import plan_query
from aim_parquet.query.views import RunView
from aim_parquet.storage.compaction.dataset import refresh_after_change
from aim_parquet.storage.index.run_records import RunRecord
from aim_parquet.storage.maintenance.run_ops import delete_run_folder
from aim_parquet.storage.maintenance.sidecar_edits import edit_run, set_archived
from aim_parquet.storage.online.run_reader import load_run_meta
from aim_parquet.ui.api.errors import BadRequest, api_errors
from aim_parquet.ui.api.jsonout import JsonResponse
from aim_parquet.ui.api.state import UiState, damaged_json

MAX_TEXT = 10_000
MAX_TAGS = 100
MAX_BODY = 1_000_000
RUN_FIELDS = ("hash", "name", "experiment", "tags", "description", "created", "ended")


def flatten_params(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"hparams": {"lr": 0.1}}` -> `{"hparams.lr": 0.1}`; lists and other values stay leaves."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten_params(value, name + "."))
        else:
            out[name] = value
    return out


def context_label(context: dict[str, Any]) -> str:
    """`subset=val, fold=1` (empty for the empty context)."""
    return ", ".join(f"{k}={v}" for k, v in sorted(context.items()))


def metric_label(name: str, context: dict[str, Any]) -> str:
    label = context_label(context)
    return f"{name} ({label})" if label else name


def run_fields(
    record: RunRecord, view: RunView, now: float, layout: RepoLayout | None = None
) -> dict[str, Any]:
    """The fields of one run as the API shows them. A run nobody writes any more that never
    ended (its process was killed) lasted until its last flush, not until now."""
    end = record.end_time
    last = end
    if last is None and layout is not None and not view.active:
        try:
            last = layout.sidecar(record.hash).stat().st_mtime
        except OSError:
            last = None
    return {
        "hash": record.hash,
        "name": record.display_name,
        "experiment": record.experiment,
        "tags": list(record.tags),
        "description": record.description,
        "created": record.creation_time,
        "ended": end,
        "duration": duration_s(record.creation_time, last, now),
        "active": view.active,
        "archived": record.archived,
    }


def param_columns(flats: list[dict[str, Any]], *, sparse: bool) -> dict[str, Any]:
    """One column per flattened param key: a list with a value (or None) per run; with
    `sparse`, a key fewer than half the runs have is `{"rows": [i, ...], "values": [...]}`
    instead (10,000 runs with a few keys of their own each made 10,000 lists of 10,000
    nulls: gigabytes of JSON)."""
    rows: dict[str, list[int]] = {}
    for i, flat in enumerate(flats):
        for key in flat:
            rows.setdefault(key, []).append(i)
    columns: dict[str, Any] = {}
    for key in sorted(rows):
        present = rows[key]
        if sparse and 2 * len(present) < len(flats):
            columns[key] = {"rows": present, "values": [flats[i][key] for i in present]}
        else:
            columns[key] = [flat.get(key) for flat in flats]
    return columns


def runs_table(
    state: UiState, query: str, metric_names: list[str], *, sparse: bool = False
) -> dict[str, Any]:
    plan = plan_query(query, None)
    started = time.perf_counter()
    matches, damaged = state.matches(plan)
    now = time.time()
    wanted = set(metric_names)
    columns: dict[str, list[Any]] = {f: [] for f in (*RUN_FIELDS, "duration", "active")}
    columns["archived"] = []
    flats: list[dict[str, Any]] = []
    lasts: list[dict[str, Any]] = []
    metric_keys: dict[str, dict[str, Any]] = {}
    for match in matches:
        record = match.record
        fields = run_fields(record, RunView(record, state.layout), now, state.layout)
        for key, column in columns.items():
            column.append(fields[key])
        flats.append(flatten_params(record.params))
        row: dict[str, Any] = {}
        if wanted:
            for entry in record.catalogue():
                if entry.is_metric and entry.name in wanted:
                    label = metric_label(entry.name, entry.context)
                    metric_keys.setdefault(
                        label, {"label": label, "name": entry.name, "context": entry.context}
                    )
                    row[label] = entry.info.last
        lasts.append(row)
    params = param_columns(flats, sparse=sparse)
    metrics = [
        {**meta, "values": [row.get(label) for row in lasts]}
        for label, meta in sorted(
            metric_keys.items(), key=lambda kv: (metric_names.index(kv[1]["name"]), kv[0])
        )
    ]
    return {
        "query": query,
        "count": len(matches),
        "columns": columns,
        "params": params,
        "metrics": metrics,
        "damaged": damaged_json(damaged),
        "elapsed_s": time.perf_counter() - started,
    }


def run_detail(state: UiState, run_hash: str) -> dict[str, Any]:
    validate_run_hash(run_hash)
    meta = load_run_meta(state.layout, run_hash)
    view = RunView(meta, state.layout)
    fields = run_fields(meta, view, time.time(), state.layout)  # type: ignore[arg-type]
    fields["params"] = meta.params
    fields["sequences"] = [
        {
            "name": info.name,
            "context": info.context,
            "kind": info.kind,
            "count": info.count,
            "last_step": info.last_step,
            "last": info.last if info.is_metric else None,
        }
        for info in meta.sequences
    ]
    return fields


async def _body(request: Request) -> dict[str, Any]:
    chunks, size = [], 0
    async for chunk in request.stream():  # read at most MAX_BODY bytes, whatever is sent
        size += len(chunk)
        if size > MAX_BODY:
            raise BadRequest(f"request body too large (over {MAX_BODY:,} bytes)")
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        data = json.loads(raw or b"{}")
    except ValueError as exc:
        raise BadRequest(f"request body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    return data


def _text(data: dict[str, Any], key: str) -> str | None:
    value = data[key]
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"{key!r} must be a string or null")
    if value is not None and len(value) > MAX_TEXT:
        raise BadRequest(f"{key!r} is longer than {MAX_TEXT} characters")
    return value


def _tags(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(t, str) and t.strip() for t in value):
        raise BadRequest("'tags' must be a list of non-empty strings")
    if len(value) > MAX_TAGS:
        raise BadRequest(f"a run has at most {MAX_TAGS} tags")
    return tuple(dict.fromkeys(t.strip() for t in value))


def routes(state: UiState) -> list[Route]:
    @api_errors
    async def list_runs(request: Request) -> Response:
        query = request.query_params.get("q", "")
        names = [n for n in request.query_params.get("metrics", "").split(",") if n]
        sparse = request.query_params.get("sparse", "") in ("1", "true")
        table = await state.call(lambda: runs_table(state, query, names, sparse=sparse))
        return JsonResponse(table)

    @api_errors
    async def get_run(request: Request) -> Response:
        return JsonResponse(await state.call(run_detail, state, request.path_params["hash"]))

    @api_errors
    async def edit(request: Request) -> Response:
        run_hash = validate_run_hash(request.path_params["hash"])
        data = await _body(request)
        changes: dict[str, Any] = {}
        for key in ("name", "description"):
            if key in data:
                changes[key] = _text(data, key)
        if "tags" in data:
            changes["tags"] = _tags(data["tags"])
        unknown = set(data) - {"name", "description", "tags"}
        if unknown or not changes:
            raise BadRequest("send a JSON object with 'name', 'description' and/or 'tags'")
        await state.call(lambda: edit_run(state.layout, run_hash, **changes))
        await state.call(refresh_after_change, state.layout)
        return JsonResponse(await state.call(run_detail, state, run_hash))

    @api_errors
    async def archive(request: Request) -> Response:
        run_hash = validate_run_hash(request.path_params["hash"])
        data = await _body(request)
        if not isinstance(data.get("archived"), bool):
            raise BadRequest('send {"archived": true} or {"archived": false}')
        await state.call(set_archived, state.layout, run_hash, data["archived"])
        await state.call(refresh_after_change, state.layout)
        return JsonResponse(await state.call(run_detail, state, run_hash))

    @api_errors
    async def delete(request: Request) -> Response:
        run_hash = validate_run_hash(request.path_params["hash"])
        if not state.layout.run_dir(run_hash).is_dir():
            raise MissingRunError(f"no run {run_hash} in {state.layout.root}")
        await state.call(delete_run_folder, state.layout, run_hash)
        await state.call(refresh_after_change, state.layout)
        return JsonResponse({"deleted": run_hash})

    return [
        Route("/api/runs", list_runs, methods=["GET"]),
        Route("/api/runs/{hash}", get_run, methods=["GET"]),
        Route("/api/runs/{hash}", edit, methods=["POST"]),
        Route("/api/runs/{hash}", delete, methods=["DELETE"]),
        Route("/api/runs/{hash}/archive", archive, methods=["POST"]),
    ]
