"""Every lock of a repository, the one place that takes them and names their holders.

- The run's write lock `runs/<hash>/lock` (and writer r's `writers/<r>.lock`): `RunLock`, below.
- The flock of a plain lock file (`index/runs.lock`): `try_flock` / `held_flock`,
  taken without waiting; `is_flocked` and `flock_pids` look without taking; `flock_holder` names
  the holder from the kernel's `/proc/locks`. `held_folder` / `is_folder_in_use`: the same for a
  temp folder being filled (a run copied in).
- A run's locks as the tools use them: `held_run_lock` (the write lock, or who holds it),
  `compaction_lock` (its `compact.lock` exists only while held), `hold_run_locks` (both or
  neither), `run_lock_holder` / `run_holder` (who writes the run) and `writer_state` (whether a
  writer holds the run now: `WriterState`), the one definition of a run's writer being alive. The
  look-ups that take no lock (holders, liveness, `writer_state`) are made in
  `storage.base.lock_holder`; callers import them from here.

A writer holds an exclusive `flock` on the lock file for the run's whole life and writes its
identity (host, pid, process start time) into it. The kernel drops the flock when the process dies,
so a killed writer never leaves a locked run behind on the same host. On a shared filesystem whose
flock is not coherent across hosts, a lock whose holder is on another host is considered dead when
its heartbeat (the file's mtime, touched by the writer every few seconds) is older than
`STALE_AFTER_S`. Readers never take the lock.

Taking it never races (`RunLock.acquire`):

- The lock file is never unlinked or replaced, so every taker locks the same inode and at most one
  holds the flock. It is opened without following a link (a link or FIFO there, or a linked
  `.aim/runs/` or run folder, raises `UnsafeFileError`: nothing outside the repository is
  truncated) and never creates a missing folder (a run deleted meanwhile stays deleted;
  `storage.base.safe_fs`).
- Whether the previous holder is stale is decided only while holding the flock: the identity left
  in the file counts only if it names a live process that is not us (another host's writer still
  beating where flock is not coherent, or a writer on this host that somehow lost its flock).
- When the flock is busy but the file names no live process, a taker is between its flock and
  writing its identity (or a holder between emptying the file and unlocking): the identity is
  polled for up to `SETTLE_S`. If it still names nobody, some other process holds the descriptor
  (a child that inherited it) and the error says so.

`force_resume` takes over only from a holder that cannot be proved alive: one on another host
whose flock we got anyway. A holder alive on this host is never overridden.

After `os.fork()` the child shares the parent's lock (flock belongs to the open file, not the
process): `disown_after_fork` closes the child's descriptor without unlocking or emptying the file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from aim_parquet.errors import RunLockedError, UnsafeFileError
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage.base.lock_holder import (
    STALE_AFTER_S,
    LockHolder,
    WriterState,
    busy_error,
    extra_writer_holder,
    flock_holder,
    flock_pids,
    is_holder_alive,
    is_run_locked,
    lock_file_holder,
    process_start_time,
    read_holder,
    read_holder_fd,
    run_holder,
    run_lock_holder,
    writer_lock_holder,
    writer_state,
)
from aim_parquet.storage.base.safe_fs import (
    O_CLOEXEC,
    O_NOFOLLOW,
    open_regular,
    require_real_run_dir,
)

__all__ = [
    "STALE_AFTER_S",
    "LockHolder",
    "RunLock",
    "WriterState",
    "compaction_lock",
    "extra_writer_holder",
    "flock_holder",
    "flock_pids",
    "held_flock",
    "held_run_lock",
    "hold_run_locks",
    "held_folder",
    "is_flocked",
    "is_folder_in_use",
    "is_holder_alive",
    "is_run_locked",
    "lock_file_holder",
    "read_holder",
    "run_holder",
    "run_lock_holder",
    "try_flock",
    "writer_lock_holder",
    "writer_state",
]

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_S = 5.0
SETTLE_S = 2.0  # how long a busy lock may name no live holder before the taker gives up
_SETTLE_POLL_S = 0.01


class RunLock:
    """Exclusive write lock of one run. `acquire()` never blocks on another writer: it succeeds
    or raises RunLockedError (it may wait up to SETTLE_S for a taker to write its identity)."""

    def __init__(self, path: Path, run_hash: str) -> None:
        self.path = path
        self.run_hash = run_hash
        self._fd: int | None = None
        self._last_beat = 0.0  # time.monotonic() of the last heartbeat

    @property
    def is_held(self) -> bool:
        return self._fd is not None

    def acquire(self, *, force: bool = False) -> None:
        identity = self._identity()  # before the flock: nothing slow between flock and write
        # `.aim/runs` or the run folder linked out of the repository: nothing written through it
        require_real_run_dir(self.path, f"write run {self.run_hash}")
        # no link followed, no FIFO opened, no missing folder created (UnsafeFileError,
        # FileNotFoundError): a run deleted meanwhile stays deleted
        fd = open_regular(self.path, "lock file", os.O_RDWR | os.O_CREAT)
        try:
            self._flock_or_raise(fd, force=force)
            self._check_previous_holder(fd, force=force)
            os.ftruncate(fd, 0)
            os.pwrite(fd, identity, 0)
            os.fsync(fd)
        except BaseException:  # refused, or e.g. the disk is full: do not keep the lock
            os.close(fd)  # closing our only descriptor drops our flock, if we got it
            raise
        self._fd = fd
        self._last_beat = time.monotonic()

    def _flock_or_raise(self, fd: int, *, force: bool) -> None:
        deadline = time.monotonic() + SETTLE_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
            holder = read_holder_fd(fd)
            if holder is not None and is_holder_alive(holder):
                raise RunLockedError(busy_error(self.run_hash, holder, self.path, force=force))
            if time.monotonic() >= deadline:
                raise RunLockedError(busy_error(self.run_hash, holder, self.path, force=force))
            time.sleep(_SETTLE_POLL_S)  # a taker is writing its identity: poll, bounded

    def _check_previous_holder(self, fd: int, *, force: bool) -> None:
        """We hold the flock; refuse if the file still names a live writer other than us."""
        holder = read_holder_fd(fd)
        if holder is None or holder.is_this_process or not is_holder_alive(holder):
            return
        if holder.is_on_this_host or not force:
            message = busy_error(self.run_hash, holder, self.path, force=force)
            if not holder.is_on_this_host:
                message += (
                    " (Its heartbeat is fresh; pass force_resume=True if that host is gone, or "
                    f"wait {STALE_AFTER_S:.0f} s after its last heartbeat.)"
                )
            raise RunLockedError(message)
        log.warning(
            "force_resume: taking over run %s from %s, whose heartbeat is still fresh; if that "
            "process still writes, both writers' data is kept in separate segments.",
            self.run_hash,
            holder.describe(),
        )

    @staticmethod
    def _identity() -> bytes:
        identity = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "pid_start_time": process_start_time(os.getpid()),
            "acquired_at": time.time(),
        }
        return json.dumps(identity).encode()

    def heartbeat(self) -> None:
        """Touch the lock file (cheap; rate-limited to HEARTBEAT_INTERVAL_S of monotonic time,
        so a wall clock stepped back does not stop it)."""
        now = time.monotonic()
        if self._fd is None or now - self._last_beat < HEARTBEAT_INTERVAL_S:
            return
        with contextlib.suppress(OSError):
            os.utime(self._fd)
        self._last_beat = now

    def release(self) -> None:
        """Empty the file (no holder named), unlock, close."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def disown_after_fork(self) -> None:
        """In a forked child: close the inherited descriptor without unlocking or emptying the
        file (the flock belongs to the parent, which keeps it)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


# -- plain lock files: compact.lock, index/runs.lock, writers/attach.lock -------------------------


def try_flock(
    path: str | os.PathLike[str], what: str = "lock file", *, shared: bool = False
) -> int | None:
    """Take the exclusive (or `shared`) `flock` of `path` without waiting; the descriptor (close
    it to release) or None when another process holds it the other way. Creates the file, never
    its folder (FileNotFoundError when the folder is gone), never truncates it, never follows a
    link."""
    fd = open_regular(path, what, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    return fd


def is_flocked(path: str | os.PathLike[str]) -> bool:
    """Whether another process holds the `flock` of an existing `path` (False when it is missing,
    or cannot be opened: an unreadable lock file is not a lock we can see)."""
    try:
        fd = open_regular(path, "lock file")
    except (OSError, UnsafeFileError):
        return False
    return _is_held_elsewhere(fd)


def _is_held_elsewhere(fd: int) -> bool:
    """Whether another process holds a `flock` on `fd`'s file; closes `fd` (which drops the
    flock this probe may have taken)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


