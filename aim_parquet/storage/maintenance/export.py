"""The published runs table and self-contained Parquet exports.

- `publish_runs_table(layout)` writes `.aim/index/runs.parquet`: one row per run (hash, experiment,
  name, description, tags, archived, creation_time, end_time, active) plus every param flattened
  into a `params.<a>.<b>` column (`format.naming`), so params join the metrics in one line of
  SQL. The analyst dataset's refresh (`storage.maintenance.dataset`) rewrites it atomically at each commit.
- `export_dataset(layout, output)` writes a folder that needs nothing of aim_parquet to read:
  `runs.parquet`, `metrics/<run hash>.parquet` (every metric point as queries see it: compacted
  and uncompacted data merged, one row per step) and, on request, `objects/<kind>/<run hash>.parquet`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from aim_parquet.errors import AimParquetError, CorruptFileError, FormatVersionError
from aim_parquet.format.meta import RunMeta
from aim_parquet.format.naming import PARAMS_PREFIX, flat_columns
from aim_parquet.format.paths import RepoLayout, canonical_context, is_valid_run_hash
from aim_parquet.format.schema import is_metric_kind
from aim_parquet.format.values import encode_json_value, utf8_safe
from aim_parquet.storage.base.atomic import (
    atomic_write_json,
    fsync_dir,
    replace_folder,
    temp_path_for,
)
from aim_parquet.storage.base.columns import string_array
from aim_parquet.storage.base.lock import is_run_locked
from aim_parquet.storage.compaction.compacted import (
    METRICS_KIND,
    CompactedFileWriter,
    SeqKey,
    compacted_kind,
    kind_token,
)
from aim_parquet.storage.index.run_index import RunIndex
from aim_parquet.storage.online.catalogue_scan import discover_sequences
from aim_parquet.storage.online.run_reader import read_sequence

log = logging.getLogger(__name__)

RUNS_TABLE_FILENAME = "runs.parquet"
EXPORT_MARKER = "aim_parquet_export.json"
_INT64 = (-(2**63), 2**63 - 1)


def runs_table_path(layout: RepoLayout) -> Path:
    return layout.index_dir / RUNS_TABLE_FILENAME


def _array(values: list[Any], typ: pa.DataType) -> pa.Array:
    """A nullable bool/int64/float64/string array built from buffers (pa.array imports pandas)."""
    n = len(values)
    mask = np.fromiter((v is not None for v in values), dtype=bool, count=n)
    nulls = n - int(mask.sum())
    validity = pa.py_buffer(np.packbits(mask, bitorder="little")) if nulls else None
    if typ == pa.string():
        dense = string_array(["" if v is None else v for v in values])
        return pa.Array.from_buffers(typ, n, [validity, *dense.buffers()[1:]], null_count=nulls)
    data: np.ndarray[Any, Any]
    if typ == pa.bool_():
        bits = np.fromiter((bool(v) for v in values), dtype=bool, count=n)
        data = np.packbits(bits, bitorder="little")
    elif typ == pa.int64():
        data = np.fromiter((0 if v is None else v for v in values), dtype=np.int64, count=n)
    else:
        data = np.fromiter((np.nan if v is None else v for v in values), dtype=np.float64, count=n)
    return pa.Array.from_buffers(typ, n, [validity, pa.py_buffer(data)], null_count=nulls)


def _string_lists(values: list[tuple[str, ...]]) -> pa.Array:
    offsets = np.zeros(len(values) + 1, dtype=np.int32)
    np.cumsum([len(v) for v in values], out=offsets[1:])
    flat = string_array([s for v in values for s in v])
    offsets_array = pa.Array.from_buffers(pa.int32(), len(offsets), [None, pa.py_buffer(offsets)])
    return pa.ListArray.from_arrays(offsets_array, flat)


def param_column(values: list[Any]) -> pa.Array:
    """One params column: bool, int64, float64 or string; anything else (a leaf whose type
    differs between rows, a list, bytes) as its tagged-JSON text. Text that is not valid
    Unicode (lone surrogates) is written with visible `\\udcxx` escapes."""
    present = [v for v in values if v is not None]
    if all(type(v) is bool for v in present):
        return _array(values, pa.bool_())
    if all(type(v) is int and _INT64[0] <= v <= _INT64[1] for v in present):
        return _array(values, pa.int64())
    if all(type(v) in (int, float) for v in present):
        try:
            return _array([None if v is None else float(v) for v in values], pa.float64())
        except OverflowError:
            pass  # an int beyond float range: keep it exact as JSON text
    if all(type(v) is str for v in present):
        return _array(values, pa.string())
    texts = [
        None if v is None else json.dumps(encode_json_value(v), ensure_ascii=False) for v in values
    ]
    return _array(texts, pa.string())


def runs_table(metas: list[RunMeta], active: dict[str, bool] | None = None) -> pa.Table:
    """The runs table (see module doc) of `metas`, sorted by creation time."""
    metas = sorted(metas, key=lambda m: (m.creation_time, m.hash))
    active = active or {}
    flat = [flat_columns(PARAMS_PREFIX, meta.params) for meta in metas]
    param_names = sorted({k for p in flat for k in p})
    columns: dict[str, pa.Array] = {
        "hash": _array([m.hash for m in metas], pa.string()),
        "experiment": _array([m.experiment for m in metas], pa.string()),
        "name": _array([m.display_name for m in metas], pa.string()),
        "description": _array([m.description for m in metas], pa.string()),
        "tags": _string_lists([m.tags for m in metas]),
        "archived": _array([m.archived for m in metas], pa.bool_()),
        "creation_time": _array([m.creation_time for m in metas], pa.float64()),
        "end_time": _array([m.end_time for m in metas], pa.float64()),
        "active": _array([active.get(m.hash, False) for m in metas], pa.bool_()),
    }
    for name in param_names:
        if name not in columns:
            columns[utf8_safe(name)] = param_column([p.get(name) for p in flat])
    return pa.Table.from_arrays(list(columns.values()), names=list(columns))


def _repo_runs(layout: RepoLayout, run_hashes: set[str] | None = None) -> list[RunMeta]:
    metas, damaged = RunIndex(layout).metas()
    for bad in damaged:
        log.warning("aim_parquet: %s", bad.describe())
    return [m for m in metas if run_hashes is None or m.hash in run_hashes]


def _is_active(layout: RepoLayout, meta: RunMeta) -> bool:
    return meta.end_time is None and is_run_locked(layout.lock_file(meta.hash)) is not None


def _write_table_atomic(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def publish_runs_table(layout: RepoLayout, table: pa.Table | None = None) -> Path:
    """Rewrite `.aim/index/runs.parquet` (with `table`, or from the sidecars); its path. The
    analyst dataset's refresh publishes it with the runs table of its own snapshot."""
    if table is None:
        metas = _repo_runs(layout)
        table = runs_table(metas, {m.hash: _is_active(layout, m) for m in metas})
    path = runs_table_path(layout)
    _write_table_atomic(path, table)
    return path


