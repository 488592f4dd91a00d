"""The per-run write lock: `runs/<hash>/lock`, the one place that takes it and names its holder.

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
from dataclasses import dataclass
from pathlib import Path

from aim_parquet.errors import RunLockedError
from aim_parquet.storage.base.safe_fs import MAX_LOCK_FILE_BYTES, open_regular, require_real_run_dir

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_S = 5.0
STALE_AFTER_S = 60.0
SETTLE_S = 2.0  # how long a busy lock may name no live holder before the taker gives up
_SETTLE_POLL_S = 0.01


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

    @property
    def is_on_this_host(self) -> bool:
        return self.host == socket.gethostname()

    @property
    def is_this_process(self) -> bool:
        if not self.is_on_this_host or self.pid != os.getpid():
            return False
        start = _process_start_time(self.pid)
        return self.pid_start_time is None or start is None or abs(start - self.pid_start_time) < 1


def _process_start_time(pid: int) -> float | None:
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.Error, OSError):
        return None


def _parse_holder(raw: bytes, mtime: float) -> LockHolder | None:
    try:
        data = json.loads(raw.decode("utf-8"))
        return LockHolder(
            host=str(data["host"]),
            pid=int(data["pid"]),
            pid_start_time=data.get("pid_start_time"),
            acquired_at=float(data.get("acquired_at", 0.0)),
            heartbeat_at=mtime,
        )
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None


def read_holder(path: Path) -> LockHolder | None:
    """The identity written in a lock file, or None when there is none (or it is unreadable, or
    a link or FIFO: never followed or opened for reading)."""
    try:
        fd = open_regular(path, "lock file")
    except OSError:  # (UnsafeFileError too)
        return None
    try:
        return _read_holder_fd(fd)
    finally:
        os.close(fd)


def _read_holder_fd(fd: int) -> LockHolder | None:
    try:
        raw = os.pread(fd, MAX_LOCK_FILE_BYTES, 0)
        mtime = os.fstat(fd).st_mtime
    except OSError:
        return None
    return _parse_holder(raw, mtime)


def is_holder_alive(holder: LockHolder, *, now: float | None = None) -> bool:
    """Whether the process named by `holder` still runs (same host) or still beats (other host)."""
    if not holder.is_on_this_host:
        return (now if now is not None else time.time()) - holder.heartbeat_at < STALE_AFTER_S
    start = _process_start_time(holder.pid)
    if start is None:
        return False
    if holder.pid_start_time is None:
        return True
    return abs(start - holder.pid_start_time) < 1.0


def describe_holder(holder: LockHolder | None) -> str:
    return holder.describe() if holder is not None else "another process"


def _busy_error(run_hash: str, holder: LockHolder | None, path: Path, *, force: bool) -> str:
    """What to tell a taker who found the flock held."""
    if holder is None or not is_holder_alive(holder):
        named = f" (it names {holder.describe()}, which has exited)" if holder else ""
        return (
            f"Run {run_hash}: its write lock {path} is held by a process other than the writer "
            f"it names{named}, most likely a child process that inherited it. Find it with "
            f"`fuser {path}` (or `lsof {path}`) and stop it; the run can be resumed then."
        )
    who = holder.describe()
    if holder.is_this_process:
        return (
            f"Run {run_hash} is already open for writing in this process; use that Run object "
            "(or close it first), or open the run with read_only=True."
        )
    if not holder.is_on_this_host:
        return (
            f"Run {run_hash} is being written by {who}; that host still holds the lock. Wait for "
            "it to finish, or open the run with read_only=True; if that host is down, its lock "
            "expires with the filesystem's lock lease."
        )
    if force:
        return (
            f"Run {run_hash} is being written by {who}, which is alive on this host: "
            "force_resume=True does not take a run from a live writer (two writers would "
            f"overwrite each other's catalogue). Stop that process (kill {holder.pid}) or wait "
            "for it to close the run, or open the run with read_only=True."
        )
    return (
        f"Run {run_hash} is being written by {who}. Only one process may write a run at a time. "
        "Wait for it to finish, or open the run with read_only=True."
    )


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
            holder = _read_holder_fd(fd)
            if holder is not None and is_holder_alive(holder):
                raise RunLockedError(_busy_error(self.run_hash, holder, self.path, force=force))
            if time.monotonic() >= deadline:
                raise RunLockedError(_busy_error(self.run_hash, holder, self.path, force=force))
            time.sleep(_SETTLE_POLL_S)  # a taker is writing its identity: poll, bounded

    def _check_previous_holder(self, fd: int, *, force: bool) -> None:
        """We hold the flock; refuse if the file still names a live writer other than us."""
        holder = _read_holder_fd(fd)
        if holder is None or holder.is_this_process or not is_holder_alive(holder):
            return
        if holder.is_on_this_host or not force:
            message = _busy_error(self.run_hash, holder, self.path, force=force)
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
            "pid_start_time": _process_start_time(os.getpid()),
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


def is_run_locked(path: Path) -> LockHolder | None:
    """The live holder of a run's lock, or None. Never takes or disturbs the lock."""
    holder = read_holder(path)
    if holder is None or not is_holder_alive(holder):
        return None
    return holder
