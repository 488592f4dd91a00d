"""Storage: every byte of file I/O, in wings that show the architecture.

- `base/`: shared primitives (atomic writes, safe file access, file checks, the run lock, the change
  marker and sidecar write, repository folders, Arrow column builders).
- `online/`: the run path a training script and a reader use (writer, buffers, segments, readers of
  segments and compacted files, the true catalogue, object rows).
- `index/`: the repository index (`.aim/index/runs.arrow`) and the published runs table.
- `compaction/`: the compacted Parquet writer, the compactor and the analyst dataset
  (`.aim/dataset/`: its refresh and its reader with the live tier).
- `maintenance/`: the offline tools (verify and repair, gc and stats, export, delete/copy/move,
  sidecar edits).

Imports point down that list (`base` <- `online` <- `index` <- `compaction` <- `maintenance`): the
online path never imports the offline tools (tests/unit/test_architecture.py checks it).

This module is the public face: code outside storage (tools, tests, the CLI) imports the names
below from `aim_parquet.storage`. Each is resolved when first asked for, so importing storage
imports no wing it does not use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aim_parquet.storage.base.atomic import atomic_write, atomic_write_json
    from aim_parquet.storage.base.lock import RunLock, is_run_locked
    from aim_parquet.storage.base.repo_files import ensure_repo, is_repo, open_repo
    from aim_parquet.storage.compaction.compaction_report import CompactionReport, RunCompaction
    from aim_parquet.storage.compaction.compactor import compact_repo, compact_run, default_workers
    from aim_parquet.storage.compaction.dataset import (
        DatasetReport,
        refresh_after_change,
        refresh_dataset,
    )
    from aim_parquet.storage.compaction.dataset_read import DatasetTables, read_dataset_tables
    from aim_parquet.storage.index.run_index import RunIndex
    from aim_parquet.storage.index.runs_table import publish_runs_table
    from aim_parquet.storage.maintenance.export import ExportReport, export_dataset
    from aim_parquet.storage.maintenance.gc import (
        GcReport,
        StatsReport,
        check_grace,
        gc_repo,
        repo_stats,
    )
    from aim_parquet.storage.maintenance.run_ops import (
        copy_run_folder,
        delete_run_folder,
        move_run_folder,
    )
    from aim_parquet.storage.maintenance.sidecar_edits import edit_run, finish_run, set_archived
    from aim_parquet.storage.maintenance.verify import VerifyReport, verify_repo
    from aim_parquet.storage.online.catalogue_scan import discover_sequences
    from aim_parquet.storage.online.object_read import read_object_rows
    from aim_parquet.storage.online.run_reader import (
        list_run_hashes,
        load_run_meta,
        read_metric_columns,
        read_sequence,
    )
    from aim_parquet.storage.online.run_writer import RunWriter

_HOMES = {
    "ensure_repo": "base.repo_files",
    "is_repo": "base.repo_files",
    "open_repo": "base.repo_files",
    "RunLock": "base.lock",
    "is_run_locked": "base.lock",
    "atomic_write": "base.atomic",
    "atomic_write_json": "base.atomic",
    "RunWriter": "online.run_writer",
    "list_run_hashes": "online.run_reader",
    "load_run_meta": "online.run_reader",
    "read_metric_columns": "online.run_reader",
    "read_sequence": "online.run_reader",
    "read_object_rows": "online.object_read",
    "discover_sequences": "online.catalogue_scan",
    "RunIndex": "index.run_index",
    "publish_runs_table": "index.runs_table",
    "CompactionReport": "compaction.compaction_report",
    "RunCompaction": "compaction.compaction_report",
    "compact_repo": "compaction.compactor",
    "compact_run": "compaction.compactor",
    "default_workers": "compaction.compactor",
    "DatasetReport": "compaction.dataset",
    "refresh_after_change": "compaction.dataset",
    "refresh_dataset": "compaction.dataset",
    "DatasetTables": "compaction.dataset_read",
    "read_dataset_tables": "compaction.dataset_read",
    "VerifyReport": "maintenance.verify",
    "verify_repo": "maintenance.verify",
    "GcReport": "maintenance.gc",
    "StatsReport": "maintenance.gc",
    "check_grace": "maintenance.gc",
    "gc_repo": "maintenance.gc",
    "repo_stats": "maintenance.gc",
    "ExportReport": "maintenance.export",
    "export_dataset": "maintenance.export",
    "copy_run_folder": "maintenance.run_ops",
    "delete_run_folder": "maintenance.run_ops",
    "move_run_folder": "maintenance.run_ops",
    "edit_run": "maintenance.sidecar_edits",
    "finish_run": "maintenance.sidecar_edits",
    "set_archived": "maintenance.sidecar_edits",
}

__all__ = [
    "CompactionReport",
    "DatasetReport",
    "DatasetTables",
    "ExportReport",
    "GcReport",
    "RunCompaction",
    "RunIndex",
    "RunLock",
    "RunWriter",
    "StatsReport",
    "VerifyReport",
    "atomic_write",
    "atomic_write_json",
    "check_grace",
    "compact_repo",
    "compact_run",
    "copy_run_folder",
    "default_workers",
    "delete_run_folder",
    "discover_sequences",
    "edit_run",
    "ensure_repo",
    "export_dataset",
    "finish_run",
    "gc_repo",
    "is_repo",
    "is_run_locked",
    "list_run_hashes",
    "load_run_meta",
    "move_run_folder",
    "open_repo",
    "publish_runs_table",
    "read_dataset_tables",
    "read_metric_columns",
    "read_object_rows",
    "read_sequence",
    "refresh_after_change",
    "refresh_dataset",
    "repo_stats",
    "set_archived",
    "verify_repo",
]


def __getattr__(name: str) -> Any:
    """The public name `name`, from its module (looked up each time: a patched module is seen)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
