"""`WritingRun`: the writer side of every `Run` (None for a read-only run): the writer and its
caches, property and param updates, `flush()`, `close()`, a forked child's disowning and the
handles of one writer shared by several `Run` objects of a process (`sdk.shared_writers`).

`sdk.run.Run` adds how a writer is opened and what is tracked into it. Setting a param after
close() raises RunClosedError, except after a SIGTERM closed the run (the process is ending):
then it is dropped with a warning.
"""

from __future__ import annotations

import functools
import logging
import os
import time
import weakref
from collections.abc import Iterator
from typing import Any, Self

from aim_parquet.errors import ReadOnlyRunError, RunClosedError, StorageError, UnsupportedValueError
from aim_parquet.format.meta import RunMeta, SequenceInfo
from aim_parquet.format.values import normalize_param
from aim_parquet.sdk import close_job, lifecycle, shared_writers
from aim_parquet.sdk.params import ParamKey, del_path, get_path, key_path, set_path
from aim_parquet.sdk.run_read import ReadableRun
from aim_parquet.sdk.track_checks import seq_cache_key, user_context
from aim_parquet.storage.online.catalogue_scan import discover_sequences
from aim_parquet.storage.online.run_reader import load_run_meta
from aim_parquet.storage.online.run_writer import RunWriter, SeqBuffer

log = logging.getLogger(__name__)

STRICT_ENV = "AIM_PARQUET_STRICT"


