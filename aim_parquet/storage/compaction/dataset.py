"""The analyst dataset `.aim/dataset/`: every metric point as queries see it, in a few Parquet
files shared by many runs, committed atomically by `current.json` (FORMAT.md, "The analyst
dataset").

- One file per *bucket* of runs (`bucket = int(hash[:2], 16) * buckets // 256`), named by bucket
  and generation: `metrics-<bucket, 2 hex>-<generation, 6 digits>.parquet`. Each holds one row
  per point (the last write of each step wins), sorted by run, sequence name, context and step,
  with the run's `archived` and `active` flags and one column per context key
  (`format.naming`). Every file of a generation has the same schema.
- `runs-<generation>.parquet`: the runs table of the same snapshot (also published as
  `index/runs.parquet`; a refresh with nothing to do copies this file's bytes there only when
  they differ, so it writes nothing).
- `current.json`: the commit point. It lists the current files and, per run, the *fingerprint*
  of the run's files the rows were read from (its sidecar's stat; for a run without `end_time`
  also its liveness and its segments' names and sizes), so a refresh rewrites only the buckets
  of runs that changed and a reader can tell which runs are stale (`dataset_read`). A refresh
  with nothing to do decodes no run: a closed run's fingerprint is the stat key the run index
  already holds (`_current_runs_file`).
- Superseded files stay (listed under `retired` with the time they were retired) until
  `aim-parquet gc` removes them once older than its grace period: a reader that read the
  previous `current.json` can still open every file it lists.

`refresh_dataset` is called by the offline operations that change what the dataset says:
`compact`, `export`, `runs archive|unarchive|close|rm|cp|mv`, the SDK's delete/copy/move and the
web UI's run edits. `Run.close()` does not call it (a training script's close costs O(its run),
never O(repository)): runs closed since the last refresh are stale in the committed files, and
`read_dataset(live=True)` reads them from their own files (`dataset_read`). Refreshes
are serialised by a non-blocking `flock` on `dataset/lock`; a process that finds it held leaves
the work to the holder, which refreshes again when the change marker moved while it worked.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from aim_parquet.errors import AimParquetError, CorruptFileError, FormatVersionError
from aim_parquet.format.compacted import METRIC_ENCODINGS
from aim_parquet.format.dataset import (
    CURRENT_FILENAME,
    DEFAULT_BUCKETS,
    FILE_NAME,
    LOCK_FILENAME,
    DatasetManifest,
    bucket_of,
    dataset_dir,
    dataset_schema,
    metrics_file_name,
    runs_file_name,
)
from aim_parquet.format.meta import RunMeta
from aim_parquet.format.paths import TEMP_PREFIX, RepoLayout
from aim_parquet.storage.base.atomic import atomic_write, fsync_dir, fsync_file, temp_path_for
from aim_parquet.storage.base.columns import empty_table, string_array
from aim_parquet.storage.base.lock import held_flock
from aim_parquet.storage.base.repo_changes import marker_key
from aim_parquet.storage.base.safe_fs import (
    require_real_dirs,
)
from aim_parquet.storage.compaction.dataset_rows import (
    context_columns,
    load_dataset_manifest,
    run_fingerprint,
    run_rows,
)
from aim_parquet.storage.index.run_index import RunIndex
from aim_parquet.storage.index.runs_table import (
    publish_runs_file,
    publish_runs_table,
    runs_table,
)
from aim_parquet.storage.online.writer_parts import is_run_active

__all__ = [  # (the rows and fingerprints live in `dataset_rows`; `dataset_read` imports them here)
    "DatasetReport",
    "collectable_files",
    "context_columns",
    "load_dataset_manifest",
    "refresh_after_change",
    "refresh_dataset",
    "run_fingerprint",
    "run_rows",
]

log = logging.getLogger(__name__)

ROW_GROUP_ROWS = 128 * 1024
UNLISTED_MIN_AGE_S = 3600.0  # a file no manifest lists yet may be a refresh about to commit
MAX_ROUNDS = 5  # refreshes in a row while the repository keeps changing under one


# -- committing ----------------------------------------------------------------------------------


@dataclass
class DatasetReport:
    """What one `refresh_dataset` did."""

    generation: int = 0
    runs: int = 0
    rewritten_buckets: int = 0
    rows: int = 0
    skipped: str = ""  # why nothing was done (another process is refreshing)
    notes: list[str] = field(default_factory=list)


def _write_parquet(path: Path, table: pa.Table, encodings: dict[str, str] | None = None) -> int:
    """`table` written to `path` (temp file, fsync, rename); `encodings`: the encodings of these
    columns (the others dictionary-encoded)."""
    encodings = encodings or {}
    tmp = temp_path_for(path)
    try:
        pq.write_table(
            table,
            tmp,
            compression="zstd",
            row_group_size=ROW_GROUP_ROWS,
            use_dictionary=[c for c in table.column_names if c not in encodings],
            column_encoding=encodings or None,
        )
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return int(table.num_rows)


def refresh_dataset(layout: RepoLayout, *, rebuild: bool = False) -> DatasetReport:
    """Bring the analyst dataset up to date with the repository (see module doc); with
    `rebuild`, rewrite every bucket. Returns at once (report.skipped) when another process is
    refreshing: it refreshes again if anything changed while it worked."""
    folder = dataset_dir(layout)
    require_real_dirs(layout.aim_dir, folder, "refresh the analyst dataset")
    folder.mkdir(parents=True, exist_ok=True)
    report = DatasetReport()
    for _round in range(MAX_ROUNDS):
        started = marker_key(layout)
        with held_flock(folder / LOCK_FILENAME, "analyst dataset lock") as is_held:
            if not is_held:
                report.skipped = report.skipped or "another process is refreshing the dataset"
                return report
            table = _refresh_locked(layout, folder, report, rebuild=rebuild)
            if isinstance(table, Path):  # nothing changed: the committed runs file, as it is
                publish_runs_file(layout, table)
            else:
                publish_runs_table(layout, table)
        rebuild = False
        if marker_key(layout) == started:  # (checked after unlocking: see module doc)
            break
    return report


def _current_runs_file(
    layout: RepoLayout, index: RunIndex, old: DatasetManifest, report: DatasetReport
) -> Path | None:
    """The committed runs table's file when no run changed since `old` was committed, else None.

    One listing of `runs/` and one `stat` per sidecar (the run index's refresh), with no run
    decoded: a closed run's fingerprint is its sidecar's stat key, which the index holds. Only a
    run without `end_time` is fingerprinted on its own (liveness, segments). Every column of the
    runs table and every metrics row comes from the files the fingerprints cover, so equal
    fingerprints mean the refresh would write the same files. A run with several writers (its
    parts change without its sidecar) always takes the full refresh."""
    snapshot = index.refresh()
    keys = index.stat_keys()
    states = {}
    for run_hash, record in snapshot.records.items():
        key = keys.get(run_hash)
        if key is None or "+" in key:
            return None
        if record.has_end_time:
            states[run_hash] = key
            continue
        try:
            states[run_hash] = run_fingerprint(layout, record.meta)
        except (FileNotFoundError, CorruptFileError):
            return None
    if states != old.run_states:
        return None
    path = dataset_dir(layout) / old.runs
    if not path.is_file():
        return None
    for bad in snapshot.damaged:
        report.notes.append(f"left out damaged run: {bad.describe()}")
    report.generation, report.runs = old.generation, len(states)
    return path


def _refresh_locked(
    layout: RepoLayout, folder: Path, report: DatasetReport, *, rebuild: bool
) -> pa.Table | Path:
    old = load_dataset_manifest(layout) if not rebuild else None
    index = RunIndex(layout)
    if old is not None:
        current = _current_runs_file(layout, index, old, report)
        if current is not None:
            return current
    metas, damaged = index.metas()
    for bad in damaged:
        report.notes.append(f"left out damaged run: {bad.describe()}")
    active = {m.hash: is_run_active(layout, m) for m in metas}
    states = {}
    for meta in list(metas):
        try:
            states[meta.hash] = run_fingerprint(layout, meta)
        except FileNotFoundError:  # deleted meanwhile
            metas.remove(meta)
    columns = context_columns(metas)
    buckets = old.buckets if old is not None else DEFAULT_BUCKETS
    if old is not None and old.context_columns != columns:
        old = None  # the schema changed: every file is rewritten
    schema = dataset_schema(columns)
    generation = (old.generation if old else _newest_generation(folder)) + 1
    by_bucket: dict[int, list[RunMeta]] = {}
    for meta in metas:
        by_bucket.setdefault(bucket_of(meta.hash, buckets), []).append(meta)
    changed = {h for h, s in states.items() if old is None or old.run_states.get(h) != s}
    gone = set(old.run_states) - set(states) if old else set()
    dirty = {bucket_of(h, buckets) for h in changed | gone}
    if old is None:
        dirty = set(range(buckets))
    now = time.time()
    files = list(old.metrics) if old else [""] * buckets
    retired = [(f, t) for f, t in (old.retired if old else ()) if (folder / f).exists()]
    kept_states = dict(old.run_states) if old else {}
    for h in gone:
        kept_states.pop(h, None)
    for bucket in sorted(dirty):
        runs = sorted(by_bucket.get(bucket, []), key=lambda m: m.hash)
        parts = []
        if old is not None:
            import pyarrow.compute as pc  # (0.1 s to import: only a refresh with work needs it)

            reuse = {m.hash for m in runs} - changed
            previous = pq.ParquetFile(folder / old.metrics[bucket]).read()
            if reuse:
                parts.append(
                    previous.filter(pc.is_in(previous["run_hash"], string_array(sorted(reuse))))
                )
        for meta in runs:
            if meta.hash not in changed:
                continue
            try:
                parts.append(run_rows(layout, meta, active[meta.hash], schema))
                kept_states[meta.hash] = states[meta.hash]
            except (CorruptFileError, FormatVersionError, PermissionError, AimParquetError) as exc:
                report.notes.append(f"left out run {meta.hash}: {exc}")
                kept_states.pop(meta.hash, None)
        table = pa.concat_tables(parts) if parts else empty_table(schema)
        table = table.sort_by(
            [
                ("run_hash", "ascending"),
                ("name", "ascending"),
                ("context", "ascending"),
                ("step", "ascending"),
            ]
        )
        name = metrics_file_name(bucket, generation)
        report.rows += _write_parquet(folder / name, table, METRIC_ENCODINGS)
        if files[bucket]:
            retired.append((files[bucket], now))
        files[bucket] = name
        report.rewritten_buckets += 1
    runs = runs_table(metas, active)
    if old is not None and not dirty and _same_table(folder / old.runs, runs):
        report.generation, report.runs = old.generation, len(metas)
        return runs  # nothing changed: no new generation
    runs_name = runs_file_name(generation)
    _write_parquet(folder / runs_name, runs)
    if old is not None:
        retired.append((old.runs, now))
    fsync_dir(folder)
    manifest = DatasetManifest(
        generation=generation,
        created_at=now,
        buckets=buckets,
        metrics=tuple(files),
        runs=runs_name,
        context_columns=columns,
        run_states={h: kept_states[h] for h in sorted(kept_states) if h in states},
        retired=tuple(retired),
    )
    data = json.dumps(manifest.to_json(), ensure_ascii=False, indent=1)
    atomic_write(folder / CURRENT_FILENAME, data.encode("utf-8"))  # the commit
    report.generation, report.runs = generation, len(metas)
    return runs


def _same_table(path: Path, table: pa.Table) -> bool:
    try:
        return bool(pq.ParquetFile(path).read().equals(table))
    except (OSError, pa.ArrowInvalid):
        return False


def _newest_generation(folder: Path) -> int:
    """The newest generation of any file in the folder (a rebuild never reuses a name)."""
    newest = 0
    with contextlib.suppress(FileNotFoundError):
        for name in os.listdir(folder):
            if FILE_NAME.match(name):
                newest = max(newest, int(name[-14:-8]))
    return newest


def collectable_files(layout: RepoLayout, grace_s: float, now: float) -> list[Path]:
    """Files of the dataset `gc` may remove: retired at least `grace_s` ago, and files no
    manifest lists (a refresh killed before its commit) or temp files older than `grace_s`."""
    folder = dataset_dir(layout)
    try:
        manifest = load_dataset_manifest(layout)
        names = sorted(os.listdir(folder))
    except (FileNotFoundError, NotADirectoryError, CorruptFileError, FormatVersionError):
        return []
    listed = set(manifest.metrics) | {manifest.runs} if manifest else set()
    retired = dict(manifest.retired) if manifest else {}
    out = []
    for name in names:
        path = folder / name
        if name in listed:
            continue
        if name in retired:
            if now - retired[name] >= grace_s:
                out.append(path)
        elif FILE_NAME.match(name) or name.startswith(TEMP_PREFIX):
            with contextlib.suppress(FileNotFoundError):  # (may be a refresh in progress)
                if now - path.lstat().st_mtime >= max(grace_s, UNLISTED_MIN_AGE_S):
                    out.append(path)
    return out


def refresh_after_change(layout: RepoLayout) -> str | None:
    """Refresh the dataset and the runs table after an operation that changed what they say.
    A failure (a read-only repository, a full disk, a linked folder) is logged and returned as
    one line, never raised: the operation itself succeeded."""
    try:
        report = refresh_dataset(layout)
    except Exception as exc:  # noqa: BLE001 (reported; the caller's change is done)
        problem = (
            f"could not refresh the runs table and the analyst dataset ({exc}); run "
            "`aim-parquet compact` to refresh them"
        )
        log.warning("aim_parquet: %s", problem)
        return problem
    for note in report.notes:
        log.warning("aim_parquet: analyst dataset: %s", note)
    return None
