"""One run's entry of the run index (`storage.index.run_index`) read from its files: the
sidecar, the parts of a run with several writers, and the catalogue of a run whose writer is
gone scanned from its segments; and whether a run folder without sidecar is damaged."""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import pyarrow as pa

from aim_parquet.errors import AimParquetError
from aim_parquet.format.meta import RunMeta
from aim_parquet.format.paths import SIDECAR_FILENAME, RepoLayout
from aim_parquet.storage.base.lock import run_lock_holder
from aim_parquet.storage.index.index_entries import DamagedRun, IndexEntry
from aim_parquet.storage.index.index_file import StatKey
from aim_parquet.storage.index.run_records import RunRecord
from aim_parquet.storage.online.catalogue_scan import (
    discover_sequences,
    is_writer_gone,
    read_catalogue,
    scan_catalogue,
)
from aim_parquet.storage.online.params_file import read_sidecar_object
from aim_parquet.storage.online.writer_parts import load_writer_parts, merge_parts, parts_key

__all__ = ["YOUNG_RUN_S", "missing_sidecar", "read_sidecar_entry"]

log = logging.getLogger(__name__)

YOUNG_RUN_S = 30.0  # a run folder without sidecar this young is being created, not damaged


def read_sidecar_entry(layout: RepoLayout, run_hash: str, key: StatKey) -> IndexEntry:
    """The entry of a run's sidecar; for a run whose writer is gone, with the catalogue
    scanned from its segments (the sidecar's may lag them by one flush)."""
    path = layout.sidecar_path(run_hash)  # (a str: no Path objects per run)
    try:
        data = read_sidecar_object(path)
        meta = RunMeta.from_json(data, f"sidecar {path}")
    except PermissionError as exc:
        return IndexEntry(key, None, DamagedRun(run_hash, path, str(exc), True))
    except (ValueError, AimParquetError) as exc:  # CorruptFileError, UnsafeFileError, ...
        return IndexEntry(key, None, DamagedRun(run_hash, path, str(exc)))
    except FileNotFoundError:  # deleted between its stat and its read
        return IndexEntry(key, None, DamagedRun(run_hash, path, "the sidecar is missing"))
    if meta.is_multi_writer:
        return _read_writers(layout, run_hash, key, data, meta)
    if not is_writer_gone(layout, meta):
        if any(i.has_rewrites for i in meta.sequences):  # count/min/max made exact
            try:
                infos = tuple(discover_sequences(layout, run_hash, meta))
            except (OSError, pa.ArrowException, AimParquetError) as exc:
                return IndexEntry(key, None, DamagedRun(run_hash, path, str(exc)))
            known = {i.seq_id for i in meta.sequences}
            infos = tuple(i for i in infos if i.seq_id in known)
            data = {**data, "sequences": [i.to_json() for i in infos]}
            meta = replace(meta, sequences=infos)
        return IndexEntry(key, RunRecord(run_hash, data, meta))
    try:
        infos = scan_catalogue(layout, run_hash, meta)
    except (OSError, pa.ArrowException, AimParquetError) as exc:
        log.warning(
            "aim_parquet: cannot scan the segments of run %s, whose writer died (%s); its "
            "catalogue may miss the last flush. Run `aim-parquet verify --repair`.",
            run_hash,
            exc,
        )
        entry = IndexEntry(key, RunRecord(run_hash, data, meta))
        entry.is_open = False  # not retried on every refresh of this process
        return entry
    data = {**data, "sequences": [i.to_json() for i in infos]}
    meta = replace(meta, sequences=infos)
    return IndexEntry(key, RunRecord(run_hash, data, meta, is_rebuilt=True))


def _read_writers(
    layout: RepoLayout, run_hash: str, key: StatKey, data: dict[str, object], main: RunMeta
) -> IndexEntry:
    """The entry of a run with several writers: run.json merged with every writer's part,
    its catalogue caught up writer by writer (`read_catalogue`). Its key also covers the
    parts, so a part's change is seen like a sidecar's."""
    key = f"{key}+{parts_key(layout, run_hash)}"
    path = layout.writers_dir(run_hash)
    try:
        meta = merge_parts(main, load_writer_parts(layout, run_hash))
        infos = tuple(read_catalogue(layout, run_hash, meta))
    except PermissionError as exc:
        return IndexEntry(key, None, DamagedRun(run_hash, str(path), str(exc), True))
    except (ValueError, OSError, pa.ArrowException, AimParquetError) as exc:
        return IndexEntry(key, None, DamagedRun(run_hash, str(path), str(exc)))
    is_rebuilt = meta.end_time is None and run_lock_holder(layout, run_hash) is None
    data = {
        **data,
        "sequences": [i.to_json() for i in infos],
        "end_time": meta.end_time,
        "updated_at": meta.updated_at,
    }
    meta = replace(meta, sequences=infos)
    return IndexEntry(key, RunRecord(run_hash, data, meta, is_rebuilt=is_rebuilt))


def missing_sidecar(layout: RepoLayout, run_hash: str) -> DamagedRun | None:
    """A run folder without sidecar: being created (None) or damaged."""
    run_dir = layout.run_dir(run_hash)
    try:
        age = time.time() - run_dir.stat().st_mtime
    except FileNotFoundError:
        return None  # deleted meanwhile
    if age < YOUNG_RUN_S or run_lock_holder(layout, run_hash) is not None:
        return None
    path = run_dir / SIDECAR_FILENAME
    return DamagedRun(run_hash, str(path), "the sidecar is missing")
