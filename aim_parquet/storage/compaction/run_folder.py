"""One run folder as the compactor and the maintenance tools see it: its files, empty folders
and uncommitted compacted files (its locks are `storage.base.lock`'s; its segments are read
through `storage.online.segments`)."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import pyarrow as pa

from aim_parquet.format.meta import Manifest
from aim_parquet.format.paths import (
    COMPACTED_DIRNAME,
    SEQS_DIRNAME,
    SIDECAR_FILENAME,
    WRITERS_DIRNAME,
    RepoLayout,
)
from aim_parquet.storage.base.files import list_names
from aim_parquet.storage.online.compacted_read import read_footer


def remove_file(path: Path) -> bool:
    """Unlink `path`; False when it was already gone."""
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def remove_empty_dirs(seqs_dir: Path) -> list[Path]:
    """Remove the empty sequence folders of `seqs_dir`, then it if empty; returns those removed."""
    names = list_names(seqs_dir)
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


KEPT_MARK_NS = 1
"""The kept mark: `seqs/`'s mtime is `run.json`'s plus this many nanoseconds. Not equality:
the kernel stamps files from a clock that moves in ticks of 1-10 ms, so a run's `seqs/` and its
`run.json` written within one tick have the same mtime by nature; two stamps of that clock never
differ by 1 ns, and a file system that keeps coarser times cannot store the mark at all (then no
run is taken as kept: `mark_kept` checks what was stored)."""


def is_kept_mark(seqs: os.stat_result, sidecar: os.stat_result) -> bool:
    """`seqs/` carries the kept mark (`mark_kept`, `KEPT_MARK_NS`)."""
    return seqs.st_mtime_ns == sidecar.st_mtime_ns + KEPT_MARK_NS


def settled_runs(runs_dir: Path | str, run_hashes: list[str], *, kept: bool = True) -> set[str]:
    """Those of `run_hashes` a finished compaction left with nothing to do: either a real
    `compacted/` folder and no `seqs/` folder (the compactor removes it last, once every
    segment is in Parquet and the superseded files are gone, so an interrupted compaction
    always leaves it; a writer that resumes the run creates it again), or a real `seqs/`
    folder with the *kept* mark (`is_kept_mark`: every writer that opens or flushes the run
    rewrites `run.json`, and a new sequence changes `seqs/`'s mtime). At most three `lstat`s
    per run, relative to an open `runs/`, no lock, nothing opened. A run folder, `compacted/`
    or `seqs/` that is a link is never settled (`compact_run` refuses it by name); a path that
    cannot be checked is not settled either. With `kept` False, kept runs are not settled
    (`compact --rewrite-all` rewrites them)."""
    try:
        dir_fd = os.open(os.fspath(runs_dir), os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return set()
    lstat, is_dir = os.lstat, stat.S_ISDIR
    seqs, compacted = "/" + SEQS_DIRNAME, "/" + COMPACTED_DIRNAME
    sidecar = "/" + SIDECAR_FILENAME
    out = set()
    try:
        for run_hash in run_hashes:
            try:
                if not is_dir(lstat(run_hash, dir_fd=dir_fd).st_mode):
                    continue
                seqs_stat = lstat(run_hash + seqs, dir_fd=dir_fd)
            except FileNotFoundError:
                try:
                    if is_dir(lstat(run_hash + compacted, dir_fd=dir_fd).st_mode):
                        out.add(run_hash)
                except OSError:
                    pass
                continue
            except OSError:
                continue
            if not kept or not is_dir(seqs_stat.st_mode):
                continue
            try:
                if is_kept_mark(seqs_stat, lstat(run_hash + sidecar, dir_fd=dir_fd)):
                    out.add(run_hash)  # kept as written, and not written since
            except OSError:
                continue
    finally:
        os.close(dir_fd)
    return out


def mark_kept(layout: RepoLayout, run_hash: str, is_live: Callable[[], bool]) -> bool:
    """Record that compaction left the run's segments as written (FORMAT.md, "Compaction"):
    `seqs/` gets `run.json`'s mtime plus `KEPT_MARK_NS`, so `settled_runs` passes the run by until a writer opens
    or flushes it (it rewrites `run.json`) or adds a sequence (a new folder in `seqs/`). No
    entry is added to the run. `run.json` is looked at first and the writer after: a writer
    that opens the run later rewrites `run.json` after that look. Not marked (False): a live
    writer, a run with several writers (an extra writer writes `writers/<rank>.json`, not
    `run.json`), a file system that does not keep times to the nanosecond (the run is then
    looked at again by each compaction)."""
    seqs = layout.seqs_dir(run_hash)
    try:
        sidecar = os.lstat(layout.sidecar(run_hash))
        if not stat.S_ISDIR(os.lstat(seqs).st_mode):
            return False
    except OSError:
        return False
    if is_live() or os.path.lexists(layout.run_dir(run_hash) / WRITERS_DIRNAME):
        return False
    mark = sidecar.st_mtime_ns + KEPT_MARK_NS
    os.utime(seqs, ns=(sidecar.st_atime_ns, mark), follow_symlinks=False)
    return is_kept_mark(os.lstat(seqs), sidecar)


def is_uncommitted(run_dir: Path, path: Path) -> bool:
    """A file written before any manifest: every segment it covers must still be on disk."""
    try:
        footer = read_footer(path)
    except (OSError, pa.ArrowInvalid, ValueError, KeyError):
        return False  # a final name is only ever given to a complete file: this is damage
    return all((run_dir / SEQS_DIRNAME / seg).exists() for seg in footer.segments)


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
