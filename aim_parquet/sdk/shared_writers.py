"""One writer per run per process: a second `Run(run_hash=h)` while h is open here shares it.

A notebook cell run twice, or a framework logger plus the user's own `Run(run_hash=...)`, opens
the same run twice in one process. The run's write lock admits one writer, so instead of raising
`RunLockedError` the second `Run` becomes another *handle* of the open writer: both track into the
same buffers, params and properties set through either are the same, and:

- `close()` on a handle that is not the last flushes what is buffered (so its points are on disk
  when it returns) and retires only that handle (its later `track()` is dropped with a warning,
  as after any close); the run stays open for the other handles;
- the writer really closes (final flush, `end_time`, lock released) when the last open handle
  closes, whichever it is; at interpreter exit or SIGTERM every handle is closed, so it is too;
- a handle collected without `close()` counts as closed.

The first handle (the owner) keeps the close job, the system-tracking and terminal-capture
services; later handles hold the owner, so it is collected only after them. Only handles in the
same process share: another process still gets `RunLockedError`. Threads opening one run at the
same moment are serialised by `opening()` (join, or open and register, under one lock per run), so
none finds the write lock taken by a sibling that has not registered its writer yet.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from aim_parquet.format.paths import RepoLayout
    from aim_parquet.sdk.close_job import CloseJob
    from aim_parquet.storage.online.run_writer import RunWriter


class WriterHandle(Protocol):
    """A `Run` as this registry sees it (`sdk.run_writing.WritingRun`, which imports this)."""

    hash: str
    _layout: RepoLayout
    _writer: RunWriter | None
    _close_job: CloseJob | None


_guard = threading.Lock()
_open: dict[tuple[str, str], SharedWriter] = {}
_opening: dict[tuple[str, str], tuple[threading.Lock, int]] = {}  # lock, threads using it


class SharedWriter:
    """The open handles of one run's writer in this process."""

    __slots__ = ("key", "owner_ref", "writer", "pid", "open_handles", "is_owner_closed")

    def __init__(self, key: tuple[str, str], owner: WriterHandle) -> None:
        self.key = key
        self.owner_ref = weakref.ref(owner)
        assert owner._writer is not None  # registered once its writer is open
        self.writer: RunWriter = owner._writer
        self.pid = os.getpid()
        self.open_handles = 1
        self.is_owner_closed = False

    def release(self) -> bool:
        """One handle closed: True when it was the last one (the writer closes now)."""
        with _guard:
            self.open_handles -= 1
            if self.open_handles > 0:
                return False
            if _open.get(self.key) is self:
                del _open[self.key]
            return True


def _key(run: WriterHandle) -> tuple[str, str]:
    return (str(run._layout.root), run.hash)


@contextlib.contextmanager
def opening(root: str, run_hash: str) -> Iterator[None]:
    """Held by a thread joining or opening the run's writer, until its writer is registered."""
    key = (root, run_hash)
    with _guard:
        lock, users = _opening.get(key, (threading.Lock(), 0))
        _opening[key] = (lock, users + 1)
    try:
        with lock:
            yield
    finally:
        with _guard:
            lock, users = _opening[key]
            if users > 1:
                _opening[key] = (lock, users - 1)
            else:
                del _opening[key]


def register_owner(run: WriterHandle) -> SharedWriter:
    """`run` just opened its writer: later handles of the same run in this process share it."""
    entry = SharedWriter(_key(run), run)
    with _guard:
        _open[entry.key] = entry
    return entry


def join(run: WriterHandle) -> tuple[SharedWriter, Any] | None:
    """`(entry, owner)` when this process already writes `run`'s run (the handle count is taken),
    else None."""
    with _guard:
        entry = _open.get(_key(run))
        if entry is None:
            return None
        owner = entry.owner_ref()
        writer = entry.writer
        if owner is None or entry.pid != os.getpid() or writer.is_closed or writer.is_disowned:
            del _open[entry.key]
            return None
        if writer.error is not None and getattr(writer, "_is_closing", False):
            return None
        entry.open_handles += 1
        return entry, owner


def release_collected(entry: SharedWriter, owner: WriterHandle) -> None:
    """A later handle was collected without close(): count it closed; when it was the last one
    and the owner is closed already, start the owner's close (not waited for: a finalizer)."""
    if entry.release() and entry.is_owner_closed:
        job = owner._close_job
        if job is not None:
            job.start()


def open_writer(layout: RepoLayout, run_hash: str) -> RunWriter | None:
    """The writer this process has open for the run, or None."""
    with _guard:
        entry = _open.get((str(layout.root), run_hash))
    if entry is None or entry.pid != os.getpid():
        return None
    writer = entry.writer
    return None if writer.is_closed or writer.is_disowned else writer
