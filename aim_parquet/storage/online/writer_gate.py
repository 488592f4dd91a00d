"""The attach gate of a run with several writers: what keeps a rank from attaching while a tool
deletes, copies or moves the run.

A tool that works on a whole run (`runs rm|cp|mv`) takes the run's `lock` (rank 0's). That alone
does not exclude extra writers: rank r >= 1 takes `writers/<r>.lock`, never `lock`, and may do so
at any moment, so a tool that only *checked* the extra writers' locks after taking `lock` could
move a run into the trash (or copy half of it) while a rank that attached just after the check
writes into it. The gate closes that window:

- an extra writer holds a **shared** flock on `writers/attach.lock` while it takes its own lock
  (`attaching`); when the flock is held exclusively it refuses (RunLockedError) rather than wait;
- the tool, holding `lock`, takes an **exclusive** flock on the gate without waiting, then takes
  every extra writer's lock (`every_writer_held`) and keeps them all until it is done.

Either the rank got its lock first (the tool finds it held and refuses), or the tool got the gate
first (the rank refuses): never both. The gate file is never unlinked; it holds no data. Like
every flock of the format, it excludes only processes whose filesystem makes flock coherent (one
host, or a shared filesystem with coherent locks).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator

from aim_parquet.errors import AimParquetError, RunLockedError, UnsafeFileError
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage.base.lock import held_flock, held_run_lock
from aim_parquet.storage.base.repo_files import writer_ranks
from aim_parquet.storage.online.run_reader import load_sidecar


def ensure_writers_dir(layout: RepoLayout, run_hash: str) -> None:
    """Create the run's `writers/` folder if missing; UnsafeFileError when it is a link or a
    file. Never creates the run folder itself (a run deleted meanwhile stays deleted)."""
    path = layout.writers_dir(run_hash)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeFileError(f"{path} is not a folder (a link or file): refusing to write there.")


def _may_have_extra_writers(layout: RepoLayout, run_hash: str) -> bool:
    """The run is (or may be) one with several writers: its sidecar says so, or it cannot be
    read and a `writers/` folder is there."""
    try:
        return load_sidecar(layout, run_hash).is_multi_writer
    except (OSError, ValueError, AimParquetError):
        return os.path.lexists(layout.writers_dir(run_hash))


@contextlib.contextmanager
def _gate(layout: RepoLayout, run_hash: str, *, shared: bool) -> Iterator[bool]:
    """Hold the gate's flock (shared or exclusive, never waiting; `storage.base.lock`); yields
    False when it is held the other way."""
    ensure_writers_dir(layout, run_hash)
    with held_flock(layout.attach_gate(run_hash), "attach gate", shared=shared) as is_held:
        yield is_held


@contextlib.contextmanager
def attaching(layout: RepoLayout, run_hash: str, rank: int) -> Iterator[None]:
    """Held by extra writer `rank` while it takes its lock. RunLockedError when a tool is
    deleting, copying or moving the run."""
    with _gate(layout, run_hash, shared=True) as is_open:
        if not is_open:
            raise RunLockedError(
                f"Run {run_hash}: rank {rank} cannot attach now, a tool is deleting, copying or "
                "moving the run (`aim-parquet runs rm|cp|mv`). Try again when it is done."
            )
        yield


@contextlib.contextmanager
def every_writer_held(layout: RepoLayout, run_hash: str, what: str) -> Iterator[None]:
    """For the caller holding the run's `lock`: close the gate and hold every extra writer's
    lock until the block ends. RunLockedError naming a live rank, or a rank attaching now.
    `what` is the tool's verb for the messages ("delete", "copy", "move").

    A single-writer run (format version 1) needs nothing: no rank attaches before its rank 0
    marks it version 2, which needs the `lock` the caller holds."""
    if not _may_have_extra_writers(layout, run_hash):
        yield
        return
    with _gate(layout, run_hash, shared=False) as is_closed:
        if not is_closed:
            raise RunLockedError(
                f"Cannot {what} run {run_hash}: a rank of its distributed job is attaching to it "
                "right now. Close the run (every rank) or wait for the job to finish, then try "
                "again."
            )
        with contextlib.ExitStack() as held:
            for rank in writer_ranks(layout, run_hash, "lock"):
                path = layout.writer_lock(run_hash, rank)
                who = held.enter_context(held_run_lock(path, run_hash))
                if who is not None:
                    raise RunLockedError(
                        f"Cannot {what} run {run_hash}: its rank {rank} is still writing it "
                        f"({who}). Close the run (every rank) or wait for the job to finish, "
                        "then try again."
                    )
            yield
