"""The run-level facts every layer derives the same way: the default experiment, the name shown
for an unnamed run and the times derived from `creation_time` and `end_time`. The shape of a run's
fields is `format.run_shape.RunFields`; whether a run is *active* also needs its lock, so that
rule is `storage.online.writer_parts.is_run_active`.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

DEFAULT_EXPERIMENT = "default"


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


# The sequences the SDK itself writes into a run: the captured terminal output and the records
# of `run.log_info(...)` and friends.
LOGS_SEQUENCE = "logs"
LOG_RECORDS_SEQUENCE = "__log_records"
