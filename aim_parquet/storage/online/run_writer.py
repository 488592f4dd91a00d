"""The write side of one run: the flush policy, segments, the sidecar and closing.

`Run.track` extends a `SeqBuffer` (storage/online/seq_buffer.py) with one atomic list operation per point,
without a lock (the only work on the training thread). A flusher thread turns buffers into record
batches and appends them to segments at least every `flush_interval_s`, sooner when a buffer holds `max_buffer_points`, and on `close()`. The
sidecar (`run.json`) is rewritten atomically after the segments it describes. The segments of the
session (naming, appending, rolling over, what is not synced yet) are `SessionSegments`
(storage/online/session_segments.py).

A failed flush keeps its batches and retries them on the next flush. The error is stored and the
`Run` re-raises it on the next `track()`/`close()` in strict mode; otherwise it is logged loudly.

Closing (`close`): every point that reaches a buffer before the final flush takes its batches is
written. From the start of the close every buffer asks for a flush on each point (`flush_at` 0),
so a point tracked by another thread during the close reaches `request_flush`: before the final
take it waits for the final flush, after it (the writer is *sealed*) it is dropped and counted in
`late_points`, with one warning. After `os.fork()` the child disowns the writer
(`disown_after_fork`): it never flushes, never writes the sidecar and never unlocks.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa

from aim_parquet.errors import AimParquetError, RunClosedError, StorageError
from aim_parquet.format.meta import RunMeta, SequenceInfo
from aim_parquet.format.paths import RepoLayout, sequence_id
from aim_parquet.storage.base.lock import RunLock
from aim_parquet.storage.base.repo_changes import write_sidecar
from aim_parquet.storage.online.catalogue_scan import recount_sequences
from aim_parquet.storage.online.params_file import ParamsFile
from aim_parquet.storage.online.seq_buffer import SeqBuffer
from aim_parquet.storage.online.session_segments import SessionSegments
from aim_parquet.system.threads import start_thread

__all__ = ["RunWriter", "SeqBuffer"]

log = logging.getLogger(__name__)

DEFAULT_FLUSH_INTERVAL_S = 1.0
DEFAULT_MAX_BUFFER_POINTS = 100_000
DEFAULT_MAX_SEGMENT_BYTES = 64 * 1024 * 1024


class RunWriter:
    """Owns a run's lock, buffers, segments, sidecar and flusher thread.

    Locks, always taken in this order: `_flush_lock` (one flush or sidecar write at a time),
    `_seal_lock` (the final take of points against late points), `lock` (the `seqs` dict and the
    slow path's step bookkeeping). None is ever taken on a signal handler's thread.
    """

    def __init__(
        self,
        layout: RepoLayout,
        meta: RunMeta,
        lock: RunLock,
        *,
        flush_interval_s: float = DEFAULT_FLUSH_INTERVAL_S,
        max_buffer_points: int = DEFAULT_MAX_BUFFER_POINTS,
        max_segment_bytes: int = DEFAULT_MAX_SEGMENT_BYTES,
        sidecar_path: Path | None = None,
    ) -> None:
        self.layout = layout
        self.sidecar_path = sidecar_path  # an extra writer's part; None: run.json
        self.run_hash = meta.hash
        self.meta = meta  # properties + params; `sequences` is rebuilt from buffers on write
        self.lock = threading.Lock()  # guards `seqs` and the slow path's step bookkeeping
        self._flush_lock = threading.Lock()  # serialises flushes and sidecar writes
        self._seal_lock = threading.Lock()  # the final take of points vs. late points
        self._run_lock = lock
        self.max_buffer_points = max_buffer_points
        self.seqs: dict[str, SeqBuffer] = {}
        for info in meta.sequences:
            self.seqs[info.seq_id] = SeqBuffer(
                info, layout.seq_dir(meta.hash, info.seq_id), max_buffer_points
            )
        self.flush_interval_s = flush_interval_s
        self.segments = SessionSegments(layout, meta.hash, max_segment_bytes)
        # large params go to their own file, written once per change (run.json only)
        self.params_file = ParamsFile(layout.run_dir(meta.hash)) if sidecar_path is None else None
        self.error: BaseException | None = None
        self.dropped_points = 0
        self.late_points = 0  # points that reached a buffer after the writer was sealed
        self._has_warned_late = False
        self._meta_dirty = True
        self._wake = threading.Event()
        self._is_flush_requested = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._is_closing = False  # close() began: every point asks for a flush
        self._is_sealed = False  # the final flush took its points: nothing more is written
        self.is_closed = False  # close() finished: everything written, lock released
        self.owner_pid = os.getpid()
        self.is_disowned = False  # a forked child's copy

    # -- sequences -------------------------------------------------------------------------
    def open_sequence(self, name: str, context: dict[str, Any], kind: str) -> SeqBuffer:
        """The buffer of (name, context), created if new (atomically: threads that open the same
        new sequence at once all get the same buffer). Caller checks kind compatibility."""
        seq_id = sequence_id(name, context)
        seq = self.seqs.get(seq_id)
        if seq is not None:
            return seq
        with self.lock:
            seq = self.seqs.get(seq_id)
            if seq is None:
                info = SequenceInfo(seq_id=seq_id, name=name, context=context, kind=kind)
                seq = SeqBuffer(
                    info, self.layout.seq_dir(self.run_hash, seq_id), self.max_buffer_points
                )
                if self._is_closing:
                    seq.flush_at = 0
                self.seqs[seq_id] = seq
                self._meta_dirty = True
        return seq

    # -- background flushing ---------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._loop, name=f"aim_parquet-flush-{self.run_hash[:8]}", daemon=True
        )
        start_thread(self._thread)

    def request_flush(self, seq: SeqBuffer) -> None:
        """Wake the flusher (`seq`'s buffer is full). Cheap when already requested: `track` calls
        this on every point until the flusher has taken the buffer, and `Event.set` costs µs.
        While closing, every point comes here (see the module doc)."""
        if self._is_closing:
            self._point_while_closing(seq)
        elif not self._is_flush_requested:
            self._is_flush_requested = True
            self._wake.set()

    def _point_while_closing(self, seq: SeqBuffer) -> None:
        """A point reached `seq` during close(): the final flush takes it, unless it came after
        the final take; then it is dropped (a closed run is never written again), loudly."""
        with self._seal_lock:
            if not self._is_sealed:
                return
            points = seq.points
            n = len(points)
            del points[:n]
        if n:
            self.drop_late_points(n // seq.stride, seq.info.name)

    def drop_late_points(self, n: int, name: str) -> None:
        """Count `n` points tracked into `name` after close() (or in a forked child) and warn once
        per run: they are never written."""
        with self._seal_lock:
            self.late_points += n
            if self._has_warned_late:
                return
            self._has_warned_late = True
        if self.is_disowned:
            log.warning(
                "aim_parquet: run %s is written by process %d; this process (%d) is a fork of it "
                "and cannot write it, so track(%r) and later calls here are dropped (warned "
                "once). Open a new aim.Run in this process to track from it.",
                self.run_hash,
                self.owner_pid,
                os.getpid(),
                name,
            )
        else:
            log.warning(
                "aim_parquet: run %s is closed; track(%r) after close() is dropped, as are later "
                "calls (warned once per run). Resume the run with aim.Run(run_hash=%r) to keep "
                "tracking.",
                self.run_hash,
                name,
                self.run_hash,
            )

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
    def flush(self, *, durable: bool = False, end_time: float | None = None) -> None:
        """Write every buffered point to segments, then the sidecar if anything changed.

        `end_time` makes this the final flush: it sets the end time and seals the writer in the
        same step as it takes the last points. A sealed writer writes nothing more.
        """
        with self._flush_lock:
            if self._is_sealed:
                return
            if end_time is not None:
                with self._seal_lock:
                    work = self._take_work()
                    self._is_sealed = True
                self.meta = replace(self.meta, end_time=end_time)
                self._meta_dirty = True
            else:
                work = self._take_work()
            first_error: BaseException | None = None
            for seq in work:
                try:
                    self.segments.write_batches(seq)
                except (OSError, pa.ArrowException) as exc:
                    first_error = first_error or exc
                    self.dropped_points += self.segments.bound_unwritten(seq)
            if end_time is not None and first_error is None:
                self._recount_rewrites()
            if work or self._meta_dirty:
                try:
                    if durable:  # the points first, then the sidecar that describes them
                        self.segments.unsynced.sync()
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

    def _take_work(self) -> list[SeqBuffer]:
        """Move every buffer's points into its pending batches; the sequences with any pending."""
        with self.lock:
            seqs = list(self.seqs.values())
        work = []
        for seq in seqs:
            batch = seq.take_batch()
            if batch is not None:
                seq.unwritten.append(batch)
            if seq.unwritten:
                work.append(seq)
        return work

    def _recount_rewrites(self) -> None:
        """Before the final sidecar: make exact (from the deduplicated points) the summary of
        every sequence into which a step at or before its `last_step` was written this session
        (`SeqBuffer.summarize` marks it `has_rewrites`), so a closed run's catalogue follows
        last write wins. A failure leaves the mark: readers then recount (`discover_sequences`)."""
        rewritten = [seq for seq in self.seqs.values() if seq.info.has_rewrites]
        if not rewritten:
            return
        try:
            exact = recount_sequences(self.layout, self.run_hash, [s.info for s in rewritten])
        except (OSError, pa.ArrowException, AimParquetError) as exc:
            log.warning(
                "aim_parquet: run %s: could not recount the summaries of rewritten steps (%s); "
                "readers recount them from the points.",
                self.run_hash,
                exc,
            )
            return
        for seq, info in zip(rewritten, exact, strict=True):
            seq.info = info
        self._meta_dirty = True

    def snapshot(self) -> RunMeta:
        with self.lock:
            infos = tuple(seq.info for seq in self.seqs.values())
        return replace(self.meta, sequences=infos, updated_at=time.time())

    def _write_sidecar(self, *, durable: bool) -> None:
        meta = self.snapshot()
        name, is_new_file = None, False
        if self.params_file is not None:
            name, is_new_file = self.params_file.name_for(meta.params, durable=durable)
        data = meta.dumps(params_file=name)
        write_sidecar(
            self.layout,
            self.run_hash,
            data,
            durable=durable,
            path=self.sidecar_path,
            has_inline_params=False,
        )
        self._meta_dirty = False
        if is_new_file and self.params_file is not None:
            self.params_file.prune()  # the sidecar no longer names the superseded file

    def update_meta(self, **changes: Any) -> None:
        """Change properties/params and persist them at once (durably). RunClosedError once the
        writer is sealed (the final sidecar is written)."""
        with self._flush_lock:
            if self._is_sealed:
                raise RunClosedError(f"Run {self.run_hash} is closed; its params are final.")
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
        """Stop the flusher, write every point tracked before the final flush took its batches
        durably, set end_time, release the lock. `is_closed` is set only when all of it is done."""
        if self._is_closing:
            return
        with self.lock:
            self._is_closing = True
            for seq in self.seqs.values():
                seq.flush_at = 0  # every point now reaches request_flush (see the module doc)
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        try:
            try:
                self.flush()  # the bulk, while other threads may still track
            except StorageError as exc:
                self.record_error(exc)  # its batches are kept: the final flush retries them
            self.flush(durable=True, end_time=end_time)
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
            with self._seal_lock:
                self._is_sealed = True  # also after a failed final flush: write nothing more
            for seq in self.seqs.values():
                if seq.segment is not None:
                    with contextlib.suppress(OSError):
                        seq.segment.close(sync=False)  # synced by the final flush
                    seq.segment = None
            self._run_lock.release()
            self.is_closed = True

    def disown_after_fork(self) -> None:
        """In a forked child: never flush, write the sidecar or unlock; the parent still owns the
        run. Fresh locks and events: a parent thread may have held the old ones at the fork."""
        self.lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._seal_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._stop.set()
        self._thread = None
        self.is_disowned = True
        self._is_closing = self._is_sealed = self.is_closed = True
        self._has_warned_late = False
        self.late_points = 0
        for seq in self.seqs.values():
            seq.segment = None
        self._run_lock.disown_after_fork()

    def describe_unwritten(self) -> str:
        """How much is not written yet ("1,234 points of 56 sequences"); approximate while
        other threads write."""
        points = seqs = 0
        for seq in list(self.seqs.values()):
            n = len(seq.points) // seq.stride + sum(b.num_rows for b in list(seq.unwritten))
            if n:
                points, seqs = points + n, seqs + 1
        return f"{points:,} points of {seqs:,} sequences"

    def _drop_unwritten(self) -> None:
        for seq in self.seqs.values():
            self.dropped_points += sum(b.num_rows for b in seq.unwritten)
            seq.unwritten.clear()
        if self.dropped_points:
            log.error(
                "aim_parquet: run %s closed with %d points that could not be written "
                "(everything written before the error is intact).",
                self.run_hash,
                self.dropped_points,
            )