@contextlib.contextmanager
def held_flock(
    path: str | os.PathLike[str], what: str = "lock file", *, shared: bool = False
) -> Iterator[bool]:
    """`try_flock` as a context: yields whether the lock is held (released on exit)."""
    fd = try_flock(path, what, shared=shared)
    try:
        yield fd is not None
    finally:
        if fd is not None:
            os.close(fd)


@contextlib.contextmanager
def held_folder(path: str | os.PathLike[str]) -> Iterator[None]:
    """Hold the exclusive `flock` of a folder we are filling (a run being copied in under a
    temp name): `gc` and `verify --repair` leave a folder in use alone, however old its files."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(fd)


def is_folder_in_use(path: str | os.PathLike[str]) -> bool:
    """Whether another process holds the `flock` of the folder `path` (`held_folder`); False
    for a missing path, a file or a link."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
    except OSError:
        return False
    return _is_held_elsewhere(fd)


# -- a run's locks, as the tools take them ---------------------------------------------------------


@contextlib.contextmanager
def held_run_lock(path: Path, run_hash: str) -> Iterator[str | None]:
    """Hold the write lock `path` of run `run_hash` (its `lock`, or an extra writer's); yields
    None, or who holds it in words (nothing is held then). Raises FileNotFoundError when the
    run folder is gone (it is never created again) and UnsafeFileError for a link or FIFO."""
    lock = RunLock(path, run_hash)
    try:
        lock.acquire()
    except RunLockedError:
        yield lock_file_holder(path)
        return
    try:
        yield None
    finally:
        lock.release()


