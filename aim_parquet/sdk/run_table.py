"""The run-level frame of a run query (`repo.query_runs(q).dataframe(metrics=[...])`) built from
the run index's columns, without a record or a Python step per run where the columns tell a
run's row: the same table, cell for cell, as the per-run builder (`sdk.run_frame.run_columns`,
which still builds the rows of the runs the columns cannot tell).

The runs taken from the columns ("column rows") are those the query's run part surely matches
column-wise (`query.prefilter`; when it cannot decide a run the whole frame is built per run)
that are rows of the index file, closed (`end_time` set: not active), without extra fields and,
when metrics are wanted, with a plain catalogue (`storage.index.catalogue_columns`):

- props from the index columns (`name`, `experiment`, ... as `RunRecord` gives them);
- params: the runs' params texts are grouped by their shape (`_shapes`: the text with each value
  replaced by `#`; the same shape is the same keys, in the same order, in valid JSON); a shape
  whose params are plain dicts down to `PARAM_DEPTH` (`run_rows`' plain case) with a typed
  column (`storage.index.param_columns`) for every leaf gives its runs' cells from those
  columns, where their status is a value or null; any other run is built per run;
- summaries from the catalogue list columns: each wanted metric entry's label and stats, picked
  per run with numpy.

Rows then columns are assembled as `run_rows.row_columns` does (columns in the order the rows
first name them, a summary column named like a param in the param's place).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from aim_parquet.format.json_records import loads_json
from aim_parquet.format.kinds import METRIC_KINDS
from aim_parquet.format.paths import canonical_context
from aim_parquet.format.run_fields import DEFAULT_EXPERIMENT, display_name
from aim_parquet.format.values import TAG, utf8_safe
from aim_parquet.sdk.dataframes import PARAM_DEPTH, PROP_KEYS, _tags_text
from aim_parquet.sdk.frames import SUMMARY_STATS
from aim_parquet.storage.base.columns import (
    any_numpy,
    int64_array,
    positions_numpy,
    string_array,
)
from aim_parquet.storage.index.index_entries import IndexSnapshot
from aim_parquet.storage.index.param_columns import NONE, VALUE

__all__ = ["ColumnRows", "column_rows"]

_SCALARS: Final = frozenset({str, int, float, bool, type(None)})
_STR: Final = r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"'
_NUM: Final = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
# a key (kept, then `#`) or a value followed by what ends it (`#`, then the end kept)
_SHAPE: Final = rf"({_STR}\s*:)|(?:{_STR}|{_NUM}|true|false|null)(\s*[,}}\]])"
_STAT_COLUMNS: Final = {
    "last": "seq_last", "last_step": "seq_last_step", "min": "seq_min", "max": "seq_max",
}  # fmt: skip
_NAN: Final = float("nan")
Cell = tuple[str, Any]  # ("param", path) or ("stat", (label id, stat))


class ColumnRows:
    """The rows taken from the columns: `positions` (into the snapshot's stored order, result
    order), `groups` (a group per row) and per group its `keys` (column names in row order)
    with the `sources` of their cells."""

    def __init__(self) -> None:
        self.positions = np.zeros(0, dtype=np.intp)
        self.groups = np.zeros(0, dtype=np.intp)
        self.keys: list[tuple[str, ...]] = []
        self.sources: list[tuple[Cell, ...]] = []
        self.hashes: list[Any] = []
        self.props: dict[str, list[Any]] = {}
        self.params: dict[tuple[str, ...], list[Any]] = {}
        self.stats: dict[tuple[int, str], list[Any]] = {}

    def cell_values(self, cell: Cell) -> list[Any]:
        kind, ref = cell
        return self.params[ref] if kind == "param" else self.stats[ref]


def column_rows(
    snapshot: IndexSnapshot,
    positions: np.ndarray[Any, Any],
    *,
    include_props: bool,
    include_params: bool,
    metrics: frozenset[str],
) -> tuple[ColumnRows, np.ndarray[Any, Any]]:
    """(the rows of `positions` taken from the columns, a bool per position: taken)."""
    table = snapshot.table
    n_rows = len(snapshot.rows)
    inside = positions < n_rows
    rows = np.full(len(positions), -1, dtype=np.intp)
    rows[inside] = snapshot.rows[positions[inside]]
    ok = inside.copy()
    at = rows[ok]
    good = ~table.has_fields[at] & _valid(table.column("end_time"))[at]
    if metrics:
        good &= table.catalogue.plain[at]
    ok[np.flatnonzero(ok)[~good]] = False
    out = ColumnRows()
    param_keys: dict[int, tuple[tuple[str, tuple[str, ...]], ...]] = {}
    shape_of = np.zeros(len(positions), dtype=np.intp)
    if include_params and ok.any():
        ok, shape_of = _param_groups(snapshot, rows, ok, include_props, param_keys)
    label_of = np.full(len(positions), -1, dtype=np.intp)
    labels: list[str] = []
    entries: dict[int, np.ndarray[Any, Any]] = {}
    if metrics and ok.any():
        ok, label_of = _summary_labels(snapshot, rows, ok, metrics, labels, entries)
    taken = np.flatnonzero(ok)
    out.positions = positions[taken]
    if not len(taken):
        return out, ok
    at = int64_array(rows[taken])
    combined = shape_of[taken] * (len(labels) + 1) + (label_of[taken] + 1)
    distinct, first, inverse = np.unique(combined, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # groups in the order their first row comes
    rank = np.empty(len(order), dtype=np.intp)
    rank[order] = np.arange(len(order))
    out.groups = rank[inverse.reshape(-1)]
    for code in distinct[order].tolist():
        shape, label = divmod(code, len(labels) + 1)
        cells: dict[str, Cell] = {}
        for key, path in param_keys.get(shape, ()):
            cells[key] = ("param", path)
        if label:
            for stat in SUMMARY_STATS:
                cells[f"{labels[label - 1]}.{stat}"] = ("stat", (label - 1, stat))
        out.keys.append(tuple(cells))
        out.sources.append(tuple(cells.values()))
    out.hashes = table.column("hash").take(at).to_pylist()
    if include_props:
        out.props = _props(table.table, at)
    for sources in out.sources:
        for kind, ref in sources:
            if kind == "param" and ref not in out.params:
                values, _ = table.param_column(ref)  # type: ignore[misc]
                out.params[ref] = values.take(at).to_pylist()
            elif kind == "stat" and ref not in out.stats:
                out.stats[ref] = _stat_values(table, ref, entries[ref[0]][taken])
    return out, ok


def _valid(column: pa.ChunkedArray) -> np.ndarray[Any, Any]:
    return np.asarray(any_numpy(column.is_valid()), dtype=bool)


def _props(table: pa.Table, at: pa.Array) -> dict[str, list[Any]]:
    """The props' cells of the rows `at`, as `RunRecord` gives them (closed runs)."""
    taken = table.select(["hash", "name", "experiment", "description", "archived"]).take(at)
    names = taken.column("name").to_pylist()
    for i in np.flatnonzero(any_numpy(taken.column("name").is_null())).tolist():
        names[i] = display_name(taken.column("hash")[i].as_py(), None)
    experiment = taken.column("experiment")
    experiments = experiment.to_pylist()
    lengths = positions_numpy(pc.utf8_length(experiment).combine_chunks())
    for i in np.flatnonzero(lengths <= 0).tolist():  # (null or "")
        experiments[i] = DEFAULT_EXPERIMENT
    tags = table.column("tags").take(at)
    texts = [_tags_text(())] * len(at)
    lengths = positions_numpy(pc.list_value_length(tags).combine_chunks())
    tagged = np.flatnonzero(lengths > 0)
    if len(tagged):
        made: dict[tuple[str, ...], str] = {}
        for i, found in zip(tagged.tolist(), tags.take(tagged).to_pylist(), strict=True):
            key = tuple(found)
            text = made.get(key)
            if text is None:
                text = made[key] = _tags_text(key)
            texts[i] = text
    return dict(
        zip(
            PROP_KEYS,
            (
                names,
                experiments,
                taken.column("description").to_pylist(),
                taken.column("archived").to_pylist(),
                table.column("creation_time").take(at).to_pylist(),
                table.column("end_time").take(at).to_pylist(),
                [False] * len(at),
                texts,
            ),
            strict=True,
        )
    )


