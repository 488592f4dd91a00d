"""The run-level frame of a run query (`repo.query_runs(q).dataframe(metrics=[...])`) built from
the run index's columns, without a record or a Python step per run where the columns tell a
run's row: the same table, cell for cell, as the per-run builder (`sdk.run_frame.run_columns`,
which still builds the rows of the runs the columns cannot tell).

The runs taken from the columns ("column rows") are those the query's run part surely matches
column-wise (`query.prefilter`; a run it cannot decide is matched by the interpreter and built
per run) that are rows of the index file, closed (`end_time` set: not active), without extra fields and,
when metrics are wanted, with a plain catalogue (`storage.index.catalogue_columns`):

- props from the index columns (`name`, `experiment`, ... as `RunRecord` gives them);
- params: the runs' params texts are grouped by their shape (`sdk.param_shapes`: compact JSON
  objects of plain values down to `PARAM_DEPTH`; the same shape is the same keys in the same
  order); a shape whose keys all have a typed column (`storage.index.param_columns`) gives its
  runs' cells from those columns, where their status is a value or null; any other run is
  built per run;
- summaries from the catalogue list columns: the labels of each run's wanted metric entries
  (its signature, found with numpy, in Python only for runs with several) and their stats,
  picked with numpy.

A column no run built per run has a value in, with one source, is made as Arrow from the index's
columns directly (typed as `frame_arrays.key_column` types the same cells).

Rows then columns are assembled as `run_rows.row_columns` does (columns in the order the rows
first name them, a summary column named like a param in the param's place).
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from aim_parquet.format.kinds import METRIC_KINDS
from aim_parquet.format.paths import canonical_context
from aim_parquet.format.values import utf8_safe
from aim_parquet.sdk.dataframes import PROP_KEYS
from aim_parquet.sdk.frames import SUMMARY_STATS
from aim_parquet.sdk.param_shapes import param_groups
from aim_parquet.sdk.run_props import prop_lists, tag_column
from aim_parquet.storage.base.cached import cached_property
from aim_parquet.storage.base.columns import (
    any_numpy,
    int64_array,
    nan_numpy,
    string_array,
    validity_bitmap,
)
from aim_parquet.storage.index.index_entries import IndexSnapshot
from aim_parquet.storage.index.index_table import IndexTable

__all__ = ["ColumnRows", "column_rows"]

_STAT_COLUMNS: Final = {
    "last": "seq_last", "last_step": "seq_last_step", "min": "seq_min", "max": "seq_max",
}  # fmt: skip
_NAN: Final = float("nan")
Cell = tuple[str, Any]  # ("param", path) or ("stat", (label id, stat))


class ColumnRows:
    """The rows taken from the columns: `positions` (into the snapshot's stored order, result
    order), `groups` (a group per row) and per group its `keys` (column names in row order)
    with the `sources` of their cells; the cells as lists (`hashes`, `props`, `cell_values`)
    or as the Arrow arrays `key_column` would make of them (`arrow_*`)."""

    def __init__(self, table: IndexTable) -> None:
        self.table = table
        self.positions = np.zeros(0, dtype=np.intp)
        self.groups = np.zeros(0, dtype=np.intp)
        self.keys: list[tuple[str, ...]] = []
        self.sources: list[tuple[Cell, ...]] = []
        self.rows = np.zeros(0, dtype=np.int64)  # the index table's row of each
        self.entries: dict[int, np.ndarray[Any, Any]] = {}  # per label, each row's entry

    @cached_property
    def at(self) -> pa.Array:
        return int64_array(self.rows)

    @cached_property
    def hashes(self) -> list[Any]:
        return self.table.column("hash").take(self.at).to_pylist()  # type: ignore[no-any-return]

    @cached_property
    def props(self) -> dict[str, list[Any]]:
        return prop_lists(self.table.table, self.at)

    def cell_values(self, cell: Cell) -> list[Any]:
        kind, ref = cell
        if kind == "param":
            values, _ = self.table.param_column(ref)  # type: ignore[misc]
            return values.take(self.at).to_pylist()  # type: ignore[no-any-return]
        return _stat_values(self.table, ref[1], self.entries[ref[0]])

    def arrow_cells(self, cell: Cell, index: np.ndarray[Any, Any]) -> pa.Array:
        """A column of `cell` with the cells of the rows `index` (-1: none, a null)."""
        kind, ref = cell
        has = index >= 0
        if kind == "param":
            values, _ = self.table.param_column(ref)  # type: ignore[misc]
            rows = np.where(has, self.rows[np.maximum(index, 0)], 0)
            bitmap, nulls = validity_bitmap(has)
            where = pa.Array.from_buffers(
                pa.int64(), len(index), [bitmap, pa.py_buffer(rows)], nulls
            )
            return _typed(values.take(where).combine_chunks())
        entries = self.entries[ref[0]][index[has]]
        flat = pc.list_flatten(self.table.table.column(_STAT_COLUMNS[ref[1]]))
        picked = flat.take(int64_array(entries))
        is_int = pa.types.is_integer(picked.type) and not picked.null_count
        data = np.zeros(len(index), dtype=np.int64 if is_int else np.float64)
        data[has] = any_numpy(picked) if is_int else nan_numpy(picked)
        bitmap, nulls = validity_bitmap(has)
        typ = pa.int64() if is_int else pa.float64()
        return pa.Array.from_buffers(typ, len(index), [bitmap, pa.py_buffer(data)], nulls)

    def arrow_hashes(self) -> pa.Array:
        return _typed(self.table.column("hash").take(self.at).combine_chunks())

    def arrow_props(self) -> dict[str, Any]:
        """The props' columns (a list where `key_column` must decide)."""
        table = self.table.table
        taken = table.select(["hash", *_PROP_COLUMNS]).take(self.at)
        names = taken.column("name").combine_chunks()
        if names.null_count:
            hashes = taken.column("hash").combine_chunks()
            own = pc.utf8_replace_slice(hashes, start=0, stop=0, replacement="Run: ")
            names = pc.if_else(pc.is_null(names), own, names)
        experiment = _typed(taken.column("experiment").combine_chunks())
        if (
            pa.types.is_null(experiment.type)
            or any(not text for text in experiment.dictionary.to_pylist())
            or experiment.null_count
        ):
            experiment = self.props["experiment"]  # (some in the default experiment)
        n = len(self.rows)
        inactive = pa.Array.from_buffers(
            pa.bool_(), n, [None, pa.py_buffer(np.zeros((n + 7) // 8, np.uint8))]
        )
        return dict(
            zip(
                PROP_KEYS,
                (
                    _typed(names),
                    experiment,
                    _typed(taken.column("description").combine_chunks()),
                    taken.column("archived").combine_chunks(),
                    taken.column("creation_time").combine_chunks(),
                    taken.column("end_time").combine_chunks(),
                    inactive,
                    tag_column(table, self.at),
                ),
                strict=True,
            )
        )


_PROP_COLUMNS: Final = (
    "name",
    "experiment",
    "description",
    "archived",
    "creation_time",
    "end_time",
)


def _typed(array: pa.Array) -> pa.Array:
    """`key_column` of an array's values (str dictionary-encoded, all null the null type)."""
    if array.null_count == len(array):
        return pa.nulls(len(array), pa.null())
    if pa.types.is_string(array.type):
        return pc.dictionary_encode(array)
    return array


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
    out = ColumnRows(table)
    param_keys: dict[int, tuple[tuple[str, tuple[str, ...]], ...]] = {}
    shape_of = np.zeros(len(positions), dtype=np.intp)
    if include_params and ok.any():
        ok, shape_of = param_groups(snapshot, rows, ok, include_props, param_keys)
    sig_of = np.full(len(positions), -1, dtype=np.intp)
    labels: list[str] = []
    signatures: list[tuple[int, ...]] = []
    entries: dict[int, np.ndarray[Any, Any]] = {}
    if metrics and ok.any():
        sig_of = _summary_labels(snapshot, rows, ok, metrics, labels, signatures, entries)
    taken = np.flatnonzero(ok)
    out.positions = positions[taken]
    if not len(taken):
        return out, ok
    combined = shape_of[taken] * (len(signatures) + 1) + (sig_of[taken] + 1)
    distinct, first, inverse = np.unique(combined, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # groups in the order their first row comes
    rank = np.empty(len(order), dtype=np.intp)
    rank[order] = np.arange(len(order))
    out.groups = rank[inverse.reshape(-1)]
    for code in distinct[order].tolist():
        shape, sig = divmod(code, len(signatures) + 1)
        cells: dict[str, Cell] = {}
        for key, path in param_keys.get(shape, ()):
            cells[key] = ("param", path)
        for label in signatures[sig - 1] if sig else ():
            for stat in SUMMARY_STATS:
                cells[f"{labels[label]}.{stat}"] = ("stat", (label, stat))
        out.keys.append(tuple(cells))
        out.sources.append(tuple(cells.values()))
    out.rows = rows[taken].astype(np.int64)
    for code, each in entries.items():
        out.entries[code] = each[taken]
    return out, ok


def _valid(column: pa.ChunkedArray) -> np.ndarray[Any, Any]:
    return np.asarray(any_numpy(column.is_valid()), dtype=bool)


def _summary_labels(
    snapshot: IndexSnapshot,
    rows: np.ndarray[Any, Any],
    ok: np.ndarray[Any, Any],
    metrics: frozenset[str],
    labels: list[str],
    signatures: list[tuple[int, ...]],
    entries: dict[int, np.ndarray[Any, Any]],
) -> np.ndarray[Any, Any]:
    """Each run's signature (-1 for none): the labels of its wanted metric entries in catalogue
    order, each once (`signatures`, as ids into `labels`); `entries` gets per label the flat
    entry of each run (the last with that label, as a dict keeps the last value)."""
    table = snapshot.table.table
    names = pc.list_flatten(table.column("seq_name"))
    kinds = pc.list_flatten(table.column("seq_kind"))
    wanted = pc.and_(
        pc.is_in(names, value_set=string_array(sorted(metrics))),
        pc.is_in(kinds, value_set=string_array(sorted(METRIC_KINDS))),
    )
    picked = np.flatnonzero(any_numpy(wanted))
    sig_of = np.full(len(rows), -1, dtype=np.intp)
    if not len(picked):
        return sig_of
    size = snapshot.table.size
    starts = np.asarray(snapshot.table.catalogue.starts, dtype=np.int64)
    entry_row = np.searchsorted(starts, picked, side="right") - 1
    index = int64_array(picked)
    name_codes = pc.dictionary_encode(names.take(index).combine_chunks())
    contexts = pc.list_flatten(table.column("seq_context")).take(index).combine_chunks()
    context_codes = pc.dictionary_encode(contexts)
    n_contexts = len(context_codes.dictionary)
    pair = any_numpy(name_codes.indices).astype(np.int64) * n_contexts + any_numpy(
        context_codes.indices
    ).astype(np.int64)
    distinct, first, label_ids = np.unique(pair, return_index=True, return_inverse=True)
    label_ids = label_ids.reshape(-1)
    name_list = name_codes.dictionary.to_pylist()
    context_list = context_codes.dictionary.to_pylist()
    catalogue = snapshot.table.catalogue
    for code in distinct.tolist():
        name, context = name_list[code // n_contexts], context_list[code % n_contexts]
        parsed = catalogue.context(context)
        labels.append(utf8_safe(name if not parsed else f"{name}{canonical_context(parsed)}"))
    per_row = np.bincount(entry_row, minlength=size)
    row_sig = np.full(size, -1, dtype=np.intp)
    single = per_row[entry_row] == 1
    one_label = np.full(len(labels), -1, dtype=np.intp)  # the signature of each label alone
    for code in np.unique(label_ids[single]).tolist():
        one_label[code] = len(signatures)
        signatures.append((code,))
    row_sig[entry_row[single]] = one_label[label_ids[single]]
    several = np.flatnonzero(~single)
    if len(several):
        known = {sig: i for i, sig in enumerate(signatures)}
        bounds = np.flatnonzero(np.diff(entry_row[several])) + 1
        for group in np.split(several, bounds):
            sig = tuple(dict.fromkeys(label_ids[group].tolist()))
            found = known.get(sig)
            if found is None:
                found = known[sig] = len(signatures)
                signatures.append(sig)
            row_sig[entry_row[group[0]]] = found
    where = np.flatnonzero(ok)
    sig_of[where] = row_sig[rows[where]]
    for code in range(len(labels)):
        each = np.full(size, -1, dtype=np.int64)
        these = label_ids == code
        np.maximum.at(each, entry_row[these], picked[these])
        entries[code] = each[rows]
    return sig_of


def _stat_values(table: IndexTable, stat: str, entries: np.ndarray[Any, Any]) -> list[Any]:
    """A summary column's cells of the rows whose entries are `entries` (NaN for a stat not
    stored, None where a row has no such entry)."""
    column = pc.list_flatten(table.table.column(_STAT_COLUMNS[stat]))
    has = entries >= 0
    values = column.take(int64_array(entries[has])).to_pylist()
    out: list[Any] = [None] * len(entries)
    for i, value in zip(np.flatnonzero(has).tolist(), values, strict=True):
        out[i] = _NAN if value is None else value
    return out
