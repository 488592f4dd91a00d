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
          "sidecar": {...},                  # the sidecar's JSON object (RunMeta.to_json) without
                                             # its "sequences" catalogue, which is kept as
          "sequences": "[...]"               # that catalogue's JSON *text*, parsed only when a
        }                                    # query needs it (a run predicate never does)
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
- A damaged sidecar (invalid JSON, a newer format) is reported by `refresh()` (the caller warns);
  the file keeps the last good copy of it, which `aim-parquet verify --repair` can restore.

In memory each run is a `RunRecord` over the sidecar's JSON object: a run predicate reads its fields
straight from it, and `params`/`sequences`/`meta` are decoded only when first asked for, so a
fresh process answers a run predicate over 10,000 runs without building 10,000 `RunMeta`s.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import filelock

from aim_parquet.errors import AimParquetError, CorruptFileError
from aim_parquet.format.meta import RunMeta, SequenceInfo
from aim_parquet.format.paths import SIDECAR_FILENAME, RepoLayout, is_valid_run_hash
from aim_parquet.format.values import decode_json_value
from aim_parquet.storage.atomic import atomic_write
from aim_parquet.storage.lock import is_run_locked

log = logging.getLogger(__name__)

INDEX_FILENAME = "runs.json"
INDEX_LOCK_FILENAME = "runs.lock"
INDEX_FORMAT = "aim_parquet.run_index"
INDEX_FORMAT_VERSION = 2  # 2: catalogue stored as JSON text (older files are rebuilt)
LOCK_TIMEOUT_S = 0.05
SETTLE_S = 60.0  # a changed sidecar of a run without end_time triggers a write once this old
YOUNG_RUN_S = 30.0  # a run folder without sidecar this young is being created, not damaged

StatKey = tuple[int, int, int]


@dataclass(frozen=True)
class DamagedRun:
    """A run whose sidecar cannot be read; `path` names the file, `reason` says why."""

    run_hash: str
    path: str
    reason: str


class RunRecord:
    """The run-level fields of one run, read from its sidecar's JSON object on demand.

    Attribute names are RunMeta's (`hash`, `name`, `display_name`, `description`, `experiment`,
    `tags`, `archived`, `creation_time`, `end_time`, `updated_at`, `params`, `sequences`), so a
    query view reads either. `meta` is the full, validated RunMeta.
    """

    __slots__ = ("hash", "_data", "_sequences_json", "_meta", "_params", "_sequences")

    def __init__(
        self,
        run_hash: str,
        data: dict[str, Any],
        meta: RunMeta | None = None,
        *,
        sequences_json: str | None = None,
    ) -> None:
        self.hash = run_hash
        self._data = data
        self._sequences_json = sequences_json  # the catalogue, still as JSON text
        self._meta = meta
        self._params: dict[str, Any] | None = None if meta is None else meta.params
        self._sequences: tuple[SequenceInfo, ...] | None = None if meta is None else meta.sequences

    @property
    def data(self) -> dict[str, Any]:
        """The sidecar's JSON object (the catalogue parsed in on first access)."""
        if self._sequences_json is not None:
            try:
                self._data = {**self._data, "sequences": json.loads(self._sequences_json)}
            except ValueError as exc:
                raise CorruptFileError(
                    f"run index entry of run {self.hash} is damaged ({exc!r}); "
                    "run `aim-parquet verify --repair` to rebuild the index."
                ) from exc
            self._sequences_json = None
        return self._data

    @property
    def fields(self) -> dict[str, Any]:
        """The sidecar's run-level fields, without parsing the catalogue."""
        return self._data

    @property
    def meta(self) -> RunMeta:
        if self._meta is None:
            self._meta = RunMeta.from_json(self.data, f"run index entry of run {self.hash}")
        return self._meta

    @property
    def name(self) -> str | None:
        return self.fields.get("name")

    @property
    def display_name(self) -> str:
        name = self.fields.get("name")
        return name if name is not None else f"Run: {self.hash}"

    @property
    def description(self) -> str | None:
        return self.fields.get("description")

    @property
    def experiment(self) -> str:
        return self.fields.get("experiment") or "default"

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(self.fields.get("tags") or ())

    @property
    def archived(self) -> bool:
        return bool(self.fields.get("archived", False))

    @property
    def creation_time(self) -> float:
        return float(self.fields["creation_time"])

    @property
    def end_time(self) -> float | None:
        return self.fields.get("end_time")

    @property
    def updated_at(self) -> float:
        return float(self.fields.get("updated_at") or 0.0)

    @property
    def params(self) -> dict[str, Any]:
        if self._params is None:
            self._params = decode_json_value(self.fields.get("params") or {})
        return self._params

    @property
    def sequences(self) -> tuple[SequenceInfo, ...]:
        if self._sequences is None:
            try:
                items = self.data.get("sequences") or ()
                self._sequences = tuple(SequenceInfo.from_json(s) for s in items)
            except (KeyError, TypeError, ValueError) as exc:
                raise CorruptFileError(
                    f"run index entry of run {self.hash} is damaged ({exc!r}); "
                    "run `aim-parquet verify --repair` to rebuild the index."
                ) from exc
        return self._sequences


