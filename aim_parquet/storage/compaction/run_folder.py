"""One run folder as the compactor and the maintenance tools see it: its files, empty folders
and uncommitted compacted files (its locks are `storage.base.lock`'s; its segments are read
through `storage.online.segments`)."""

from __future__ import annotations

import os
import stat
from contextlib import suppress
from pathlib import Path

import pyarrow as pa

from aim_parquet.format.meta import Manifest
from aim_parquet.format.paths import COMPACTED_DIRNAME, SEQS_DIRNAME
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


def settled_runs(runs_dir: Path | str, run_hashes: list[str]) -> set[str]:
    """Those of `run_hashes` a finished compaction left with nothing to do: no `seqs/` folder
    (the compactor removes it last, once every segment is in Parquet and the superseded files
    are gone, so an interrupted compaction always leaves it; a writer that resumes the run
    creates it again) and a real `compacted/` folder. At most three `lstat`s per run, relative
    to an open `runs/`, no lock, nothing opened. A run folder or a `compacted/` that is a link
    is never settled (`compact_run` refuses it by name); a path that cannot be checked is not
    settled either."""
    try:
        dir_fd = os.open(os.fspath(runs_dir), os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return set()
    lstat, is_dir = os.lstat, stat.S_ISDIR
    seqs, compacted = "/" + SEQS_DIRNAME, "/" + COMPACTED_DIRNAME
    out = set()
    try:
        for run_hash in run_hashes:
            try:
                if not (
                    is_dir(lstat(run_hash, dir_fd=dir_fd).st_mode)
                    and is_dir(lstat(run_hash + compacted, dir_fd=dir_fd).st_mode)
                ):
                    continue
            except OSError:
                continue
            try:
                lstat(run_hash + seqs, dir_fd=dir_fd)
            except FileNotFoundError:
                out.add(run_hash)
            except OSError:
                continue
    finally:
        os.close(dir_fd)
    return out


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
