"""The points cache: `.aim/index/points.arrow`, the points of the small metric sequences of closed
runs read from their segments, so that a query over thousands of small runs reads one file instead
of a folder per run (FORMAT.md, "Index files": the points cache).

It is derived and deletable, never a source of truth:

- A sequence's cached points are taken only while its run is closed and the run's stat key in the
  query's refresh (`RunIndex.stat_keys`: the sidecar's stat, which every change of a closed run's
  points or fields replaces, as for the analyst dataset's fingerprints) is the key it was cached
  under; anything else is read from the run's files as without the cache.
- The points are stored as `read_metrics_bulk` returned them (steps in step order, last write
  winning; `epoch` int64, or float64 with NaN where a point has none, stored as its bits) and
  given back with the same dtypes.
- A missing, torn, foreign or damaged file (an Arrow IPC file of another schema, a checksum that
  does not match) is ignored, never reported: the next write replaces it. The file is read in one
  piece, never memory-mapped, and replaced atomically (`atomic_write`), so a reader sees one
  whole file; of concurrent writers the last rename wins, and every version is valid.
- A write happens once per query or iteration that read at least `MIN_WRITE_RUNS` runs from their
  segments: the new sequences plus the old file's entries whose run's key is unchanged in the
  refresh (runs gone or changed drop out), sequences of at most `MAX_SEQ_POINTS` points, the whole
  at most about `MAX_CACHE_BYTES`.
"""

from __future__ import annotations

import logging
import os
import zlib
from typing import Any

import numpy as np
import pyarrow as pa

from aim_parquet.errors import AimParquetError
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage.base.atomic import atomic_write
from aim_parquet.storage.base.columns import any_numpy, string_array, to_numpy
from aim_parquet.storage.base.repo_changes import index_link
from aim_parquet.storage.base.safe_fs import read_regular

log = logging.getLogger(__name__)

CACHE_FILENAME = "points.arrow"  # in .aim/index/
CACHE_FORMAT = "aim_parquet.points_cache"
CACHE_FORMAT_VERSION = "1"
MIN_READ_RUNS = 64  # a query wanting fewer closed runs reads their own files
READ_BYTES_PER_RUN = 16 << 10  # ... and one whose cache file is larger than this per wanted run
MIN_WRITE_RUNS = 256  # runs read from segments that make a query write the cache
MAX_SEQ_POINTS = 256  # longer sequences are not cached (their files cost little more per point)
MAX_CACHE_BYTES = 64 << 20  # what the entries may take (32 bytes a point, `ROW_BYTES` a sequence)
ROW_BYTES = 128

Array = np.ndarray[Any, Any]
Points = tuple[Array, Array, Array, Array]  # steps, values, epochs, timestamps

