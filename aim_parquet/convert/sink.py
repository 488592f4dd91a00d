"""Where a converter puts what it reads: a `RunSink` writes one source run into an `ImportRun`,
a `CountingSink` only counts (`--dry-run`). Both keep the per-run counts the summary shows.

Converters call `sink.series(name, context)` once per metric sequence and `add` points to it;
points are handed to the run in chunks of `CHUNK_POINTS` (one `track_points` call each).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aim_parquet.format.values import valid_text
from aim_parquet.sdk.run_import import ImportRun
from aim_parquet.sdk.track_checks import MAX_STEP

CHUNK_POINTS = 50_000


@dataclass
class RunCounts:
    """What one source run gave: sequences, metric points, objects, params, and what was
    skipped (reason -> count)."""

    sequences: int = 0
    points: int = 0
    objects: int = 0
    params: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def add(self, other: RunCounts) -> None:
        self.sequences += other.sequences
        self.points += other.points
        self.objects += other.objects
        self.params += other.params
        self.skipped.update(other.skipped)


class Series:
    """The points of one metric sequence on their way to the run."""

    __slots__ = ("sink", "name", "context", "steps", "values", "epochs", "timestamps", "has_epochs")

    def __init__(self, sink: CountingSink, name: str, context: dict[str, Any]) -> None:
        self.sink = sink
        self.name = name
        self.context = context
        self.steps: list[int] = []
        self.values: list[int | float] = []
        self.epochs: list[int | None] = []
        self.timestamps: list[float] = []
        self.has_epochs = False

    def add(
        self, step: int, value: int | float, timestamp: float, epoch: int | None = None
    ) -> None:
        if not 0 <= step <= MAX_STEP:
            self.sink.skip(f"{self.name}: points at a negative step (steps here are 0..2**63-1)")
            return
        self.steps.append(step)
        self.values.append(value)
        self.epochs.append(epoch)
        self.timestamps.append(timestamp)
        if epoch is not None:
            self.has_epochs = True
        if len(self.steps) >= CHUNK_POINTS:
            self.flush()

    def extend(
        self,
        steps: list[int],
        values: list[Any],
        timestamps: list[float],
        epochs: list[int] | None = None,
    ) -> None:
        """Many points at once; every step already in 0..2**63-1 (see `needs_renumbering`)."""
        self.flush()
        self.steps, self.values, self.timestamps = steps, values, timestamps
        self.epochs = list(epochs) if epochs is not None else [None] * len(steps)
        if epochs is not None:
            self.has_epochs = True
        self.flush()

    def flush(self) -> None:
        if not self.steps:
            return
        self.sink.write_points(self)
        self.steps, self.values, self.epochs, self.timestamps = [], [], [], []


class CountingSink:
    """Counts what a source run would give, writing nothing (`--dry-run`)."""

    def __init__(self) -> None:
        self.counts = RunCounts()
        self._series: dict[tuple[str, str], Series] = {}
        self._object_seqs: set[tuple[str, str]] = set()
        self.props: dict[str, Any] = {}
        self.creation_time: float | None = None
        self.end_time: float | None = None

    # -- what converters call ----------------------------------------------------------------
    def series(self, name: str, context: dict[str, Any] | None = None) -> Series:
        ctx = dict(context or {})
        key = (name, _context_key(ctx))
        found = self._series.get(key)
        if found is None:
            found = self._series[key] = Series(self, name, ctx)
            self.counts.sequences += 1
        return found

    def track_object(
        self,
        value: Any,
        name: str,
        step: int,
        *,
        timestamp: float,
        epoch: int | None = None,
        context: dict[str, Any] | None = None,
    ) -> None:
        """One object (or a list of objects) at `step`."""
        if not 0 <= step <= MAX_STEP:
            self.skip(f"{name}: objects at a negative step (steps here are 0..2**63-1)")
            return
        key = (name, _context_key(dict(context or {})))
        if key not in self._object_seqs:
            self._object_seqs.add(key)
            self.counts.sequences += 1
        self._write_object(value, name, step, epoch, context, timestamp)
        self.counts.objects += len(value) if isinstance(value, list) else 1

    def set_param(self, key: str, value: Any) -> None:
        self._write_param(key, value)
        self.counts.params += 1

    def set_props(self, **props: Any) -> None:
        """name, description, experiment, tags (a list), archived."""
        self.props.update({k: v for k, v in props.items() if v is not None})

    def set_times(
        self, *, creation_time: float | None = None, end_time: float | None = None
    ) -> None:
        if creation_time is not None:
            self.creation_time = creation_time
        if end_time is not None:
            self.end_time = end_time

    def skip(self, reason: str, count: int = 1) -> None:
        """Record that `count` items were not converted, and why."""
        self.counts.skipped[reason] += count

    # -- what the engine calls ---------------------------------------------------------------
    def finish(self) -> None:
        for series in self._series.values():
            series.flush()

    def write_points(self, series: Series) -> None:
        self.counts.points += len(series.steps)

    def _write_object(
        self, value: Any, name: str, step: int, epoch: int | None, context: Any, ts: float
    ) -> None:
        pass

    def _write_param(self, key: str, value: Any) -> None:
        pass


class RunSink(CountingSink):
    """Writes one source run into an `ImportRun` as it is read."""

    def __init__(self, run: ImportRun) -> None:
        super().__init__()
        self.run = run

    def write_points(self, series: Series) -> None:
        self.run.track_points(
            series.name,
            series.steps,
            series.values,
            epochs=series.epochs if series.has_epochs else None,
            timestamps=series.timestamps,
            context=series.context,
        )
        super().write_points(series)

    def _write_object(
        self, value: Any, name: str, step: int, epoch: int | None, context: Any, ts: float
    ) -> None:
        self.run.track_at(value, name, step, epoch, context=context, timestamp=ts)

    def _write_param(self, key: str, value: Any) -> None:
        self.run.set(key, value, strict=True)

    def finish(self) -> None:
        super().finish()
        run = self.run
        props = self.props
        # a source's text may not be valid Unicode (a file name os.fsdecode could not decode):
        # run properties must be, so what is not is replaced (U+FFFD)
        if "name" in props:
            run.name = valid_text(str(props["name"]))
        if "description" in props:
            run.description = valid_text(str(props["description"]))
        if "experiment" in props:
            run.experiment = valid_text(str(props["experiment"]))
        for tag in props.get("tags", ()):
            run.add_tag(valid_text(str(tag)))
        if props.get("archived"):
            run.archived = True
        run.set_times(creation_time=self.creation_time, end_time=self.end_time)


def needs_renumbering(steps: Sequence[int] | np.ndarray[Any, Any]) -> bool:
    """Whether points at these steps cannot keep them as their steps here: a step holds one
    value (the last written), so a step that repeats would lose the points before it, and steps
    are 0..2**63-1. Converters then number the points 0, 1, ... and keep the step as the epoch."""
    try:
        array = np.asarray(steps, dtype=np.int64)
    except OverflowError:  # beyond int64
        return True
    if array.size == 0:
        return False
    if int(array.min()) < 0:
        return True
    if array.size < 2 or bool((array[1:] > array[:-1]).all()):
        return False
    return int(np.unique(array).size) != int(array.size)


def _context_key(context: dict[str, Any]) -> str:
    return json.dumps(context, sort_keys=True, default=repr)
