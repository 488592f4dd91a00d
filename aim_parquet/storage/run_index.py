"""The repo-level run index: `.aim/index/runs.json`, a cache of every run's sidecar.

A query's run predicate needs only run-level fields (properties, params and the sequence
catalogue summaries), all of which live in each run's sidecar `runs/<hash>/run.json`. Opening
10,000 sidecars costs about a second, so the index keeps a copy of each one, keyed by the stat of
the sidecar it was read from::

    {
      "format": "aim_parquet.run_index",
      "format_version": 1,
      "runs": {
        "<run hash>": {
          "mtime_ns": 1718000000123456789,   # st_mtime_ns of runs/<hash>/run.json when read
          "size": 1234,                      # st_size of that file
          "ino": 5678,                       # st_ino (sidecars are replaced, never rewritten)
          "sidecar": {...}                   # the sidecar's JSON object, verbatim (RunMeta.to_json)
        }
      }
    }

The index is only a cache, never a source of truth, and needs no re-index step:

- `RunIndex.refresh()` lists `runs/` and `stat()`s every sidecar (cheap). An entry whose
  (mtime_ns, size, ino) still matches is used as is; a new or changed sidecar is read again; an
  entry whose run folder is gone is dropped. So a run is visible the moment its sidecar exists and
  a deleted run vanishes at once.
- The file is rewritten atomically (`storage.atomic.atomic_write`) under a `filelock.FileLock` on
  `.aim/index/runs.lock` taken with a short timeout; if another process holds it, this process keeps
  its fresh in-memory copy and skips the write. Changes of runs still being tracked (no `end_time`
  and a sidecar younger than `SETTLE_S`) do not trigger a write by themselves, so a live run that
  rewrites its sidecar every second does not make every query rewrite the index.
- A missing, unreadable or corrupt index file is rebuilt from the sidecars.
- A damaged sidecar (invalid JSON, a newer format) is reported by `refresh()` (the caller warns)
  and never stored in the file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import filelock

from aim_parquet.errors import AimParquetError
from aim_parquet.format.meta import RunMeta
from aim_parquet.format.paths import SIDECAR_FILENAME, RepoLayout
from aim_parquet.storage.atomic import atomic_write
from aim_parquet.storage.lock import is_run_locked
from aim_parquet.storage.run_reader import list_run_hashes

log = logging.getLogger(__name__)

INDEX_FILENAME = "runs.json"
INDEX_LOCK_FILENAME = "runs.lock"
INDEX_FORMAT = "aim_parquet.run_index"
INDEX_FORMAT_VERSION = 1
LOCK_TIMEOUT_S = 0.05
SETTLE_S = 60.0  # a changed sidecar of a run without end_time triggers a write once this old
YOUNG_RUN_S = 30.0  # a run folder without sidecar this young is being created, not damaged


@dataclass(frozen=True)
class DamagedRun:
    """A run whose sidecar cannot be read; `path` names the file, `reason` says why."""

    run_hash: str
    path: str
    reason: str


class _Entry:
    """One run in memory: the stat key of its sidecar, its JSON and the decoded RunMeta."""

    __slots__ = ("key", "data", "meta", "damaged")

    def __init__(
        self,
        key: tuple[int, int, int],
        data: dict[str, Any] | None,
        damaged: DamagedRun | None = None,
    ) -> None:
        self.key = key
        self.data = data
        self.meta: RunMeta | None = None
        self.damaged = damaged


@dataclass(frozen=True)
class IndexSnapshot:
    """The runs of a repository as of one refresh: readable runs and damaged ones."""

    runs: dict[str, RunMeta]
    damaged: tuple[DamagedRun, ...]
    sidecars_read: int  # how many sidecars this refresh had to open (0 when all were cached)


class RunIndex:
    """In-memory plus on-disk index of the run sidecars of one repository (see module doc)."""

    def __init__(self, layout: RepoLayout) -> None:
        self.layout = layout
        self.path = layout.index_dir / INDEX_FILENAME
        self.lock_path = layout.index_dir / INDEX_LOCK_FILENAME
        self._entries: dict[str, _Entry] | None = None

    # -- reading ---------------------------------------------------------------------------
    def _load_file(self) -> tuple[dict[str, _Entry], bool]:
        """Entries of the index file and whether it was usable (if not, it is rebuilt)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}, False
        except OSError as exc:
            log.warning("aim_parquet: cannot read run index %s (%s); rebuilding it", self.path, exc)
            return {}, False
        try:
            data = json.loads(raw)
            if data.get("format") != INDEX_FORMAT or data.get("format_version") != (
                INDEX_FORMAT_VERSION
            ):
                raise ValueError("unknown index format")
            entries = {}
            for run_hash, item in data["runs"].items():
                key = (int(item["mtime_ns"]), int(item["size"]), int(item["ino"]))
                sidecar = item["sidecar"]
                if not isinstance(sidecar, dict):
                    raise ValueError("sidecar is not an object")
                entries[run_hash] = _Entry(key, sidecar)
            return entries, True
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("aim_parquet: run index %s is damaged (%s); rebuilding it", self.path, exc)
            return {}, False

    def _read_sidecar(self, run_hash: str, key: tuple[int, int, int]) -> _Entry:
        path = self.layout.sidecar(run_hash)
        try:
            raw = path.read_bytes()
            data = json.loads(raw.decode("utf-8", "surrogatepass"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            entry = _Entry(key, data)
            entry.meta = RunMeta.from_json(data, f"sidecar {path}")
            return entry
        except (UnicodeDecodeError, ValueError, AimParquetError) as exc:
            reason = str(exc) if isinstance(exc, AimParquetError) else f"invalid JSON ({exc})"
            return _Entry(key, None, DamagedRun(run_hash, str(path), reason))

    def _missing_sidecar(self, run_hash: str) -> DamagedRun | None:
        """A run folder without sidecar: being created (None) or damaged."""
        run_dir = self.layout.run_dir(run_hash)
        try:
            age = time.time() - run_dir.stat().st_mtime
        except FileNotFoundError:
            return None  # deleted meanwhile
        if age < YOUNG_RUN_S or is_run_locked(self.layout.lock_file(run_hash)) is not None:
            return None
        path = run_dir / SIDECAR_FILENAME
        return DamagedRun(run_hash, str(path), "the sidecar is missing")

    def refresh(self) -> IndexSnapshot:
        """Bring the index up to date with the sidecars on disk and return every run."""
        if self._entries is None:
            old, usable = self._load_file()
            needs_write = not usable
        else:
            old, needs_write = self._entries, False
        entries: dict[str, _Entry] = {}
        damaged: list[DamagedRun] = []
        runs: dict[str, RunMeta] = {}
        read = 0
        now_ns = time.time_ns()
        runs_dir = self.layout.runs_dir
        for run_hash in list_run_hashes(self.layout):
            try:
                st = os.stat(runs_dir / run_hash / SIDECAR_FILENAME)
            except FileNotFoundError:
                missing = self._missing_sidecar(run_hash)
                if missing is not None:
                    damaged.append(missing)
                continue
            key = (st.st_mtime_ns, st.st_size, st.st_ino)
            entry = old.get(run_hash)
            if entry is None or entry.key != key:
                entry = self._read_sidecar(run_hash, key)
                read += 1
                if entry.damaged is None and (
                    entry.data is not None
                    and (
                        entry.data.get("end_time") is not None
                        or now_ns - st.st_mtime_ns > SETTLE_S * 1e9
                    )
                ):
                    needs_write = True
            if entry.damaged is not None:
                damaged.append(entry.damaged)
                entries[run_hash] = entry
                continue
            meta = entry.meta
            if meta is None:
                try:
                    meta = entry.meta = RunMeta.from_json(entry.data or {}, f"indexed {run_hash}")
                except AimParquetError:  # an index entry we cannot decode: read the sidecar
                    entry = self._read_sidecar(run_hash, key)
                    read += 1
                    needs_write = True
                    if entry.damaged is not None:
                        damaged.append(entry.damaged)
                        entries[run_hash] = entry
                        continue
                    assert entry.meta is not None
                    meta = entry.meta
            entries[run_hash] = entry
            runs[run_hash] = meta
        if any(h not in entries for h in old):
            needs_write = True
        self._entries = entries
        if needs_write and (runs or self.path.exists()):
            self._write(entries)
        return IndexSnapshot(runs, tuple(damaged), read)

    # -- writing ---------------------------------------------------------------------------
    def _write(self, entries: dict[str, _Entry]) -> None:
        runs = {
            h: {"mtime_ns": e.key[0], "size": e.key[1], "ino": e.key[2], "sidecar": e.data}
            for h, e in entries.items()
            if e.damaged is None and e.data is not None
        }
        doc = {"format": INDEX_FORMAT, "format_version": INDEX_FORMAT_VERSION, "runs": runs}
        try:
            self.layout.index_dir.mkdir(parents=True, exist_ok=True)
            lock = filelock.FileLock(self.lock_path, timeout=LOCK_TIMEOUT_S)
            with lock:
                data = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
                atomic_write(self.path, data.encode("utf-8", "surrogatepass"), durable=False)
        except filelock.Timeout:
            log.debug("aim_parquet: run index %s is busy; not rewriting it", self.path)
        except OSError as exc:  # read-only repository, disk full: the index is only a cache
            log.debug("aim_parquet: cannot write run index %s (%s)", self.path, exc)

    def invalidate(self) -> None:
        """Forget the in-memory copy (the next refresh starts from the index file)."""
        self._entries = None

    def remove_file(self) -> None:
        """Delete the index file (it is rebuilt on the next refresh)."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._entries = None
