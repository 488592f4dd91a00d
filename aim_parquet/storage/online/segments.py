"""Segment files: append-only Arrow IPC streams, one record batch per flush.

Writing: the schema message is written when the file is created (O_EXCL), then every flush appends
one complete record-batch message with a single `write`. A failed append is truncated back, so
garbage never sits between good batches; if even that fails, the writer moves to a new segment.

Reading: batches are read until end of file; an incomplete last message (a writer killed
mid-write, or a batch still being written) is skipped and reported as a torn tail. Every reader of
a segment file opens it here (`read_segment`, `read_segment_from`, `open_segment`,
`iter_segment_batches`, `segment_identity`), through `storage.base.file_checks` (bounded, regular,
not a link); its schema's metadata is decoded by `format.schema` only.

File handles stay bounded: `FdCache` keeps at most `MAX_OPEN_SEGMENTS` descriptors open per
process and reopens evicted segments in append mode on demand.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from aim_parquet.errors import CorruptFileError, FormatVersionError, StorageError
from aim_parquet.format.compacted import SeqKey
from aim_parquet.format.schema import segment_key
from aim_parquet.storage.base.atomic import fsync_dir, fsync_file, temp_path_for
from aim_parquet.storage.base.file_checks import (
    SMALL_FILE_BYTES,
    check_segment_schema,
    check_segment_tail,
    segment_source,
)
from aim_parquet.storage.base.files import write_all
from aim_parquet.storage.base.safe_fs import map_regular
from aim_parquet.system.threads import start_thread

MAX_OPEN_SEGMENTS = 64


class FdCache:
    """A small LRU of append-mode file descriptors, shared by every writer of the process.

    `use(path)` pins the descriptor while the caller writes through it: eviction (by another run's
    flusher thread) skips pinned descriptors, so a descriptor is never closed, and its number
    reused for another file, in the middle of a write. When every cached descriptor is pinned the
    cache briefly holds one more per concurrently writing thread.
    """

    def __init__(self, capacity: int = MAX_OPEN_SEGMENTS) -> None:
        self.capacity = capacity
        self._fds: OrderedDict[str, int] = OrderedDict()
        self._pins: dict[str, int] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def use(self, path: Path) -> Iterator[int]:
        """The append-mode descriptor of `path`, pinned (never evicted) inside the `with`."""
        key = os.fspath(path)
        with self._lock:
            fd = self._fds.get(key)
            if fd is not None:
                self._fds.move_to_end(key)
            else:
                while len(self._fds) >= self.capacity:
                    victim = next((k for k in self._fds if k not in self._pins), None)
                    if victim is None:
                        break
                    with contextlib.suppress(OSError):
                        os.close(self._fds.pop(victim))
                fd = os.open(key, os.O_WRONLY | os.O_APPEND)
                self._fds[key] = fd
            self._pins[key] = self._pins.get(key, 0) + 1
        try:
            yield fd
        finally:
            with self._lock:
                left = self._pins[key] - 1
                if left:
                    self._pins[key] = left
                else:
                    del self._pins[key]

    def close(self, path: Path, *, sync: bool = False) -> None:
        with self._lock:
            fd = self._fds.pop(os.fspath(path), None)
        if fd is not None:
            if sync:
                with contextlib.suppress(OSError):
                    os.fsync(fd)
            os.close(fd)

    def after_fork_in_child(self) -> None:
        """In a forked child: forget the parent's descriptors (closing only the child's copies)
        and take a fresh lock, which a parent thread may have held at the fork."""
        self._lock = threading.Lock()
        fds = list(self._fds.values())
        self._fds.clear()
        self._pins.clear()
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)

    def open_count(self) -> int:
        with self._lock:
            return len(self._fds)


FD_CACHE = FdCache()


class SegmentFile:
    """One segment being written. Not thread-safe: the run writer serialises flushes."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        """Create the segment with its schema message: written under a temp name, then renamed,
        so a reader never sees a segment without its schema."""
        self.path = path
        header = schema.serialize().to_pybytes()
        tmp = temp_path_for(path)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            try:
                write_all(fd, header)
            finally:
                os.close(fd)
            os.rename(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self.size = len(header)
        self.is_broken = False

    def append(self, batch: pa.RecordBatch) -> None:
        data = batch.serialize()
        with FD_CACHE.use(self.path) as fd:
            try:
                write_all(fd, data)
            except OSError as exc:
                try:
                    os.ftruncate(fd, self.size)
                except OSError:
                    self.is_broken = True
                raise StorageError(f"writing {self.path} failed: {exc}") from exc
        self.size += data.size

    def close(self, *, sync: bool) -> None:
        FD_CACHE.close(self.path, sync=sync)


SYNC_THREADS = 16  # concurrent fsyncs share the filesystem's journal commits (2x faster here)
SYNC_SERIAL_MAX = 8


def _fsync_files(names: list[str]) -> None:
    """fsync `names`, on up to SYNC_THREADS threads (plain threads: this runs at interpreter
    exit too, where an executor refuses work); the first error is raised when all are done."""
    if len(names) <= SYNC_SERIAL_MAX:
        for name in names:
            _fsync_file(name)
        return
    pending = list(names)
    errors: list[OSError] = []

    def work() -> None:
        while True:
            try:
                name = pending.pop()  # atomic: each file is synced once
            except IndexError:
                return
            try:
                _fsync_file(name)
            except OSError as exc:
                errors.append(exc)

    threads = []
    for _ in range(min(SYNC_THREADS, len(names)) - 1):
        thread = threading.Thread(target=work, name="aim_parquet-fsync", daemon=True)
        try:
            start_thread(thread)
        except RuntimeError:  # the interpreter is finalizing: this thread does it all
            break
        threads.append(thread)
    work()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


def _fsync_file(name: str) -> None:
    with contextlib.suppress(
        FileNotFoundError
    ):  # compacted (`--include-active`): Parquet holds its rows
        fsync_file(name)


class UnsyncedFiles:
    """The segment files a writer appended to, and the folders that gained an entry (a segment,
    a sequence folder), since they were last made durable. A close syncs them all before it
    writes the sidecar that says the run is complete (FORMAT.md, writer rule 4): segments are
    otherwise fsynced by no one, and a power loss could leave that sidecar over lost batches."""

    def __init__(self) -> None:
        self.files: set[str] = set()
        self.folders: set[str] = set()

    def create_folder(self, folder: Path) -> None:
        """`folder` and any missing parents (noted, with the folder that gained each)."""
        missing = []
        current = folder
        while not current.is_dir():
            missing.append(current)
            current = current.parent
        folder.mkdir(parents=True, exist_ok=True)
        self.folders.update(os.fspath(p.parent) for p in missing)

    def sync(self) -> None:
        """fsync every noted file, then every noted folder; OSError if a file cannot be synced
        (what was synced is forgotten, the rest kept for the next try)."""
        names = sorted(self.files)
        _fsync_files(names)
        self.files.difference_update(names)
        for name in sorted(self.folders, key=len, reverse=True):  # deepest first
            fsync_dir(Path(name))
            self.folders.discard(name)


@dataclass(frozen=True)
class SegmentData:
    schema: pa.Schema
    batches: list[pa.RecordBatch]
    is_torn: bool  # the file ends with an incomplete message that was skipped


SMALL_SEGMENT_BYTES = SMALL_FILE_BYTES  # read into memory; larger segments are memory-mapped


def open_segment(path: str | os.PathLike[str]) -> pa.ipc.RecordBatchStreamReader:
    """A stream reader over a segment (bounded, regular, not a link: `segment_source`); its
    schema is read, not checked. Raises OSError (UnsafeFileError, FileNotFoundError, ...) and
    pa.ArrowInvalid when it has no readable schema."""
    return pa.ipc.open_stream(segment_source(path))


def iter_segment_batches(path: str | os.PathLike[str]) -> Iterator[pa.RecordBatch]:
    """Complete record batches of a segment, streamed one at a time (a torn tail is skipped)."""
    reader = open_segment(path)
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except (pa.ArrowInvalid, OSError, ValueError):
            return
        yield batch


def segment_identity(path: Path) -> SeqKey | None:
    """The sequence a segment belongs to, from its schema; None when it has no readable schema
    (or is a link, FIFO, decoding bomb, or has columns of the wrong type). Raises
    FormatVersionError for a segment of a newer format version."""
    try:
        schema = open_segment(path).schema
        check_segment_schema(schema, path)
    except FormatVersionError:
        raise
    except (pa.ArrowInvalid, OSError, ValueError):  # CorruptFileError, UnsafeFileError included
        return None
    return segment_key(schema, path.parent.name)


def read_segment(path: str | Path, *, memory_map: bool = True) -> SegmentData:
    """Read every complete batch of a segment; a torn tail is skipped, never an error.

    Segments up to `SMALL_SEGMENT_BYTES` are read into memory in one `read` (cheaper than
    setting up a memory map); larger ones are memory-mapped unless `memory_map=False`.
    Raises FileNotFoundError if the file is gone, CorruptFileError if not even the schema can
    be read (an empty or garbage file) or a column has the wrong type, FormatVersionError for a
    newer format and UnsafeFileError for a link, FIFO or decoding bomb (`storage.base.file_checks`).
    """
    name = os.fspath(path)
    source = segment_source(name, memory_map=memory_map)  # a bounded, regular file: not a link
    try:
        reader = pa.ipc.RecordBatchStreamReader(source)
    except (pa.ArrowInvalid, OSError, ValueError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise CorruptFileError(
            f"segment {name} has no readable Arrow schema ({exc}). "
            "`aim-parquet verify --repair` quarantines it."
        ) from exc
    check_segment_schema(reader.schema, name)  # FormatVersionError, CorruptFileError
    batches: list[pa.RecordBatch] = []
    torn = False
    try:
        for batch in reader:
            batches.append(batch)
    except (pa.ArrowInvalid, OSError, ValueError):
        torn = True
    return SegmentData(reader.schema, batches, torn)


def read_segment_from(path: str | Path, offset: int) -> SegmentData | None:
    """The complete batches of a segment that start at byte `offset` or later, which must be
    where a message starts (the end of the schema or of a batch); None when it is not (the file
    is shorter, tears before it, no message starts there, or it has no readable schema), and
    when the file is damaged, a link or not a regular file (a full `read_segment` then says
    what is wrong). A torn tail after `offset` is skipped, as in `read_segment`.

    The messages before `offset` are walked without being decoded (zero-copy on a memory map),
    so the cost is that of the batches after it; what those decode to is bounded as in
    `read_segment`. Raises FileNotFoundError if the file is gone, PermissionError, and
    FormatVersionError for a newer format.
    """
    name = os.fspath(path)
    try:
        data = map_regular(name, "segment", small_bytes=0)  # not a link, not a FIFO
    except CorruptFileError:  # (UnsafeFileError)
        return None
    if len(data) < max(offset, 1):
        return None
    # not closed here: the batches may point into the map
    source = pa.BufferReader(data if isinstance(data, pa.Buffer) else pa.py_buffer(data))
    reader = pa.ipc.MessageReader.open_stream(source)
    try:
        schema = pa.ipc.read_schema(reader.read_next_message())
        check_segment_schema(schema, name)  # FormatVersionError passes
    except (StopIteration, pa.ArrowInvalid, OSError, ValueError):  # (CorruptFileError)
        return None
    position = source.tell()
    while position < offset:
        try:
            reader.read_next_message()
        except (StopIteration, pa.ArrowInvalid, OSError, ValueError):
            return None
        position = source.tell()
    if position != offset:
        return None
    try:
        check_segment_tail(name, data, offset)
    except CorruptFileError:  # (UnsafeFileError: a decoding bomb)
        return None
    batches: list[pa.RecordBatch] = []
    torn = False
    while True:
        try:
            batches.append(pa.ipc.read_record_batch(reader.read_next_message(), schema))
        except StopIteration:
            break
        except (pa.ArrowInvalid, OSError, ValueError):
            torn = True
            break
    return SegmentData(schema, batches, torn)
