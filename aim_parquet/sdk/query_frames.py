"""The metric frame of a repo-wide query, built in bulk: the same table as adding each matching
sequence to a `frames.MetricFrame` (`sdk.frames`, module doc), without a run object, a sequence
object or a read per sequence.

- The query is matched on the run index's records (`query.executor.execute_plan`); a matching
  run's row (`sdk.run_rows`: the cells of `sdk.dataframes.run_row`) is built once from its
  record, and a sequence's name and context columns once per distinct (name, kind, context).
- Points come, in this order of preference, from the points cache (`storage.index.points_cache`:
  sequences of closed runs whose sidecar's stat key is the one they were cached under), from the
  analyst dataset's shared files
  (`storage.compaction.dataset_read.committed_metric_points`: runs it holds as they are now),
  from one bulk pass over the segments of runs that have no compacted files
  (`storage.online.bulk_read`; what it read of closed runs is written to the points cache when
  it was enough runs), and otherwise from each sequence's own files
  (`read_metric_columns`), which is also where an unreadable sequence is found: it is left out
  with a warning, as `dataframe()` does for one sequence.
- Python's cycle collector is paused while the frame is built (`system.gc_pause.gc_paused`): the build makes
  hundreds of thousands of small objects and no cycle, and each full collection would walk
  every object of the run index again (a quarter of the build's time at 10,000 runs).
- The run-level and sequence-level columns are typed (`frame_arrays.key_column`) over one
  value per run or per distinct sequence key and repeated by index (`frame_arrays.repeat`),
  which gives the same types, dictionaries and column order as the per-sequence frame; for
  `to_polars()` a text column is spread as string views instead (`frame_tables.Spread`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from aim_parquet.errors import CorruptFileError, FormatVersionError
from aim_parquet.format.paths import RepoLayout, canonical_context
from aim_parquet.format.values import utf8_safe
from aim_parquet.query.executor import RunMatch, warn_unreadable
from aim_parquet.query.views import sequence_key
from aim_parquet.sdk.dataframes import column_rank, jsonable
from aim_parquet.sdk.frame_arrays import (
    EMPTY_F,
    EMPTY_I,
    cat,
    key_column,
    numbers,
    times,
)
from aim_parquet.sdk.frame_tables import Spread, table_to_pandas, table_to_polars
from aim_parquet.sdk.frames import _text
from aim_parquet.sdk.run_rows import RunRows, row_columns
from aim_parquet.storage.index.points_cache import PointsCache
from aim_parquet.storage.index.run_records import RunRecord
from aim_parquet.storage.online.bulk_read import read_metrics_bulk
from aim_parquet.storage.online.run_reader import read_metric_columns
from aim_parquet.storage.online.writer_parts import is_run_active

if TYPE_CHECKING:
    import pandas
    import polars

Array = np.ndarray[Any, Any]
UNREADABLE = (CorruptFileError, FormatVersionError, PermissionError)
"""The errors that mean a run's or a sequence's files cannot be read (damaged, a newer format,
permission denied): a bulk frame leaves that run or sequence out with a warning
(`warn_unreadable`) instead of failing. Callers may rely on it being a tuple for `except`."""


class RecordRun:
    """What a run row (`sdk.run_rows`) reads of a run, over its index record."""

    __slots__ = ("hash", "props", "_layout")

    def __init__(self, layout: RepoLayout, record: RunRecord) -> None:
        self.hash = record.hash
        self.props = record
        self._layout = layout

    @property
    def active(self) -> bool:
        return is_run_active(self._layout, self.props)


class BuiltFrame:
    """A metric frame built in bulk (module doc): `to_arrow`, `to_pandas`, `to_polars`; its
    run-level and sequence-level columns are spread to the points when first asked for
    (`frame_tables.Spread`: polars takes them spread otherwise)."""

    def __init__(self, table: pa.Table | None, spread: Spread | None = None) -> None:
        self._table = table
        self._spread = spread

    def __len__(self) -> int:
        return 0 if self._table is None and self._spread is None else 1

    def to_arrow(self) -> pa.Table:
        if self._table is None:
            assert self._spread is not None
            self._table = self._spread.table()
        return self._table

    def to_pandas(self) -> pandas.DataFrame:
        return table_to_pandas(self.to_arrow())

    def to_polars(self) -> polars.DataFrame:
        frame = None
        if self._table is None and self._spread is not None:
            frame = self._spread.to_polars()
        return table_to_polars(self.to_arrow()) if frame is None else frame


class Wanted:
    """The sequences of the frame, in result order: run position, sequence-key position, seq id
    and catalogue entry of each (None for a sequence taken from the index's columns until
    `entries_at` asks `resolve` for it: only a sequence whose points are not cached is read).

    Filled by `build_query_frame` (`add_run`) and by the column-wise builder
    (`sdk.query_frame_columns`: `add_run` for a run matched per run, the lists appended to
    directly for the runs the columns decide). Callers may rely on: the per-run lists
    (`hashes`, `closed`, `records`) and the per-sequence lists (`seq_run`, `seq_key`,
    `seq_ids`, `entries`) stay parallel and in result order; `key_position` gives each distinct
    sequence key one row of `key_rows`; `entries_at` asks `resolve` only for the entries still
    None."""

    def __init__(self, var: str, flags: dict[str, bool]) -> None:
        self.var = var
        self.flags = flags
        self.hashes: list[str] = []  # per run
        self.closed: list[bool] = []
        self.records: list[RunRecord | None] = []  # (None: a run taken from the columns)
        self.rows = RunRows(
            include_props=flags["include_props"], include_params=flags["include_params"]
        )
        self.key_rows: list[dict[str, Any]] = []
        self._keys: dict[Any, int] = {}
        self.seq_run: list[int] = []
        self.seq_key: list[int] = []
        self.seq_ids: list[str] = []
        self.entries: list[Any] = []
        self.resolve: Callable[[list[int]], None] | None = None

    def add_run(self, layout: RepoLayout, match: RunMatch) -> None:
        record = match.record
        if self.flags["include_props"] or self.flags["include_params"]:
            try:
                self.rows.add(RecordRun(layout, record))
            except UNREADABLE as exc:
                warn_unreadable(record.hash, exc, stacklevel=6)
                return
        run = self.new_run(record.hash, record.has_end_time, record)
        for entry in match.entries:
            self.seq_run.append(run)
            self.seq_key.append(self.key_position(sequence_key(entry), entry.name, entry.context))
            self.seq_ids.append(entry.seq_id)
            self.entries.append(entry)

    def new_run(self, run_hash: str, closed: bool, record: RunRecord | None) -> int:
        self.hashes.append(run_hash)
        self.closed.append(closed)
        self.records.append(record)
        return len(self.hashes) - 1

    def key_position(self, key: Any, name: str, context: dict[str, Any]) -> int:
        position = self._keys.get(key)
        if position is None:
            position = self._keys[key] = len(self.key_rows)
            self.key_rows.append(self._key_row(name, context))
        return position

    def entries_at(self, which: list[int]) -> list[Any]:
        missing = [i for i in which if self.entries[i] is None]
        if missing and self.resolve is not None:
            self.resolve(missing)
        return [self.entries[i] for i in which]

    def _key_row(self, name: str, context: dict[str, Any]) -> dict[str, Any]:
        """The sequence-level columns of one (name, context), first value of a name winning."""
        var, row = self.var, {}
        if self.flags["include_name"]:
            row[f"{var}.name"] = utf8_safe(name)
        if self.flags["include_context"]:
            row[f"{var}.context"] = utf8_safe(canonical_context(context))
            for key, value in context.items():
                shown = jsonable(value) if isinstance(value, (dict, list)) else value
                row.setdefault(utf8_safe(f"{var}.context.{key}"), _text(shown))
        return row


def sequence_points(
    layout: RepoLayout,
    wanted: Wanted,
    only_last: bool,
    stat_keys: Callable[[], dict[str, str]] | None,
) -> list[tuple[Array, ...] | None]:
    """Each sequence's (steps, values, epochs, timestamps); None for one that cannot be read
    (warned about). `stat_keys`: the sidecar stat keys of the run index's refresh the records
    came from (`committed_metric_points`).

    Callers may rely on: one item per sequence of `wanted`, in its order; an unreadable
    sequence (`UNREADABLE`) is None with a RuntimeWarning, never raised; entries are asked for
    (`Wanted.entries_at`) only for the sequences whose points neither the points cache nor the
    analyst dataset held (for every sequence with `only_last`)."""
    seq_ids = wanted.seq_ids
    out: list[tuple[Array, ...] | None] = [None] * len(seq_ids)
    hashes = [wanted.hashes[r] for r in wanted.seq_run]
    if only_last:
        for i, entry in enumerate(wanted.entries_at(list(range(len(seq_ids))))):
            try:
                info = entry.info
            except UNREADABLE as exc:
                warn_unreadable(hashes[i], exc, stacklevel=6)
                continue
            if info.last_step is None or info.last is None:
                steps, values = EMPTY_I, EMPTY_F
            else:
                steps = np.array([info.last_step], dtype=np.int64)
                values = np.array([float(info.last)], dtype=np.float64)
            out[i] = (steps, values, np.full(len(steps), np.nan), np.full(len(steps), np.nan))
        return out
    found: dict[int, tuple[Array, ...]] = {}
    cache: PointsCache | None = None
    keys: dict[str, str] | None = None
    closed_keys: list[str | None] = [None] * len(seq_ids)
    if len(seq_ids) > 1:
        from aim_parquet.storage.compaction.dataset_read import committed_metric_points

        keys = None if stat_keys is None else stat_keys()
        if keys is not None:  # (the points cache: closed runs whose key it holds)
            closed = wanted.closed
            closed_keys = [
                keys.get(h) if closed[r] else None
                for h, r in zip(hashes, wanted.seq_run, strict=True)
            ]
            cache = PointsCache(layout)
            if cache.load(sum(closed)):
                for i, seq_id in enumerate(seq_ids):
                    hit = cache.take(hashes[i], seq_id, closed_keys[i])
                    if hit is not None:
                        found[i] = hit
        by_run: dict[str, set[str]] = {}
        for i, (h, seq_id) in enumerate(zip(hashes, seq_ids, strict=True)):
            if i not in found:
                by_run.setdefault(h, set()).add(seq_id)
        committed = committed_metric_points(layout, by_run, keys=keys) if by_run else {}
        for i, (h, seq_id) in enumerate(zip(hashes, seq_ids, strict=True)):
            held = committed.get((h, seq_id))
            if held is not None:
                found[i] = held
    rest = [i for i in range(len(seq_ids)) if i not in found]
    if len(rest) > 1:
        rest_entries = wanted.entries_at(rest)
        bulk = read_metrics_bulk(
            layout, list(zip([hashes[i] for i in rest], rest_entries, strict=True))
        )
        for j, read in bulk.items():
            found[rest[j]] = read
        if cache is not None and keys is not None:
            cache.add(
                [
                    (hashes[rest[j]], seq_ids[rest[j]], closed_keys[rest[j]], p)
                    for j, p in bulk.items()
                ]
            )
            cache.save(keys)
    for i in range(len(seq_ids)):
        points = found.get(i)
        if points is None:
            try:
                info = wanted.entries_at([i])[0].info
                steps, arrays = read_metric_columns(
                    layout, hashes[i], info, ["value", "epoch", "timestamp"]
                )
            except UNREADABLE as exc:
                warn_unreadable(hashes[i], exc, stacklevel=6)
                continue
            points = (steps, arrays["value"], arrays["epoch"], arrays["timestamp"])
        out[i] = points
    return out


def build_query_frame(
    layout: RepoLayout,
    matches: Iterable[RunMatch],
    var: str,
    *,
    only_last: bool,
    flags: dict[str, bool],
    stat_keys: Callable[[], dict[str, str]] | None = None,
) -> BuiltFrame:
    """The frame of the metric sequences of `matches` (module doc); `flags` are `dataframe()`'s
    `include_*` arguments; `stat_keys` gives the sidecar stat keys of the run index's refresh
    `matches` came from, once they are all read (`RunIndex.stat_keys`).

    No production code calls it: `repo.query_metrics(q).dataframe()` builds its frame with
    `sdk.query_frame_columns.query_frame_columns`. It is kept as the row-wise reference, a
    record and a match per run, that the column-wise builder is tested against cell for cell
    (`tests/property/test_metric_frame_columnwise.py`)."""
    flags = dict(flags)
    flags["include_props"] = flags["include_props"] and flags["include_run"]
    flags["include_params"] = flags["include_params"] and flags["include_run"]
    wanted = Wanted(var, flags)
    for match in matches:
        wanted.add_run(layout, match)
    points = sequence_points(layout, wanted, only_last, stat_keys)

    def run_level(runs: list[int]) -> dict[str, list[Any] | pa.Array]:
        out: dict[str, list[Any] | pa.Array] = {"hash": [wanted.hashes[r] for r in runs]}
        out.update(wanted.rows.columns(runs))
        return out

    return frame_table(wanted, points, run_level)


def frame_table(
    wanted: Wanted,
    points: list[tuple[Array, ...] | None],
    run_level: Callable[[list[int]], dict[str, list[Any] | pa.Array]],
) -> BuiltFrame:
    """The frame of `wanted`'s sequences whose `points` were read; `run_level` gives the
    run-level columns (`hash`, props, params; a list of cells or an Arrow array typed as
    `key_column` types them) of the runs at the positions it is given, in that order."""
    flags = wanted.flags
    kept = [i for i, p in enumerate(points) if p is not None]
    if not kept:
        return BuiltFrame(None)
    # runs and sequence keys as the kept sequences first meet them
    runs, seq_run = _first_seen(np.asarray(wanted.seq_run, dtype=np.int64)[kept])
    keys, seq_key = _first_seen(np.asarray(wanted.seq_key, dtype=np.int64)[kept])
    parts = [points[i] for i in kept]
    lengths = np.fromiter((len(p[0]) for p in parts), dtype=np.int64, count=len(parts))  # type: ignore[index]
    total = int(lengths.sum())
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    stamps = cat([p[3] for p in parts], EMPTY_F, np.float64)  # type: ignore[index]
    per_point: dict[str, pa.Array] = {
        "idx": numbers(np.arange(total, dtype=np.int64) - starts),
        "step": numbers(cat([p[0] for p in parts], EMPTY_I, np.int64)),  # type: ignore[index]
        "value": numbers(cat([p[1] for p in parts], EMPTY_F, np.float64)),  # type: ignore[index]
        "epoch": numbers(cat([p[2] for p in parts], EMPTY_F, np.float64)),  # type: ignore[index]
        "time": times(stamps),
        "timestamp": numbers(stamps),
    }
    level: dict[str, tuple[list[Any] | pa.Array, Array]] = {}
    run_columns = run_level(runs) if flags["include_run"] else {}
    if "hash" in run_columns:
        level["run.hash"] = (run_columns.pop("hash"), seq_run)
    for name, values in row_columns([wanted.key_rows[k] for k in keys]).items():
        level.setdefault(name, (values, seq_key))
    for name, cells in run_columns.items():
        level.setdefault(f"run.{name}", (cells, seq_run))
    order = sorted([*per_point, *level], key=column_rank)
    columns: dict[str, pa.Array | tuple[pa.Array, Array]] = {}
    for name in order:
        if name in per_point:
            columns[name] = per_point[name]
        else:
            values, index = level[name]  # (one entry per kept sequence, spread to its points)
            column = key_column(values) if isinstance(values, list) else values
            columns[name] = (column, index)
    return BuiltFrame(None, Spread(columns, lengths))


def _first_seen(codes: Array) -> tuple[list[int], Array]:
    """The distinct `codes` in the order they first appear, and each code's place among them."""
    if not len(codes):
        return [], codes
    distinct, first, inverse = np.unique(codes, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    place = np.empty(len(order), dtype=np.int64)
    place[order] = np.arange(len(order), dtype=np.int64)
    return distinct[order].tolist(), place[inverse.reshape(-1)]
