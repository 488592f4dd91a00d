"""`Run`: Aim's user-facing run object on our append-only store.

The write hot path is `Run.track` for a Python number: it validates with `type(...) is` checks,
finds the sequence buffer in a dict keyed by (name, context) and appends four values with one
atomic `list.extend`. Everything else (objects, dicts of metrics, conversions, errors) takes the
slow path.

Writes around `close()`: a point tracked before close() has taken its final batches is written;
`track()` after that (or from a forked child, which disowns the parent's runs) drops the point
and logs one warning per run, as Aim ignores it, so the end of a training job never crashes on a
last metric.

`Run` is the last of a chain of explicit base classes, each one job: `sdk.run_base.RunBase` (the
run's identity, properties and catalogue), `sdk.run_read.ReadableRun` (sequence access: what
read-only and writing runs share), `sdk.run_writing.WritingRun` (the writer's state, updates and
lifecycle); this module opens the writer and tracks into it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Self

from aim_parquet.errors import MissingRunError
from aim_parquet.format.meta import RunMeta
from aim_parquet.format.paths import RepoLayout, generate_run_hash, validate_run_hash
from aim_parquet.format.run_fields import LOG_RECORDS_SEQUENCE, experiment_or_default
from aim_parquet.format.values import (
    check_text,
    has_lone_surrogate,
    normalize_context,
    normalize_param,
    to_python_number,
)
from aim_parquet.sdk import close_job, lifecycle, shared_writers
from aim_parquet.sdk.run_base import layout_for
from aim_parquet.sdk.run_open import create_run_folder, open_main_writer
from aim_parquet.sdk.run_writing import WritingRun
from aim_parquet.sdk.track_checks import (
    MAX_STEP,
    MIN_EPOCH,
    check_kind,
    checked_epoch,
    checked_step,
    no_next_step,
    object_rows,
    rank_context,
    seq_cache_key,
)
from aim_parquet.storage.index.run_records import RunRecord
from aim_parquet.storage.online.extra_writer import open_extra_writer
from aim_parquet.storage.online.run_reader import load_run_meta
from aim_parquet.storage.online.run_writer import RunWriter
from aim_parquet.system.launch import DistributedLaunch, detect_launch

if TYPE_CHECKING:
    from aim_parquet.sdk.repo import Repo

__all__ = ["MAX_STEP", "MIN_EPOCH", "Run"]

log = logging.getLogger(__name__)

_now = time.time
# How many runs of its distributed job this process opened with a derived hash: the next one is
# the job's run number `_launch_runs[0]`. It advances only when the open succeeds, so a rank
# whose Run() failed (RunLockedError, a full disk) and retries opens the same run as its peers.
_launch_runs = [0]
_launch_runs_lock = threading.Lock()


class Run(WritingRun):
    """A training run: properties, params and tracked sequences (Aim's `aim.Run`). A read-only
    run (`read_only=True`, `open_read_only`) is one with no writer."""

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
            layout = layout_for(repo, create=False)
            self._init_run(layout, run_hash, load_run_meta(layout, run_hash), repo=repo)
            return
        from aim_parquet.system.resources import validate_interval

        interval = validate_interval(system_tracking_interval)
        layout = layout_for(repo, create=True)
        launch = detect_launch()
        if launch is not None:  # one run, written by every rank of the job
            self._rank = launch.rank
            self._system_labels = launch.labels
        # a new run of a distributed job has no hash yet: `_join_or_open` derives it
        self._init_run(
            layout, run_hash or ("" if launch is not None else generate_run_hash()), repo=repo
        )
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
        job = close_job.CloseJob(  # holds the writer and services, never the Run
            functools.partial(close_job.close_run_parts, self._writer, self._extensions),
            f"closing run {self.hash}",
            pending=self._writer.describe_unwritten,
        )
        self._close_job = job
        self._finalizer = weakref.finalize(self, job.start)  # collected without close()
        self._finalizer.atexit = False  # at exit lifecycle.close_all closes it and waits
        lifecycle.register(self)
        self._shared = shared_writers.register_owner(self)
        return False

    @classmethod
    def open_read_only(
        cls, layout: RepoLayout, meta: RunMeta | RunRecord, *, repo: Repo | None = None
    ) -> Self:
        """A read-only run over metadata already read (what `Run(h, read_only=True)` builds,
        without reading the sidecar a second time); a RunRecord's metadata is decoded only when
        the run's fields are first used. `repo`: the Repo handing it out (then `run.repo`)."""
        run = cls.__new__(cls)
        run._init_run(layout, meta.hash, meta, repo=repo)
        run._init_tracking(None, read_only=True)
        return run

    @classmethod
    def _writer_view(cls, writer: RunWriter) -> Run:
        """A Run that only tracks into `writer`, with no lifecycle of its own (no close job, not
        registered): the services of a Run collected without close() deliver their last samples
        and lines through it while the collected run's finalizer closes the writer."""
        view = cls.__new__(cls)
        view._init_run(writer.layout, writer.run_hash)
        view._init_tracking(writer, read_only=False)
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
            create_run_folder(self._layout, self._new_run_meta(experiment), is_multi_writer=True)
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
        """Open and start the main writer (`sdk.run_open`); `is_new`: create the run first."""
        writer, is_job = open_main_writer(
            self._layout,
            self.hash,
            new_meta=self._new_run_meta(experiment) if is_new else None,
            experiment=experiment,
            force=force,
            is_multi=is_multi,
        )
        if is_job:  # it writes a job's run as rank 0
            self._rank = self._rank or 0
        for seq in writer.seqs.values():
            if seq.is_metric:
                self._cache_seq(seq, seq.info.name, seq.info.context)
        writer.start()
        self._writer = writer

    def _new_run_meta(self, experiment: str | None) -> RunMeta:
        """The sidecar a new run starts with (an importer adds its own properties)."""
        return RunMeta(
            hash=self.hash,
            creation_time=time.time(),
            experiment=experiment_or_default(experiment),
        )

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
                no_next_step(name)
        elif type(step) is not int or not 0 <= step <= MAX_STEP:
            step = checked_step(step)
        if epoch is not None and (type(epoch) is not int or not MIN_EPOCH <= epoch <= MAX_STEP):
            epoch = checked_epoch(epoch)
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
                checked_step(step) if type(step) is not int or not 0 <= step <= MAX_STEP else step
            )
        if epoch is not None:
            epoch = checked_epoch(epoch)
        number = to_python_number(value)
        if number is not None:
            kind = "float" if type(number) is float else "int"
            rows: list[Any] = [number]
            seq = None
        else:
            kind, rows = object_rows(value, name)
            seq = self._object_seqs.get(seq_cache_key(name, context))
        if seq is None:
            stored = normalize_context(context)
            if self._rank is not None:
                stored = rank_context(self._rank or 0, stored)
            seq = writer.open_sequence(name, stored, kind)
            check_kind(seq, kind, value, name)
            self._cache_seq(seq, name, context)
        elif seq.info.kind != kind:
            check_kind(seq, kind, value, name)
        ts = time.time() if timestamp is None else timestamp
        with writer.lock:
            if step is None:
                step = seq.next_step
                if step > MAX_STEP:
                    no_next_step(name)
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
