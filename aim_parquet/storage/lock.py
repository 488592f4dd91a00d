"""The per-run write lock: `runs/<hash>/lock`.

A writer holds an exclusive `flock` on the lock file for the run's whole life and writes its
identity (host, pid, process start time) into it. The kernel drops the flock when the process dies,
so a killed writer never leaves a locked run behind on the same host. On a shared filesystem a lock
whose holder is on another host is considered dead when its heartbeat (the file's mtime, touched by
the writer every few seconds) is older than `STALE_AFTER_S`. Readers never take the lock.
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
from dataclasses import dataclass
from pathlib import Path

from aim_parquet.errors import RunLockedError
from aim_parquet.storage.safe_fs import MAX_LOCK_FILE_BYTES, open_regular, read_regular

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_S = 5.0
STALE_AFTER_S = 60.0


@dataclass(frozen=True)
class LockHolder:
    host: str
    pid: int
    pid_start_time: float | None
    acquired_at: float
    heartbeat_at: float  # the lock file's mtime

    def describe(self) -> str:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.acquired_at))
        return f"process {self.pid} on host {self.host!r} (since {since})"


def _process_start_time(pid: int) -> float | None:
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.Error, OSError):
        return None


def read_holder(path: Path) -> LockHolder | None:
    """The identity written in a lock file, or None when there is none (or it is unreadable)."""
    try:
        raw = read_regular(path, "lock file", MAX_LOCK_FILE_BYTES)  # never a link or a FIFO
        mtime = os.stat(path).st_mtime
        data = json.loads(raw.decode("utf-8"))
        return LockHolder(
            host=str(data["host"]),
            pid=int(data["pid"]),
            pid_start_time=data.get("pid_start_time"),
            acquired_at=float(data.get("acquired_at", 0.0)),
            heartbeat_at=mtime,
        )
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None


def is_holder_alive(holder: LockHolder, *, now: float | None = None) -> bool:
    """Whether the process named by `holder` still runs (same host) or still beats (other host)."""
    if holder.host != socket.gethostname():
        return (now if now is not None else time.time()) - holder.heartbeat_at < STALE_AFTER_S
    start = _process_start_time(holder.pid)
    if start is None:
        return False
    if holder.pid_start_time is None:
        return True
    return abs(start - holder.pid_start_time) < 1.0


class RunLock:
    """Exclusive write lock of one run. `acquire()` never waits: it succeeds or raises."""

    def __init__(self, path: Path, run_hash: str) -> None:
        self.path = path
        self.run_hash = run_hash
        self._fd: int | None = None
        self._last_beat = 0.0

    @property
    def is_held(self) -> bool:
        return self._fd is not None

    def acquire(self, *, force: bool = False) -> None:
        for _attempt in range(3):
            # no link followed, no FIFO opened, no missing folder created (UnsafeFileError)
            fd = open_regular(self.path, "lock file", os.O_RDWR | os.O_CREAT)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                holder = read_holder(self.path)
                stale = holder is not None and not is_holder_alive(holder)
                if force or stale:
                    if force:
                        log.warning(
                            "force_resume: taking over run %s from %s; if that process still "
                            "writes, both writers' data is kept in separate segments.",
                            self.run_hash,
                            holder.describe() if holder else "an unknown holder",
                        )
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self.path)
                    continue
                who = holder.describe() if holder else "another process"
                raise RunLockedError(
                    f"Run {self.run_hash} is being written by {who}. Only one process may write "
                    "a run at a time. Wait for it to finish, open the run with read_only=True, or "
                    "pass force_resume=True if that process is gone."
                ) from None
            # We hold a flock; make sure it is on the file currently at `path` (not an unlinked one).
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            self._fd = fd
            try:
                self._write_identity()
            except BaseException:  # e.g. the disk is full: do not keep holding the lock
                self.release()
                raise
            return
        raise RunLockedError(
            f"Run {self.run_hash}: could not take the write lock (it kept changing hands)."
        )

    def _write_identity(self) -> None:
        assert self._fd is not None
        now = time.time()
        identity = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "pid_start_time": _process_start_time(os.getpid()),
            "acquired_at": now,
        }
        data = json.dumps(identity).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)
        os.fsync(self._fd)
        self._last_beat = now

    def heartbeat(self) -> None:
        """Touch the lock file (cheap; rate-limited to HEARTBEAT_INTERVAL_S)."""
        now = time.time()
        if self._fd is None or now - self._last_beat < HEARTBEAT_INTERVAL_S:
            return
        with contextlib.suppress(OSError):
            os.utime(self._fd)
        self._last_beat = now

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def is_run_locked(path: Path) -> LockHolder | None:
    """The live holder of a run's lock, or None. Never takes or disturbs the lock."""
    holder = read_holder(path)
    if holder is None or not is_holder_alive(holder):
        return None
    return holder
