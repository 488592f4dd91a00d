"""pandas and polars tables of runs and sequences (each library imported only when asked).

Frames of metrics only are built in Arrow by `sdk.frames` (same columns; its doc gives the
types); the row-by-row columns here serve frames that hold objects (images, texts, ...).

Columns of a sequence table (long format, one row per step), in this order::

    run.hash, <var>.name, <var>.context (canonical JSON), <var>.context.<key> ...,
    idx, step, value, epoch, timestamp (float epoch seconds), time (naive UTC datetime),
    run.<prop> ..., run.<param path> ...

`<var>` is the query variable of the sequence class (`metric`, `images`, ...). Which groups
appear follows Aim's `include_run`/`include_name`/`include_context`/`include_props`/
`include_params` flags. A run row is Aim's `Run.dataframe()`: `hash`, the props (`name`,
`experiment`, `description`, `archived`, `creation_time`, `end_time`, `active`, `tags` as JSON)
and the params flattened to depth 3 as `a.b.c` paths (lists and deeper dicts JSON-dumped).
Unlike Aim, `time` is naive UTC rather than local time, so it never depends on the reader's zone.
Text that is not valid Unicode (a lone surrogate in an old run's params) appears with a visible
`\\udcxx` escape: pandas' string columns, polars and Arrow hold only valid UTF-8.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

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
        raise ImportError(
            "DataFrames need pandas, which is not installed: pip install pandas "
            "(or pip install 'aim_parquet[pandas]')."
        ) from exc
    return pandas


def require_polars() -> Any:
    try:
        import polars
    except ImportError as exc:
        raise ImportError(
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


def _times(timestamps: Array) -> Array:
    micros = np.round(np.asarray(timestamps, dtype=np.float64) * 1e6).astype(np.int64)
    return micros.view("datetime64[us]")


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
    steps = ArrayView(seq, "value").indices_numpy()
    values = ArrayView(seq, "value").values_numpy()
    epochs = ArrayView(seq, "epoch").values_numpy()
    stamps = ArrayView(seq, "timestamp").values_numpy()
    if only_last and len(steps):
        steps, values, epochs, stamps = steps[-1:], values[-1:], epochs[-1:], stamps[-1:]
    n = len(steps)
    var = seq.sequence_name()
    cols: dict[str, Array] = {}
    if include_run:
        cols["run.hash"] = _full(n, seq.run.hash)
    if include_name:
        cols[f"{var}.name"] = _full(n, seq.name)
    if include_context:
        context = seq.context.to_dict()
        cols[f"{var}.context"] = _full(n, canonical_context(context))
        for key, value in context.items():
            shown = _jsonable(value) if isinstance(value, (dict, list)) else _text(value)
            cols[utf8_safe(f"{var}.context.{key}")] = _full(n, shown)
    cols["idx"] = np.arange(n, dtype=np.int64)
    cols["step"] = steps
    cols["value"] = values
    cols["epoch"] = epochs
    cols["timestamp"] = stamps
    cols["time"] = _times(stamps)
    if include_run and (include_props or include_params):
        row = run_row(seq.run, include_props=include_props, include_params=include_params)
        for key, value in row.items():
            if key != "hash":
                cols.setdefault(f"run.{key}", _full(n, value))
    return cols


def concat_columns(tables: Iterable[dict[str, Array]]) -> dict[str, Array]:
    """Stack column tables; a column missing from a table is filled with None."""
    tables = list(tables)
    names: dict[str, None] = {}
    for cols in tables:
        names.update(dict.fromkeys(cols))
    lengths = [len(next(iter(cols.values()))) if cols else 0 for cols in tables]
    out: dict[str, Array] = {}
    for name in names:
        parts = [
            cols[name] if name in cols else np.full(n, None, dtype=object)
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
    cols = concat_columns(tables)
    frame: polars.DataFrame = pl.DataFrame([_polars_series(pl, n, a) for n, a in cols.items()])
    return frame


def runs_to_pandas(rows: list[dict[str, Any]]) -> pandas.DataFrame:
    pd = require_pandas()
    return pd.DataFrame(rows)


def runs_to_polars(rows: list[dict[str, Any]]) -> polars.DataFrame:
    pl = require_polars()
    frame: polars.DataFrame = pl.from_dicts(rows, infer_schema_length=None, strict=False)
    return frame