class _Entry:
    """One run in memory: the stat key of its sidecar and its record (or why it is damaged).

    `data` is what the index file stores for the run: the current sidecar JSON, or for a damaged
    run the last good copy (None if there never was one).
    """

    __slots__ = ("key", "data", "record", "damaged")

    def __init__(
        self,
        key: StatKey,
        data: dict[str, Any] | None,
        record: RunRecord | None,
        damaged: DamagedRun | None = None,
    ) -> None:
        self.key = key
        self.data = data  # without "sequences" when `record` still holds them as text
        self.record = record
        self.damaged = damaged

    def stored(self) -> dict[str, Any] | None:
        """What the index file keeps for this run (see the module doc), or None."""
        if self.data is None:
            return None
        record = self.record
        if record is not None and record._sequences_json is not None:
            sequences_json = record._sequences_json
        else:
            sequences_json = json.dumps(
                self.data.get("sequences") or [], ensure_ascii=False, separators=(",", ":")
            )
        fields = {k: v for k, v in self.data.items() if k != "sequences"}
        return {
            "mtime_ns": self.key[0],
            "size": self.key[1],
            "ino": self.key[2],
            "sidecar": fields,
            "sequences": sequences_json,
        }


class IndexSnapshot:
    """The runs of a repository as of one refresh.

    `records` are the readable runs (cheap, lazily decoded); `runs` the same as RunMetas (built
    on first access); `damaged` the runs skipped; `sidecars_read` how many sidecars this refresh
    had to open (0 when the index was current).
    """

    def __init__(
        self, records: dict[str, RunRecord], damaged: tuple[DamagedRun, ...], sidecars_read: int
    ) -> None:
        self.records = records
        self.damaged = damaged
        self.sidecars_read = sidecars_read

    @cached_property
    def runs(self) -> dict[str, RunMeta]:
        return {h: r.meta for h, r in self.records.items()}

    @cached_property
    def newest_first(self) -> list[RunRecord]:
        """Records ordered by creation time, newest first (ties by hash, for a stable order)."""
        return sorted(self.records.values(), key=lambda r: (r.creation_time, r.hash), reverse=True)


def _is_plausible(run_hash: str, data: Any) -> bool:
    """A cheap check of an index entry (a bad one makes us read the sidecar instead)."""
    return (
        isinstance(data, dict)
        and data.get("hash") == run_hash
        and isinstance(data.get("creation_time"), (int, float))
    )


