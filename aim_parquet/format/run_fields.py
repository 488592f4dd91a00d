"""The run-level facts every layer shows: the shape of a run's fields (`RunFields`, which the
sidecar's `RunMeta` and the run index's `RunRecord` both have), the default experiment, the name
shown for an unnamed run and the times derived from `creation_time` and `end_time`.

Whether a run is *active* also needs its lock: that rule is `storage.online.writer_parts.is_run_active`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from aim_parquet.format.meta import SequenceInfo

DEFAULT_EXPERIMENT = "default"


class RunFields(Protocol):
    """A run's sidecar fields under their sidecar names (run.json, FORMAT.md): `RunMeta` holds
    them decoded, `RunRecord` decodes them on demand. Query views, tables and the SDK read a run
    through this shape whichever of the two they were given."""

    @property
    def hash(self) -> str: ...
    @property
    def name(self) -> str | None: ...
    @property
    def display_name(self) -> str: ...
    @property
    def description(self) -> str | None: ...
    @property
    def experiment(self) -> str: ...
    @property
    def tags(self) -> tuple[str, ...]: ...
    @property
    def archived(self) -> bool: ...
    @property
    def creation_time(self) -> float: ...
    @property
    def end_time(self) -> float | None: ...
    @property
    def updated_at(self) -> float: ...
    @property
    def params(self) -> dict[str, Any]: ...
    @property
    def sequences(self) -> Sequence[SequenceInfo]: ...
    def param(self, name: str, default: Any = None) -> Any: ...


def experiment_or_default(experiment: str | None) -> str:
    """The experiment a run is in: `experiment`, or "default" for None and ""."""
    return str(experiment) if experiment else DEFAULT_EXPERIMENT


def display_name(run_hash: str, name: str | None) -> str:
    """The name shown for a run: its own, else `Run: <hash>` (as Aim)."""
    return name if name is not None else f"Run: {run_hash}"


def duration_s(creation_time: float, end_time: float | None, now: float | None = None) -> float:
    """How long the run lasted: until `end_time`, or until `now` (default: the clock) while it
    has none."""
    if end_time is not None:
        return end_time - creation_time
    return (time.time() if now is None else now) - creation_time


def utc_naive(timestamp: float | None) -> datetime | None:
    """A naive UTC datetime of epoch seconds (Aim's `created_at`, `finalized_at`), None for None."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).replace(tzinfo=None)