@contextlib.contextmanager
def compaction_lock(layout: RepoLayout, run_hash: str) -> Iterator[str | None]:
    """Hold the run's compaction lock; yields None, or who holds it ("a compaction of this run
    is in progress (process 123 (aim-parquet compact))"). Raises FileNotFoundError when the run
    folder is gone (it is never created again) and UnsafeFileError for a link or FIFO.

    `compact.lock` exists only while held, so a run keeps no lock file between compactions: its
    holder removes it before it unlocks, and a taker keeps the flock only if the file it locked
    is still the one at the path (else it locked the inode a holder just removed, and takes the
    file at the path instead). So two takers never both hold it."""
    path = layout.compact_lock(run_hash)
    require_real_run_dir(path, f"lock run {run_hash}")
    fd = _take_current_flock(path)
    if fd is None:
        yield f"a compaction of this run is in progress ({flock_holder(path)})"
        return
    try:
        yield None
    finally:
        try:
            if _is_file_at(path, fd):  # (a run deleted or moved meanwhile: nothing to remove)
                os.unlink(path)
        except OSError:
            pass  # left for the next holder (or `gc`), which removes it as it lets go
        finally:
            os.close(fd)


_TAKE_TRIES = 100  # takers racing holders that remove the file as they let go


def _take_current_flock(path: Path) -> int | None:
    """`try_flock` of the file at `path` that is still there once locked; None when busy."""
    for _ in range(_TAKE_TRIES):
        fd = try_flock(path, "compaction lock")
        if fd is None or _is_file_at(path, fd):
            return fd
        os.close(fd)  # removed by its holder after we opened it: take the new file
    return None


def _is_file_at(path: Path, fd: int) -> bool:
    """Whether `path` names the file open as `fd` (not removed, nor replaced)."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    held = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino)


@contextlib.contextmanager
def hold_run_locks(layout: RepoLayout, run_hash: str) -> Iterator[str | None]:
    """Hold the compaction lock and the run's write lock; yields None, or why they are busy
    (naming the holder)."""
    with compaction_lock(layout, run_hash) as busy:
        if busy is not None:
            yield busy
            return
        with held_run_lock(layout.lock_file(run_hash), run_hash) as holder:
            yield None if holder is None else f"the run is being written by {holder}"
