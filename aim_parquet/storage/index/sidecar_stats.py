"""The per-run part of a full refresh of the run index (`storage.index.run_index`): one
`stat` of every run's sidecar, and the runs whose stored row still matches its sidecar,
compared column-wise."""

from __future__ import annotations

import os
from operator import attrgetter

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

__all__ = ["stat_sidecars", "unchanged_rows"]

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
    stat = os.stat
    sidecar = "/" + SIDECAR_FILENAME
    for i, run_hash in enumerate(names):
        try:
            found.append(stat(run_hash + sidecar, dir_fd=dir_fd, follow_symlinks=False))
        except FileNotFoundError:
            missing = missing_sidecar(layout, run_hash)
            if missing is not None:
                damaged.append(missing)
            failed.append(i)
        except NotADirectoryError:  # a file named like a run (not a folder): not a run
            failed.append(i)
        except PermissionError as exc:  # a run folder others may not enter
            path = os.path.join(os.fspath(layout.runs_dir), run_hash + sidecar)
            damaged.append(DamagedRun(run_hash, path, str(exc), True))
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
