"""`gc` (remove what nothing needs any more) and `stats` (what the repository holds).

`gc_repo` removes, per run and only while no compaction of it runs (its `compact.lock` is taken,
without waiting: a run being compacted is skipped; the lock file goes when gc lets go of it, a
leftover one with it): segments the manifest already covers and compacted files it no longer
lists, once the manifest is `grace_s` old (a reader that loaded the previous manifest just before
the commit may still read them; it would retry anyway, the grace period just spares it the
retry); `.tmp-*` files older than `grace_s` (and at least `TEMP_MIN_AGE_S`: a younger one may
belong to a write in progress; a run's live writer keeps its own for `TEMP_GRACE_S`); empty
sequence folders of runs no live writer holds; params files its `run.json` does not name
(`params_gc`: with no live writer, never the current one). It never takes a run's write lock, so
a training script can resume any run while gc works (a writer re-creates a sequence folder
removed under it). Repository-wide: everything in `.aim/trash/` (runs whose delete was interrupted) and `.tmp-*` entries in `.aim/`,
`.aim/runs/` and `.aim/index/` whose newest file is that old, unless a copy still fills it (a
run being copied in lives under such a name, with its folder's flock held).
Quarantined files are never removed: they are the user's to inspect.

Nothing is deleted through a symbolic link: a folder under `.aim/` that is a link (`trash/`,
a run's `seqs/`, ...) is left alone with a note. A run gc cannot work on (another user's, a link
as its lock, a damaged manifest) is noted and skipped; the other runs are still collected. Files
of a newer format version are never removed.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from aim_parquet.errors import AimParquetError
from aim_parquet.format.compacted import is_compacted_name
from aim_parquet.format.meta import FORMAT_VERSION
from aim_parquet.format.paths import (
    COMPACT_LOCK_FILENAME,
    INDEX_DIRNAME,
    LOCK_FILENAME,
    MANIFEST_FILENAME,
    QUARANTINE_DIRNAME,
    RUNS_DIRNAME,
    SIDECAR_FILENAME,
    TEMP_PREFIX,
    TRASH_DIRNAME,
    RepoLayout,
    is_segment_name,
)
from aim_parquet.storage.base.files import age_s, path_size
from aim_parquet.storage.base.lock import (
    WriterState,
    compaction_lock,
    is_folder_in_use,
    writer_state,
)
from aim_parquet.storage.base.safe_fs import first_link, remove_tree
from aim_parquet.storage.compaction.dataset import collectable_files
from aim_parquet.storage.compaction.run_folder import (
    is_uncommitted,
    remove_empty_dirs,
    unreadable_listed_file,
)
from aim_parquet.storage.maintenance.params_gc import (
    list_params_files,
    remove_orphaned_params_files,
)
from aim_parquet.storage.maintenance.problems import TEMP_GRACE_S
from aim_parquet.storage.online.catalogue_scan import read_catalogue
from aim_parquet.storage.online.compacted_read import read_footer
from aim_parquet.storage.online.run_reader import list_run_hashes, load_manifest, load_run_meta
from aim_parquet.storage.online.writer_parts import is_run_active

log = logging.getLogger(__name__)

DEFAULT_GRACE_S = 600.0
TEMP_MIN_AGE_S = 60.0  # a temp file younger than this may be a write in progress: never removed


@dataclass(frozen=True)
class Removed:
    path: str
    kind: str  # covered-segment, superseded-file, params-file, temp-file, trash, empty-folder
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


def _temp_age(path: Path, now: float) -> float:
    """How long nothing was written in a temp entry (a folder: its newest file)."""
    newest = now - age_s(path, now)
    if path.is_dir() and not path.is_symlink():
        for dirpath, _dirs, names in os.walk(path):
            for name in names:
                with contextlib.suppress(OSError):
                    newest = max(newest, os.lstat(os.path.join(dirpath, name)).st_mtime)
    return now - newest


class _Collector:
    def __init__(self, layout: RepoLayout) -> None:
        self.layout = layout
        self.removed: list[Removed] = []
        self.notes: list[str] = []

    def remove(self, path: Path, kind: str, shown: Path | None = None) -> None:
        """Remove `path`, reported as `shown` (a file gc moved aside first) or itself."""
        link = first_link(self.layout.aim_dir, path.parent)
        if link is not None:
            self.notes.append(f"kept {path}: {link} is a symbolic link (never deleted through)")
            return
        size = path_size(path)
        try:
            remove_tree(path)  # a link itself is removed, never what it points to
        except FileNotFoundError:
            return
        except OSError as exc:
            self.notes.append(f"could not remove {path}: {exc}")
            return
        self.removed.append(Removed(str(shown or path), kind, size))


def _gc_run(layout: RepoLayout, run_hash: str, grace_s: float, out: _Collector) -> None:
    try:
        with compaction_lock(layout, run_hash) as busy:
            if busy is not None:
                out.notes.append(f"run {run_hash}: skipped, {busy}")
                return
            _gc_locked(layout, run_hash, grace_s, out)
    except FileNotFoundError:
        return  # deleted meanwhile (and never re-created: no lock creates a folder)
    except PermissionError as exc:
        out.notes.append(f"run {run_hash}: skipped, permission denied ({exc})")
    except (OSError, AimParquetError) as exc:  # a link or FIFO as its lock, ...
        out.notes.append(f"run {run_hash}: skipped ({exc})")


def _gc_locked(layout: RepoLayout, run_hash: str, grace_s: float, out: _Collector) -> None:
    run_dir = layout.run_dir(run_hash)
    now = time.time()
    params_files = list_params_files(run_dir)  # (listed before the writer is checked)
    temps = []
    for dirpath, _dirs, names in os.walk(run_dir):  # (never descends into a linked folder)
        for name in names:
            path = Path(dirpath) / name
            if name.startswith(TEMP_PREFIX) and age_s(path, now) >= max(grace_s, TEMP_MIN_AGE_S):
                temps.append(path)
    # listed first, checked after: a writer that starts now only makes temp files not listed
    is_live = writer_state(layout, run_hash) is WriterState.LIVE
    for path in temps:
        if not is_live or age_s(path, now) >= TEMP_GRACE_S:
            out.remove(path, "temp-file")
    note = remove_orphaned_params_files(
        layout,
        run_hash,
        params_files,
        grace_s,
        now,
        lambda moved, path: out.remove(moved, "params-file", shown=path),
    )
    if note is not None:
        out.notes.append(note)
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
    is_settled = manifest is None or age_s(layout.manifest(run_hash), now) >= grace_s
    if manifest is not None and is_settled:
        for seg in sorted(manifest.segments):
            path = layout.seqs_dir(run_hash) / seg
            if os.path.lexists(path):
                out.remove(path, "covered-segment")
    listed = {Path(f.path).name for f in manifest.files} if manifest else set()
    for name in sorted(os.listdir(cdir)) if cdir.is_dir() and not cdir.is_symlink() else []:
        path = cdir / name
        if not is_compacted_name(name) or name in listed or age_s(path, now) < grace_s:
            continue
        if _is_future_format(path):
            out.notes.append(f"run {run_hash}: {path} kept (a newer format version)")
        elif manifest is None and not is_uncommitted(run_dir, path):
            out.notes.append(f"run {run_hash}: {path} kept (no manifest; run `verify --repair`)")
        elif is_settled:
            out.remove(path, "superseded-file")
    if not is_live:  # no live writer: no new segment soon
        seqs = layout.seqs_dir(run_hash)
        if first_link(layout.aim_dir, seqs) is None:
            for path in remove_empty_dirs(seqs):
                out.removed.append(Removed(str(path), "empty-folder", 0))


def _is_future_format(path: Path) -> bool:
    try:
        return read_footer(path).format_version > FORMAT_VERSION
    except (OSError, ValueError, KeyError, pa.ArrowException, AimParquetError):
        return False


def check_grace(grace_s: float) -> float:
    """`grace_s` if it is a finite number of seconds >= 0, else ValueError."""
    if not isinstance(grace_s, (int, float)) or not math.isfinite(grace_s) or grace_s < 0:
        raise ValueError(
            f"the grace period must be a finite number of seconds >= 0, not {grace_s!r}"
        )
    return float(grace_s)


def gc_repo(
    layout: RepoLayout,
    *,
    grace_s: float = DEFAULT_GRACE_S,
    progress: Callable[[int, int, str], None] | None = None,
) -> GcReport:
    """Remove superseded, leftover and temporary files (see module doc).
    `progress(done, total, run_hash)` is called after each run."""
    grace_s = check_grace(grace_s)
    out = _Collector(layout)
    hashes = list_run_hashes(layout)
    for done, run_hash in enumerate(hashes, 1):
        _gc_run(layout, run_hash, grace_s, out)
        if progress is not None:
            progress(done, len(hashes), run_hash)
    trash = layout.trash_dir
    link = first_link(layout.aim_dir, trash)
    if link is not None:
        out.notes.append(
            f"{trash} not emptied: {link} is a symbolic link; aim_parquet never deletes through "
            "links. Remove the link (`rm` it, the files it points to stay) and run gc again."
        )
    elif trash.is_dir():
        for name in sorted(os.listdir(trash)):
            out.remove(trash / name, TRASH_DIRNAME)
    now = time.time()
    for folder in (layout.aim_dir, layout.runs_dir, layout.index_dir):
        try:
            names = sorted(os.listdir(folder))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for name in names:
            path = folder / name
            if not name.startswith(TEMP_PREFIX):
                continue
            if _temp_age(path, now) < max(grace_s, TEMP_MIN_AGE_S):
                continue
            if is_folder_in_use(path):  # a copy in progress (its files keep their old mtimes)
                out.notes.append(f"kept {path}: a copy into it is in progress")
                continue
            out.remove(path, "temp-file")
    for path in collectable_files(layout, grace_s, now):
        out.remove(path, "dataset-file")
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
    metric_points: int  # visible points (a step written twice counts once: last write wins)
    object_points: int
    files: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)
    unreadable_runs: int = 0  # runs this user may not read (permission denied: not damage)

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
    if top in (TRASH_DIRNAME, QUARANTINE_DIRNAME, INDEX_DIRNAME):
        return top
    if top != RUNS_DIRNAME or len(parts) < 3:
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
    runs = active = archived = damaged = compacted = unreadable = 0
    mseq = oseq = mpts = opts = 0
    for run_hash in list_run_hashes(layout):
        runs += 1
        if os.path.lexists(layout.manifest(run_hash)):
            compacted += 1
        try:
            meta = load_run_meta(layout, run_hash)
        except PermissionError:
            unreadable += 1
            continue
        except AimParquetError:
            damaged += 1
            continue
        try:
            sequences = read_catalogue(layout, run_hash, meta)  # a dead writer's: scanned
        except (OSError, pa.ArrowException, AimParquetError) as exc:
            # a segment this user may not read, a link or FIFO in place of one: the sidecar's
            # catalogue (it may miss the last flush of a writer that died) and a warning
            log.warning(
                "aim_parquet: cannot scan the segments of run %s (%s); its points are counted "
                "from its sidecar",
                run_hash,
                exc,
            )
            sequences = list(meta.sequences)
        archived += meta.archived
        if is_run_active(layout, meta):
            active += 1
        for seq in sequences:
            if seq.is_metric:
                mseq, mpts = mseq + 1, mpts + seq.count
            else:
                oseq, opts = oseq + 1, opts + seq.count
    return StatsReport(
        runs,
        active,
        archived,
        damaged,
        compacted,
        mseq,
        oseq,
        mpts,
        opts,
        dict(files),
        dict(sizes),
        unreadable,
    )
