"""Reading the analyst dataset with the live tier: the committed files, with the rows of every
run that changed since the last refresh (a live run, a run resumed or edited since) read from
the run's own files instead. What `aim_parquet.read_dataset` returns (FORMAT.md, "The analyst
dataset": reading live and committed data together)."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from aim_parquet.errors import AimParquetError, CorruptFileError, FormatVersionError
from aim_parquet.format.dataset import dataset_dir, dataset_schema
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage.base.lock import WriterState, writer_state
from aim_parquet.storage.compaction.dataset import (
    context_columns,
    load_dataset_manifest,
    run_fingerprint,
    run_rows,
)
from aim_parquet.storage.index.run_index import RunIndex
from aim_parquet.storage.index.runs_table import runs_table

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
    active = {
        m.hash: m.end_time is None and writer_state(layout, m.hash) is WriterState.LIVE
        for m in metas
    }
    parts = []
    if usable and committed is not None:
        keep = sorted(set(states) - {m.hash for m in fresh})
        parts.append(committed.filter(pc.is_in(committed["run_hash"], pa.array(keep, pa.string()))))
    for meta in fresh:
        try:
            parts.append(run_rows(layout, meta, active[meta.hash], schema))
        except (CorruptFileError, FormatVersionError, PermissionError, AimParquetError):
            continue  # damaged or unreadable: left out, as queries and the refresh do
    metrics = pa.concat_tables(parts) if parts else schema.empty_table()
    if fresh:
        metrics = metrics.sort_by(SORT_KEYS)
    return DatasetTables(
        metrics, runs_table(metas, active), generation, tuple(m.hash for m in fresh)
    )
