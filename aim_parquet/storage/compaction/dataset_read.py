"""Reading the analyst dataset with the live tier: the committed files, with the rows of every
run that changed since the last refresh (a live run, a run resumed or edited since) read from
the run's own files instead. What `aim_parquet.read_dataset` returns (FORMAT.md, "The analyst
dataset": reading live and committed data together)."""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from aim_parquet.errors import AimParquetError, CorruptFileError, FormatVersionError
from aim_parquet.format.dataset import bucket_of, dataset_dir, dataset_schema
from aim_parquet.format.paths import SIDECAR_FILENAME, RepoLayout
from aim_parquet.storage.base.columns import (
    empty_table,
    string_array,
    to_numpy,
    validity,
)
from aim_parquet.storage.compaction.dataset import (
    context_columns,
    load_dataset_manifest,
    run_fingerprint,
    run_rows,
)
from aim_parquet.storage.index.index_file import stat_key
from aim_parquet.storage.index.run_index import RunIndex
from aim_parquet.storage.index.runs_table import runs_table
from aim_parquet.storage.online.writer_parts import is_run_active

SORT_KEYS = [
    ("run_hash", "ascending"),
    ("name", "ascending"),
    ("context", "ascending"),
    ("step", "ascending"),
]


@dataclass(frozen=True)
class DatasetTables:
    """The analyst dataset as Arrow tables: `metrics` (one row per point, FORMAT.md's columns)
    and `runs` (the runs table). `generation` is the committed generation read (0: none yet);
    `fresh_runs` the runs whose rows were read from their own files because the commit did not
    hold them as they are now."""

    metrics: pa.Table
    runs: pa.Table
    generation: int
    fresh_runs: tuple[str, ...]


def read_dataset_tables(layout: RepoLayout, *, live: bool = True) -> DatasetTables:
    """The committed dataset; with `live`, made current (see module doc). Takes no lock and
    writes nothing."""
    manifest = load_dataset_manifest(layout)
    folder = dataset_dir(layout)
    committed: pa.Table | None = None
    runs: pa.Table | None = None
    if manifest is not None:
        files = [str(folder / name) for name in manifest.metrics]
        committed = pa.concat_tables([pq.read_table(f) for f in files])
        runs = pq.read_table(folder / manifest.runs)
    generation = manifest.generation if manifest else 0
    if not live and committed is not None and runs is not None:
        return DatasetTables(committed, runs, generation, ())
    metas, _damaged = RunIndex(layout).metas()
    columns = context_columns(metas)
    schema = dataset_schema(columns)
    states = {}
    for meta in list(metas):
        try:
            states[meta.hash] = run_fingerprint(layout, meta)
        except FileNotFoundError:
            metas.remove(meta)
    usable = manifest is not None and committed is not None and manifest.context_columns == columns
    known = manifest.run_states if usable and manifest is not None else {}
    fresh = [m for m in metas if known.get(m.hash) != states[m.hash]]
    active = {m.hash: is_run_active(layout, m) for m in metas}
    parts = []
    if usable and committed is not None:
        import pyarrow.compute as pc  # (imported here: point reads need none of it, ~40 ms)

        keep = sorted(set(states) - {m.hash for m in fresh})
        parts.append(committed.filter(pc.is_in(committed["run_hash"], string_array(keep))))
    for meta in fresh:
        try:
            parts.append(run_rows(layout, meta, active[meta.hash], schema))
        except (CorruptFileError, FormatVersionError, PermissionError, AimParquetError):
            continue  # damaged or unreadable: left out, as queries and the refresh do
    metrics = pa.concat_tables(parts) if parts else empty_table(schema)
    if fresh:
        metrics = metrics.sort_by(SORT_KEYS)
    return DatasetTables(
        metrics, runs_table(metas, active), generation, tuple(m.hash for m in fresh)
    )


MIN_SHARED_READ_RUNS = 64  # fewer runs are read from their own files
COPY_BELOW = 0.75  # a bucket read for less of its rows than this copies them out (`_copied`)
MetricPoints = tuple[np.ndarray[Any, Any], ...]  # steps, values, epochs (as bulk_read), timestamps
_POINT_COLUMNS = ["run_hash", "seq_id", "step", "value", "epoch", "timestamp"]
_CODED_COLUMNS = ["run_hash", "seq_id"]  # read as dictionaries
_NO_CODES = np.empty(0, np.int64)


