"""The per-run part of a full refresh of the run index (`storage.index.run_index`): one
`stat` of every run's sidecar, and the runs whose stored row still matches its sidecar,
compared column-wise. On a cold disk (the first stats wait for it) the stats, and the reads of
the sidecars a refresh will read, are made by threads: the disk serves many at once (one by
one while the interpreter shuts down, when no thread can start)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from operator import attrgetter
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from aim_parquet.format.paths import RUN_HASH_PATTERN, SIDECAR_FILENAME, RepoLayout
from aim_parquet.storage.base.columns import any_numpy, int64_array, string_array
from aim_parquet.storage.base.lock import run_lock_holder
from aim_parquet.storage.index.index_entries import DamagedRun, IndexEntry
from aim_parquet.storage.index.index_table import IndexTable, Positions
from aim_parquet.storage.index.sidecar_entries import missing_sidecar
from aim_parquet.system.threads import signals_blocked

__all__ = ["prefetched", "stat_sidecars", "unchanged_rows"]

R = TypeVar("R")
Stats = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.uint64]]


def _in(names: pa.Array, entries: dict[str, IndexEntry]) -> npt.NDArray[np.bool_]:
    keys = string_array(list(entries))
    return np.asarray(any_numpy(pc.is_in(names, value_set=keys)), dtype=bool)


def unchanged_rows(
    layout: RepoLayout,
    listed: pa.Array,
    pos: Positions,
    stats: Stats,
    table: IndexTable,
    current: npt.NDArray[np.bool_],
    overlay: dict[str, IndexEntry],
) -> tuple[Positions, npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """For each listed run (`pos`: its row in `table`, -1 for none): its row, -1 for none or
    an overlay entry; whether it has a current row; whether that row is still its entry: same
    sidecar stat, one writer, not a kept copy, and not a run whose writer died since it was
    read), all compared column-wise."""
    pos = pos.copy()
    if overlay:  # (an overlay entry is newer than its row)
        pos[_in(listed, overlay)] = -1
    if not table.size:
        known = np.zeros(len(listed), dtype=bool)
        return pos, known, known.copy()
    at = np.where(pos >= 0, pos, 0)
    known = (pos >= 0) & current[at]
    same = (
        known
        & (table.mtime_ns[at] == stats[0])
        & (table.st_size[at] == stats[1])
        & (table.ino[at] == stats[2])
        & ~table.kept[at]
        & ~table.has_parts[at]
    )
    for i in np.flatnonzero(same & table.is_open[at]).tolist():
        if run_lock_holder(layout, listed[i].as_py()) is None:
            same[i] = False  # its writer died since it was read
    return pos, known, same


PROBE = 256  # stats timed before deciding whether the rest go to threads
COLD_PROBE_S = 0.01  # ... which they do when these took longer (about 2 ms from the page cache)
STAT_THREADS = 16
STAT_CHUNK = 256


def _stat_chunk(paths: list[str], dir_fd: int) -> list[os.stat_result | OSError]:
    out: list[os.stat_result | OSError] = []
    append, stat = out.append, os.stat
    for path in paths:
        try:
            append(stat(path, dir_fd=dir_fd, follow_symlinks=False))
        except OSError as exc:
            append(exc)
    return out


def _probe_then_threads(
    run: Callable[[list[str]], R], paths: list[str], name: str
) -> tuple[R, ThreadPoolExecutor | None, list[Future[R]] | None]:
    """`run` of the first `PROBE` of `paths`, here; when those took longer than
    `COLD_PROBE_S` (the inodes are not in memory: each waits for the disk) and more remain, a
    pool of `STAT_THREADS` threads (`name`) running it on the rest in chunks of `STAT_CHUNK`,
    and their futures in order (None: no new threads, as while the interpreter shuts down).
    No pool: the rest, if any, are in memory (one by one here is the fastest). The caller shuts
    the pool down."""
    started = time.perf_counter()
    first = run(paths[:PROBE])
    rest = paths[PROBE:]
    if not rest or time.perf_counter() - started < COLD_PROBE_S:
        return first, None, None
    pool = ThreadPoolExecutor(STAT_THREADS, thread_name_prefix=name)
    try:
        with signals_blocked():  # the pool's threads leave Ctrl-C and SIGTERM to this one
            chunks = range(0, len(rest), STAT_CHUNK)
            return first, pool, [pool.submit(run, rest[i : i + STAT_CHUNK]) for i in chunks]
    except RuntimeError:  # no new threads once the interpreter shuts down
        return first, pool, None


def _stat_all(paths: list[str], dir_fd: int) -> list[os.stat_result | OSError]:
    """`os.stat` of each of `paths` (relative to `dir_fd`, no link followed), or its error.
    Where the first `PROBE` show that the inodes are not in memory (a repository not read since
    the page cache dropped it: each stat waits for the disk), the rest are made by
    `STAT_THREADS` threads at once, which the disk serves several times faster than one by one
    (100,000 sidecars: 35 s one by one, 4-8 s so, on this machine's disk)."""
    stat = partial(_stat_chunk, dir_fd=dir_fd)
    out, pool, futures = _probe_then_threads(stat, paths, "aim_parquet-stat")
    if pool is None:
        if len(paths) > PROBE:
            out.extend(stat(paths[PROBE:]))
        return out
    with pool:
        if futures is None:  # one by one
            out.extend(stat(paths[PROBE:]))
        else:
            for future in futures:
                out.extend(future.result())
    return out


def _read_chunk(paths: list[str]) -> None:
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    for path in paths:
        try:
            fd = os.open(path, flags)
        except OSError:
            continue
        try:
            os.read(fd, PREFETCH_BYTES)
        except OSError:
            pass
        finally:
            os.close(fd)


PREFETCH_BYTES = 1 << 16


@contextmanager
def prefetched(layout: RepoLayout, names: list[str]) -> Iterator[None]:
    """While the body reads the sidecars of `names` one by one, threads read them ahead of it
    into the page cache, when there are many and the first ones are not in memory (as
    `_stat_all` decides): the body's reads then wait for the disk less. The bytes read ahead
    are only a hint to the cache: the body reads (and checks) each file itself (and without
    threads, as while the interpreter shuts down, nothing is read ahead)."""
    if len(names) < 2 * PROBE:
        yield
        return
    runs_dir = os.fspath(layout.runs_dir)
    paths = [os.path.join(runs_dir, h, SIDECAR_FILENAME) for h in names]
    _, pool, _ = _probe_then_threads(_read_chunk, paths, "aim_parquet-prefetch")
    if pool is None:
        yield
        return
    try:
        yield
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def stat_sidecars(
    layout: RepoLayout,
    names: list[str],
    table: IndexTable,
    overlay: dict[str, IndexEntry],
    dir_fd: int,
    damaged: list[DamagedRun],
) -> tuple[list[str], pa.Array, Positions, Stats]:
    """The run folders of `names` with a sidecar (as a list and an Arrow array), the row of
    each in `table` (-1 for none), and its sidecar's (mtime_ns, size, ino): one `stat` per run
    (a missing or forbidden sidecar is added to `damaged` when it is). A name that is not a
    run hash is skipped unless the index has it."""
    given = string_array(names)  # (a lone surrogate becomes an escape: no run's hash)
    rows = table.rows_of(given)
    wanted = any_numpy(pc.match_substring_regex(given, f"^{RUN_HASH_PATTERN}$")) | (rows >= 0)
    if overlay:
        wanted |= _in(given, overlay)
    keep = np.flatnonzero(wanted)
    if len(keep) < len(names):
        names = [names[i] for i in keep.tolist()]
    found: list[os.stat_result] = []
    failed: list[int] = []
    sidecar = "/" + SIDECAR_FILENAME
    for i, st in enumerate(_stat_all([h + sidecar for h in names], dir_fd)):
        if type(st) is os.stat_result:
            found.append(st)
            continue
        run_hash = names[i]
        if isinstance(st, FileNotFoundError):
            missing = missing_sidecar(layout, run_hash)
            if missing is not None:
                damaged.append(missing)
        elif isinstance(st, PermissionError):  # a run folder others may not enter
            path = os.path.join(os.fspath(layout.runs_dir), run_hash + sidecar)
            damaged.append(DamagedRun(run_hash, path, str(st), True))
        elif not isinstance(st, NotADirectoryError):  # (a file named like a run: not a run)
            raise st
        failed.append(i)
    if failed:
        keep = np.delete(keep, failed)
        names = [names[i] for i in sorted(set(range(len(names))) - set(failed))]
    listed = given if len(keep) == len(given) else given.take(int64_array(keep))
    n = len(found)
    stats = (
        np.fromiter(map(attrgetter("st_mtime_ns"), found), dtype=np.int64, count=n),
        np.fromiter(map(attrgetter("st_size"), found), dtype=np.int64, count=n),
        np.fromiter(map(attrgetter("st_ino"), found), dtype=np.uint64, count=n),
    )
    return names, listed, rows[keep], stats
