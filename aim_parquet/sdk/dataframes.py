"""pandas and polars tables of runs and sequences (each library imported only when asked).

Frames of metrics only are built in Arrow by `sdk.frames` (same columns; its doc gives the
types); the row-by-row columns here serve frames that hold objects (images, texts, ...).

Columns of a sequence table (long format, one row per step), in this order: Aim's first, in
Aim's order, then ours::

    idx, step, value, epoch, time, run.hash, run.<param path> ..., <var>.name,
    <var>.context.<key> ..., timestamp (float epoch seconds), <var>.context (canonical JSON),
    run.<prop> ...

`<var>` is the query variable of the sequence class (`metric`, `images`, ...). Which groups
appear follows Aim's `include_run`/`include_name`/`include_context`/`include_props`/
`include_params` flags. As in Aim, metric values and epochs are float64 (NaN for a point tracked
without an epoch) and `time` is a naive datetime in the reader's local time
(`datetime.fromtimestamp`); the zone-free UTC instant is `timestamp`. Stacking the tables of
several sequences fills a column one of them lacks with NaN, as pandas' `concat` does in Aim (a
numeric param some runs lack stays float64); polars gets nulls. A run row is Aim's
`Run.dataframe()`: `hash`, the props (`name`,
`experiment`, `description`, `archived`, `creation_time`, `end_time`, `active`, `tags` as JSON)
and the params flattened to depth 3 as `a.b.c` paths (lists and deeper dicts JSON-dumped).
Text that is not valid Unicode (a lone surrogate in an old run's params) appears with a visible
`\\udcxx` escape: pandas' string columns, polars and Arrow hold only valid UTF-8.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from aim_parquet.errors import OptionalDependencyError
from aim_parquet.format.paths import canonical_context
from aim_parquet.format.values import utf8_safe

if TYPE_CHECKING:
    import pandas
    import polars

    from aim_parquet.sdk.sequence import Sequence

Array = np.ndarray[Any, Any]
PARAM_DEPTH = 3


def require_pandas() -> Any:
    try:
        import pandas
    except ImportError as exc:
        raise OptionalDependencyError(
            "DataFrames need pandas, which is not installed: pip install pandas "
            "(or pip install 'aim_parquet[pandas]')."
        ) from exc
    return pandas


def require_polars() -> Any:
    try:
        import polars
    except ImportError as exc:
        raise OptionalDependencyError(
            "to_polars() needs polars, which is not installed: pip install polars "
            "(or pip install 'aim_parquet[polars]')."
        ) from exc
    return polars


def _jsonable(value: Any) -> str:
    return utf8_safe(json.dumps(value, ensure_ascii=False, default=repr))


def _text(value: Any) -> Any:
    return utf8_safe(value) if isinstance(value, str) else value


def flatten_params(params: dict[str, Any], depth: int = PARAM_DEPTH) -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}` down to `depth` levels; lists/deeper dicts as JSON."""
    out: dict[str, Any] = {}

    def walk(node: dict[str, Any], prefix: str, level: int) -> None:
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else key
            if isinstance(value, dict) and value and level < depth:
                walk(value, path, level + 1)
            elif isinstance(value, (dict, list)):
                out[path] = _jsonable(value)
            else:
                out[path] = value

    walk(params, "", 1)
    return out


def run_row(run: Any, *, include_props: bool = True, include_params: bool = True) -> dict[str, Any]:
    """One run as a flat dict (the row of Aim's `Run.dataframe()`)."""
    meta = run.props
    row: dict[str, Any] = {"hash": run.hash}
    if include_props:
        row.update(
            name=_text(meta.display_name),
            experiment=_text(meta.experiment),
            description=_text(meta.description),
            archived=meta.archived,
            creation_time=meta.creation_time,
            end_time=meta.end_time,
            active=run.active,
            tags=_jsonable(list(meta.tags)),
        )
    if include_params:
        for key, value in flatten_params(meta.params).items():
            row.setdefault(utf8_safe(key), _text(value))
    return row


def _full(n: int, value: Any) -> Array:
    """A column repeating `value` (object dtype for None, bytes and containers)."""
    if value is None or isinstance(value, (list, tuple, dict, bytes)):
        out = np.empty(n, dtype=object)
        for i in range(n):
            out[i] = value
        return out
    return np.full(n, value)


def _concat(parts: list[Array]) -> Array:
    """Concatenate; parts of different kinds (other than numbers) become one object column."""
    if len(parts) == 1:
        return parts[0]
    kinds = {p.dtype.kind for p in parts}
    if len(kinds) == 1 or kinds <= {"i", "u", "f"}:
        return np.concatenate(parts)
    return np.concatenate([p.astype(object) for p in parts])


def local_times(timestamps: Array) -> Array:
    """Naive local-time datetimes of epoch-second timestamps, as Aim's `time` column
    (`datetime.fromtimestamp`); one offset for the whole column unless it spans a change of the
    local UTC offset (daylight saving), then each point's own."""
    stamps = np.asarray(timestamps, dtype=np.float64)
    micros = np.round(stamps * 1e6).astype(np.int64)
    if stamps.size == 0:
        return micros.view("datetime64[us]")
    finite = stamps[np.isfinite(stamps)]
    if finite.size == 0:
        return micros.view("datetime64[us]")
    low, high = float(finite.min()), float(finite.max())
    first = _utc_offset_us(low)
    if first == _utc_offset_us(high) and high - low < _OFFSET_CHECK_SPAN_S:
        shifted: Array = (micros + first).view("datetime64[us]")
        return shifted
    offsets = np.array([_utc_offset_us(t) if np.isfinite(t) else 0 for t in stamps.tolist()])
    local: Array = (micros + offsets).view("datetime64[us]")
    return local


