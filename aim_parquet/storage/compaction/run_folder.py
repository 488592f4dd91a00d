"""One run folder as the maintenance tools see it: its locks, sealed segments and usage.

- `exclude_writer`: whether a live writer holds the run (its newest segments are then left alone).
- `compaction_lock` / `hold_run_locks`: the compaction lock (`compact.lock`, taken without waiting,
  never creating a deleted run's folder again), and it plus the run's write lock, both or neither
  (for repairs, copies and moves), naming the holder when they are busy.
- `segment_key` / `iter_segment_batches`: a segment's sequence identity (from its schema) and its
  complete batches streamed one at a time (a torn tail is skipped, as readers do).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pyarrow as pa

from aim_parquet.errors import FormatVersionError, RunLockedError
from aim_parquet.format.compacted import SeqKey
from aim_parquet.format.meta import Manifest
from aim_parquet.format.paths import COMPACTED_DIRNAME, SEQS_DIRNAME, RepoLayout
from aim_parquet.format.schema import (
    META_CONTEXT,
    META_KIND,
    META_NAME,
    METRIC_SCHEMA,
    OBJECT_SCHEMA,
)
from aim_parquet.storage.base.file_checks import check_segment_schema, segment_source
from aim_parquet.storage.base.lock import RunLock
from aim_parquet.storage.base.safe_fs import (
    flock_holder,
    flock_pids,
    held_flock,
    is_flocked,
    require_real_run_dir,
)
from aim_parquet.storage.online.compacted_read import read_footer
from aim_parquet.storage.online.writer_parts import run_lock_holder, writer_ranks

COMPACT_LOCK_FILENAME = "compact.lock"


def remove_file(path: Path) -> bool:
    """Unlink `path`; False when it was already gone."""
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def remove_empty_dirs(seqs_dir: Path) -> list[Path]:
    """Remove the empty sequence folders of `seqs_dir`, then it if empty; returns those removed."""
    try:
        names = os.listdir(seqs_dir)
    except FileNotFoundError:
        return []
    removed = []
    for name in names:
        try:
            os.rmdir(seqs_dir / name)
        except OSError:
            continue
        removed.append(seqs_dir / name)
    with suppress(OSError):
        os.rmdir(seqs_dir)
    return removed


def folder_usage(folder: Path | str) -> tuple[int, int]:
    """(files, bytes) of every file under `folder`; a link to a folder is neither walked nor
    counted (as with `os.walk`)."""
    files = size = 0
    try:
        with os.scandir(folder) as listing:
            entries = list(listing)
    except (FileNotFoundError, NotADirectoryError):
        return 0, 0
    for entry in entries:
        try:
            if entry.is_dir():
                if not entry.is_symlink():
                    sub_files, sub_size = folder_usage(entry.path)
                    files, size = files + sub_files, size + sub_size
                continue
            size += entry.stat(follow_symlinks=False).st_size
        except FileNotFoundError:
            continue
        files += 1
    return files, size


def is_settled(run_dir: Path | str) -> bool:
    """Whether a finished compaction left the run with nothing to do: no `seqs/` folder (the
    compactor removes it last, once every segment is in Parquet and the superseded files are
    gone, so an interrupted compaction always leaves it; a writer that resumes the run creates
    it again) and a real `compacted/` folder. One listing of the run folder, no lock, nothing
    opened. A run folder or a `compacted/` that is a link is never settled (`compact_run`
    refuses it by name)."""
    run_dir = os.fspath(run_dir)
    try:
        if os.path.islink(run_dir):
            return False
        with os.scandir(run_dir) as listing:
            entries = {e.name: e for e in listing}
        compacted = entries.get(COMPACTED_DIRNAME)
        return (
            SEQS_DIRNAME not in entries
            and compacted is not None
            and compacted.is_dir(follow_symlinks=False)
        )
    except OSError:
        return False


def segment_key(path: Path) -> SeqKey | None:
    """The sequence a segment belongs to, from its schema; None when it has no readable schema
    (or is a link, FIFO, decoding bomb, or has columns of the wrong type). Raises
    FormatVersionError for a segment of a newer format version."""
    try:
        schema = pa.ipc.open_stream(segment_source(path)).schema
        check_segment_schema(schema, path)
    except FormatVersionError:
        raise
    except (pa.ArrowInvalid, OSError, ValueError):  # CorruptFileError, UnsafeFileError included
        return None
    return schema_key(schema, path.parent.name)


def schema_key(schema: pa.Schema, seq_id: str) -> SeqKey | None:
    """The sequence a segment schema describes (None when its columns or metadata are not a
    segment's)."""
    names = schema.names
    if names != METRIC_SCHEMA.names and names != OBJECT_SCHEMA.names:
        return None
    meta = schema.metadata or {}
    try:
        return SeqKey(
            seq_id=seq_id,
            name=meta[META_NAME].decode("utf-8", "surrogatepass"),
            context=meta.get(META_CONTEXT, b"{}").decode("utf-8", "surrogatepass"),
            kind=meta[META_KIND].decode(),
        )
    except (KeyError, UnicodeDecodeError):
        return None


def iter_segment_batches(path: Path) -> Iterator[pa.RecordBatch]:
    """Complete record batches of a segment, streamed one at a time (a torn tail is skipped).
    The segment is checked first (`storage.base.file_checks`: no link, bounded decoded size)."""
    reader = pa.ipc.open_stream(segment_source(path))
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except (pa.ArrowInvalid, OSError, ValueError):
            return
        yield batch


@contextmanager
def exclude_writer(layout: RepoLayout, run_hash: str, include_active: bool) -> Iterator[str]:
    """Yield 'closed' (no live writer: every segment listed now is sealed), 'active' (a live
    writer; its newest segments are left alone) or a skip reason starting with 'skip:'.

    A closed run is compacted without taking its write lock, so a training script can resume it
    at any moment: a resumed writer only ever creates new segments, which the compaction in
    progress did not list and leaves for the next one.
    """
    if not is_run_live(layout, run_hash):
        yield "closed"
    elif include_active:
        yield "active"
    else:
        yield (
            f"skip:active run (written by {run_holder(layout, run_hash)}); pass include_active "
            "to compact its sealed segments"
        )


def is_run_live(layout: RepoLayout, run_hash: str) -> bool:
    """Whether a writer holds the run now: its identity names a live process, or (the kernel's
    view, which also covers the instant between a writer's flock and its identity) /proc/locks
    shows a flock on its lock file. Takes no lock, so it never makes a resume fail."""
    if run_lock_holder(layout, run_hash) is not None:
        return True
    paths = [layout.lock_file(run_hash)]
    paths += [layout.writer_lock(run_hash, r) for r in writer_ranks(layout, run_hash, "lock")]
    for path in paths:  # every writer's, for a run with several
        try:
            if flock_pids(path):
                return True
        except OSError:
            continue
    return False


def is_uncommitted(run_dir: Path, path: Path) -> bool:
    """A file written before any manifest: every segment it covers must still be on disk."""
    try:
        footer = read_footer(path)
    except (OSError, pa.ArrowInvalid, ValueError, KeyError):
        return False  # a final name is only ever given to a complete file: this is damage
    return all((run_dir / "seqs" / seg).exists() for seg in footer.segments)


def unreadable_listed_file(run_dir: Path, manifest: Manifest) -> str | None:
    """The first file the manifest lists whose footer cannot be read (None when all can).

    Covered segments may only be removed while every listed file is readable: otherwise they
    can be the last copy of those points (`verify --repair` falls back to them).
    """
    for f in manifest.files:
        try:
            read_footer(run_dir / f.path)
        except (OSError, pa.ArrowInvalid, ValueError, KeyError):
            return f.path
    return None


def try_run_lock(layout: RepoLayout, run_hash: str) -> RunLock | None:
    """The run's write lock if it can be taken now (release it!), else None."""
    lock = RunLock(layout.lock_file(run_hash), run_hash)
    try:
        lock.acquire()
    except RunLockedError:
        return None
    return lock


def run_holder(layout: RepoLayout, run_hash: str) -> str:
    """Who holds a run's write lock, in words: the identity in its lock file when that process
    is alive, else the process /proc/locks names, else "another process"."""
    holder = run_lock_holder(layout, run_hash)
    return holder.describe() if holder is not None else flock_holder(layout.lock_file(run_hash))


def is_file_locked(path: Path) -> bool:
    """Whether another process holds the flock of `path` (a missing file is not locked)."""
    return is_flocked(path)


@contextmanager
def compaction_lock(layout: RepoLayout, run_hash: str) -> Iterator[str | None]:
    """Hold the run's compaction lock; yields None, or who holds it ("a compaction of this run
    is in progress (process 123 (aim-parquet compact))"). Raises FileNotFoundError when the run
    folder is gone (it is never created again) and UnsafeFileError for a link or FIFO."""
    path = layout.run_dir(run_hash) / COMPACT_LOCK_FILENAME
    require_real_run_dir(path, f"lock run {run_hash}")
    with held_flock(path, "compaction lock") as held:
        if held:
            yield None
        else:
            yield f"a compaction of this run is in progress ({flock_holder(path)})"


@contextmanager
def hold_run_locks(layout: RepoLayout, run_hash: str) -> Iterator[str | None]:
    """Hold the compaction lock and the run's write lock; yields None, or why they are busy
    (naming the holder)."""
    with compaction_lock(layout, run_hash) as busy:
        if busy is not None:
            yield busy
            return
        run_lock = RunLock(layout.lock_file(run_hash), run_hash)
        try:
            run_lock.acquire()
        except RunLockedError:
            yield f"the run is being written by {run_holder(layout, run_hash)}"
            return
        try:
            yield None
        finally:
            run_lock.release()
