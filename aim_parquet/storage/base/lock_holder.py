"""Who holds a lock: the identity a writer leaves in its lock file (`LockHolder`), whether that
process still runs (or, on another host, still beats), and the kernel's own view of a `flock`
(`/proc/locks`), and who writes a run (any of its writers' locks, `writer_state`). Nothing here
takes a lock: `storage.base.lock` does, and is the face callers import all of these through.
"""

from __future__ import annotations

import enum
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage.base.repo_files import writer_ranks
from aim_parquet.storage.base.safe_fs import MAX_LOCK_FILE_BYTES, open_regular

STALE_AFTER_S = 60.0  # a holder on another host whose heartbeat is older counts as dead


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
        start = process_start_time(self.pid)
        return self.pid_start_time is None or start is None or abs(start - self.pid_start_time) < 1


def process_start_time(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch, as `psutil.Process.create_time`), or
    None when there is no such process. On Linux it is read from `/proc` without importing
    psutil: a query of a repository with a live run asks it, and a lazy import running in one
    thread while another forks leaves the child (a Pool or DataLoader worker) waiting forever
    for that import (hx18b)."""
    if _HAS_PROC:
        return _proc_start_time(pid)
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.Error, OSError):
        return None


_BOOT_TIME: list[float] = []  # /proc/stat's btime, read once
_HAS_PROC = os.path.exists("/proc/self/stat") and os.path.exists("/proc/stat")


def _proc_start_time(pid: int) -> float | None:
    """`/proc/PID/stat`'s start time (clock ticks after boot) plus the boot time; None for no
    such process (or a /proc entry that cannot be read)."""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as f:
            raw = f.read()
        ticks = int(raw[raw.rindex(b")") + 2 :].split()[19])  # field 22 (after pid and comm)
        if not _BOOT_TIME:
            with open("/proc/stat", "rb") as f:
                for line in f:
                    if line.startswith(b"btime "):
                        _BOOT_TIME.append(float(line.split()[1]))
                        break
        return _BOOT_TIME[0] + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
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
        return read_holder_fd(fd)
    finally:
        os.close(fd)


def read_holder_fd(fd: int) -> LockHolder | None:
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
    start = process_start_time(holder.pid)
    if start is None:
        return False
    if holder.pid_start_time is None:
        return True
    return abs(start - holder.pid_start_time) < 1.0


def describe_holder(holder: LockHolder | None) -> str:
    return holder.describe() if holder is not None else "another process"


def busy_error(run_hash: str, holder: LockHolder | None, path: Path, *, force: bool) -> str:
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


def is_run_locked(path: Path) -> LockHolder | None:
    """The live holder of a run's lock, or None. Never takes or disturbs the lock."""
    holder = read_holder(path)
    if holder is None or not is_holder_alive(holder):
        return None
    return holder


def flock_pids(path: str | os.PathLike[str]) -> list[int] | None:
    """The processes holding a `flock` on `path`, from /proc/locks (the kernel's own view: no
    lock is taken to find out); None where there is no /proc/locks."""
    try:
        st = os.stat(path, follow_symlinks=False)
        with open("/proc/locks", encoding="ascii", errors="replace") as f:
            lines = f.read(1 << 22).splitlines()
    except FileNotFoundError:
        return None if not os.path.exists("/proc/locks") else []
    except OSError:
        return None
    wanted = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    pids = []
    for line in lines:
        parts = line.split()
        if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5] == wanted and parts[4].isdigit():
            pids.append(int(parts[4]))
    return pids


def flock_holder(path: str | os.PathLike[str]) -> str:
    """Who holds the `flock` of `path`, in words ("process 123 (aim-parquet compact)"); read from
    /proc/locks where there is one, else "another process"."""
    pids = flock_pids(path)
    if not pids:
        return "another process"
    return f"process {pids[0]}{_command_of(pids[0])}"


def _command_of(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read(4096)
    except OSError:
        return ""
    words = [w.decode("utf-8", "replace") for w in raw.split(b"\0") if w]
    if not words:
        return ""
    shown = [os.path.basename(words[0]), *words[1:]]
    for i, word in enumerate(shown):  # `python -m aim_parquet ...` / `.../aim-parquet ...`
        if word.endswith("aim-parquet") or word == "aim_parquet":
            shown = ["aim-parquet", *shown[i + 1 :]]
            break
    text = " ".join(shown)
    text = "".join(c if c.isprintable() else "?" for c in text)
    return f" ({text[:80]})"


# -- a run's writers, as the tools ask about them ---------------------------------------------
def writer_lock_holder(layout: RepoLayout, run_hash: str, rank: int) -> LockHolder | None:
    """The live holder of writer `rank`'s lock (rank 0: the run's `lock`), or None."""
    path = layout.lock_file(run_hash) if rank == 0 else layout.writer_lock(run_hash, rank)
    return is_run_locked(path)


def run_lock_holder(layout: RepoLayout, run_hash: str) -> LockHolder | None:
    """A live holder of any writer's lock of the run (rank 0's first), or None: the run is
    active while this is not None."""
    holder = is_run_locked(layout.lock_file(run_hash))
    if holder is not None:
        return holder
    return extra_writer_holder(layout, run_hash)


def extra_writer_holder(layout: RepoLayout, run_hash: str) -> LockHolder | None:
    """A live holder of an extra writer's lock (ranks >= 1), or None. Tools that take the run's
    `lock` (delete, copy, move) refuse a run for which this is not None."""
    for rank in writer_ranks(layout, run_hash, "lock"):
        holder = is_run_locked(layout.writer_lock(run_hash, rank))
        if holder is not None:
            return holder
    return None


def lock_file_holder(path: Path) -> str:
    """Who holds the write lock `path`, in words: the identity in it when that process is alive,
    else the process /proc/locks names, else "another process"."""
    holder = is_run_locked(path)
    return holder.describe() if holder is not None else flock_holder(path)


def run_holder(layout: RepoLayout, run_hash: str) -> str:
    """Who writes the run, in words: a live writer any of its locks names (rank 0's first), else
    the process /proc/locks names for its `lock`, else "another process"."""
    holder = run_lock_holder(layout, run_hash)
    return holder.describe() if holder is not None else flock_holder(layout.lock_file(run_hash))


class WriterState(enum.Enum):
    """Whether a writer holds a run at the instant `writer_state` looked."""

    CLOSED = "closed"  # no live writer: every segment that exists now is sealed
    LIVE = "live"  # a writer holds the run: it may still append to its newest segments


def writer_state(layout: RepoLayout, run_hash: str) -> WriterState:
    """LIVE when a writer holds the run now: its identity names a live process, or (the kernel's
    view, which also covers the instant between a writer's flock and its identity) /proc/locks
    shows a flock on its lock file (every writer's, for a run with several). Takes no lock, so
    it never makes a resume fail."""
    if run_lock_holder(layout, run_hash) is not None:
        return WriterState.LIVE
    paths = [layout.lock_file(run_hash)]
    paths += [layout.writer_lock(run_hash, r) for r in writer_ranks(layout, run_hash, "lock")]
    for path in paths:
        try:
            if flock_pids(path):
                return WriterState.LIVE
        except OSError:
            continue
    return WriterState.CLOSED
