"""Rows of one object sequence at chosen steps, reading no other step's payload.

`run_reader.read_sequence` returns every row of a sequence; for an image sequence that is every
image's bytes. The web UI shows one step at a time and thumbnails one image per request, so this
reader takes the steps it wants and keeps only their rows: in a segment (memory-mapped) the other
rows are never touched, and in a compacted file the row groups whose `step` statistics exclude
the wanted steps are not read. Same consistency rules as `run_reader` (compacted files first, then
the segments the manifest does not cover; a read that raced a compaction restarts from the new
manifest; the last write of a (step, index) wins).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from aim_parquet.format.compacted import compacted_kind
from aim_parquet.format.kinds import is_metric_kind
from aim_parquet.format.meta import Manifest, SequenceInfo
from aim_parquet.format.paths import (
    RepoLayout,
)
from aim_parquet.format.schema import OBJECT_SCHEMA
from aim_parquet.storage.base.columns import empty_table, int64_array, to_numpy
from aim_parquet.storage.online.compacted_read import (
    _ParquetRows,
    _row_groups_for,
    _rows_of,
    open_compacted,
)
from aim_parquet.storage.online.run_reader import dedupe_steps, read_pieces

Steps = np.ndarray[Any, Any]


def read_object_rows(
    layout: RepoLayout,
    run_hash: str,
    info: SequenceInfo,
    columns: Iterable[str],
    *,
    steps: Iterable[int] | None = None,
    index: int | None = None,
) -> pa.Table:
    """The rows of object sequence `info` at `steps` (every step when None) and, when `index` is
    given, at that position of the list tracked at a step only, with `columns` (plus `step` and
    `index`), sorted by step and index, the last write of each winning."""
    if is_metric_kind(info.kind):
        raise ValueError(f"{info.name!r} is a metric; read it with read_metric_columns")
    asked = set(columns) | {"step", "index"}
    wanted = [c for c in OBJECT_SCHEMA.names if c in asked]
    wanted_steps = None if steps is None else np.unique(np.fromiter(steps, np.int64))
    target = pa.schema([OBJECT_SCHEMA.field(c) for c in wanted])

    def from_batch(batch: pa.RecordBatch) -> pa.Table | None:
        kept = _at_steps(pa.Table.from_batches([batch]).select(wanted), wanted_steps, index)
        return kept if kept.num_rows else None

    tables: list[pa.Table] = read_pieces(
        layout,
        run_hash,
        info,
        lambda run_dir, manifest: _compacted(run_dir, manifest, info, wanted, wanted_steps, index),
        from_batch,
    )
    tables = [t if t.schema.equals(target) else t.cast(target) for t in tables]
    table = pa.concat_tables(tables) if tables else empty_table(target)
    return dedupe_steps(table, by_index=True)


def _at_steps(table: pa.Table, steps: Steps | None, index: int | None) -> pa.Table:
    if (steps is None and index is None) or table.num_rows == 0:
        return table
    keep = np.ones(table.num_rows, bool)
    if steps is not None:
        keep &= np.isin(to_numpy(table.column("step")), steps)
    if index is not None:
        keep &= to_numpy(table.column("index")) == index
    positions = np.flatnonzero(keep)
    if positions.size == table.num_rows:
        return table
    return table.take(int64_array(positions))


def _compacted(
    run_dir: Path,
    manifest: Manifest,
    info: SequenceInfo,
    wanted: list[str],
    steps: Steps | None,
    index: int | None,
) -> list[pa.Table]:
    """The rows of the sequence in the manifest's files of its kind, reading only the row groups
    whose step range can hold a wanted step."""
    kind = compacted_kind(info.kind)
    out = []
    for f in manifest.files:
        if f.kind != kind:
            continue
        pf = open_compacted(run_dir / f.path, kind)  # checked, as every reader's
        groups, is_exact = _row_groups_for(pf, info.seq_id)
        if steps is not None:
            groups = [g for g in groups if _may_hold(pf, g, steps)]
        if not groups:
            continue
        if is_exact:
            table = pf.read_row_groups(groups, wanted, False)
        else:
            table = _rows_of(pf.read_row_groups(groups, ["seq_id", *wanted], False), info.seq_id)
            table = table.select(wanted)
        kept = _at_steps(table, steps, index)
        if kept.num_rows:
            out.append(kept)
    return out


def _may_hold(pf: _ParquetRows, group: int, steps: Steps) -> bool:
    col = pf.schema_arrow.get_field_index("step")
    stats = pf.metadata.row_group(group).column(col).statistics
    if stats is None or not stats.has_min_max:
        return True
    return bool(np.any((steps >= stats.min) & (steps <= stats.max)))