class WritingRun(ReadableRun):
    """A run's writer state and lifecycle (`sdk.run.Run` is the class users make)."""

    _writer: RunWriter | None
    _retired: RunWriter | None = None  # the writer after close(), or a forked child's copy
    _close_job: close_job.CloseJob | None = None
    _finalizer: weakref.finalize[[], WritingRun] | None = None
    _has_warned_param = False
    _rank: int | None = None  # this process's rank when several processes write the run
    _system_labels: dict[str, Any] = {}  # added to the context of system metrics (rank, host)
    _shared: shared_writers.SharedWriter | None = None  # while this handle is open
    _shared_owner: WritingRun | None = None  # a later handle of a shared writer: the first one

    # -- state -----------------------------------------------------------------------------
    def _init_tracking(self, writer: RunWriter | None, *, read_only: bool) -> None:
        """The state `track()` works on: the writer and the caches of its sequence buffers."""
        self._writer = writer
        self._metric_seqs: dict[Any, SeqBuffer] = {}
        self._object_seqs: dict[Any, SeqBuffer] = {}
        self._last_context: dict[Any, tuple[dict[str, Any], SeqBuffer]] = {}
        self._extensions: list[Any] = []
        self.read_only = bool(read_only)
        self._is_strict = os.environ.get(STRICT_ENV, "") not in ("", "0")

    @property
    def _meta(self) -> RunMeta:
        if self._rank:  # an extra writer: properties and params are rank 0's, read fresh
            return load_run_meta(self._layout, self.hash)
        if self._writer is not None:
            return self._writer.meta
        return super()._meta

    def _catalogue(self) -> tuple[RunMeta, list[SequenceInfo]]:
        """As `RunBase._catalogue`; a writing run flushes its buffers first, so it reads what it
        has tracked."""
        writer = self._writer
        if writer is None:
            return super()._catalogue()
        try:
            writer.flush()
        except OSError as exc:
            log.error("aim_parquet: flushing run %s before reading failed: %s", self.hash, exc)
        meta = writer.snapshot()
        return meta, discover_sequences(self._layout, self.hash, meta)

    def _require_writer(self) -> RunWriter:
        writer = self._writer
        if writer is None:
            raise self._not_writable()
        if writer.error is not None and self._is_strict:
            error, writer.error = writer.error, None
            raise error
        return writer

    def _not_writable(self) -> Exception:
        if self.read_only:
            return ReadOnlyRunError(f"Run {self.hash} was opened with read_only=True.")
        retired = self._retired
        if retired is not None and retired.is_disowned:
            return RunClosedError(
                f"Run {self.hash} is written by process {retired.owner_pid}; this process "
                f"({os.getpid()}) is a fork of it and cannot write it. Open a new aim.Run here."
            )
        return RunClosedError(f"Run {self.hash} is closed; resume it with Run(run_hash=...).")

    def _is_dropped_on_rank(self, what: str) -> bool:
        """An extra writer (rank >= 1) does not write params or properties (rank 0 does): the
        change is dropped with one warning."""
        if not self._rank or self._writer is None:
            return False
        if not self._has_warned_param:
            self._has_warned_param = True
            log.warning(
                "aim_parquet: run %s: setting %s from rank %d is dropped (warned once); params and "
                "properties of a distributed job's run are written by rank 0.",
                self.hash,
                what,
                self._rank,
            )
        return True

    def _set_props(self, **changes: Any) -> None:
        if self._is_dropped_on_rank(", ".join(changes)):
            return
        if self._writer is None and (self.read_only or self._is_closed_here()):
            from aim_parquet.sdk.run_edits import edit_props

            self._meta_cache, self._meta_source = edit_props(self, changes), None
            return
        writer = self._writer_for_update(", ".join(changes))
        if writer is not None:
            self._update_meta(writer, **changes)

    def _writer_for_update(self, what: str) -> RunWriter | None:
        """The writer for a param/property change; None (dropped, with a warning) when a SIGTERM
        closed the run: the process is ending and its code may not know yet."""
        if self._writer is None and self._is_closed_on_signal():
            self._drop_update(what)
            return None
        return self._require_writer()

    def _is_closed_here(self) -> bool:
        """Closed by this process (not a fork's copy, not by a SIGTERM ending the process)."""
        retired = self._retired
        return retired is not None and not retired.is_disowned and not lifecycle.is_terminating()

    def _is_closed_on_signal(self) -> bool:
        retired = self._retired
        return retired is not None and not retired.is_disowned and lifecycle.is_terminating()

    def _drop_update(self, what: str) -> None:
        if not self._has_warned_param:
            self._has_warned_param = True
            log.warning(
                "aim_parquet: run %s was closed on SIGTERM; setting %s is dropped (warned once).",
                self.hash,
                what,
            )

    def _update_meta(self, writer: RunWriter, **changes: Any) -> None:
        """Persist changed properties/params; a failed write (disk full) raises only in strict
        mode, otherwise it is logged and the change is written with the next flush."""
        try:
            writer.update_meta(**changes)
        except StorageError as exc:
            if self._is_strict:
                raise
            writer.record_error(exc)
        except RunClosedError:  # another thread closed the run meanwhile
            if not lifecycle.is_terminating():
                raise
            self._drop_update(", ".join(changes))

    def _join_shared(self, experiment: str | None) -> bool:
        """Share the writer when this process already writes the run (`sdk.shared_writers`)."""

        joined = shared_writers.join(self)
        if joined is None:
            return False
        entry, owner = joined
        writer = entry.writer
        self._init_tracking(writer, read_only=False)
        self._shared, self._shared_owner = entry, owner
        for seq in list(writer.seqs.values()):
            if seq.is_metric:
                self._cache_seq(seq, seq.info.name, seq.info.context)
        release = functools.partial(shared_writers.release_collected, entry, owner)
        self._finalizer = weakref.finalize(self, release)
        self._finalizer.atexit = False
        lifecycle.register(self)
        if experiment:
            self._update_meta(writer, experiment=str(experiment))
        return True

    def _close_while_terminating(self) -> None:
        """A SIGTERM is closing this process's runs (the program ran on while it did): close
        this one too rather than hand out a run nobody would close before the process dies. On
        the main thread the process then ends by SIGTERM; elsewhere what is tracked into the run
        is dropped with a warning, as after any close."""
        log.warning(
            "aim_parquet: run %s was opened while a SIGTERM is closing this process's runs; it is "
            "closed at once.",
            self.hash,
        )
        extensions = list(self._extensions)
        self.close()
        for ext in extensions:  # started after a close the SIGTERM's closer had already done
            ext.stop()

    def _user_context(self, context: dict[str, Any]) -> dict[str, Any]:
        """The context this rank's code passes for a stored one (without its own rank)."""
        return user_context(self._rank, context)

    def _cache_seq(self, seq: SeqBuffer, name: str, context: Any) -> None:
        """Remember the buffer of (name, context) so later calls skip validating the context
        and hashing the sequence id (metrics: for the `track` fast path)."""
        key = seq_cache_key(name, context)
        if key is not None:
            (self._metric_seqs if seq.is_metric else self._object_seqs)[key] = seq

    # -- params ----------------------------------------------------------------------------
    def __setitem__(self, key: ParamKey, value: Any) -> None:
        self.set(key, value, strict=True)

    def set(self, key: ParamKey, value: Any, strict: bool = True) -> None:
        path = key_path(key)
        try:
            clean = normalize_param(value, ".".join(path) or "...")
        except UnsupportedValueError:
            if strict:
                raise
            clean = repr(value)
        if self._is_dropped_on_rank(f"run[{key!r}]"):
            return
        writer = self._writer_for_update(f"run[{key!r}]")
        if writer is not None:
            self._update_meta(writer, params=set_path(writer.meta.params, path, clean))

    def __getitem__(self, key: ParamKey) -> Any:
        return get_path(self._meta.params, key_path(key))

    def get(self, key: ParamKey, default: Any = None, strict: bool = True) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __delitem__(self, key: ParamKey) -> None:
        if self._is_dropped_on_rank(f"del run[{key!r}]"):
            return
        writer = self._writer_for_update(f"del run[{key!r}]")
        if writer is not None:
            self._update_meta(writer, params=del_path(writer.meta.params, key_path(key)))

    def iter_params(self) -> Iterator[tuple[str, Any]]:
        yield from self._meta.params.items()

    # -- lifecycle -------------------------------------------------------------------------
    def flush(self) -> None:
        """Write every buffered point now (normally the flusher does this every second).

        A failed write (disk full) raises StorageError only in strict mode; otherwise it is logged
        loudly, the points stay buffered for the next flush and `close()` reports it. After
        close() there is nothing left to write and this does nothing.
        """
        if self._writer is None and not self.read_only and self._retired is not None:
            return
        writer = self._require_writer()
        try:
            writer.flush()
        except StorageError as exc:
            if self._is_strict:
                raise
            writer.record_error(exc)

    def close(self) -> None:
        """Stop background work, flush all data durably, set `end_time`, release the lock.

        The work runs on its own thread and this call waits for it, so a Ctrl-C or a second
        SIGTERM meanwhile cannot cut it short (the interrupt is raised when it is done). Points
        tracked by other threads before the final flush are written; later ones are dropped with
        a warning. Idempotent; several threads may call it at once.
        """
        entry = self._shared
        if entry is not None:
            if self._writer is None:
                return  # this handle is closed; the run closes with its last handle
            is_last = entry.release()
            self._leave_shared(is_last=is_last)
            if not is_last or self._close_job is None:
                return
            self._shared = None
            self._writer, self._retired = self._retired, None
        job = self._close_job
        if job is None:
            return
        try:
            job.run_to_end(self._closing_end_time())
        except BaseException:  # a deferred Ctrl-C: the bookkeeping first, if the work is done
            if job.is_done:
                self._retire()
            raise
        error = self._retire()
        if error is not None:
            if self._is_strict:
                raise error if isinstance(error, StorageError) else StorageError(str(error))
            log.error(
                "aim_parquet: run %s closed after a write error (%s); data written before it is "
                "intact. Set AIM_PARQUET_STRICT=1 to make such errors raise.",
                self.hash,
                error,
            )
        lifecycle.end_after_sigterm_close()

    def _closing_end_time(self) -> float:
        """The `end_time` `close()` records: now (an importer keeps the source's)."""
        return time.time()

    def _retire(self) -> BaseException | None:
        """After the close job: forget the writer (keeping it for late points); its error, the
        first time only."""
        writer = self._writer
        if writer is None:
            return None
        self._writer = None
        self._retired = writer
        self._meta_cache = writer.meta
        lifecycle.unregister(self)
        if self._finalizer is not None:
            self._finalizer.detach()
        return writer.error

    def _after_fork_in_child(self) -> None:
        """In a forked child (lifecycle's fork hook): disown the run. The child never flushes,
        unlocks, writes the sidecar or closes it; its track() calls are dropped with a warning."""
        self._close_job = None
        if self._finalizer is not None:
            self._finalizer.detach()
        for ext in self._extensions:
            ext.disown_after_fork()
        self._extensions.clear()
        writer = self._writer
        if writer is not None:
            if not writer.is_disowned:  # shared by several handles: disowned once
                writer.disown_after_fork()
            self._writer = None
            self._retired = writer
            self._meta_cache = writer.meta

    def _leave_shared(self, *, is_last: bool) -> None:
        """Close this handle of a shared writer: flush, then forget the writer (keeping it for
        late points); the last handle then closes the run through the first handle's job."""
        entry, writer = self._shared, self._writer
        assert entry is not None and writer is not None
        if not is_last:
            self.flush()
        self._writer, self._retired, self._meta_cache = None, writer, writer.meta
        if self._close_job is not None:  # the first handle: it keeps its job for the last one
            entry.is_owner_closed = True
            return
        self._shared = None
        lifecycle.unregister(self)
        if self._finalizer is not None:
            self._finalizer.detach()
        owner, self._shared_owner = self._shared_owner, None
        if is_last and owner is not None:
            owner._close_as_last_handle()

    def _close_as_last_handle(self) -> None:
        """The first handle of a shared writer, closed before the others: close the run now."""
        self._shared = None
        retired = self._retired
        if self._writer is None and retired is not None and not retired.is_disowned:
            self._writer, self._retired = retired, None
        self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if self.read_only:
            mode = "read-only"
        elif self._writer is not None:
            mode = "open"
        else:
            mode = "forked copy" if self._retired and self._retired.is_disowned else "closed"
        return f"<Run {self.hash} ({mode}) in {self._layout.root}>"