class BucketCache:
    """What `committed_metric_points` keeps between calls of one reader (the batches of one
    query's iteration): the manifest it started from and the points of each bucket file it
    read, so that every bucket file is read once however the runs are batched."""

    def __init__(self) -> None:
        self.loaded = False
        self.manifest: Any = None
        self.buckets: dict[int, dict[tuple[str, str], MetricPoints] | None] = {}


def committed_metric_points(
    layout: RepoLayout,
    wanted: dict[str, set[str]],
    cache: BucketCache | None = None,
    keys: dict[str, str] | None = None,
) -> dict[tuple[str, str], MetricPoints]:
    """The points of the metric sequences `wanted` ({run hash: seq ids}) that the committed
    dataset holds as they are now, keyed by (run hash, seq id): one read of each bucket file
    instead of one per run. A run is taken only when it was closed at the commit and its sidecar
    is still the file the commit fingerprinted (FORMAT.md: a closed run's fingerprint is its
    sidecar's stat, which every change of its points or fields replaces); the steps are then the
    same, last write winning, as `read_metric_columns` reads from the run's own files. A sequence
    of such a run with no row has no point. Without a `cache`, a bucket file is read only when
    at least half of the runs it holds are wanted, and only when `MIN_SHARED_READ_RUNS` runs are
    (a whole file for a few runs costs more than their own files); with one, each bucket file
    is read once, on first need, and kept there. Runs left out (live, changed, not committed,
    in a bucket not read): read them from their own files. Takes no lock; anything unreadable
    leaves its runs out. `keys`: the sidecar stat keys of the run index's refresh the caller's
    query read its records from (`RunIndex.stat_keys`): a run's is taken instead of a `stat` of
    its sidecar, so the points are those of the records the query matched (a run missing from
    `keys` is stat'ed)."""
    if cache is None or not cache.loaded:
        try:
            manifest = load_dataset_manifest(layout)
        except (CorruptFileError, FormatVersionError, OSError):
            manifest = None
        if cache is not None:
            cache.loaded, cache.manifest = True, manifest
    else:
        manifest = cache.manifest
    if manifest is None:
        return {}
    by_bucket: dict[int, list[str]] = {}
    runs_dir = os.fspath(layout.runs_dir)
    for run_hash in wanted:
        state = manifest.run_states.get(run_hash)
        if state is None or "|" in state:  # not committed, or not closed then
            continue
        key = None if keys is None else keys.get(run_hash)
        if key is None:
            try:
                key = stat_key(os.stat(f"{runs_dir}/{run_hash}/{SIDECAR_FILENAME}"))
            except (OSError, ValueError):
                continue
        if key != state:
            continue
        by_bucket.setdefault(bucket_of(run_hash, manifest.buckets), []).append(run_hash)
    if cache is None and sum(len(h) for h in by_bucket.values()) < MIN_SHARED_READ_RUNS:
        return {}  # a few runs: their own files are cheaper than whole bucket files
    committed: dict[int, int] = {}
    if cache is None:
        for run_hash in manifest.run_states:
            bucket = bucket_of(run_hash, manifest.buckets)
            committed[bucket] = committed.get(bucket, 0) + 1
    out: dict[tuple[str, str], MetricPoints] = {}
    folder = dataset_dir(layout)
    for bucket, hashes in sorted(by_bucket.items()):
        if cache is None and len(hashes) * 2 < committed.get(bucket, 0):
            continue  # most of the file is other runs: read these from their own files
        if cache is not None and bucket in cache.buckets:
            points = cache.buckets[bucket]
        else:
            points = _bucket_points(folder / manifest.metrics[bucket], hashes, wanted, cache)
            if cache is not None:
                cache.buckets[bucket] = points
        if points is None:
            continue  # (removed by gc after its grace period, damaged): read from the runs
        for run_hash in hashes:
            for seq_id in wanted[run_hash]:
                out[run_hash, seq_id] = points.get((run_hash, seq_id), _EMPTY_POINTS)
    return out


