"""The published runs table, `.aim/index/runs.parquet`.

`publish_runs_table(layout)` writes one row per run (hash, experiment, name, description, tags,
archived, creation_time, end_time, active) plus every param flattened into a `params.<a>.<b>`
column named by `format.naming`, so params join the metrics in one line of SQL. The analyst
dataset's refresh rewrites it atomically at each commit (`aim-parquet export`'s folder holds the
same table).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from aim_parquet.errors import UnsafeFileError
from aim_parquet.format.meta import RunMeta
from aim_parquet.format.naming import PARAMS_PREFIX, flat_columns
from aim_parquet.format.paths import RepoLayout
from aim_parquet.format.values import encode_json_value, utf8_safe
from aim_parquet.storage.base.atomic import atomic_write, fsync_dir, temp_path_for
from aim_parquet.storage.base.columns import nullable_scalars, string_array, validity_bitmap
from aim_parquet.storage.base.repo_changes import index_link
from aim_parquet.storage.base.safe_fs import read_regular
from aim_parquet.storage.index.run_index import RunIndex
from aim_parquet.storage.online.writer_parts import is_run_active

log = logging.getLogger(__name__)

_INT64 = (-(2**63), 2**63 - 1)
MAX_RUNS_FILE_BYTES = 1 << 30  # a runs table copied by `publish_runs_file` (held in memory)


def runs_table_path(layout: RepoLayout) -> Path:
    return layout.runs_table


def _array(values: list[Any], typ: pa.DataType) -> pa.Array:
    """A nullable bool/int64/float64/string array built from buffers (pa.array imports pandas)."""
    if typ != pa.string():
        return nullable_scalars(values, typ)
    present = np.fromiter((v is not None for v in values), dtype=bool, count=len(values))
    bitmap, nulls = validity_bitmap(present)
    dense = string_array(["" if v is None else v for v in values])
    return pa.Array.from_buffers(typ, len(values), [bitmap, *dense.buffers()[1:]], nulls)


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


def repo_runs(layout: RepoLayout, run_hashes: set[str] | None = None) -> list[RunMeta]:
    metas, damaged = RunIndex(layout).metas()
    for bad in damaged:
        log.warning("aim_parquet: %s", bad.describe())
    return [m for m in metas if run_hashes is None or m.hash in run_hashes]


def write_table_atomic(path: Path, table: pa.Table) -> None:
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
    """Rewrite `.aim/index/runs.parquet` (with `table`, or from the sidecars); returns its path.
    The analyst dataset's refresh publishes it with the runs table of its own snapshot.
    UnsafeFileError when `.aim/index` is a link (nothing is written through it)."""
    link = index_link(layout)
    if link is not None:
        raise UnsafeFileError(
            f"{link} is a symbolic link; aim_parquet never writes through links inside .aim/, so "
            f"{runs_table_path(layout)} was not written. Replace the link by a real folder."
        )
    if table is None:
        metas = repo_runs(layout)
        table = runs_table(metas, {m.hash: is_run_active(layout, m) for m in metas})
    path = runs_table_path(layout)
    write_table_atomic(path, table)
    return path


def publish_runs_file(layout: RepoLayout, source: Path) -> Path:
    """Publish the runs table held by the Parquet file `source` (the analyst dataset's
    committed one) as `.aim/index/runs.parquet`, its bytes copied; nothing is written when the
    published file already has those bytes (a refresh with nothing to do writes nothing).
    UnsafeFileError when `.aim/index` is a link."""
    link = index_link(layout)
    if link is not None:
        raise UnsafeFileError(
            f"{link} is a symbolic link; aim_parquet never writes through links inside .aim/, so "
            f"{runs_table_path(layout)} was not written. Replace the link by a real folder."
        )
    data = read_regular(source, "runs table", MAX_RUNS_FILE_BYTES)
    path = runs_table_path(layout)
    try:
        if read_regular(path, "runs table", MAX_RUNS_FILE_BYTES) == data:
            return path
    except (FileNotFoundError, UnsafeFileError, OSError):
        pass  # missing, replaced by something else, or too large: written again below
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data)
    return path
