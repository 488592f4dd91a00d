"""One run folder as the maintenance tools see it: its sealed segments, files and usage (its
locks are `storage.base.lock`'s).

- `segment_key` / `iter_segment_batches`: a segment's sequence identity (from its schema) and its
  complete batches streamed one at a time (a torn tail is skipped, as readers do).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pyarrow as pa

from aim_parquet.errors import FormatVersionError
from aim_parquet.format.compacted import SeqKey
from aim_parquet.format.meta import Manifest
from aim_parquet.format.paths import SEQS_DIRNAME
from aim_parquet.format.schema import (
    META_CONTEXT,
    META_KIND,
    META_NAME,
    METRIC_SCHEMA,
    OBJECT_SCHEMA,
)
from aim_parquet.storage.base.file_checks import check_segment_schema, segment_source
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


def folder_usage(folder: Path) -> tuple[int, int]:
    """(files, bytes) of every regular file under `folder`."""
    files = size = 0
    for dirpath, _dirs, names in os.walk(folder):
        for name in names:
            try:
                size += os.lstat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:
                continue
            files += 1
    return files, size


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