def _bucket_points(
    path: Any, hashes: list[str], wanted: dict[str, set[str]], cache: BucketCache | None
) -> dict[tuple[str, str], MetricPoints] | None:
    """The points of one bucket file by (run hash, seq id): of the `wanted` sequences of
    `hashes`, or of every sequence it holds when they are kept in a `cache`. The row groups
    whose `run_hash` statistics hold none of `hashes` are not read (kept in a `cache`: all
    are); `run_hash` and `seq_id` are read as dictionaries, each sequence's row range found
    from their integer codes (its rows are contiguous: the file is sorted by run and sequence),
    so no Python object is made per row; the point columns of the sequences kept are copied
    out of the file's table when they are less than `COPY_BELOW` of its rows (`_copied`),
    otherwise (and in a `cache`) sliced. (No `pyarrow.compute` call: its first use imports
    pandas.)"""
    try:
        parquet = pq.ParquetFile(path, read_dictionary=_CODED_COLUMNS)
        groups = _row_groups(parquet, None if cache is not None else hashes)
        table = parquet.read_row_groups(groups, columns=_POINT_COLUMNS) if groups else None
    except (OSError, pa.ArrowException):
        return None
    out: dict[tuple[str, str], MetricPoints] = {}
    if table is None or table.num_rows == 0:
        return out
    runs, run_codes = _codes(table["run_hash"])
    seqs, seq_codes = _codes(table["seq_id"])
    changes = (run_codes[1:] != run_codes[:-1]) | (seq_codes[1:] != seq_codes[:-1])
    bounds = np.flatnonzero(changes) + 1  # rows of one sequence are contiguous
    starts = np.concatenate([[0], bounds]).tolist()
    ends = np.concatenate([bounds, [table.num_rows]]).tolist()
    keep = None if cache is not None else {(h, q) for h in hashes for q in wanted[h]}
    kept = []
    for r, q, a, b in zip(
        run_codes[starts].tolist(), seq_codes[starts].tolist(), starts, ends, strict=True
    ):
        key = (runs[r], seqs[q])
        if keep is None or key in keep:
            kept.append((key, a, b))
    if not kept:
        return out
    if keep is not None and sum(b - a for _key, a, b in kept) < table.num_rows * COPY_BELOW:
        return _copied(table, kept)
    # most of the file, or all of it kept in a cache: views of its columns
    steps, values, stamps = (to_numpy(table[c]) for c in ("step", "value", "timestamp"))
    ints, missing = _epoch_columns(table["epoch"], None)
    ranges = [(a, b) for _key, a, b in kept]
    for (key, a, b), epochs in zip(kept, _epoch_slices(ints, missing, ranges), strict=True):
        out[key] = (steps[a:b], values[a:b], epochs, stamps[a:b])
    return out


def _epoch_columns(
    epoch: pa.ChunkedArray, spans: list[list[int]] | None
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None]:
    """The epoch column as int64 (a missing epoch read as 0) and the mask of its missing ones
    (None when none is), of the file's rows or of its `spans` put end to end."""
    ints = to_numpy(epoch) if epoch.null_count < len(epoch) else np.zeros(len(epoch), np.int64)
    missing = None
    if epoch.null_count:
        missing = ~np.concatenate([validity(chunk) for chunk in epoch.chunks])
    if spans is not None:
        ints = np.concatenate([ints[a:b] for a, b in spans], dtype=np.int64)
        if missing is not None:
            missing = np.concatenate([missing[a:b] for a, b in spans])
    return ints, missing


def _epoch_slices(
    ints: np.ndarray[Any, Any], missing: np.ndarray[Any, Any] | None, ranges: list[tuple[int, int]]
) -> list[np.ndarray[Any, Any]]:
    """Each row range's epochs as the run's own files give them (`storage.online.bulk_read`):
    int64, or float64 with NaN where a point has none (an int64 epoch past 2**53 stays exact
    in a sequence whose points all have one)."""
    if missing is None:
        return [ints[a:b] for a, b in ranges]
    before = np.concatenate([[0], np.cumsum(missing)])  # missing epochs before each row
    out = []
    for a, b in ranges:
        if before[b] == before[a]:
            out.append(ints[a:b])
        else:
            out.append(np.where(missing[a:b], np.nan, ints[a:b]))
    return out