POINT_TYPE = pa.struct(
    [
        pa.field("step", pa.int64(), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
        pa.field("epoch", pa.int64(), nullable=False),
        pa.field("timestamp", pa.float64(), nullable=False),
    ]
)
SCHEMA = pa.schema(
    [
        pa.field("run_hash", pa.string(), nullable=False),
        pa.field("seq_id", pa.string(), nullable=False),
        pa.field("key", pa.string(), nullable=False),
        pa.field("epoch_float", pa.bool_(), nullable=False),
        pa.field("points", pa.list_(pa.field("item", POINT_TYPE, nullable=False)), nullable=False),
    ]
)
_IGNORED = (
    OSError, AimParquetError, ValueError, KeyError, IndexError, TypeError, OverflowError,
    pa.ArrowException,
)  # fmt: skip


def cache_path(layout: RepoLayout) -> str:
    return os.fspath(layout.index_dir / CACHE_FILENAME)


def _checksum(texts: list[list[str]], arrays: list[Array]) -> str:
    """CRC-32 of the entries (a file whose bytes changed after it was written is not used)."""
    crc = 0
    for column in texts:
        crc = zlib.crc32("\0".join(column).encode("utf-8", "surrogatepass"), crc)
    for array in arrays:
        crc = zlib.crc32(pa.py_buffer(np.ascontiguousarray(array)), crc)
    return f"{crc:08x}"


class _Entries:
    """Sequences with their points as flat columns: row `i`'s points are `offsets[i]:offsets[i+1]`."""

    def __init__(
        self,
        rows: tuple[list[str], list[str], list[str]],
        floats: Array,
        offsets: Array,
        columns: tuple[Array, Array, Array, Array],
    ) -> None:
        self.hashes, self.seq_ids, self.keys = rows
        self.floats = floats  # bool: epochs were float64 (bits stored in the int64 column)
        self.offsets = offsets  # int64, one more than rows
        self.steps, self.values, self.epochs, self.stamps = columns

    def __len__(self) -> int:
        return len(self.hashes)

    def checksum(self) -> str:
        return _checksum(
            [self.hashes, self.seq_ids, self.keys],
            [self.floats, self.offsets, self.steps, self.values, self.epochs, self.stamps],
        )


class PointsCache:
    """The cache file of one repository as one reader sees it (read once, on `load`), and the
    sequences this reader read from segments, written back by `save` (module doc)."""

    def __init__(self, layout: RepoLayout) -> None:
        self._layout = layout
        self._old: _Entries | None = None
        self._where: dict[tuple[str, str], int] = {}
        self._offsets: list[int] = []
        self._floats: list[bool] = []
        self._loaded = False
        self._too_large = False
        self._new: list[_Entries] = []
        self._new_runs: set[str] = set()
        self._new_bytes = 0

    # -- reading -------------------------------------------------------------------------------
    def load(self, wanted_runs: int | None = None) -> bool:
        """Read the file once (None: whatever its size), unless fewer than `MIN_READ_RUNS` runs
        are wanted or it is larger than `READ_BYTES_PER_RUN` per wanted run (their own files are
        cheaper then). Whether it is loaded."""
        if self._loaded:
            return True
        if wanted_runs is not None:
            if wanted_runs < MIN_READ_RUNS:
                return False
            try:
                if os.stat(cache_path(self._layout)).st_size > wanted_runs * READ_BYTES_PER_RUN:
                    self._too_large = True  # (nor written: it would be again at every query)
                    return False
            except OSError:
                pass
        self._loaded = True
        try:
            self._old = _read(self._layout)
        except Exception as exc:  # noqa: BLE001 (whatever the file holds: a cache is never fatal)
            log.debug("aim_parquet: points cache of %s not used (%s)", self._layout.root, exc)
            self._old = None
        if self._old is not None:
            old = self._old
            self._where = {k: i for i, k in enumerate(zip(old.hashes, old.seq_ids, strict=True))}
            self._offsets = old.offsets.tolist()
            self._floats = old.floats.tolist()
        return True

    def take(self, run_hash: str, seq_id: str, key: str | None) -> Points | None:
        """The cached points of a sequence of a closed run whose stat key in the query's refresh
        is `key`; None when the cache does not hold them as they are now."""
        row = self._where.get((run_hash, seq_id))
        old = self._old
        if row is None or old is None or key is None or old.keys[row] != key:
            return None
        a, b = self._offsets[row], self._offsets[row + 1]
        epochs = old.epochs[a:b]
        if self._floats[row]:
            epochs = epochs.view(np.float64)
        return (old.steps[a:b], old.values[a:b], epochs, old.stamps[a:b])

    # -- writing -------------------------------------------------------------------------------
    def add(self, found: list[tuple[str, str, str | None, Points]]) -> None:
        """Keep sequences just read from the segments of closed runs ((run hash, seq id, the
        run's stat key, points)) for `save`: copied now, so the caller's arrays are not held."""
        rows: tuple[list[str], list[str], list[str]] = ([], [], [])
        floats, lengths, parts = [], [], []
        for run_hash, seq_id, key, points in found:
            steps, values, epochs, stamps = points
            n = len(steps)
            if key is None or "+" in key or n > MAX_SEQ_POINTS:
                continue  # (several writers: left to the run's files)
            if not (
                steps.dtype == np.int64
                and values.dtype == np.float64
                and stamps.dtype == np.float64
                and epochs.dtype in (np.int64, np.float64)
                and len(values) == len(epochs) == len(stamps) == n
            ):
                continue
            cost = 32 * n + ROW_BYTES
            if self._new_bytes + cost > MAX_CACHE_BYTES:
                break
            self._new_bytes += cost
            rows[0].append(run_hash)
            rows[1].append(seq_id)
            rows[2].append(key)
            floats.append(epochs.dtype == np.float64)
            lengths.append(n)
            parts.append((steps, values, epochs.view(np.int64), stamps))
            self._new_runs.add(run_hash)
        if not parts:
            return
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        columns = tuple(np.concatenate([p[c] for p in parts]) for c in range(4))
        self._new.append(_Entries(rows, np.array(floats, dtype=bool), offsets, columns))  # type: ignore[arg-type]

    @property
    def new_runs(self) -> int:
        return len(self._new_runs)

    def save(self, keys: dict[str, str], *, min_runs: int | None = None) -> bool:
        """Write the file when at least `min_runs` (default `MIN_WRITE_RUNS`) runs were `add`ed
        and `load` did not find it too large to read: the new sequences, then the old file's
        whose run's key in `keys` (the query's refresh) is unchanged, up to `MAX_CACHE_BYTES`,
        sorted by run and sequence. Never raises; whether it wrote."""
        if self._too_large or self.new_runs < (MIN_WRITE_RUNS if min_runs is None else min_runs):
            return False
        try:
            if index_link(self._layout) is not None:
                return False  # (`verify` names the link; the cache is only a cache)
            self.load()
            data = _encode(_merge(self._new, self._old, keys))
            self._layout.index_dir.mkdir(parents=True, exist_ok=True)
            atomic_write(self._layout.index_dir / CACHE_FILENAME, data, durable=False)
        except _IGNORED as exc:  # read-only repository, disk full: the cache is only a cache
            log.debug("aim_parquet: points cache of %s not written (%s)", self._layout.root, exc)
            return False
        self._new, self._new_runs, self._new_bytes = [], set(), 0
        return True


def _read(layout: RepoLayout) -> _Entries | None:
    """The entries of the cache file (None: none there; raises on anything unusable)."""
    if index_link(layout) is not None:
        return None
    try:
        data = read_regular(cache_path(layout), "points cache", 2 * MAX_CACHE_BYTES)
    except FileNotFoundError:
        return None
    reader = pa.ipc.open_file(pa.py_buffer(data))
    meta = reader.schema.metadata or {}
    if (
        not reader.schema.equals(SCHEMA)
        or meta.get(b"format") != CACHE_FORMAT.encode()
        or meta.get(b"format_version") != CACHE_FORMAT_VERSION.encode()
    ):
        raise ValueError("not a points cache of this version")
    table = reader.read_all()
    table.validate(full=True)
    columns = [table.column(name).combine_chunks() for name in SCHEMA.names]
    points = columns[4]
    flat = points.values
    fields = flat.flatten()
    if any(c.null_count for c in [*columns, flat, *fields]):
        raise ValueError("nulls in the points cache")
    offsets = to_numpy(points.offsets).astype(np.int64)
    if offsets[0] != 0 or offsets[-1] != len(flat):
        raise ValueError("points cache offsets")
    steps, values, epochs, stamps = (to_numpy(f) for f in fields)
    floats = any_numpy(columns[3])
    entries = _Entries(
        (columns[0].to_pylist(), columns[1].to_pylist(), columns[2].to_pylist()),
        floats,
        offsets,
        (steps, values, epochs, stamps),
    )
    if entries.checksum() != meta.get(b"checksum", b"").decode("ascii", "replace"):
        raise ValueError("points cache checksum")
    return entries


def _merge(new: list[_Entries], old: _Entries | None, keys: dict[str, str]) -> _Entries:
    """The new entries, then the old ones still valid, capped, sorted by (run hash, seq id)."""
    sources = list(new)
    taken = {k for e in new for k in zip(e.hashes, e.seq_ids, strict=True)}
    if old is not None:
        sources.append(old)
    rows: list[tuple[str, str, str, int, int]] = []  # hash, seq, key, source, row
    budget = MAX_CACHE_BYTES
    for s, source in enumerate(sources):
        lengths = np.diff(source.offsets).tolist()
        is_old = source is old
        for i, (h, q, k) in enumerate(zip(source.hashes, source.seq_ids, source.keys, strict=True)):
            if is_old and ((h, q) in taken or keys.get(h) != k):
                continue  # replaced, or its run gone or changed
            budget -= 32 * lengths[i] + ROW_BYTES
            if budget < 0:
                break
            rows.append((h, q, k, s, i))
    rows.sort()
    bases = np.cumsum([0] + [len(src.steps) for src in sources])
    starts = np.array([bases[s] + sources[s].offsets[i] for *_x, s, i in rows], dtype=np.int64)
    lengths_arr = np.array(
        [sources[s].offsets[i + 1] - sources[s].offsets[i] for *_x, s, i in rows], dtype=np.int64
    )
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths_arr, out=offsets[1:])
    gather = np.arange(int(offsets[-1]), dtype=np.int64) + np.repeat(
        starts - offsets[:-1], lengths_arr
    )
    columns = tuple(
        np.concatenate([getattr(src, c) for src in sources])[gather]
        for c in ("steps", "values", "epochs", "stamps")
    )
    floats = np.array([bool(sources[s].floats[i]) for *_x, s, i in rows], dtype=bool)
    texts = ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
    return _Entries(texts, floats, offsets, columns)  # type: ignore[arg-type]