def _param_groups(
    snapshot: IndexSnapshot,
    rows: np.ndarray[Any, Any],
    ok: np.ndarray[Any, Any],
    include_props: bool,
    param_keys: dict[int, tuple[tuple[str, tuple[str, ...]], ...]],
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """(`ok` less the runs whose params the columns cannot tell, the shape of each run);
    `param_keys` gets each usable shape's (column name, param path) pairs."""
    table = snapshot.table
    where = np.flatnonzero(ok)
    texts = table.column("params").take(int64_array(rows[where])).combine_chunks()
    shapes = pc.dictionary_encode(pc.replace_substring_regex(texts, _SHAPE, r"\1#\2"))
    codes = any_numpy(shapes.indices).astype(np.intp)
    shape_of = np.zeros(len(rows), dtype=np.intp)
    shape_of[where] = codes
    taken_names = frozenset(("hash", *PROP_KEYS)) if include_props else frozenset(("hash",))
    _, first = np.unique(codes, return_index=True)
    for code, i in enumerate(first.tolist()):
        members = where[codes == code]
        found = _shape_keys(texts[i].as_py(), taken_names)
        if found is not None:
            statuses = [table.param_column(path) for _, path in found]
            if all(s is not None for s in statuses):
                for _, status in statuses:  # type: ignore[misc]
                    at = status[rows[members]]
                    bad = members[(at != VALUE) & (at != NONE)]
                    ok[bad] = False
                param_keys[code] = found
                continue
        ok[members] = False
    return ok, shape_of


def _shape_keys(
    text: str, taken_names: frozenset[str]
) -> tuple[tuple[str, tuple[str, ...]], ...] | None:
    """(column name, path) of each cell of params of this text's shape, as `RunRows._params`
    names them, or None unless the params are plain (`run_rows._flatten_plain`)."""
    try:
        params = loads_json(text.encode("ascii", "surrogatepass"), "params")
    except Exception:
        return None
    if type(params) is not dict:
        return None
    leaves: list[tuple[str, tuple[str, ...]]] = []
    if not _leaves(params, (), "", 1, leaves):
        return None
    flat = dict(leaves)  # (a dotted key and the same nested keys: one cell, the last value)
    out: dict[str, tuple[str, ...]] = {}
    for key, path in flat.items():
        safe = key if key.isascii() else utf8_safe(key)
        if safe not in taken_names:
            out.setdefault(safe, path)
    return tuple(out.items())


def _leaves(
    node: dict[str, Any],
    path: tuple[str, ...],
    prefix: str,
    level: int,
    out: list[tuple[str, tuple[str, ...]]],
) -> bool:
    """`run_rows._flatten_plain`'s walk, giving each leaf's (flat key, path)."""
    if TAG in node:
        return False
    for key, value in node.items():
        flat = f"{prefix}.{key}" if prefix else key
        if type(value) in _SCALARS:
            out.append((flat, (*path, key)))
        elif type(value) is dict and value and level < PARAM_DEPTH:
            if not _leaves(value, (*path, key), flat, level + 1, out):
                return False
        else:
            return False
    return True


def _summary_labels(
    snapshot: IndexSnapshot,
    rows: np.ndarray[Any, Any],
    ok: np.ndarray[Any, Any],
    metrics: frozenset[str],
    labels: list[str],
    entries: dict[int, np.ndarray[Any, Any]],
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """(`ok` less the runs with more than one wanted metric entry, each run's label: -1 for
    none); `labels` gets the labels, `entries` per label the flat entry of each run."""
    table = snapshot.table.table
    names = pc.list_flatten(table.column("seq_name"))
    kinds = pc.list_flatten(table.column("seq_kind"))
    wanted = pc.and_(
        pc.is_in(names, value_set=string_array(sorted(metrics))),
        pc.is_in(kinds, value_set=string_array(sorted(METRIC_KINDS))),
    )
    picked = np.flatnonzero(any_numpy(wanted))
    label_of = np.full(len(rows), -1, dtype=np.intp)
    if not len(picked):
        return ok, label_of
    starts = np.asarray(snapshot.table.catalogue.starts, dtype=np.int64)
    entry_row = np.searchsorted(starts, picked, side="right") - 1
    per_row = np.bincount(entry_row, minlength=snapshot.table.size)
    where = np.flatnonzero(ok)
    at = rows[where]
    ok[where[per_row[at] > 1]] = False  # several wanted entries: built per run
    index = int64_array(picked)
    pairs = zip(
        names.take(index).to_pylist(),
        pc.list_flatten(table.column("seq_context")).take(index).to_pylist(),
        strict=True,
    )
    found: dict[tuple[str, str], int] = {}
    label_ids = np.empty(len(picked), dtype=np.intp)
    columns = snapshot.table.catalogue
    for i, (name, context) in enumerate(pairs):
        code = found.get((name, context))
        if code is None:
            code = found[(name, context)] = len(labels)
            parsed = columns.context(context)
            label = name if not parsed else f"{name}{canonical_context(parsed)}"
            labels.append(utf8_safe(label))
        label_ids[i] = code
    row_label = np.full(snapshot.table.size, -1, dtype=np.intp)
    row_entry = np.full(snapshot.table.size, -1, dtype=np.int64)
    single = per_row[entry_row] == 1
    row_label[entry_row[single]] = label_ids[single]
    row_entry[entry_row[single]] = picked[single]
    where = np.flatnonzero(ok)
    label_of[where] = row_label[rows[where]]
    for code in range(len(labels)):
        each = np.full(len(rows), -1, dtype=np.int64)
        hit = where[label_of[where] == code]
        each[hit] = row_entry[rows[hit]]
        entries[code] = each
    return ok, label_of


def _stat_values(table: Any, ref: tuple[int, str], entries: np.ndarray[Any, Any]) -> list[Any]:
    """A summary column's cells of the rows whose entries are `entries` (NaN for a stat not
    stored, None where a row has no such entry)."""
    column = pc.list_flatten(table.table.column(_STAT_COLUMNS[ref[1]]))
    has = entries >= 0
    values = column.take(int64_array(entries[has])).to_pylist()
    out: list[Any] = [None] * len(entries)
    fill: Callable[[Any], Any] = lambda v: _NAN if v is None else v  # noqa: E731
    for i, value in zip(np.flatnonzero(has).tolist(), values, strict=True):
        out[i] = fill(value)
    return out