def _copied(
    table: pa.Table, kept: list[tuple[tuple[str, str], int, int]]
) -> dict[tuple[str, str], MetricPoints]:
    """The points of the `kept` row ranges of a bucket file's `table` (in file order), copied
    together into numpy arrays of their own, adjacent ranges in one piece. The file's table is
    then let go when the caller returns instead of being held by views until the frame is
    built: most of a bucket file can be sequences the query does not want, and the memory the
    Arrow pool holds on to makes the frame's own large arrays slower to fault in (about 3x the
    spreading of a 300-run sweep's `loss` frame on the reference machine)."""
    spans: list[list[int]] = []  # merged (start, end) row ranges of the file
    places = []
    at = 0
    for key, a, b in kept:
        if spans and spans[-1][1] == a:
            spans[-1][1] = b
        else:
            spans.append([a, b])
        places.append((key, at, at + b - a))
        at += b - a
    steps, values, stamps = (
        np.concatenate([view[a:b] for a, b in spans], dtype=dtype)
        for view, dtype in (
            (to_numpy(table["step"]), np.int64),
            (to_numpy(table["value"]), np.float64),
            (to_numpy(table["timestamp"]), np.float64),
        )
    )
    ints, missing = _epoch_columns(table["epoch"], spans)
    ranges = [(a, b) for _key, a, b in places]
    return {
        key: (steps[a:b], values[a:b], epochs, stamps[a:b])
        for (key, a, b), epochs in zip(places, _epoch_slices(ints, missing, ranges), strict=True)
    }


def _row_groups(parquet: pq.ParquetFile, hashes: list[str] | None) -> list[int]:
    """The row groups of `parquet` that may hold rows of `hashes` (None: every row group), told
    by their `run_hash` min/max statistics; one without them is read."""
    metadata = parquet.metadata
    count = metadata.num_row_groups
    if hashes is None or count == 0:
        return list(range(count))
    first = metadata.row_group(0)
    paths = [first.column(i).path_in_schema for i in range(first.num_columns)]
    if "run_hash" not in paths:
        return list(range(count))
    column = paths.index("run_hash")
    ordered = sorted(hashes)
    groups = []
    for group in range(count):
        stats = metadata.row_group(group).column(column).statistics
        low, high = (stats.min, stats.max) if stats is not None and stats.has_min_max else (0, 0)
        if not isinstance(low, str) or not isinstance(high, str):  # (none, or not as text)
            groups.append(group)
            continue
        at = bisect.bisect_left(ordered, low)
        if at < len(ordered) and ordered[at] <= high:
            groups.append(group)
    return groups


def _codes(column: pa.ChunkedArray) -> tuple[list[str], np.ndarray[Any, Any]]:
    """A dictionary-read string column as (its distinct values, one int code per row into
    them), codes shared by all its chunks (each chunk has a dictionary of its own). One chunk
    whose dictionary holds each value once (as a Parquet writer makes it) gives its indices as
    they are."""
    if column.num_chunks == 1 and isinstance(column.chunks[0], pa.DictionaryArray):
        chunk = column.chunks[0]
        words = chunk.dictionary.to_pylist()
        if len(set(words)) == len(words) and not chunk.null_count:
            return words, to_numpy(chunk.indices)
    index: dict[str, int] = {}
    parts = []
    for chunk in column.chunks:
        if isinstance(chunk, pa.DictionaryArray):
            mapping = np.array(
                [index.setdefault(v, len(index)) for v in chunk.dictionary.to_pylist()],
                dtype=np.int64,
            )
            parts.append(mapping[to_numpy(chunk.indices)] if len(chunk) else _NO_CODES)
        else:  # (not read as a dictionary: one Python string per row)
            codes = [index.setdefault(v, len(index)) for v in chunk.to_pylist()]
            parts.append(np.array(codes, dtype=np.int64))
    values = list(index)
    return values, np.concatenate(parts) if parts else _NO_CODES


_EMPTY_POINTS: MetricPoints = (
    np.empty(0, np.int64),
    np.empty(0, np.float64),
    np.empty(0, np.float64),
    np.empty(0, np.float64),
)
