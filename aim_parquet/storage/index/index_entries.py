"""The in-memory pieces of the run index (`storage.index.run_index`): one run's entry (its
sidecar's stat key and record, or why it is damaged), a refresh's snapshot, the index file's
bytes decoded into entries, and the collector pause its decoding runs under."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from aim_parquet.format.meta import RunMeta
from aim_parquet.storage.index.index_file import StatKey, decode_index
from aim_parquet.storage.index.run_records import RunRecord
from aim_parquet.system.gc_pause import gc_paused

__all__ = [
    "KEPT_KEY_PREFIX",
    "DamagedRun",
    "IndexEntry",
    "IndexSnapshot",
    "read_index_file",
]


@dataclass(frozen=True)
class DamagedRun:
    """A run whose sidecar cannot be read; `path` names the file, `reason` says why.
    `is_permission_denied`: this process may not read it (not damage: its owner can)."""

    run_hash: str
    path: str
    reason: str
    is_permission_denied: bool = False

    def describe(self) -> str:
        """One line for a warning: what happened and what to do."""
        if self.is_permission_denied:
            return (
                f"cannot read run {self.run_hash}: permission denied ({self.path}); it is not "
                "damaged: read it as a user who may, or ask its owner to share it"
            )
        return (
            f"skipping damaged run {self.run_hash}: {self.reason} (file {self.path}). "
            "Run `aim-parquet verify --repair` to repair or quarantine it."
        )


KEPT_KEY_PREFIX = "kept:"  # the stat key of a damaged run's last good copy in the file


class IndexEntry:
    """One run in memory: the stat key of its sidecar and its record (or why it is damaged).

    `record` is None for a damaged run; `kept` is then the last good record of it (if any), which
    the index file keeps for repairs. `is_open`: the run has no `end_time` and its catalogue is
    the sidecar's, which a live writer keeps at most one flush behind; once that writer is gone
    the catalogue is scanned from the segments instead (`storage.index.sidecar_entries`).
    """

    __slots__ = ("key", "record", "kept", "damaged", "is_open")

    def __init__(
        self,
        key: StatKey,
        record: RunRecord | None,
        damaged: DamagedRun | None = None,
        kept: RunRecord | None = None,
    ) -> None:
        self.key = key
        self.record = record
        self.kept = kept
        self.damaged = damaged
        self.is_open = record is not None and not record.has_end_time and not record.is_rebuilt

    @property
    def stored_record(self) -> RunRecord | None:
        return self.record if self.record is not None else self.kept


class IndexSnapshot:
    """The runs of a repository as of one refresh.

    `records` are the readable runs (cheap, lazily decoded); `runs` the same as RunMetas (built
    on first access); `damaged` the runs skipped; `sidecars_read` how many sidecars this refresh
    had to open (0 when the index was current). `query_cache` is for the query layer: what it
    derives from these runs (columns of values, verdicts), dropped with the snapshot.
    """

    def __init__(
        self, records: dict[str, RunRecord], damaged: tuple[DamagedRun, ...], sidecars_read: int
    ) -> None:
        self.records = records
        self.damaged = damaged
        self.sidecars_read = sidecars_read
        self.query_cache: dict[Any, Any] = {}

    @cached_property
    def runs(self) -> dict[str, RunMeta]:
        return {h: r.meta for h, r in self.records.items()}

    @cached_property
    def newest_first(self) -> list[RunRecord]:
        """Records ordered by creation time, newest first (ties by hash, for a stable order)."""
        stored = self.in_stored_order
        return list(map(stored.__getitem__, self.newest_positions))

    @cached_property
    def in_stored_order(self) -> list[RunRecord]:
        """The records in the order they were decoded (the index file's): reading a field of
        every run in this order is several times faster than in `newest_first`'s, whose
        records lie all over memory."""
        return list(self.records.values())

    @cached_property
    def newest_positions(self) -> list[int]:
        """`newest_first` as positions in `in_stored_order`."""
        stored = self.in_stored_order
        created = [r.creation_time for r in stored]
        times = np.array(created, dtype=np.float64)
        if np.isnan(times).any():  # (NaN has no order: Python's sort of the same keys)
            with gc_paused():
                keys = list(zip(created, [r.hash for r in stored], strict=True))
                return sorted(range(len(keys)), key=keys.__getitem__, reverse=True)
        hashes = np.array([r.hash for r in stored], dtype=str)
        order: list[int] = np.lexsort((hashes, times))[::-1].tolist()  # (hashes are unique)
        return order


def read_index_file(raw: bytes) -> dict[str, IndexEntry]:
    """The entries of an index file's bytes (ValueError, KeyError or TypeError: not one)."""
    return {record.hash: IndexEntry(key, record) for key, record in decode_index(raw)}
