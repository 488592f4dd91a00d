"""`Run`: Aim's user-facing run object on our append-only store.

The write hot path is `Run.track` for a Python number: it validates with `type(...) is` checks,
finds the sequence buffer in a dict keyed by (name, context) and appends four values with one
atomic `list.extend`. Everything else (objects, dicts of metrics, conversions, errors) takes the
slow path.

Writes around `close()`: a point tracked before close() has taken its final batches is written;
`track()` after that (or from a forked child, which disowns the parent's runs) drops the point
and logs one warning per run, as Aim ignores it, so the end of a training job never crashes on a
last metric. Setting a param after close() raises RunClosedError, except after a SIGTERM closed
the run (the process is ending): then it is dropped with a warning too.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import shutil
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from typing import Any

from aim_parquet.errors import (
    IncompatibleSequenceError,
    MissingRunError,
    ReadOnlyRunError,
    RunClosedError,
    StorageError,
    UnsupportedValueError,
)
from aim_parquet.format.kinds import is_metric_kind
from aim_parquet.format.meta import MULTI_WRITER_FORMAT_VERSION, RunMeta
from aim_parquet.format.paths import (
    SIDECAR_FILENAME,
    TEMP_PREFIX,
    generate_run_hash,
    validate_run_hash,
)
from aim_parquet.format.values import (
    check_text,
    has_lone_surrogate,
    normalize_context,
    normalize_param,
    to_python_number,
)
from aim_parquet.objects import CustomObject, object_kind
from aim_parquet.sdk import lifecycle
from aim_parquet.sdk.params import ParamKey, del_path, get_path, key_path, set_path
from aim_parquet.sdk.run_base import RunReadMixin, layout_for
from aim_parquet.storage.base.atomic import atomic_write
from aim_parquet.storage.base.lock import RunLock
from aim_parquet.storage.base.repo_changes import note_change
from aim_parquet.storage.online.catalogue_scan import resume_catalogue
from aim_parquet.storage.online.extra_writer import main_writer_meta, open_extra_writer
from aim_parquet.storage.online.run_reader import load_run_meta, load_sidecar
from aim_parquet.storage.online.run_writer import RunWriter, SeqBuffer
from aim_parquet.storage.online.writer_parts import sequence_owner
from aim_parquet.system.launch import DistributedLaunch, detect_launch

log = logging.getLogger(__name__)

MAX_STEP = 2**63 - 1
MIN_EPOCH = -(2**63)
LOG_RECORDS_SEQUENCE = "__log_records"
STRICT_ENV = "AIM_PARQUET_STRICT"
_MISSING = object()


_now = time.time
# How many runs of its distributed job this process opened with a derived hash: the next one is
# the job's run number `_launch_runs[0]`. It advances only when the open succeeds, so a rank
# whose Run() failed (RunLockedError, a full disk) and retries opens the same run as its peers.
_launch_runs = [0]
_launch_runs_lock = threading.Lock()
_encode_meta = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode


def _seq_cache_key(name: str, context: Any) -> Any:
    """The key under which a sequence buffer is cached: the name for an empty context,
    (name, frozenset of items) for a dict of str values, None (not cached) otherwise.

    1, 1.0 and True compare and hash equal but are different contexts ({"a": 1} and {"a": True}
    are two sequences), so contexts with non-str values are never cached: the slow path tells
    them apart.
    """
    if context is None:
        return name
    if type(context) is dict:
        if not context:
            return name
        if all(type(v) is str for v in context.values()):
            return (name, frozenset(context.items()))
    return None


def _checked_step(step: Any) -> int:
    """`step` as a Python int in [0, 2**63-1] (numpy and torch integers too), else ValueError."""
    number = to_python_number(step)
    if type(number) is not int or isinstance(step, float):
        raise ValueError(f"step must be an int, got {step!r} ({type(step).__name__}).")
    if not 0 <= number <= MAX_STEP:
        raise ValueError(f"step must be between 0 and 2**63-1, got {number}.")
    return number


def _no_next_step(name: Any) -> None:
    raise ValueError(
        f"sequence {name!r} already has step 2**63-1, the largest step; pass step= explicitly."
    )


def _checked_epoch(epoch: Any) -> int:
    """`epoch` as a Python int that fits in int64, else ValueError."""
    number = to_python_number(epoch)
    if type(number) is not int or isinstance(epoch, float):
        raise ValueError(f"epoch must be an int or None, got {epoch!r}.")
    if not MIN_EPOCH <= number <= MAX_STEP:
        raise ValueError(f"epoch must fit in int64, got {number}.")
    return number


class Run(RunReadMixin):
    """A training run: properties, params and tracked sequences (Aim's `aim.Run`)."""

    # Class-level defaults: read-only runs built without __init__ (query results) have them too.
    _writer: RunWriter | None
    _retired: RunWriter | None = None  # the writer after close(), or a forked child's copy
    _close_job: lifecycle.CloseJob | None = None
    _finalizer: weakref.finalize[[], Run] | None = None
    _has_warned_param = False
    _rank: int | None = None  # this process's rank when several processes write the run
    _system_labels: dict[str, Any] = {}  # added to the context of system metrics (rank, host)
    _shared: Any = None  # shared_writers.SharedWriter while this handle is open
    _shared_owner: Run | None = None  # a later handle of a shared writer: the first handle

    def __init__(
        self,
        run_hash: str | None = None,
        *,
        repo: Any = None,
        read_only: bool = False,
        experiment: str | None = None,
        force_resume: bool = False,
        system_tracking_interval: float | int | None = 10,
        log_system_params: bool | None = False,
        capture_terminal_logs: bool | None = True,
    ) -> None:
        self._init_tracking(None, read_only=read_only)
        if run_hash is not None:
            validate_run_hash(run_hash)
        check_text(experiment, "experiment name")
        if self.read_only:
            if run_hash is None:
                raise ValueError("Run(read_only=True) needs the run_hash of an existing run.")
            self._layout = layout_for(repo, create=False)
            self.hash = run_hash
            self._meta_cache: RunMeta | None = load_run_meta(self._layout, run_hash)
            return
        from aim_parquet.system.resources import validate_interval

        interval = validate_interval(system_tracking_interval)
        self._layout = layout_for(repo, create=True)
        launch = detect_launch()
        self._meta_cache = None
        if launch is None:
            self.hash = run_hash or generate_run_hash()
        else:  # one run, written by every rank of the job
            self._rank = launch.rank
            self._system_labels = launch.labels
        if run_hash is not None:
            self.hash = run_hash
        from aim_parquet.sdk import shared_writers

        # threads opening this run at once: one opens and registers, the others join it (a new
        # run of a distributed job has no hash yet, and no other handle to join)
        opening = (
            contextlib.nullcontext()
            if launch is not None and run_hash is None
            else shared_writers.opening(str(self._layout.root), self.hash)
        )
        with opening:
            if self._join_or_open(launch, run_hash, experiment, force_resume):
                return
        from aim_parquet.sdk.run_extensions import start_extensions

        self._extensions[:] = start_extensions(
            self,
            interval_s=interval,
            log_system_params=bool(log_system_params),
            capture_terminal_logs=bool(capture_terminal_logs),
        )
        if lifecycle.is_terminating():
            self._close_while_terminating()

    def _join_or_open(
        self, launch: Any, run_hash: str | None, experiment: str | None, force_resume: bool
    ) -> bool:
        """Join this process's open writer of the run (True), or open one and register it."""
        from aim_parquet.sdk import shared_writers

        if run_hash is not None and self._join_shared(experiment):
            return True
        if launch is None:
            self._open_writer(is_new=run_hash is None, experiment=experiment, force=force_resume)
        elif run_hash is not None:
            self._open_launch_writer(launch, False, experiment, force_resume)
        else:
            with _launch_runs_lock:
                self.hash = launch.run_hash(_launch_runs[0])
                self._open_launch_writer(launch, True, experiment, force_resume)
                _launch_runs[0] += 1
        assert self._writer is not None
        job = lifecycle.CloseJob(  # holds the writer and services, never the Run
            functools.partial(lifecycle.close_run_parts, self._writer, self._extensions),
            f"closing run {self.hash}",
            pending=self._writer.describe_unwritten,
        )
        self._close_job = job
        self._finalizer = weakref.finalize(self, job.start)  # collected without close()
        self._finalizer.atexit = False  # at exit lifecycle.close_all closes it and waits
        lifecycle.register(self)
        self._shared = shared_writers.register_owner(self)
        return False

    def _join_shared(self, experiment: str | None) -> bool:
        """Share the writer when this process already writes the run (`sdk.shared_writers`)."""
        from aim_parquet.sdk import shared_writers

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

    def _leave_shared(self, *, is_last: bool) -> None:
        """Close this handle of a shared writer: flush, then forget the writer (keeping it for
        late points); the last handle then closes the run through the first handle's job."""
        entry, writer = self._shared, self._writer
        assert writer is not None
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

    def _init_tracking(self, writer: RunWriter | None, *, read_only: bool) -> None:
        """The state `track()` works on: the writer and the caches of its sequence buffers."""
        self._writer = writer
        self._meta_source: Any = None  # a run index record to decode the metadata from
        self._metric_seqs: dict[Any, SeqBuffer] = {}
        self._object_seqs: dict[Any, SeqBuffer] = {}
        self._last_context: dict[Any, tuple[dict[str, Any], SeqBuffer]] = {}
        self._extensions: list[Any] = []
        self.read_only = bool(read_only)
        self._is_strict = os.environ.get(STRICT_ENV, "") not in ("", "0")

    @classmethod
    def _writer_view(cls, writer: RunWriter) -> Run:
        """A Run that only tracks into `writer`, with no lifecycle of its own (no close job, not
        registered): the services of a Run collected without close() deliver their last samples
        and lines through it while the collected run's finalizer closes the writer."""
        view = cls.__new__(cls)
        view._init_tracking(writer, read_only=False)
        view._layout = writer.layout
        view.hash = writer.run_hash
        view._meta_cache = None
        return view

    def _open_launch_writer(
        self, launch: DistributedLaunch, is_derived: bool, experiment: str | None, force: bool
    ) -> None:
        """Open this rank's writer of the job's run: rank 0 as the main writer (`lock`,
        `run.json`), another rank as an extra writer (`writers/<rank>.*`). Whichever rank comes
        first creates the run folder; the others find it."""
        run_dir = self._layout.run_dir(self.hash)
        if not run_dir.is_dir():
            if not is_derived:
                raise MissingRunError(
                    f"No run {self.hash!r} in repository {self._layout.root}; pass "
                    "run_hash=None to start the job's run."
                )
            self._create_run_folder(experiment, is_multi_writer=True)
        if launch.rank == 0:
            self._open_writer(is_new=False, experiment=experiment, force=force, is_multi=True)
            return
        writer = open_extra_writer(self._layout, self.hash, launch.rank, force=force)
        for seq in writer.seqs.values():
            if seq.is_metric:
                self._cache_seq(seq, seq.info.name, self._user_context(seq.info.context))
        writer.start()
        self._writer = writer

    def _open_writer(
        self, *, is_new: bool, experiment: str | None, force: bool, is_multi: bool = False
    ) -> None:
        layout = self._layout
        run_dir = layout.run_dir(self.hash)
        if is_new:
            self._create_run_folder(experiment)
        elif not run_dir.is_dir():
            raise MissingRunError(
                f"No run {self.hash!r} in repository {layout.root}; pass run_hash=None to "
                "start a new run."
            )
        lock = RunLock(layout.lock_file(self.hash), self.hash)
        try:
            lock.acquire(force=force)
        except FileNotFoundError:  # moved or deleted since the check above (`runs mv|rm`)
            if is_new:
                raise
            raise MissingRunError(
                f"No run {self.hash!r} in repository {layout.root} (it was moved or deleted "
                "while it was being opened); pass run_hash=None to start a new run."
            ) from None
        except BaseException:
            if is_new:
                shutil.rmtree(run_dir, ignore_errors=True)
            raise
        try:
            meta = load_sidecar(layout, self.hash)
            if is_multi or meta.is_multi_writer:  # a job's run, resumed by a plain process too:
                meta = main_writer_meta(layout, self.hash, meta)  # it writes as rank 0
                self._rank = self._rank or 0
            elif not is_new:  # after a killed writer the catalogue is caught up from the data
                infos = resume_catalogue(layout, self.hash, meta)
                meta = RunMeta(**{**meta.__dict__, "end_time": None, "sequences": infos})
            if experiment:
                meta = RunMeta(**{**meta.__dict__, "experiment": str(experiment)})
            writer = RunWriter(layout, meta, lock)
            writer.update_meta()
        except BaseException:
            lock.release()
            if is_new:  # leave no sidecar-less run folder behind (e.g. the disk is full)
                shutil.rmtree(run_dir, ignore_errors=True)
            raise
        for seq in writer.seqs.values():
            if seq.is_metric:
                self._cache_seq(seq, seq.info.name, seq.info.context)
        writer.start()
        self._writer = writer

    def _create_run_folder(self, experiment: str | None, *, is_multi_writer: bool = False) -> None:
        """Make `runs/<hash>/` appear with its sidecar already in it (built under a temp name,
        then renamed), so no reader ever sees a run folder without a sidecar. `is_multi_writer`:
        the run of a distributed job (format version 2); another rank may create it first."""
        layout = self._layout
        tmp = layout.runs_dir / f"{TEMP_PREFIX}{self.hash}-{os.getpid()}-{generate_run_hash()}"
        tmp.mkdir()
        try:
            meta = self._new_run_meta(experiment)
            if is_multi_writer:
                meta = RunMeta(**{**meta.__dict__, "format_version": MULTI_WRITER_FORMAT_VERSION})
            atomic_write(tmp / SIDECAR_FILENAME, meta.dumps(), durable=True)
            try:
                os.rename(tmp, layout.run_dir(self.hash))
            except OSError as exc:  # another rank created it first (ENOTEMPTY / EEXIST)
                if not is_multi_writer or not layout.run_dir(self.hash).is_dir():
                    raise
                shutil.rmtree(tmp, ignore_errors=True)
                del exc
                return
            note_change(layout)
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(exc, OSError):
                raise StorageError(
                    f"creating run {self.hash} in {layout.root} failed: {exc}"
                ) from exc
            raise

    def _new_run_meta(self, experiment: str | None) -> RunMeta:
        """The sidecar a new run starts with (an importer adds its own properties)."""
        return RunMeta(
            hash=self.hash,
            creation_time=time.time(),
            experiment=str(experiment) if experiment else "default",
        )

    # -- state -----------------------------------------------------------------------------
    @property
    def _meta(self) -> RunMeta:
        if self._rank:  # an extra writer: properties and params are rank 0's, read fresh
            return load_run_meta(self._layout, self.hash)
        if self._writer is not None:
            return self._writer.meta
        if self._meta_cache is None:
            source = self._meta_source
            if source is not None:  # a run a query returned: decode what the index holds
                self._meta_cache, self._meta_source = source.run_meta(), None
            else:
                self._meta_cache = load_run_meta(self._layout, self.hash)
        return self._meta_cache

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

    # -- tracking --------------------------------------------------------------------------
    def track(
        self,
        value: Any,
        name: str | None = None,
        step: int | None = None,
        epoch: int | None = None,
        *,
        context: dict[str, Any] | None = None,
    ) -> None:
        """Track `value` in the sequence (name, context) at `step` (default: max step + 1)."""
        writer = self._writer
        tv = type(value)
        if writer is None or writer.error is not None or (tv is not float and tv is not int):
            self._track_slow(value, name, step, epoch, context)
            return
        try:
            if context:
                last = self._last_context.get(name)
                if last is not None and last[0] == context:
                    seq = last[1]
                else:
                    seq = self._metric_seqs[(name, frozenset(context.items()))]
                    self._last_context[name] = (context.copy(), seq)
            elif context is None or type(context) is dict:
                seq = self._metric_seqs[name]
            else:
                raise KeyError(name)  # an empty non-dict context: the slow path refuses it
        except (KeyError, TypeError, AttributeError):
            self._track_slow(value, name, step, epoch, context)
            return
        if step is None:
            step = seq.next_step
            if step > MAX_STEP:
                _no_next_step(name)
        elif type(step) is not int or not 0 <= step <= MAX_STEP:
            step = _checked_step(step)
        if epoch is not None and (type(epoch) is not int or not MIN_EPOCH <= epoch <= MAX_STEP):
            epoch = _checked_epoch(epoch)
        if step >= seq.next_step:
            seq.next_step = step + 1
        points = seq.points
        points.extend((step, value, epoch, _now()))  # one atomic extend: see SeqBuffer
        if len(points) >= seq.flush_at:
            writer.request_flush(seq)

    def _track_slow(
        self,
        value: Any,
        name: Any,
        step: Any,
        epoch: Any,
        context: Any,
        timestamp: float | None = None,
    ) -> None:
        """Validate and track one value (or a dict of them); `timestamp` defaults to now (an
        importer passes the source's wall time). After close(): dropped, with one warning."""
        if self._writer is None and not self.read_only and self._retired is not None:
            if isinstance(value, dict):  # every value of the dict is dropped
                name, n = ", ".join(map(str, value)), len(value)
            self._retired.drop_late_points(n if isinstance(value, dict) else 1, str(name))
            return
        writer = self._require_writer()
        if isinstance(value, dict):
            if name is not None:
                raise ValueError("track(dict, name=...): with a dict of values, name must be None.")
            for key, item in value.items():
                self._track_slow(item, key, step, epoch, context, timestamp)
            return
        if not isinstance(name, str) or not name:
            raise ValueError(
                f"track() needs a non-empty str name for the sequence, got {name!r} "
                "(e.g. run.track(0.5, name='loss'))."
            )
        if has_lone_surrogate(name):
            raise ValueError(
                f"sequence name {name[:40]!r} holds a lone surrogate; names are stored as UTF-8, "
                "so decode such text properly (or use errors='replace')."
            )
        if step is not None:
            step = (
                _checked_step(step) if type(step) is not int or not 0 <= step <= MAX_STEP else step
            )
        if epoch is not None:
            epoch = _checked_epoch(epoch)
        number = to_python_number(value)
        if number is not None:
            kind = "float" if type(number) is float else "int"
            rows: list[Any] = [number]
            seq = None
        else:
            kind, rows = self._object_rows(value, name)
            seq = self._object_seqs.get(_seq_cache_key(name, context))
        if seq is None:
            stored = normalize_context(context)
            if self._rank is not None:
                stored = self._rank_context(stored)
            seq = writer.open_sequence(name, stored, kind)
            self._check_kind(seq, kind, value, name)
            self._cache_seq(seq, name, context)
        elif seq.info.kind != kind:
            self._check_kind(seq, kind, value, name)
        ts = time.time() if timestamp is None else timestamp
        with writer.lock:
            if step is None:
                step = seq.next_step
                if step > MAX_STEP:
                    _no_next_step(name)
            if step >= seq.next_step:
                seq.next_step = step + 1
            if seq.is_metric:
                seq.points.extend((step, rows[0], epoch, ts))
            else:
                flat: list[Any] = []
                for index, (payload, meta_json) in enumerate(rows):
                    flat += (step, index, epoch, ts, payload, meta_json)
                seq.points.extend(flat)  # all of this step's objects in one atomic extend
            is_full = len(seq.points) >= seq.flush_at
        if is_full:
            writer.request_flush(seq)  # outside writer.lock: see RunWriter's lock order

    def _rank_context(self, context: dict[str, Any]) -> dict[str, Any]:
        """The context a sequence of this rank is stored with: `{"rank": r}` added on a rank
        other than 0; a context naming another writer's rank is refused (each sequence has one
        writer: two ranks never write one sequence)."""
        rank = self._rank or 0
        if rank and "rank" not in context:
            return {**context, "rank": rank}
        owner = sequence_owner(context)
        if owner != rank:
            raise ValueError(
                f"context {context!r} names rank {owner} but this process is rank {rank} of the "
                "job: each rank writes only its own sequences. Use another context key."
            )
        return context

    def _user_context(self, context: dict[str, Any]) -> dict[str, Any]:
        """The context this rank's code passes for a stored one (without its own rank)."""
        if self._rank and context.get("rank") == self._rank:
            return {k: v for k, v in context.items() if k != "rank"}
        return context

    def _cache_seq(self, seq: SeqBuffer, name: str, context: Any) -> None:
        """Remember the buffer of (name, context) so later calls skip validating the context
        and hashing the sequence id (metrics: for the `track` fast path)."""
        key = _seq_cache_key(name, context)
        if key is not None:
            (self._metric_seqs if seq.is_metric else self._object_seqs)[key] = seq

    @staticmethod
    def _object_rows(value: Any, name: str) -> tuple[str, list[Any]]:
        kind = object_kind(value)
        if kind is None:
            raise ValueError(
                f"Input type {type(value).__name__} is neither python number nor AimObject "
                f"(tracking {name!r})."
            )
        items = value if isinstance(value, (list, tuple)) else [value]
        rows = []
        for item in items:
            assert isinstance(item, CustomObject)
            record = item.to_record()
            rows.append((record.payload, _encode_meta(record.meta)))
        return kind, rows

    @staticmethod
    def _check_kind(seq: SeqBuffer, kind: str, value: Any, name: str) -> None:
        have = seq.info.kind
        if have == kind or (is_metric_kind(have) and is_metric_kind(kind)):
            return
        if kind == "list" and have.startswith("list("):
            return
        if have == "list" and kind.startswith("list(") and seq.info.count == 0:
            from dataclasses import replace

            seq.info = replace(seq.info, kind=kind)
            return
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        raise IncompatibleSequenceError(
            f"Cannot log value '{shown}' on sequence '{name}'. Incompatible data types."
        )

    # -- log records -----------------------------------------------------------------------
    def _log_message(self, level: int, msg: str, **extra: Any) -> None:
        from aim_parquet.objects import LogRecord

        caller = sys._getframe(2)
        record = LogRecord(
            str(msg),
            level,
            time.time(),
            extra_args=normalize_param(extra, "extra") if extra else {},
            logger_info=[caller.f_code.co_filename, caller.f_lineno],
        )
        self.track(record, name=LOG_RECORDS_SEQUENCE)

    def log_debug(self, msg: str, **extra: Any) -> None:
        """Append a DEBUG record (message, level, timestamp, extra, caller) to `__log_records`."""
        self._log_message(logging.DEBUG, msg, **extra)

    def log_info(self, msg: str, **extra: Any) -> None:
        """Append an INFO record to `__log_records`."""
        self._log_message(logging.INFO, msg, **extra)

    def log_warning(self, msg: str, **extra: Any) -> None:
        """Append a WARNING record to `__log_records`."""
        self._log_message(logging.WARNING, msg, **extra)

    def log_error(self, msg: str, **extra: Any) -> None:
        """Append an ERROR record to `__log_records`."""
        self._log_message(logging.ERROR, msg, **extra)

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
        job.start(self._closing_end_time())
        try:
            job.wait()
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

    def __enter__(self) -> Run:
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

    def iter_params(self) -> Iterator[tuple[str, Any]]:
        yield from self._meta.params.items()
