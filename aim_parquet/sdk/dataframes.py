"""pandas and polars tables of runs and sequences (each library imported only when asked).

A leaf of the SDK: it converts columns (numpy arrays, rows) to tables and reads no sequence;
`sdk.sequence.sequence_columns` gives the columns of a sequence. Frames of metrics only are built
in Arrow by `sdk.frames` (same columns; its doc gives the types); the row-by-row columns here
serve frames that hold objects (images, texts, ...).

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
numeric param some runs lack stays float64); polars gets nulls. A run or context column whose
values differ in kind between runs is an object column in pandas (each run's own value) and the
JSON text of each value in polars, as in a metric frame. A run row is Aim's `Run.dataframe()`:
`hash`, the props (`name`, `experiment`, `description`, `archived`, `creation_time`,
`end_time`, `active`, `tags` as JSON) and the params flattened to depth 3 as `a.b.c` paths
(lists and deeper dicts JSON-dumped). Text that is not valid Unicode (a lone surrogate in an old
run's params) appears with a visible `\\udcxx` escape: pandas' string columns, polars and Arrow
hold only valid UTF-8.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from aim_parquet.errors import OptionalDependencyError
from aim_parquet.format.run_shape import RunFields
from aim_parquet.format.values import utf8_safe

if TYPE_CHECKING:
    import pandas
    import polars

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


def jsonable(value: Any) -> str:
    return utf8_safe(json.dumps(value, ensure_ascii=False, default=repr))


def text_value(value: Any) -> Any:
    return utf8_safe(value) if isinstance(value, str) else value


def flatten_params(params: dict[str, Any], depth: int = PARAM_DEPTH) -> dict[str, Any]:
    """`{"a": {"b": 1}}` -> `{"a.b": 1}` down to `depth` levels; lists/deeper dicts as JSON."""
    out: dict[str, Any] = {}
    _flatten(params, "", 1, depth, out)
    return out


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _flatten(
    node: dict[str, Any], prefix: str, level: int, depth: int, out: dict[str, Any]
) -> None:
    for key, value in node.items():
        path = f"{prefix}.{key}" if prefix else key
        if type(value) in _SCALARS:  # (most values: neither a dict nor a list)
            out[path] = value
        elif isinstance(value, dict) and value and level < depth:
            _flatten(value, path, level + 1, depth, out)
        elif isinstance(value, (dict, list)):
            out[path] = jsonable(value)
        else:
            out[path] = value


class RowSource(Protocol):
    """What a run row reads of a run (`sdk.run_base.RunBase`): its fields and whether it is
    active (asked only when the props are included)."""

    @property
    def hash(self) -> str: ...
    @property
    def props(self) -> RunFields: ...
    @property
    def active(self) -> bool: ...


def run_row(
    run: RowSource, *, include_props: bool = True, include_params: bool = True
) -> dict[str, Any]:
    """One run as a flat dict (the row of Aim's `Run.dataframe()`)."""
    meta = run.props
    row: dict[str, Any] = {"hash": run.hash}
    if include_props:
        row.update(
            name=text_value(meta.display_name),
            experiment=text_value(meta.experiment),
            description=text_value(meta.description),
            archived=meta.archived,
            creation_time=meta.creation_time,
            end_time=meta.end_time,
            active=run.active,
            tags=_tags_text(tuple(meta.tags)),
        )
    if include_params:
        for key, value in flatten_params(meta.params).items():
            # (`utf8_safe` of each key and text value: ASCII text is valid as it is)
            safe_key = key if key.isascii() else utf8_safe(key)
            if isinstance(value, str) and not value.isascii():
                value = utf8_safe(value)
            row.setdefault(safe_key, value)
    return row


@functools.lru_cache(maxsize=4096)
def _tags_text(tags: tuple[str, ...]) -> str:
    """The `tags` column's JSON (runs mostly share a few tag lists)."""
    return jsonable(list(tags))


def full_column(n: int, value: Any) -> Array:
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
    if stamps.size:
        low, high = float(stamps.min()), float(stamps.max())  # (NaN when one is)
        if low >= _FIRST_S and high <= _LAST_S:  # every time a datetime: no mask, in place
            return _local_micros(stamps, low, high).view("datetime64[us]")
    stamps = np.where(representable_times(stamps), stamps, np.nan)  # (others: NaT)
    micros = _micros(stamps)
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


_FIRST_S, _LAST_S = -62135596800.0, 253402300799.0  # 0001-01-01 and 9999-12-31 23:59:59 UTC


def _local_micros(stamps: Array, low: float, high: float) -> Array:
    """`local_times`' microseconds of timestamps that are all datetimes (`low`, `high`: the
    least and greatest), as `_micros` rounds them, in four arrays instead of a dozen (a frame of
    600,000 points spent most of its `time` column in fresh temporaries)."""
    whole = np.trunc(stamps)
    fraction = np.subtract(stamps, whole)
    fraction *= 1e6
    np.round(fraction, out=fraction)
    micros: Array = whole.astype(np.int64)
    micros *= 1_000_000
    micros += fraction.astype(np.int64)
    first = _utc_offset_us(low)
    if first == _utc_offset_us(high) and high - low < _OFFSET_CHECK_SPAN_S:
        micros += first
        return micros
    micros += np.array([_utc_offset_us(t) for t in stamps.tolist()], dtype=np.int64)
    return micros


def representable_times(stamps: Array) -> Array:
    """Where epoch-second timestamps are datetimes at all (finite, years 1 to 9999): a damaged
    point's timestamp (1e300, inf) is a missing time, not a frame that cannot be built."""
    with np.errstate(invalid="ignore"):
        return (stamps >= _FIRST_S) & (stamps <= _LAST_S)


def _micros(stamps: Array) -> Array:
    """Whole microseconds of epoch-second timestamps rounded as `datetime.fromtimestamp`
    rounds them: the fraction split off exactly, then rounded half to even (scaling the whole
    timestamp first rounds it to a quarter microsecond and can land on the other side); NaT
    where a timestamp is missing."""
    known = np.isfinite(stamps)
    finite = np.where(known, stamps, 0.0)
    whole = np.trunc(finite)
    fraction: Array = np.round((finite - whole) * 1e6)
    micros: Array = whole.astype(np.int64) * 1_000_000 + fraction.astype(np.int64)
    micros[~known] = np.iinfo(np.int64).min  # NaT
    return micros


_OFFSET_CHECK_SPAN_S = 12 * 3600  # shorter than any gap between two offset changes


def _utc_offset_us(timestamp: float) -> int:
    import time

    return int(time.localtime(timestamp).tm_gmtoff) * 1_000_000


PROP_KEYS = (
    "name", "experiment", "description", "archived", "creation_time", "end_time", "active", "tags",
)  # fmt: skip


def column_rank(name: str) -> int:
    """Where a column goes when tables with different columns are stacked: Aim's columns first
    in Aim's order (`idx, step, value, epoch, time, run.hash, run.<params>, <var>.name,
    <var>.context.<key>`), ours after."""
    if name in _LEADING:
        return _LEADING[name]
    if name.startswith("run."):
        return 6 if name[4:] not in PROP_KEYS else 10
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
            cols[name] if name in cols else full_column(n, fill)
            for cols, n in zip(tables, lengths, strict=True)
        ]
        out[name] = _concat(parts)
    return out


