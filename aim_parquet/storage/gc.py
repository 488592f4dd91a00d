"""`gc` (remove what nothing needs any more) and `stats` (what the repository holds).

`gc_repo` removes, per run and only while no compaction of it runs (its `compact.lock` is taken):
segments the manifest already covers and compacted files it no longer lists, once the manifest is
`grace_s` old (a reader that loaded the previous manifest just before the commit may still read
them; it would retry anyway, the grace period just spares it the retry); `.tmp-*` files older than
`grace_s`; empty sequence folders of runs no writer holds. Repository-wide: everything in
`.aim/trash/` (runs whose delete was interrupted) and `.tmp-*` entries older than `grace_s` in
`.aim/`, `.aim/runs/` and `.aim/index/` (a copy in progress lives under such a name).
Quarantined files are never removed: they are the user's to inspect.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import filelock

from aim_parquet.errors import AimParquetError
from aim_parquet.format.paths import (
    LOCK_FILENAME,
    MANIFEST_FILENAME,
    SIDECAR_FILENAME,
    TEMP_PREFIX,
    RepoLayout,
    is_segment_name,
)
from aim_parquet.storage.catalogue_scan import read_catalogue
from aim_parquet.storage.compacted import is_compacted_name
from aim_parquet.storage.lock import is_run_locked
from aim_parquet.storage.run_folder import (
    COMPACT_LOCK_FILENAME,
    is_uncommitted,
    remove_empty_dirs,
    try_run_lock,
    unreadable_listed_file,
)
from aim_parquet.storage.run_reader import list_run_hashes, load_manifest, load_run_meta

DEFAULT_GRACE_S = 600.0


@dataclass(frozen=True)
class Removed:
    path: str
    kind: str  # covered-segment, superseded-file, temp-file, trash, empty-folder
    bytes: int


@dataclass(frozen=True)
class GcReport:
    removed: tuple[Removed, ...]
    notes: tuple[str, ...] = ()

    @property
    def bytes_freed(self) -> int:
        return sum(r.bytes for r in self.removed)

    def by_kind(self) -> dict[str, tuple[int, int]]:
        """{kind: (entries, bytes)}."""
        out: dict[str, tuple[int, int]] = {}
        for r in self.removed:
            n, b = out.get(r.kind, (0, 0))
            out[r.kind] = (n + 1, b + r.bytes)
        return out


def _size(path: Path) -> int:
    if path.is_dir() and not path.is_symlink():
        total = 0
        for dirpath, _dirs, names in os.walk(path):
            for name in names:
                try:
                    total += os.lstat(os.path.join(dirpath, name)).st_size
                except FileNotFoundError:
                    continue
        return total
    try:
        return path.lstat().st_size
    except FileNotFoundError:
        return 0


def _age(path: Path, now: float) -> float:
    try:
        return now - path.lstat().st_mtime
    except FileNotFoundError:
        return 0.0


class _Collector:
    def __init__(self) -> None:
        self.removed: list[Removed] = []
        self.notes: list[str] = []

    def remove(self, path: Path, kind: str) -> None:
        size = _size(path)
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            self.notes.append(f"could not remove {path}: {exc}")
            return
        self.removed.append(Removed(str(path), kind, size))


def _gc_run(layout: RepoLayout, run_hash: str, grace_s: float, out: _Collector) -> None:
    run_dir = layout.run_dir(run_hash)
    now = time.time()
    lock = filelock.FileLock(run_dir / COMPACT_LOCK_FILENAME, timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        out.notes.append(f"run {run_hash}: skipped, a compaction is in progress")
        return
    except FileNotFoundError:
        return  # deleted meanwhile
    try:
        for dirpath, _dirs, names in os.walk(run_dir):
            for name in names:
                path = Path(dirpath) / name
                if name.startswith(TEMP_PREFIX) and _age(path, now) >= grace_s:
                    out.remove(path, "temp-file")
        try:
            manifest = load_manifest(layout, run_hash)
        except AimParquetError as exc:
            out.notes.append(f"run {run_hash}: compacted files kept, manifest unreadable ({exc})")
            return
        cdir = layout.compacted_dir(run_hash)
        if manifest is not None and unreadable_listed_file(run_dir, manifest) is not None:
            out.notes.append(
                f"run {run_hash}: kept its files, one the manifest lists is damaged "
                "(run `aim-parquet verify --repair`)"
            )
            return
        is_settled = manifest is None or _age(layout.manifest(run_hash), now) >= grace_s
        if manifest is not None and is_settled:
            for seg in sorted(manifest.segments):
                path = layout.seqs_dir(run_hash) / seg
                if path.exists():
                    out.remove(path, "covered-segment")
        listed = {Path(f.path).name for f in manifest.files} if manifest else set()
        for name in sorted(os.listdir(cdir)) if cdir.is_dir() else []:
            path = cdir / name
            if not is_compacted_name(name) or name in listed or _age(path, now) < grace_s:
                continue
            if manifest is None and not is_uncommitted(run_dir, path):
                out.notes.append(
                    f"run {run_hash}: {path} kept (no manifest; run `verify --repair`)"
                )
            elif is_settled:
                out.remove(path, "superseded-file")
        run_lock = try_run_lock(layout, run_hash)  # so no writer starts a segment meanwhile
        if run_lock is not None:
            try:
                _remove_empty_seq_dirs(layout, run_hash, out)
            finally:
                run_lock.release()
    finally:
        lock.release()


def _remove_empty_seq_dirs(layout: RepoLayout, run_hash: str, out: _Collector) -> None:
    for path in remove_empty_dirs(layout.seqs_dir(run_hash)):
        out.removed.append(Removed(str(path), "empty-folder", 0))


def gc_repo(layout: RepoLayout, *, grace_s: float = DEFAULT_GRACE_S) -> GcReport:
    """Remove superseded, leftover and temporary files (see module doc)."""
    out = _Collector()
    for run_hash in list_run_hashes(layout):
        _gc_run(layout, run_hash, grace_s, out)
    if layout.trash_dir.is_dir():
        for name in sorted(os.listdir(layout.trash_dir)):
            out.remove(layout.trash_dir / name, "trash")
    now = time.time()
    for folder in (layout.aim_dir, layout.runs_dir, layout.index_dir):
        try:
            names = sorted(os.listdir(folder))
        except FileNotFoundError:
            continue
        for name in names:
            path = folder / name
            if name.startswith(TEMP_PREFIX) and _age(path, now) >= grace_s:
                out.remove(path, "temp-file")
    return GcReport(tuple(out.removed), tuple(out.notes))


@dataclass(frozen=True)
class StatsReport:
    """What a repository holds. `files`/`bytes` are keyed by file kind."""

    runs: int
    active_runs: int
    archived_runs: int
    damaged_runs: int
    compacted_runs: int
    metric_sequences: int
    object_sequences: int
    metric_points: int  # as written (a step written twice counts twice)
    object_points: int
    files: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes.values())

    @property
    def total_files(self) -> int:
        return sum(self.files.values())


def _file_kind(rel: Path) -> str:
    parts = rel.parts
    name = parts[-1]
    if name.startswith(TEMP_PREFIX):
        return "temp"
    top = parts[0]
    if top in ("trash", "quarantine", "index"):
        return top
    if top != "runs" or len(parts) < 3:
        return "repo"
    if name == SIDECAR_FILENAME:
        return "sidecar"
    if name in (LOCK_FILENAME, COMPACT_LOCK_FILENAME):
        return "lock"
    if name == MANIFEST_FILENAME:
        return "manifest"
    if is_segment_name(name):
        return "segment"
    if is_compacted_name(name):
        return "compacted-metrics" if name.startswith("metrics-") else "compacted-objects"
    return "other"


def repo_stats(layout: RepoLayout) -> StatsReport:
    """Count runs, sequences, points (from the catalogues; a run whose writer died: scanned from
    its segments) and files/bytes by kind (from disk)."""
    files: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    for dirpath, _dirs, names in os.walk(layout.aim_dir):
        for name in names:
            path = Path(dirpath) / name
            try:
                size = path.lstat().st_size
            except FileNotFoundError:
                continue
            kind = _file_kind(path.relative_to(layout.aim_dir))
            files[kind] += 1
            sizes[kind] += size
    runs = active = archived = damaged = compacted = 0
    mseq = oseq = mpts = opts = 0
    for run_hash in list_run_hashes(layout):
        runs += 1
        if layout.manifest(run_hash).exists():
            compacted += 1
        try:
            meta = load_run_meta(layout, run_hash)
            sequences = read_catalogue(layout, run_hash, meta)  # a dead writer's: scanned
        except AimParquetError:
            damaged += 1
            continue
        archived += meta.archived
        if meta.end_time is None and is_run_locked(layout.lock_file(run_hash)) is not None:
            active += 1
        for seq in sequences:
            if seq.is_metric:
                mseq, mpts = mseq + 1, mpts + seq.count
            else:
                oseq, opts = oseq + 1, opts + seq.count
    return StatsReport(
        runs, active, archived, damaged, compacted, mseq, oseq, mpts, opts, dict(files), dict(sizes)
    )