@dataclass(frozen=True)
class ExportReport:
    """What `export_dataset` wrote."""

    output: Path
    runs: int
    sequences: int
    points: int  # metric points
    objects: int  # object rows
    files: int
    bytes: int


def _prepare_output(output: Path) -> Path:
    """Check `output` (a new or empty folder, or an earlier export) and make the temp folder the
    export is built in, next to it (it replaces `output` only once complete)."""
    if output.is_symlink() or (output.exists() and not output.is_dir()):
        raise AimParquetError(f"{output} is not a folder; choose a new or empty folder.")
    if output.exists() and any(output.iterdir()) and not (output / EXPORT_MARKER).exists():
        raise AimParquetError(
            f"{output} exists and is not an aim_parquet export; choose a new or empty folder."
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    work = temp_path_for(output)
    work.mkdir()
    return work


def export_dataset(
    layout: RepoLayout,
    output: Path,
    *,
    sequences: dict[str, set[str] | None] | None = None,
    include_objects: bool = False,
) -> ExportReport:
    """Write the repo as a Parquet dataset in `output` (see module doc): built in a temp folder
    next to it, which then replaces `output` at once (an earlier export there stays whole until
    the new one is complete).

    `sequences` limits the export to some runs ({run hash: metric seq_ids, or None for all});
    with `include_objects`, every object sequence of the exported runs is written too.
    """
    output = Path(os.path.abspath(output))
    work = _prepare_output(output)
    try:
        report = _export_into(work, layout, sequences, include_objects)
        replace_folder(work, output)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return ExportReport(output, *report)


def _export_into(
    output: Path,
    layout: RepoLayout,
    sequences: dict[str, set[str] | None] | None,
    include_objects: bool,
) -> tuple[int, int, int, int, int, int]:
    """Write the dataset into the (temp) folder `output`; the report's figures. A run whose
    files cannot be read (damaged, a newer format, permission denied) is left out with a
    warning: one run never stops the export of the others."""
    selected = None if sequences is None else set(sequences)
    n_seqs = points = objects = 0
    exported = []
    for meta in _repo_runs(layout, selected):
        wanted = None if sequences is None else sequences.get(meta.hash)
        try:
            counts = _export_run(output, layout, meta, wanted, include_objects)
        except (CorruptFileError, FormatVersionError, PermissionError) as exc:
            log.warning("aim_parquet: export leaves out run %s: %s", meta.hash, exc)
            continue
        exported.append(meta)
        n_seqs, points, objects = n_seqs + counts[0], points + counts[1], objects + counts[2]
    active = {m.hash: _is_active(layout, m) for m in exported}
    _write_table_atomic(output / RUNS_TABLE_FILENAME, runs_table(exported, active))
    atomic_write_json(
        output / EXPORT_MARKER,
        {"format": "aim_parquet.export", "format_version": 1, "source": str(layout.root)},
    )
    files = size = 0
    for dirpath, _dirs, names in os.walk(output):
        for name in names:
            files += 1
            size += os.path.getsize(os.path.join(dirpath, name))
    return len(exported), n_seqs, points, objects, files, size


def _export_run(
    output: Path,
    layout: RepoLayout,
    meta: RunMeta,
    wanted: set[str] | None,
    include_objects: bool,
) -> tuple[int, int, int]:
    """Write one run's files; (sequences, metric points, objects). On an error no file of the
    run is left."""
    infos = [
        i
        for i in discover_sequences(layout, meta.hash, meta)
        if wanted is None or i.seq_id in wanted or not is_metric_kind(i.kind)
    ]
    writers: dict[str, CompactedFileWriter] = {}
    n_seqs = points = objects = 0
    try:
        for info in sorted(infos, key=lambda i: i.seq_id):
            kind = compacted_kind(info.kind)
            if kind != METRICS_KIND and not include_objects:
                continue
            table = read_sequence(layout, meta.hash, info)
            if table.num_rows == 0:
                continue
            writer = writers.get(kind)
            if writer is None:
                writer = writers[kind] = _export_writer(output, meta.hash, kind)
            key = SeqKey(info.seq_id, info.name, canonical_context(info.context), info.kind)
            writer.add(key, table)
            n_seqs += 1
            if kind == METRICS_KIND:
                points += table.num_rows
            else:
                objects += table.num_rows
        for writer in writers.values():
            writer.finish()
    except BaseException:
        for writer in writers.values():
            writer.abort()
            writer.path.unlink(missing_ok=True)  # a kind already finished
        raise
    return n_seqs, points, objects


def _export_writer(output: Path, run_hash: str, kind: str) -> CompactedFileWriter:
    if kind == METRICS_KIND:
        path = output / "metrics" / f"{run_hash}.parquet"
    else:
        path = output / "objects" / kind_token(kind) / f"{run_hash}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    assert is_valid_run_hash(run_hash)
    return CompactedFileWriter(
        path.parent,
        run_hash=run_hash,
        kind=kind,
        generation=0,
        segments=frozenset(),
        sequences={},
        path=path,
    )