def to_pandas(tables: Iterable[dict[str, Array]]) -> pandas.DataFrame:
    pd = require_pandas()
    return pd.DataFrame(concat_columns(tables))


def _polars_series(pl: Any, name: str, array: Array) -> Any:
    """A column as polars; a run or context column whose values differ in kind (a param that is
    text in one run and a number in another, a bool among ints, bytes among ints) as the JSON
    text of each value, as in a metric frame (`sdk.frames`), not as polars infers it (bytes
    among ints: a SchemaError; a bool among ints: silently 1)."""
    if array.dtype != object:
        return pl.Series(name, array)
    values = array.tolist()
    if name.startswith("run.") or ".context." in name:
        kinds = set(map(type, values))
        kinds.discard(type(None))
        if len(kinds) > 1 and kinds != {int, float}:
            texts = [None if v is None else jsonable(v) for v in values]
            return pl.Series(name, texts, dtype=pl.String)
    return pl.Series(name, values, strict=False)


def to_polars(tables: Iterable[dict[str, Array]]) -> polars.DataFrame:
    pl = require_polars()
    cols = concat_columns(tables, fill=None)
    frame: polars.DataFrame = pl.DataFrame([_polars_series(pl, n, a) for n, a in cols.items()])
    return frame


def runs_to_pandas(rows: list[dict[str, Any]]) -> pandas.DataFrame:
    pd = require_pandas()
    return pd.DataFrame(rows)
