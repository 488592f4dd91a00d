"""The repo-level run index: `.aim/index/runs.jsonl`, a cache of every run's sidecar.

A query's run predicate needs only run-level fields (properties and params), and a sequence
query only the sequence catalogue; all of it lives in each run's sidecar `runs/<hash>/run.json`.
Opening 10,000 sidecars costs about a second, so the index keeps a copy of each one, keyed by the
stat of the sidecar it was read from. It is a JSON Lines file:

- line 1, the header: `{"format": "aim_parquet.run_index", "format_version": 3, "runs": {...}}`
  with, per run hash, `stat`: `[st_mtime_ns, st_size, st_ino]` of `runs/<hash>/run.json` when
  it was read, `sidecar`: the sidecar's JSON object without `sequences` (the catalogue),
  `format` and `hash` (the key) and without its null fields, and `catalogue`:
  `[offset, keys_length, stats_length]`;
- then two lines per run, at `offset` bytes after the header's newline: the catalogue's keys
  `[[seq_id, name, kind, context, start, end], ...]` (`keys_length` bytes) and, after its
  newline, the matching stats `[[count, first_step, last_step, first, last, min, max], ...]`
  (`stats_length` bytes), values encoded as in the sidecar; `start`/`end` locate each stats row
  within its line.

Only the header is parsed when the file is loaded; a run's keys are parsed when a sequence query
first looks at that run, and a sequence's stats row only when that sequence matches (float
parsing is most of the cost of JSON). So a run predicate never parses a catalogue, and `metric.name ==
'loss'` never parses the summaries of the other metrics.

The index is only a cache, never a source of truth, and needs no re-index step:

- `RunIndex.refresh()` lists `runs/` and `stat()`s every sidecar (one `stat` per run, relative to
  an open `runs/` folder). An entry whose (mtime_ns, size, ino) still matches is used as is; a new
  or changed sidecar is read again; an entry whose run folder is gone is dropped. So a run is
  visible the moment its sidecar exists and a deleted run vanishes at once.
- A later `refresh()` of the same `RunIndex` skips the per-run `stat`s when neither the change
  marker `.aim/index/changed` (`storage.repo_changes`: every sidecar write, run creation, delete,
  copy and move sets its mtime to the exact time in ns) nor `runs/` (mtime, link count, inode)
  changed since the last full pass, `runs/` was last modified more than `RACY_S` before that
  pass (a coarse filesystem clock could hide a second change in the same tick), and the last full
  pass is less than `FULL_CHECK_S` old (so a sidecar edited by a tool that does not touch the
  marker is seen within that time).
- The file is rewritten atomically (`storage.atomic.atomic_write`) under a `filelock.FileLock` on
  `.aim/index/runs.lock` taken with a short timeout; if another process holds it, this process keeps
  its fresh in-memory copy and skips the write. Changes of runs still being tracked (no `end_time`
  and a sidecar younger than `SETTLE_S`) do not trigger a write by themselves, so a live run that
  rewrites its sidecar every second does not make every query rewrite the index.
- A missing, unreadable or corrupt index file is rebuilt from the sidecars; the version-2 file
  `runs.json` of earlier releases is removed when the new one is written.
- A damaged sidecar (invalid JSON, a newer format) is reported by `refresh()` (the caller warns);
  the file keeps the last good copy of it, which `aim-parquet verify --repair` can restore.

In memory each run is a `RunRecord` over the sidecar's run-level fields: a run predicate reads
them straight from the JSON object, and `params`/the catalogue/`meta` are decoded only when first
asked for, so a fresh process answers a run predicate over 10,000 runs without building 10,000
`RunMeta`s.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import filelock

from aim_parquet.errors import AimParquetError, CorruptFileError
from aim_parquet.format.meta import FORMAT_NAME, RunMeta, SequenceInfo
from aim_parquet.format.paths import SIDECAR_FILENAME, RepoLayout, is_valid_run_hash
from aim_parquet.format.schema import METRIC_KINDS
from aim_parquet.format.values import TAG, decode_json_value
from aim_parquet.storage.atomic import atomic_write
from aim_parquet.storage.lock import is_run_locked
from aim_parquet.storage.repo_changes import MarkerKey, marker_key

log = logging.getLogger(__name__)

INDEX_FILENAME = "runs.jsonl"
LEGACY_INDEX_FILENAMES = ("runs.json",)  # format 2, replaced by runs.jsonl
INDEX_LOCK_FILENAME = "runs.lock"
INDEX_FORMAT = "aim_parquet.run_index"
INDEX_FORMAT_VERSION = 3  # 3: JSON Lines, catalogue keys and stats parsed apart
LOCK_TIMEOUT_S = 0.05
SETTLE_S = 60.0  # a changed sidecar of a run without end_time triggers a write once this old
FULL_CHECK_S = 5.0  # a refresh stats every sidecar at least this often
RACY_S = 1.0  # a runs/ folder modified this recently may change again within its mtime tick
YOUNG_RUN_S = 30.0  # a run folder without sidecar this young is being created, not damaged

StatKey = tuple[int, int, int]


@dataclass(frozen=True)
class DamagedRun:
    """A run whose sidecar cannot be read; `path` names the file, `reason` says why."""

    run_hash: str
    path: str
    reason: str


class CatalogueEntry:
    """One catalogue entry of a RunRecord, as a query sees it: `seq_id`, `name`, `kind`,
    `context` and `is_metric` at once; any other SequenceInfo field (`count`, `last`, ...) and
    `info` decode the run's stats on first use."""

    __slots__ = ("record", "position", "seq_id", "name", "kind", "context")

    def __init__(self, record: RunRecord, position: int, key: list[Any]) -> None:
        self.record = record
        self.position = position
        self.seq_id, self.name, self.kind, self.context = key[0], key[1], key[2], key[3]

    @property
    def is_metric(self) -> bool:
        return self.kind in METRIC_KINDS

    @property
    def info(self) -> SequenceInfo:
        return self.record.sequence_info(self.position)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.info, name)


