"""The write side of one run: in-memory sequence buffers, the flush policy and the sidecar.

`Run.track` extends a `SeqBuffer` with one atomic list operation per point, without a lock (the
only work on the training thread; see `SeqBuffer`). A flusher thread turns buffers into record batches and appends them to segments at least
every `flush_interval_s`, sooner when a buffer holds `max_buffer_points`, and on `close()`. The
sidecar (`run.json`) is rewritten atomically after the segments it describes.

A failed flush keeps its batches and retries them on the next flush. The error is stored and the
`Run` re-raises it on the next `track()`/`close()` in strict mode; otherwise it is logged loudly.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from aim_parquet.errors import StorageError
from aim_parquet.format.meta import FORMAT_VERSION, CatalogueReach, RunMeta, SequenceInfo
from aim_parquet.format.paths import (
    RepoLayout,
    canonical_context,
    new_session_token,
    segment_name,
    sequence_id,
)
from aim_parquet.format.schema import METRIC_SCHEMA, OBJECT_SCHEMA, is_metric_kind, segment_schema
from aim_parquet.storage.columns import (
    float64_array,
    int32_array,
    int64_array,
    large_binary_array,
    nullable_int64_array,
    string_array,
    to_numpy,
)
from aim_parquet.storage.lock import RunLock
from aim_parquet.storage.repo_changes import write_sidecar
from aim_parquet.storage.segments import SegmentFile

log = logging.getLogger(__name__)

DEFAULT_FLUSH_INTERVAL_S = 1.0
DEFAULT_MAX_BUFFER_POINTS = 100_000
DEFAULT_MAX_SEGMENT_BYTES = 64 * 1024 * 1024
MAX_PENDING_POINTS = 1_000_000


METRIC_STRIDE = 4  # step, value, epoch, timestamp
OBJECT_STRIDE = 6  # step, index, epoch, timestamp, payload, meta_json


class SeqBuffer:
    """Points of one sequence not yet flushed, plus its running summary.

    `points` is a flat list that `Run.track` extends by one point at a time, without a lock:
    `step, value, epoch, timestamp` for metrics (METRIC_STRIDE values a point), `step, index,
    epoch, timestamp, payload, meta_json` for objects. One `list.extend` is atomic under the GIL,
    so a point's values stay together whichever threads track; and a flat list of numbers holds
    no object the garbage collector tracks (a list of tuples made every gen-0 collection scan the
    buffer: +200 ns a point). The flusher takes the first n values with a slice copy and
    `del points[:n]`, each atomic, so points added meanwhile land in the next batch.
    """

    __slots__ = (
        "info",
        "is_metric",
        "stride",
        "flush_at",
        "next_step",
        "points",
        "segment",
        "failed",
        "dir",
    )

    def __init__(self, info: SequenceInfo, seq_dir: Path, max_buffer_points: int) -> None:
        self.info = info
        self.is_metric = is_metric_kind(info.kind)
        self.stride = METRIC_STRIDE if self.is_metric else OBJECT_STRIDE
        self.flush_at = max_buffer_points * self.stride  # len(points) that asks for a flush
        self.next_step = 0 if info.last_step is None else info.last_step + 1
        self.points: list[Any] = []
        self.segment: SegmentFile | None = None
        self.failed: list[pa.RecordBatch] = []
        self.dir = seq_dir

    def take_batch(self) -> pa.RecordBatch | None:
        """Move the buffered points out as one record batch."""
        points = self.points
        n = len(points)
        if n == 0:
            return None
        chunk = points[:n]
        del points[:n]
        if self.is_metric:
            values = chunk[1::4]
            if self.info.kind == "int" and any(type(v) is float for v in values):
                self.info = replace(self.info, kind="number")
            arrays = [
                int64_array(chunk[0::4]),
                float64_array(values),
                nullable_int64_array(chunk[2::4]),
                float64_array(chunk[3::4]),
            ]
            return pa.record_batch(arrays, schema=METRIC_SCHEMA)
        arrays = [
            int64_array(chunk[0::6]),
            int32_array(chunk[1::6]),
            nullable_int64_array(chunk[2::6]),
            float64_array(chunk[3::6]),
            large_binary_array(chunk[4::6]),
            string_array(chunk[5::6]),
        ]
        return pa.record_batch(arrays, schema=OBJECT_SCHEMA)


def summarize(info: SequenceInfo, batch: pa.RecordBatch) -> SequenceInfo:
    """The catalogue entry after `batch` was written (count, first/last step and value, min/max)."""
    steps = to_numpy(batch.column(0))
    n = len(steps)
    if n == 0:
        return info
    hi = int(steps.max())
    lo = int(steps.min())
    changes: dict[str, Any] = {"count": info.count + n}
    values = to_numpy(batch.column(1)) if info.is_metric else None
    if info.last_step is None or hi >= info.last_step:
        changes["last_step"] = hi
        if values is not None:
            changes["last"] = _py(values[n - 1 - int(np.argmax(steps[::-1] == hi))], info.kind)
    if info.first_step is None or lo <= info.first_step:
        changes["first_step"] = lo
        if values is not None:
            changes["first"] = _py(values[n - 1 - int(np.argmax(steps[::-1] == lo))], info.kind)
    if values is not None:
        finite = values[~np.isnan(values)]
        if finite.size:
            bmin, bmax = float(finite.min()), float(finite.max())
            changes["min"] = bmin if info.min is None else min(info.min, bmin)
            changes["max"] = bmax if info.max is None else max(info.max, bmax)
    return replace(info, **changes)


def _py(value: Any, kind: str) -> Any:
    v = float(value)
    if kind == "int" and math.isfinite(v) and v.is_integer():
        return int(v)
    return v


class RunWriter:
    """Owns a run's lock, buffers, segments, sidecar and flusher thread."""

    def __init__(
        self,
        layout: RepoLayout,
        meta: RunMeta,
        lock: RunLock,
        *,
        flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
        max_buffer_points: int = DEFAULT_MAX_BUFFER_POINTS,
        max_segment_bytes: int = DEFAULT_MAX_SEGMENT_BYTES,
    ) -> None:
        self.layout = layout
        self.run_hash = meta.hash
        self.meta = meta  # properties + params; `sequences` is rebuilt from buffers on write
        self.lock = threading.Lock()  # guards `seqs` and the slow path's step bookkeeping
        self._flush_lock = threading.Lock()  # serialises flushes and sidecar writes
        self._run_lock = lock
        self.max_buffer_points = max_buffer_points
        self.seqs: dict[str, SeqBuffer] = {}
        for info in meta.sequences:
            self.seqs[info.seq_id] = SeqBuffer(
                info, layout.seq_dir(meta.hash, info.seq_id), max_buffer_points
            )
        self.flush_interval_s = flush_interval_s
        self.max_segment_bytes = max_segment_bytes
        self.session_ns = time.time_ns()
        self.session_token = new_session_token()  # same for all segments: they sort by counter
        self._segment_counter = 0
        self.error: BaseException | None = None
        self.dropped_points = 0
        self._meta_dirty = True
        self._wake = threading.Event()
        self._is_flush_requested = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.is_closed = False

    # -- sequences -------------------------------------------------------------------------
    def open_sequence(self, name: str, context: dict[str, Any], kind: str) -> SeqBuffer:
        """The buffer of (name, context), created if new. Caller checks kind compatibility."""
        seq_id = sequence_id(name, context)
        seq = self.seqs.get(seq_id)
        if seq is None:
            info = SequenceInfo(seq_id=seq_id, name=name, context=context, kind=kind)
            seq = SeqBuffer(
                info, self.layout.seq_dir(self.run_hash, seq_id), self.max_buffer_points
            )
            with self.lock:
                self.seqs[seq_id] = seq
            self._meta_dirty = True
        return seq

    # -- background flushing ---------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._loop, name=f"aim_parquet-flush-{self.run_hash[:8]}", daemon=True
        )
        self._thread.start()

    def request_flush(self) -> None:
        """Wake the flusher (a full buffer). Cheap when already requested: `track` calls this
        on every point until the flusher has taken the buffer, and `Event.set` costs µs."""
        if not self._is_flush_requested:
            self._is_flush_requested = True
            self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            self._is_flush_requested = False
            if self._stop.is_set():
                break
            try:
                self.flush()
            except BaseException as exc:  # stored; Run re-raises or logs it
                self.record_error(exc)
            self._run_lock.heartbeat()

    def record_error(self, exc: BaseException) -> None:
        """Store a write error for the Run to re-raise (strict) or report on close; log it once."""
        if self.error is None:
            log.error("aim_parquet: writing run %s failed: %s", self.run_hash, exc)
        self.error = exc

    # -- flushing --------------------------------------------------------------------------
    def flush(self, *, durable: bool = False) -> None:
        """Write every buffered point to segments, then the sidecar if anything changed."""
        with self._flush_lock:
            with self.lock:
                seqs = list(self.seqs.values())
            work = []
            for seq in seqs:
                batch = seq.take_batch()
                if batch is not None or seq.failed:
                    work.append((seq, batch))
            first_error: BaseException | None = None
            for seq, batch in work:
                if batch is not None:
                    seq.failed.append(batch)
                try:
                    self._write_batches(seq)
                except (OSError, pa.ArrowException) as exc:
                    first_error = first_error or exc
                    self._bound_failed(seq)
            if work or self._meta_dirty:
                try:
                    self._write_sidecar(durable=durable)
                except OSError as exc:
                    first_error = first_error or exc
            if first_error is not None:
                if not isinstance(first_error, StorageError):
                    first_error = StorageError(
                        f"aim_parquet could not write run {self.run_hash}: {first_error}"
                    )
                raise first_error
            self.error = None if isinstance(self.error, StorageError) else self.error

    def _write_batches(self, seq: SeqBuffer) -> None:
        while seq.failed:
            batch = seq.failed[0]
            segment = self._segment_for(seq)
            try:
                segment.append(batch)
            except StorageError:
                if segment.is_broken:
                    seq.segment = None
                raise
            seq.failed.pop(0)
            if segment.size >= self.max_segment_bytes:
                segment.close(sync=False)
                seq.segment = None
            # the summary and how far into the segments it reaches change together, so every
            # sidecar says exactly which points its catalogue covers (FORMAT.md, writer rule 8)
            reach = CatalogueReach(segment.path.name, segment.size, seq.segment is None)
            seq.info = replace(summarize(seq.info, batch), reach=reach)

    def _bound_failed(self, seq: SeqBuffer) -> None:
        """Keep at most MAX_PENDING_POINTS unwritten points per sequence while writes fail."""
        pending = sum(b.num_rows for b in seq.failed)
        while pending > MAX_PENDING_POINTS and len(seq.failed) > 1:
            dropped = seq.failed.pop(0)
            pending -= dropped.num_rows
            self.dropped_points += dropped.num_rows
            log.error(
                "aim_parquet: run %s: dropped %d unwritten points of %r (writes keep failing).",
                self.run_hash,
                dropped.num_rows,
                seq.info.name,
            )

    def _segment_for(self, seq: SeqBuffer) -> SegmentFile:
        if seq.segment is not None:
            return seq.segment
        seq.dir.mkdir(parents=True, exist_ok=True)
        self._segment_counter += 1
        path = seq.dir / segment_name(self.session_ns, self._segment_counter, self.session_token)
        info = seq.info
        schema = segment_schema(
            self.run_hash, info.name, canonical_context(info.context), info.kind, FORMAT_VERSION
        )
        try:
            try:
                seq.segment = SegmentFile(path, schema)
            except FileNotFoundError:  # `gc` removed the empty folder meanwhile: make it again
                seq.dir.mkdir(parents=True, exist_ok=True)
                seq.segment = SegmentFile(path, schema)
        except OSError as exc:
            raise StorageError(f"creating segment {path} failed: {exc}") from exc
        return seq.segment

    def snapshot(self) -> RunMeta:
        with self.lock:
            infos = tuple(seq.info for seq in self.seqs.values())
        return replace(self.meta, sequences=infos, updated_at=time.time())

    def _write_sidecar(self, *, durable: bool) -> None:
        meta = self.snapshot()
        write_sidecar(self.layout, self.run_hash, meta.dumps(), durable=durable)
        self._meta_dirty = False

    def update_meta(self, **changes: Any) -> None:
        """Change properties/params and persist them at once (durably)."""
        with self._flush_lock:
            self.meta = replace(self.meta, **changes)
            self._meta_dirty = True
            try:
                self._write_sidecar(durable=True)
            except OSError as exc:  # kept in memory and dirty: the next flush retries it
                if isinstance(exc, StorageError):
                    raise
                raise StorageError(
                    f"aim_parquet could not write the sidecar of run {self.run_hash}: {exc}"
                ) from exc

    # -- closing ---------------------------------------------------------------------------
    def close(self, *, end_time: float | None) -> None:
        """Stop the flusher, flush everything durably, set end_time, release the lock."""
        if self.is_closed:
            return
        self.is_closed = True
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        try:
            self.meta = replace(self.meta, end_time=end_time)
            self._meta_dirty = True
            self.flush(durable=True)
            if self.dropped_points and self.error is None:
                self.record_error(
                    StorageError(
                        f"{self.dropped_points} points of run {self.run_hash} were dropped while "
                        "writes kept failing (everything else is written)."
                    )
                )
        except BaseException as exc:
            self.record_error(exc)
            with contextlib.suppress(BaseException):
                self._drop_unwritten()
        finally:
            for seq in self.seqs.values():
                if seq.segment is not None:
                    with contextlib.suppress(OSError):
                        seq.segment.close(sync=True)
                    seq.segment = None
            self._run_lock.release()

    def _drop_unwritten(self) -> None:
        for seq in self.seqs.values():
            self.dropped_points += sum(b.num_rows for b in seq.failed)
            seq.failed.clear()
        if self.dropped_points:
            log.error(
                "aim_parquet: run %s closed with %d points that could not be written "
                "(everything written before the error is intact).",
                self.run_hash,
                self.dropped_points,
            )