_OFFSET_CHECK_SPAN_S = 12 * 3600  # shorter than any gap between two offset changes


def _utc_offset_us(timestamp: float) -> int:
    import time

    return int(time.localtime(timestamp).tm_gmtoff) * 1_000_000


_PROP_KEYS = (
    "name", "experiment", "description", "archived", "creation_time", "end_time", "active", "tags",
)  # fmt: skip


def sequence_columns(
    seq: Sequence,
    *,
    only_last: bool = False,
    include_run: bool = True,
    include_name: bool = True,
    include_context: bool = True,
    include_props: bool = True,
    include_params: bool = True,
) -> dict[str, Array]:
    """Columns of one sequence (module doc) as numpy arrays of equal length."""
    from aim_parquet.sdk.sequence import ArrayView

    seq.preload()
    steps = seq._column("value")[0]
    values = ArrayView(seq, "value")._values_array()
    epochs = ArrayView(seq, "epoch")._values_array().astype(np.float64)
    stamps = ArrayView(seq, "timestamp")._values_array()
    if seq.is_metric:
        values = values.astype(np.float64)
    if only_last and len(steps):
        steps, values, epochs, stamps = steps[-1:], values[-1:], epochs[-1:], stamps[-1:]
    n = len(steps)
    var = seq.sequence_name()
    cols: dict[str, Array] = {
        "idx": np.arange(n, dtype=np.int64),
        "step": steps,
        "value": values,
        "epoch": epochs,
        "time": local_times(stamps),
    }
    row = {}
    if include_run:
        cols["run.hash"] = _full(n, seq.run.hash)
        if include_props or include_params:
            row = run_row(seq.run, include_props=include_props, include_params=include_params)
            for key, value in row.items():
                if key != "hash" and key not in _PROP_KEYS:
                    cols.setdefault(f"run.{key}", _full(n, value))
    context = seq.context.to_dict() if include_context else {}
    if include_name:
        cols[f"{var}.name"] = _full(n, seq.name)
    for key, value in context.items():
        shown = _jsonable(value) if isinstance(value, (dict, list)) else _text(value)
        cols[utf8_safe(f"{var}.context.{key}")] = _full(n, shown)
    cols["timestamp"] = stamps
    if include_context:
        cols[f"{var}.context"] = _full(n, canonical_context(context))
    for key in _PROP_KEYS:
        if key in row:
            cols.setdefault(f"run.{key}", _full(n, row[key]))
    return cols


def column_rank(name: str) -> int:
    """Where a column goes when tables with different columns are stacked: Aim's columns first
    in Aim's order (`idx, step, value, epoch, time, run.hash, run.<params>, <var>.name,
    <var>.context.<key>`), ours after."""
    if name in _LEADING:
        return _LEADING[name]
    if name.startswith("run."):
        return 6 if name[4:] not in _PROP_KEYS else 10
    var, _, rest = name.partition(".")
    if var in _SEQUENCE_VARS and rest == "name":
        return 7
    if var in _SEQUENCE_VARS and rest.startswith("context."):
        return 8
    return 9


_LEADING = {"idx": 0, "step": 1, "value": 2, "epoch": 3, "time": 4, "run.hash": 5}
_SEQUENCE_VARS = frozenset(
    {"metric", "images", "texts", "distributions", "audios", "figures", "logs", "log_records"}
)


def concat_columns(tables: Iterable[dict[str, Array]], *, fill: Any = np.nan) -> dict[str, Array]:
    """Stack column tables; a column missing from a table is filled with `fill` (NaN, as pandas'
    concat does, so a numeric param some runs lack stays float64; polars uses None: null)."""
    tables = list(tables)
    names: dict[str, None] = {}
    for cols in tables:
        names.update(dict.fromkeys(cols))
    if len(tables) > 1:
        names = dict.fromkeys(sorted(names, key=column_rank))
    lengths = [len(next(iter(cols.values()))) if cols else 0 for cols in tables]
    out: dict[str, Array] = {}
    for name in names:
        parts = [
            cols[name] if name in cols else _full(n, fill)
            for cols, n in zip(tables, lengths, strict=True)
        ]
        out[name] = _concat(parts)
    return out


def to_pandas(tables: Iterable[dict[str, Array]]) -> pandas.DataFrame:
    pd = require_pandas()
    return pd.DataFrame(concat_columns(tables))


def _polars_series(pl: Any, name: str, array: Array) -> Any:
    if array.dtype == object:
        return pl.Series(name, array.tolist(), strict=False)
    return pl.Series(name, array)


def to_polars(tables: Iterable[dict[str, Array]]) -> polars.DataFrame:
    pl = require_polars()
    cols = concat_columns(tables, fill=None)
    frame: polars.DataFrame = pl.DataFrame([_polars_series(pl, n, a) for n, a in cols.items()])
    return frame


def runs_to_pandas(rows: list[dict[str, Any]]) -> pandas.DataFrame:
    pd = require_pandas()
    return pd.DataFrame(rows)


def runs_to_polars(rows: list[dict[str, Any]]) -> polars.DataFrame:
    pl = require_polars()
    frame: polars.DataFrame = pl.from_dicts(rows, infer_schema_length=None, strict=False)
    return frame