class RunIndex:
    """In-memory plus on-disk index of the run sidecars of one repository (see module doc)."""

    def __init__(self, layout: RepoLayout) -> None:
        self.layout = layout
        self.path = layout.index_dir / INDEX_FILENAME
        self.lock_path = layout.index_dir / INDEX_LOCK_FILENAME
        self._entries: dict[str, _Entry] | None = None
        self._snapshot: IndexSnapshot | None = None

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
            doc = json.loads(raw)
            if doc.get("format") != INDEX_FORMAT or doc.get("format_version") != (
                INDEX_FORMAT_VERSION
            ):
                raise ValueError("unknown index format")
            entries = {}
            for run_hash, item in doc["runs"].items():
                key = (int(item["mtime_ns"]), int(item["size"]), int(item["ino"]))
                data = item["sidecar"]
                seq_text = item["sequences"]
                plausible = _is_plausible(run_hash, data) and isinstance(seq_text, str)
                record = RunRecord(run_hash, data, sequences_json=seq_text) if plausible else None
                entries[run_hash] = _Entry(key, data if record else None, record)
            return entries, True
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("aim_parquet: run index %s is damaged (%s); rebuilding it", self.path, exc)
            return {}, False

    def _read_sidecar(self, run_hash: str, key: StatKey) -> _Entry:
        path = self.layout.sidecar(run_hash)
        try:
            raw = path.read_bytes()
            data = json.loads(raw.decode("utf-8", "surrogatepass"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            meta = RunMeta.from_json(data, f"sidecar {path}")
            return _Entry(key, data, RunRecord(run_hash, data, meta))
        except (UnicodeDecodeError, ValueError, AimParquetError) as exc:
            reason = str(exc) if isinstance(exc, AimParquetError) else f"invalid JSON ({exc})"
            return _Entry(key, None, None, DamagedRun(run_hash, str(path), reason))

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

    def is_damaged(self, run_hash: str) -> bool:
        """Whether a run folder without sidecar is damaged (False: it is being created)."""
        return self._missing_sidecar(run_hash) is not None

    def refresh(self) -> IndexSnapshot:
        """Bring the index up to date with the sidecars on disk and return every run."""
        if self._entries is None:
            old, usable = self._load_file()
            needs_write = not usable
        else:
            old, needs_write = self._entries, False
        runs_dir = os.fspath(self.layout.runs_dir)
        try:
            names = os.listdir(runs_dir)
        except FileNotFoundError:
            names = []
        entries: dict[str, _Entry] = {}
        records: dict[str, RunRecord] = {}
        damaged: list[DamagedRun] = []
        read = 0
        settled_ns = time.time_ns() - int(SETTLE_S * 1e9)
        stat = os.stat
        for run_hash in names:
            if not is_valid_run_hash(run_hash):
                continue
            try:
                st = stat(f"{runs_dir}/{run_hash}/{SIDECAR_FILENAME}")
            except FileNotFoundError:
                missing = self._missing_sidecar(run_hash)
                if missing is not None:
                    damaged.append(missing)
                continue
            key = (st.st_mtime_ns, st.st_size, st.st_ino)
            entry = old.get(run_hash)
            if entry is None or entry.key != key or entry.record is None:
                previous = entry
                entry = self._read_sidecar(run_hash, key)
                read += 1
                if entry.data is not None:
                    if entry.data.get("end_time") is not None or st.st_mtime_ns < settled_ns:
                        needs_write = True
                elif previous is not None:
                    entry.data = previous.data  # keep the last good copy for repairs
            entries[run_hash] = entry
            if entry.damaged is not None:
                damaged.append(entry.damaged)
            elif entry.record is not None:
                records[run_hash] = entry.record
        removed = any(h not in entries for h in old)
        if removed:
            needs_write = True
        unchanged = not read and not removed and not damaged and old is self._entries
        if unchanged and self._snapshot is not None:
            return self._snapshot  # nothing changed: keep the cached order and RunMetas
        self._entries = entries
        if needs_write and (records or self.path.exists()):
            self._write(entries)
        self._snapshot = IndexSnapshot(records, tuple(damaged), read)
        return self._snapshot

    # -- writing ---------------------------------------------------------------------------
    def _write(self, entries: dict[str, _Entry]) -> None:
        runs = {h: stored for h, e in entries.items() if (stored := e.stored()) is not None}
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
        self._snapshot = None

    def remove_file(self) -> None:
        """Delete the index file (it is rebuilt on the next refresh)."""
        self.path.unlink(missing_ok=True)
        self.invalidate()