def _encode(entries: _Entries) -> bytes:
    """The Arrow IPC file of `entries`."""
    n = len(entries.steps)
    fields = [
        pa.Array.from_buffers(f.type, n, [None, pa.py_buffer(np.ascontiguousarray(a))])
        for f, a in zip(
            POINT_TYPE, (entries.steps, entries.values, entries.epochs, entries.stamps), strict=True
        )
    ]
    flat = pa.StructArray.from_arrays(fields, fields=list(POINT_TYPE))
    offsets = pa.py_buffer(entries.offsets.astype(np.int32))
    points = pa.ListArray.from_buffers(
        SCHEMA.field("points").type, len(entries), [None, offsets], children=[flat]
    )
    floats = pa.py_buffer(np.packbits(entries.floats, bitorder="little"))
    meta = {
        b"format": CACHE_FORMAT.encode(),
        b"format_version": CACHE_FORMAT_VERSION.encode(),
        b"checksum": entries.checksum().encode(),
    }
    schema = SCHEMA.with_metadata(meta)
    columns = [
        string_array(entries.hashes),
        string_array(entries.seq_ids),
        string_array(entries.keys),
        pa.Array.from_buffers(pa.bool_(), len(entries), [None, floats]),
        points,
    ]
    batch = pa.RecordBatch.from_arrays(columns, schema=schema)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, schema) as writer:
        writer.write_batch(batch)
    return bytes(sink.getvalue().to_pybytes())