def _damaged_entry(run_hash: str, exc: Exception) -> CorruptFileError:
    return CorruptFileError(
        f"run index entry of run {run_hash} is damaged ({exc!r}); "
        "run `aim-parquet verify --repair` to rebuild the index."
    )


class RunRecord:
    """The run-level fields of one run, read from its sidecar's JSON object on demand.

    Attribute names are RunMeta's (`hash`, `name`, `display_name`, `description`, `experiment`,
    `tags`, `archived`, `creation_time`, `end_time`, `updated_at`, `params`, `sequences`), so a
    query view reads either. `meta` is the full, validated RunMeta. The catalogue comes either
    from the sidecar's JSON (`items`) or from the index file (`source`: the file's bytes and the
    spans of this run's key and stats lines), parsed when first needed.
    """

    __slots__ = (
        "hash",
        "_data",
        "_items",
        "_source",
        "_keys",
        "_stats",
        "_infos",
        "_meta",
        "_params",
    )

    def __init__(
        self,
        run_hash: str,
        data: dict[str, Any],
        meta: RunMeta | None = None,
        *,
        source: tuple[bytes, int, int, int] | None = None,
    ) -> None:
        self.hash = run_hash
        items = data.get("sequences")
        self._data = data if items is None else {k: v for k, v in data.items() if k != "sequences"}
        self._items: list[dict[str, Any]] | None = items if source is None else None
        self._source = source  # (file bytes, keys start, keys end, stats end)
        self._keys: list[list[Any]] | None = None  # 6 fields from a source, else 4
        self._stats: list[list[Any]] | None = None  # every stats row, when parsed at once
        self._infos: dict[int, SequenceInfo] = {}
        self._meta = meta
        self._params: dict[str, Any] | None = None if meta is None else meta.params
        if meta is not None:
            self._infos = dict(enumerate(meta.sequences))

    # -- catalogue -------------------------------------------------------------------------
    def _parse(self, start: int, end: int) -> list[Any]:
        assert self._source is not None
        try:
            rows = json.loads(self._source[0][start:end])
            if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
                raise ValueError("not a list of rows")
        except ValueError as exc:
            raise _damaged_entry(self.hash, exc) from exc
        return rows

    def sequence_keys(self) -> list[list[Any]]:
        """`[seq_id, name, kind, context, ...]` of every catalogued sequence."""
        if self._keys is None:
            if self._source is not None:
                _, start, end, _ = self._source
                keys = self._parse(start, end)
                if not all(len(k) == 6 for k in keys):
                    raise _damaged_entry(self.hash, ValueError("bad catalogue key row"))
                self._keys = keys
            else:
                try:
                    self._keys = [SequenceInfo.json_key(d) for d in self._items or ()]
                except (KeyError, TypeError, AttributeError) as exc:
                    raise _damaged_entry(self.hash, exc) from exc
        return self._keys

    def _stats_rows(self) -> list[list[Any]]:
        if self._stats is None:
            if self._source is not None:
                _, _, keys_end, end = self._source
                self._stats = self._parse(keys_end + 1, end)
            else:
                self._stats = [SequenceInfo.json_stats(d) for d in self._items or ()]
        return self._stats

    def _stats_row(self, position: int) -> list[Any]:
        key = self.sequence_keys()[position]
        if self._stats is None and self._source is not None:
            raw, _, keys_end, end = self._source
            start = keys_end + 1 + int(key[4])
            stop = keys_end + 1 + int(key[5])
            if not keys_end < start < stop <= end:
                raise ValueError("catalogue stats span out of range")
            row = json.loads(raw[start:stop])
            if not isinstance(row, list):
                raise ValueError("catalogue stats row is not a list")
            return row
        return self._stats_rows()[position]

    def sequence_info(self, position: int) -> SequenceInfo:
        """The full catalogue entry at `position` (decoding its stats row on first use)."""
        info = self._infos.get(position)
        if info is None:
            try:
                key = self.sequence_keys()[position]
                info = SequenceInfo.from_rows(key[:4], self._stats_row(position))
            except (IndexError, KeyError, TypeError, ValueError) as exc:
                raise _damaged_entry(self.hash, exc) from exc
            self._infos[position] = info
        return info

    def catalogue(self) -> list[CatalogueEntry]:
        """Every catalogue entry, decoded only as far as a query needs."""
        return [CatalogueEntry(self, i, key) for i, key in enumerate(self.sequence_keys())]

    @property
    def sequences(self) -> tuple[SequenceInfo, ...]:
        return tuple(self.sequence_info(i) for i in range(len(self.sequence_keys())))

    def stored_catalogue(self) -> tuple[bytes, bytes]:
        """The catalogue's key and stats lines as the index file stores them."""
        if self._source is not None:
            raw, start, keys_end, end = self._source
            return raw[start:keys_end], raw[keys_end + 1 : end]
        keys: list[list[Any]] = []
        rows: list[bytes] = []
        offset = 1  # after the line's "["
        for key, stats in zip(self.sequence_keys(), self._stats_rows(), strict=True):
            row = _json_line(stats)
            keys.append([*key[:4], offset, offset + len(row)])
            rows.append(row)
            offset += len(row) + 1  # and its ","
        return _json_line(keys), b"[" + b",".join(rows) + b"]"

    # -- run-level fields ------------------------------------------------------------------
    @property
    def fields(self) -> dict[str, Any]:
        """The sidecar's run-level fields (no catalogue)."""
        return self._data

    @property
    def data(self) -> dict[str, Any]:
        """The sidecar's JSON object, catalogue included."""
        sequences = [s.to_json() for s in self.sequences]
        return {"format": FORMAT_NAME, "hash": self.hash, **self._data, "sequences": sequences}

    @property
    def meta(self) -> RunMeta:
        if self._meta is None:
            data = {**self._data, "hash": self.hash}
            meta = RunMeta.from_json(data, f"run index entry of run {self.hash}")
            self._meta = replace(meta, sequences=self.sequences)
        return self._meta

    def param(self, name: str, default: Any = None) -> Any:
        """`params[name]`, decoding only that param (`default` when there is none)."""
        if self._params is not None:
            return self._params.get(name, default)
        raw = self._data.get("params") or {}
        if TAG in raw:  # a param named like the tag: the whole dict is encoded
            return self.params.get(name, default)
        if name not in raw:
            return default
        return decode_json_value(raw[name])

    @property
    def name(self) -> str | None:
        return self._data.get("name")

    @property
    def display_name(self) -> str:
        name = self._data.get("name")
        return name if name is not None else f"Run: {self.hash}"

    @property
    def description(self) -> str | None:
        return self._data.get("description")

    @property
    def experiment(self) -> str:
        return self._data.get("experiment") or "default"

    @property
    def tags(self) -> tuple[str, ...]:
        return tuple(self._data.get("tags") or ())

    @property
    def archived(self) -> bool:
        return bool(self._data.get("archived", False))

    @property
    def creation_time(self) -> float:
        return float(self._data["creation_time"])

    @property
    def end_time(self) -> float | None:
        return self._data.get("end_time")

    @property
    def updated_at(self) -> float:
        return float(self._data.get("updated_at") or 0.0)

    @property
    def params(self) -> dict[str, Any]:
        if self._params is None:
            self._params = decode_json_value(self._data.get("params") or {})
        return self._params


