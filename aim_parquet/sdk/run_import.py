"""`ImportRun`: a writable `Run` for bringing other trackers' runs in, keeping their times.

A converter knows when each point was recorded, when the run started and when it ended; `Run`
stamps `time.time()` on all three. `ImportRun` takes them from the source instead, and tracks a
whole metric history in one call (`track_points`), which costs about a tenth of a `track()` call per
point. It runs no system tracking and captures no terminal output.

An import must not pass for whole when it is not: an `ImportRun` is always strict (a failed write
raises `StorageError` at the next call instead of being logged), `complete()` writes its final
params only once every point is on disk, and Ctrl-C during the last flush of `close()` comes out
as `KeyboardInterrupt`, not as a write error.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from aim_parquet.errors import StorageError
from aim_parquet.format.meta import RunMeta
from aim_parquet.format.values import (
    check_text,
    has_lone_surrogate,
    normalize_context,
    normalize_param,
)
from aim_parquet.sdk.params import key_path, set_path
from aim_parquet.sdk.run import Run
from aim_parquet.sdk.track_checks import MAX_STEP, MIN_EPOCH, check_kind


class ImportRun(Run):
    """A new run whose creation time, end time and point timestamps come from a source."""

    def __init__(
        self,
        *,
        repo: Any = None,
        experiment: str | None = None,
        creation_time: float | None = None,
        name: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        """`name` and `params` are in the run's first sidecar: the run never exists without
        them (a converter's source marker, even if the process is killed at once)."""
        check_text(name, "run name")  # (refused as by the `name` setter)
        self._initial_name = None if name is None else str(name)
        self._initial_params = normalize_param(dict(params or {}), "params")
        super().__init__(
            repo=repo,
            experiment=experiment,
            system_tracking_interval=None,
            log_system_params=False,
            capture_terminal_logs=False,
        )
        self._is_strict = True
        self._source_end_time: float | None = None
        if creation_time is not None:
            self.set_times(creation_time=creation_time)

    def set_times(
        self, *, creation_time: float | None = None, end_time: float | None = None
    ) -> None:
        """Set the source's start time now and its end time for `close()` (seconds since the
        epoch; None keeps the current value)."""
        if creation_time is not None:
            self._set_props(creation_time=_finite(creation_time, "creation_time"))
        if end_time is not None:
            self._source_end_time = _finite(end_time, "end_time")

    def complete(self, key: str, value: Any) -> None:
        """Write every buffered point, then set param `key` (and the source's end time) in one
        durable sidecar write. StorageError, with `key` left unset, unless every point tracked
        so far is on disk: a marker set here can be trusted."""
        writer = self._require_writer()
        writer.flush()
        if writer.dropped_points:
            raise StorageError(
                f"{writer.dropped_points} points of run {self.hash} could not be written"
            )
        path = key_path(key)
        clean = normalize_param(value, key)
        changes: dict[str, Any] = {"params": set_path(writer.meta.params, path, clean)}
        if self._source_end_time is not None:
            changes["end_time"] = self._source_end_time
        self._update_meta(writer, **changes)

    def close(self) -> None:
        writer = self._writer
        try:
            super().close()
        except StorageError:
            error = writer.error if writer is not None else None
            if error is not None and not isinstance(error, Exception):
                raise error from None  # Ctrl-C (or exit) during the last flush: stop as asked
            raise

    def _new_run_meta(self, experiment: str | None) -> RunMeta:
        meta = super()._new_run_meta(experiment)
        return replace(meta, name=self._initial_name, params=self._initial_params)

    def _closing_end_time(self) -> float:
        if self._source_end_time is not None:
            return self._source_end_time
        return time.time()

    def track_at(
        self,
        value: Any,
        name: str,
        step: int,
        epoch: int | None = None,
        *,
        context: dict[str, Any] | None = None,
        timestamp: float,
    ) -> None:
        """`track(value, name, step, epoch, context=...)` recorded at `timestamp`."""
        self._track_slow(value, name, step, epoch, context, _finite(timestamp, "timestamp"))

    def track_points(
        self,
        name: str,
        steps: Sequence[int],
        values: Sequence[int | float],
        *,
        epochs: Sequence[int | None] | None = None,
        timestamps: Sequence[float],
        context: dict[str, Any] | None = None,
    ) -> None:
        """Track a metric history at once: `values[i]` at `steps[i]`, recorded at
        `timestamps[i]` (Python ints and floats; NaN and infinities are kept)."""
        writer = self._require_writer()
        n = len(steps)
        if len(values) != n or len(timestamps) != n or (epochs is not None and len(epochs) != n):
            raise ValueError(
                f"track_points({name!r}): steps, values, timestamps and epochs must have the "
                "same length"
            )
        if n == 0:
            return
        if not isinstance(name, str) or not name or has_lone_surrogate(name):
            raise ValueError(f"track_points() needs a non-empty UTF-8 str name, got {name!r}")
        if not all(type(s) is int and 0 <= s <= MAX_STEP for s in steps):
            raise ValueError(f"track_points({name!r}): every step must be an int in 0..2**63-1")
        if epochs is not None and not all(
            e is None or (type(e) is int and MIN_EPOCH <= e <= MAX_STEP) for e in epochs
        ):
            raise ValueError(f"track_points({name!r}): every epoch must be an int64 or None")
        if all(type(v) is int for v in values):
            kind = "int"
        elif all(type(v) is int or type(v) is float for v in values):
            kind = "float"
        else:
            raise ValueError(f"track_points({name!r}): values must be Python ints or floats")
        if not all(type(t) is float for t in timestamps):
            timestamps = [float(t) for t in timestamps]
        seq = writer.open_sequence(name, normalize_context(context), kind)
        check_kind(seq, kind, values[0], name)
        flat: list[Any] = [None] * (4 * n)
        flat[0::4] = steps
        flat[1::4] = values
        if epochs is not None:
            flat[2::4] = epochs
        flat[3::4] = timestamps
        highest = max(steps)
        with writer.lock:
            if highest >= seq.next_step:
                seq.next_step = highest + 1
            seq.points.extend(flat)
        if len(seq.points) >= seq.flush_at:
            writer.request_flush(seq)


def _finite(value: Any, what: str) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{what} must be a finite number of seconds, got {value!r}")
    return number
