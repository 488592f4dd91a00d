"""The repo-level run index: `.aim/index/runs.arrow`, a cache of every run's sidecar.

A query's run predicate needs only run-level fields (properties and params), and a sequence
query only the sequence catalogue; all of it lives in each run's sidecar `runs/<hash>/run.json`.
Opening 10,000 sidecars costs about a second, so the index keeps a copy of each one, keyed by the
stat of the sidecar it was read from, in one Arrow IPC file with a row per run
(`storage.index.index_file` has its layout). In memory the entries are the file's columns
(`storage.index.index_table`: no Python object per run) plus the entries this process read from
sidecars; a snapshot makes a run's RunRecord only when a query looks at that run
(`storage.index.run_records` decodes only what the query reads).

The index is only a cache, never a source of truth, and needs no re-index step:

- `RunIndex.refresh()` lists `runs/` and `stat()`s every sidecar (one `stat` per run, relative to an
  open `runs/` folder; `storage.index.sidecar_stats`). An entry whose (mtime_ns, size, ino) still
  matches (compared column-wise, with numpy) is used as is; a new or changed sidecar is read again;
  an entry whose run folder is gone is dropped. So a run is visible the moment its sidecar exists
  and a deleted run vanishes at once.
- A later `refresh()` of the same `RunIndex` skips the per-run `stat`s when neither the change
  marker `.aim/index/changed` (`storage.base.repo_changes`: every sidecar write, run creation,
  delete, copy and move sets its mtime to the exact time in ns) nor `runs/` (mtime, link count,
  inode) changed since the last full pass, `runs/` was last modified more than `RACY_S` before that
  pass (a coarse filesystem clock could hide a second change in the same tick), and the last full
  pass is less than `FULL_CHECK_S` old (so a sidecar edited by a tool that does not touch the marker
  is seen within that time).
- The file is rewritten atomically (`storage.base.atomic.atomic_write`) under the `flock` of
  `.aim/index/runs.lock`, taken without waiting (`storage.base.safe_fs.try_flock`: no link
  followed); if another process holds it, this process keeps its fresh in-memory copy, skips the
  write and tries again on its next full pass. Changes of runs still being tracked (no `end_time`
  and a sidecar younger than `SETTLE_S`) do not trigger a write by themselves, so a live run that
  rewrites its sidecar every second does not make every query rewrite the index.
- A process keeps the in-memory index of its most recent repositories (`RunIndex.shared`, used by
  every `Repo`): a `Repo(path)` made again starts from it, checked as above, instead of decoding the
  file again; `Repo.close()` forgets it. Its threads take turns to refresh it.
- A missing, unreadable or corrupt index file is rebuilt from the sidecars, or from the format 4
  `runs.jsonl` where it is still there (`storage.index.legacy_index`: an entry is taken only where
  its stat key matches), deleted once the new file is written; a sound format 5 file is upgraded.
  Otherwise the rows closing writers left in `.aim/index/closed.jsonl` (`storage.index.
  closed_journal`) are taken where their stat key matches, and only the other sidecars are read (a
  closed run's straight into the file's cells: `storage.index.sidecar_cells`).
- A damaged sidecar (invalid JSON, a newer format, a link or FIFO, nested too deeply) is reported by
  `refresh()` (the caller warns); the file keeps the last good copy of it, which `aim-parquet verify
  --repair` can restore. A sidecar (or run folder) this process may not read is reported as
  permission denied, never as damage. A run folder that is a symbolic link is not a run
  (`aim-parquet verify` names it).
- The catalogue of a run without `end_time` whose writer is gone (its lock is not held) is scanned
  from its segments (`storage.online.catalogue_scan`: only what was written after the sidecar's last
  write is read) and stored marked `rebuilt`, so later processes do not scan it again. A run whose
  writer was alive when its entry was made is re-checked on every full pass (a full pass runs at
  least every `FULL_CHECK_S`), so a process keeping a `Repo` open sees a writer's death within that
  time; until then it shows the live writer's catalogue, one flush behind.
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from typing import ClassVar

import numpy as np
import pyarrow as pa

from aim_parquet.errors import CorruptFileError
from aim_parquet.format.meta import RunMeta
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage.base.columns import int64_array
from aim_parquet.storage.base.fork_safe import ForkSafeLock
from aim_parquet.storage.base.lock import run_lock_holder
from aim_parquet.storage.base.repo_changes import MarkerKey, index_link, marker_key
from aim_parquet.storage.index import sidecar_entries
from aim_parquet.storage.index.closed_journal import MIN_NEW_RUNS, NEVER, journal_rows
from aim_parquet.storage.index.closed_journal import Entry as JournalEntry
from aim_parquet.storage.index.index_entries import (
    DamagedRun,
    IndexEntry,
    IndexSnapshot,
    RecordSequence,
    read_index_file,
)
from aim_parquet.storage.index.index_file import StatKey, decode_table, key_of, stat_key
from aim_parquet.storage.index.index_store import index_bytes, store_index
from aim_parquet.storage.index.index_table import (
    IndexTable,
    Positions,
    index_file_problem,
    read_table_file,
)
from aim_parquet.storage.index.legacy_index import read_legacy_index
from aim_parquet.storage.index.run_records import CatalogueEntry, RunRecord
from aim_parquet.storage.index.sidecar_cells import sidecar_rows
from aim_parquet.storage.index.sidecar_entries import YOUNG_RUN_S
from aim_parquet.storage.index.sidecar_stats import prefetched, stat_sidecars, unchanged_rows
from aim_parquet.storage.online.writer_parts import parts_key
from aim_parquet.system.gc_pause import gc_paused

__all__ = [
    "CatalogueEntry", "DamagedRun", "IndexSnapshot", "RecordSequence", "RunIndex", "RunRecord",
    "YOUNG_RUN_S", "gc_paused", "index_file_problem", "read_index_file",
]  # fmt: skip

log = logging.getLogger(__name__)

SETTLE_S = 60.0  # a changed sidecar of a run without end_time triggers a write once this old
FULL_CHECK_S = 5.0  # a refresh stats every sidecar at least this often
RACY_S = 1.0  # a runs/ folder modified this recently may change again within its mtime tick


SHARED_INDEXES = 4  # repositories whose in-memory index a process keeps for `RunIndex.shared`


class RunIndex:
    """In-memory plus on-disk index of the run sidecars of one repository (see module doc)."""

    _shared: ClassVar[OrderedDict[tuple[str, int, int], RunIndex]] = OrderedDict()
    _shared_lock: ClassVar[ForkSafeLock] = ForkSafeLock()  # (free again in a forked child)

    @classmethod
    def shared(cls, layout: RepoLayout) -> RunIndex:
        """The process's index of the repository at `layout` (module doc; the `SHARED_INDEXES`
        most recent kept), keyed by its path and its `.aim` folder's identity."""
        try:
            st = os.stat(layout.aim_dir)
        except OSError:
            return cls(layout)
        key = (str(layout.aim_dir), st.st_dev, st.st_ino)
        with cls._shared_lock:
            index = cls._shared.get(key)
            if index is None:
                index = cls._shared[key] = cls(layout)
                while len(cls._shared) > SHARED_INDEXES:
                    cls._shared.popitem(last=False)
            else:
                cls._shared.move_to_end(key)
            return index

    def __init__(self, layout: RepoLayout) -> None:
        self.layout = layout
        self.path = layout.index_file
        self.lock_path = layout.index_lock
        # the entries: rows `_rows` of `_table` (the index file's columns), then `_overlay`
        # (entries read from sidecars by this process); `_table` None: not loaded yet
        self._table: IndexTable | None = None
        self._rows: Positions = np.zeros(0, dtype=np.intp)
        self._overlay: dict[str, IndexEntry] = {}
        self._snapshot: IndexSnapshot | None = None
        self._quick: tuple[MarkerKey, tuple[int, int, int]] | None = None  # at the last full pass
        self._full_at = 0.0  # time.monotonic() of the last full pass
        self._needs_write = False  # an entry was replaced by `reread`
        self._taken: dict[str, JournalEntry] = {}  # rows of the writers' journal not yet written
        self._order: list[str] = []  # the runs listed, when `_taken`
        self._no_journal = False  # (never expected: the journal's rows did not make a table)
        self._direct = sidecar_rows  # (new closed runs' rows straight from their sidecars)
        self._state_lock = ForkSafeLock(reentrant=True)  # one pass at a time (threads share it)

    # -- reading ---------------------------------------------------------------------------
    def _load_file(self) -> tuple[IndexTable, bool]:
        """The index file's table and whether it was usable (if not, it is rebuilt)."""
        if index_link(self.layout) is not None:
            return IndexTable.empty(), False  # never read through a link (nor written: `_write`)
        try:
            return read_table_file(self.layout), True
        except FileNotFoundError:
            return IndexTable.empty(), False
        except (ValueError, KeyError, TypeError, RecursionError, pa.ArrowException) as exc:
            log.warning("aim_parquet: run index %s is damaged (%s); rebuilding it", self.path, exc)
        except OSError as exc:
            log.warning("aim_parquet: cannot read run index %s (%s); rebuilding it", self.path, exc)
        return IndexTable.empty(), False

    def _read_sidecar(self, run_hash: str, key: StatKey) -> IndexEntry:
        return sidecar_entries.read_sidecar_entry(self.layout, run_hash, key)

    def is_damaged(self, run_hash: str) -> bool:
        """Whether a run folder without sidecar is damaged (False: it is being created)."""
        return sidecar_entries.missing_sidecar(self.layout, run_hash) is not None

    def _quick_key(self) -> tuple[tuple[MarkerKey, tuple[int, int, int]] | None, bool]:
        """(change marker, `runs/` stat) now, and whether `runs/` changed too recently to trust
        its mtime; None when `runs/` is missing."""
        try:
            st = os.stat(os.fspath(self.layout.runs_dir))
        except OSError:
            return None, False
        is_racy = time.time_ns() - st.st_mtime_ns < RACY_S * 1e9
        return (marker_key(self.layout), (st.st_mtime_ns, st.st_nlink, st.st_ino)), is_racy

    def refresh(self) -> IndexSnapshot:
        """Bring the index up to date with the sidecars on disk and return every run (threads
        take turns: one that waited checks again, and usually gets the pass it waited for)."""
        with self._state_lock:
            quick, is_racy = self._quick_key()
            if (
                self._snapshot is not None
                and quick is not None
                and quick == self._quick
                and time.monotonic() - self._full_at < FULL_CHECK_S
            ):
                return self._snapshot  # nothing was noted since the last full pass
            self._quick = None if is_racy else quick
            self._full_at = time.monotonic()
            return self._full_refresh()

    def _full_refresh(self) -> IndexSnapshot:
        with gc_paused():  # (it allocates an object or more per run, and keeps them all)
            return self._full_refresh_unpaused()

    def _full_refresh_unpaused(self) -> IndexSnapshot:
        if self._table is None:
            table, usable = self._load_file()
            current = np.ones(table.size, dtype=bool)
            # an index of format 4 and before seeds the entries (checked like its own)
            overlay: dict[str, IndexEntry] = {} if usable else read_legacy_index(self.layout)
            needs_write = not usable or table.upgraded  # (a format 5 file is written again)
            least = NEVER if overlay else MIN_NEW_RUNS if usable else 1  # (the writers' rows)
        else:
            table, overlay, needs_write = self._table, self._overlay, self._needs_write
            current = np.zeros(table.size, dtype=bool)
            current[self._rows] = True
            least = MIN_NEW_RUNS
        previous = int(current.sum()) + len(overlay)
        self._needs_write = False
        runs_dir = os.fspath(self.layout.runs_dir)
        try:
            with os.scandir(runs_dir) as listing:  # a run folder that is a link is not a run
                names = [e.name for e in listing if not e.is_symlink()]
            dir_fd = os.open(runs_dir, os.O_RDONLY)
        except FileNotFoundError:
            names, dir_fd = [], -1
        damaged: list[DamagedRun] = []
        try:
            found = stat_sidecars(self.layout, names, table, overlay, dir_fd, damaged)
            listed, listed_array, listed_rows, stats = found
        finally:
            if dir_fd >= 0:
                os.close(dir_fd)
        # rows whose sidecar is the one stored, compared column-wise
        pos, known, same = unchanged_rows(
            self.layout, listed_array, listed_rows, stats, table, current, overlay
        )
        entries: dict[str, IndexEntry] = {}
        read, kept_previous = 0, int(same.sum())
        settled_ns = time.time_ns() - int(SETTLE_S * 1e9)
        todo = np.flatnonzero(~same).tolist()
        new = [listed[i] for i in todo if not known[i] and listed[i] not in overlay]
        least = NEVER if self._no_journal else least
        self._taken = taken = journal_rows(self.layout, listed, stats, todo, least, new)
        if taken:  # (rows closing writers left: these runs are not read)
            todo = [i for i in todo if listed[i] not in taken]
            new, self._order, needs_write = [h for h in new if h not in taken], listed, True
        with prefetched(self.layout, new):  # (threads read them ahead from a cold disk)
            if len(new) + len(taken) >= least:  # (the others' rows straight from sidecars)
                taken.update(direct := self._direct(self.layout, listed, todo, new, stats))
                todo, read = [i for i in todo if listed[i] not in direct], len(direct)
                self._order, needs_write = listed, needs_write or bool(direct)
            for i in todo:
                run_hash = listed[i]
                entry = overlay.get(run_hash)
                if entry is None and known[i]:
                    entry = IndexEntry(table.key(int(pos[i])), table.record(int(pos[i])))
                if entry is not None:
                    kept_previous += 1
                key = key_of(int(stats[0][i]), int(stats[1][i]), int(stats[2][i]), None, False)
                if entry is not None and "+" in entry.key:  # several writers: their parts too
                    key = f"{key}+{parts_key(self.layout, run_hash)}"
                if (
                    entry is None
                    or entry.key != key
                    or entry.record is None
                    or (entry.is_open and run_lock_holder(self.layout, run_hash) is None)
                ):  # new, changed, damaged, or its writer died since it was read
                    old = entry
                    entry = self._read_sidecar(run_hash, key)
                    read += 1
                    if (record := entry.record) is not None:
                        if record.is_rebuilt or record.has_end_time or stats[0][i] < settled_ns:
                            needs_write = True
                    elif old is not None:
                        entry.kept = old.stored_record  # the last good copy, for repairs
                entries[run_hash] = entry
                if entry.damaged is not None:
                    damaged.append(entry.damaged)
        removed = kept_previous < previous
        if removed:
            needs_write = True
        rows = pos[same]
        unchanged = not (read or removed or damaged or needs_write) and self._table is table
        if unchanged and self._snapshot is not None and not entries.keys() - overlay.keys():
            return self._snapshot  # nothing changed: keep the cached order and RunMetas
        self._table, self._rows, self._overlay = table, rows, entries
        if needs_write and (len(rows) or entries or taken or self.path.exists()):
            written = self._write()
            if written is not None:
                self._adopt(written)
        if self._taken and not self._adopt(self._encode()):  # (the file was not written)
            self.invalidate()  # (never expected) the journal's rows are read from sidecars
            self._no_journal = True
            return self._full_refresh_unpaused()
        records = {h: e.record for h, e in self._overlay.items() if e.record is not None}
        self._snapshot = IndexSnapshot(
            records, tuple(damaged), read, table=self._table, rows=self._rows, repair=self.reread
        )
        return self._snapshot

    # -- writing ---------------------------------------------------------------------------
    def _adopt(self, data: bytes) -> bool:
        """Take the index file just written (`data`) as the entries, as a later process would:
        its columns instead of an object tree per run read from a sidecar (a fresh process's
        exit spent some 0.4 s per 10,000 runs freeing those). Damaged entries stay."""
        try:
            table = IndexTable(decode_table(data))
        except (ValueError, KeyError, TypeError, pa.ArrowException) as exc:  # (never expected)
            log.debug("aim_parquet: run index %s not adopted (%s)", self.path, exc)
            return False
        self._table = table
        self._rows = np.flatnonzero(~table.kept).astype(np.intp)
        self._overlay = {h: e for h, e in self._overlay.items() if e.record is None}
        self._taken = {}
        return True

    def _encode(self) -> bytes:
        """The index file's bytes of the entries (and of the rows taken from the journal)."""
        assert self._table is not None
        base = self._table.table.take(int64_array(self._rows))
        return index_bytes(self._overlay, base, self._taken, self._order)

    def _write(self) -> bytes | None:
        """Rewrite the index file from the entries; its bytes when it was written."""
        data = self._encode()
        stored = store_index(self.layout, data)
        if stored is False:
            self._needs_write, self._quick = True, None  # retried on the next refresh
        return data if stored else None

    def stat_keys(self) -> dict[str, StatKey]:
        """Every readable run's stat key as of the last `refresh()` (`index_file.StatKey`)."""
        out: dict[str, StatKey] = {}
        with self._state_lock:
            if self._table is not None:
                table = self._table
                out = {table.hashes[r]: table.key(r) for r in self._rows.tolist()}
            out.update((h, e.key) for h, e in self._overlay.items() if e.record is not None)
        return out

    def metas(self) -> tuple[list[RunMeta], list[DamagedRun]]:
        """Every readable run's full RunMeta, and the damaged runs. An entry that fails to decode
        is read again from its sidecar (the index is only a cache); a run whose sidecar fails
        too is one more damaged run, never an error of the whole listing."""
        snapshot = self.refresh()
        metas: list[RunMeta] = []
        damaged = list(snapshot.damaged)
        for run_hash, record in snapshot.records.items():
            try:
                metas.append(record.meta)
                continue
            except CorruptFileError:
                fresh = self.reread(run_hash)
            try:
                if fresh is None:
                    raise CorruptFileError("the sidecar cannot be read")
                metas.append(fresh.meta)
            except CorruptFileError as exc:
                path = str(self.layout.sidecar(run_hash))
                damaged.append(DamagedRun(run_hash, path, str(exc)))
        return metas, damaged

    def reread(self, run_hash: str) -> RunRecord | None:
        """Read one run's sidecar again (its entry was found damaged while a query decoded it)
        and return the fresh record, None when it cannot be read. The next refresh rewrites."""
        try:
            st = os.stat(self.layout.sidecar(run_hash), follow_symlinks=False)
        except OSError:
            return None
        entry = self._read_sidecar(run_hash, stat_key(st))
        with self._state_lock:
            if self._table is not None:
                self._overlay[run_hash] = entry
                row = self._table.where.get(run_hash)
                if row is not None:
                    self._rows = self._rows[self._rows != row]
            self._snapshot = None
            self._quick = None
            self._needs_write = True
        return entry.record

    def invalidate(self) -> None:
        """Forget the in-memory copy (the next refresh starts from the index file)."""
        with self._state_lock:
            self._table = None
            self._rows = np.zeros(0, dtype=np.intp)
            self._overlay = {}
            self._snapshot = None
            self._quick = None

    def remove_file(self) -> None:
        """Delete the index file (it is rebuilt on the next refresh)."""
        if index_link(self.layout) is None:
            self.path.unlink(missing_ok=True)
        self.invalidate()