def _json_line(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8", "surrogatepass"
    )


class _Entry:
    """One run in memory: the stat key of its sidecar and its record (or why it is damaged).

    `record` is None for a damaged run; `kept` is then the last good record of it (if any), which
    the index file keeps for repairs.
    """

    __slots__ = ("key", "record", "kept", "damaged")

    def __init__(
        self,
        key: StatKey,
        record: RunRecord | None,
        damaged: DamagedRun | None = None,
        kept: RunRecord | None = None,
    ) -> None:
        self.key = key
        self.record = record
        self.kept = kept
        self.damaged = damaged

    @property
    def stored_record(self) -> RunRecord | None:
        return self.record if self.record is not None else self.kept


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


_IMPLIED_FIELDS = frozenset({"format", "hash", "sequences"})  # not stored in the index


def _is_plausible(run_hash: str, data: Any) -> bool:
    """A cheap check of an index entry (a bad one makes us read the sidecar instead)."""
    return (
        isinstance(data, dict)
        and data.get("hash", run_hash) == run_hash
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
        self._quick: tuple[MarkerKey, StatKey] | None = None  # as of the last full pass
        self._full_at = 0.0  # time.monotonic() of the last full pass

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
            return parse_index(raw), True
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
            return _Entry(key, RunRecord(run_hash, data, meta))
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

    def is_damaged(self, run_hash: str) -> bool:
        """Whether a run folder without sidecar is damaged (False: it is being created)."""
        return self._missing_sidecar(run_hash) is not None

    def _quick_key(self) -> tuple[tuple[MarkerKey, StatKey] | None, bool]:
        """(change marker, `runs/` stat) now, and whether `runs/` changed too recently to trust
        its mtime; None when `runs/` is missing."""
        try:
            st = os.stat(os.fspath(self.layout.runs_dir))
        except OSError:
            return None, False
        is_racy = time.time_ns() - st.st_mtime_ns < RACY_S * 1e9
        return (marker_key(self.layout), (st.st_mtime_ns, st.st_nlink, st.st_ino)), is_racy

    def refresh(self) -> IndexSnapshot:
        """Bring the index up to date with the sidecars on disk and return every run."""
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
        if self._entries is None:
            old, usable = self._load_file()
            needs_write = not usable
        else:
            old, needs_write = self._entries, False
        runs_dir = os.fspath(self.layout.runs_dir)
        try:
            names = os.listdir(runs_dir)
            dir_fd = os.open(runs_dir, os.O_RDONLY)
        except FileNotFoundError:
            names, dir_fd = [], -1
        entries: dict[str, _Entry] = {}
        records: dict[str, RunRecord] = {}
        damaged: list[DamagedRun] = []
        read = 0
        settled_ns = time.time_ns() - int(SETTLE_S * 1e9)
        stat = os.stat
        sidecar = "/" + SIDECAR_FILENAME
        try:
            for run_hash in names:
                entry = old.get(run_hash)
                if entry is None and not is_valid_run_hash(run_hash):
                    continue
                try:
                    st = stat(run_hash + sidecar, dir_fd=dir_fd)
                except FileNotFoundError:
                    missing = self._missing_sidecar(run_hash)
                    if missing is not None:
                        damaged.append(missing)
                    continue
                key = (st.st_mtime_ns, st.st_size, st.st_ino)
                if entry is None or entry.key != key or entry.record is None:
                    previous = entry
                    entry = self._read_sidecar(run_hash, key)
                    read += 1
                    if entry.record is not None:
                        if entry.record.end_time is not None or st.st_mtime_ns < settled_ns:
                            needs_write = True
                    elif previous is not None:
                        entry.kept = previous.stored_record  # the last good copy, for repairs
                entries[run_hash] = entry
                if entry.damaged is not None:
                    damaged.append(entry.damaged)
                elif entry.record is not None:
                    records[run_hash] = entry.record
        finally:
            if dir_fd >= 0:
                os.close(dir_fd)
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
        data = format_index(entries)
        try:
            self.layout.index_dir.mkdir(parents=True, exist_ok=True)
            lock = filelock.FileLock(self.lock_path, timeout=LOCK_TIMEOUT_S)
            with lock:
                atomic_write(self.path, data, durable=False)
                for name in LEGACY_INDEX_FILENAMES:
                    (self.layout.index_dir / name).unlink(missing_ok=True)
        except filelock.Timeout:
            log.debug("aim_parquet: run index %s is busy; not rewriting it", self.path)
        except OSError as exc:  # read-only repository, disk full: the index is only a cache
            log.debug("aim_parquet: cannot write run index %s (%s)", self.path, exc)

    def invalidate(self) -> None:
        """Forget the in-memory copy (the next refresh starts from the index file)."""
        self._entries = None
        self._snapshot = None
        self._quick = None

    def remove_file(self) -> None:
        """Delete the index file (it is rebuilt on the next refresh)."""
        self.path.unlink(missing_ok=True)
        self.invalidate()


def format_index(entries: dict[str, _Entry]) -> bytes:
    """The index file's bytes for `entries` (see the module doc)."""
    runs: dict[str, Any] = {}
    body: list[bytes] = []
    offset = 0
    for run_hash, entry in entries.items():
        record = entry.stored_record
        if record is None:
            continue
        keys, stats = record.stored_catalogue()
        fields = {
            k: v for k, v in record.fields.items() if v is not None and k not in _IMPLIED_FIELDS
        }
        runs[run_hash] = {
            "stat": list(entry.key),
            "catalogue": [offset, len(keys), len(stats)],
            "sidecar": fields,
        }
        body.append(keys + b"\n" + stats + b"\n")
        offset += len(keys) + len(stats) + 2
    header = {"format": INDEX_FORMAT, "format_version": INDEX_FORMAT_VERSION, "runs": runs}
    return _json_line(header) + b"\n" + b"".join(body)


def parse_index(raw: bytes) -> dict[str, _Entry]:
    """The entries of an index file's bytes; ValueError (or KeyError, TypeError) when it is not
    one. An entry that fails a cheap check is left out (its sidecar is read instead)."""
    end = raw.find(b"\n")
    if end < 0:
        raise ValueError("no header line")
    doc = json.loads(raw[:end])
    if doc.get("format") != INDEX_FORMAT or doc.get("format_version") != INDEX_FORMAT_VERSION:
        raise ValueError("unknown index format")
    base = end + 1
    size = len(raw)
    entries = {}
    for run_hash, item in doc["runs"].items():
        mtime_ns, st_size, st_ino = item["stat"]
        key = (int(mtime_ns), int(st_size), int(st_ino))
        data = item["sidecar"]
        offset, keys_len, stats_len = item["catalogue"]
        start = base + int(offset)
        keys_end = start + int(keys_len)
        stats_end = keys_end + 1 + int(stats_len)
        if not _is_plausible(run_hash, data) or start < base or stats_end > size:
            continue
        source = (raw, start, keys_end, stats_end)
        entries[run_hash] = _Entry(key, RunRecord(run_hash, data, source=source))
    return entries
