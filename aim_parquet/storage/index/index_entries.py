"""The in-memory pieces of the run index (`storage.index.run_index`): one run's entry (its
sidecar's stat key and record, or why it is damaged), a refresh's snapshot (the index file's
columns plus the records read from sidecars, a run's record made only when it is read), and the
index file's bytes decoded into entries (every record made: for repairs and checks)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, overload

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from aim_parquet.format.meta import RunMeta
from aim_parquet.storage.base.cached import cached_property
from aim_parquet.storage.base.columns import any_numpy, int64_array, string_array
from aim_parquet.storage.index.index_file import KEPT_KEY_PREFIX, StatKey, decode_table
from aim_parquet.storage.index.index_table import IndexTable, Positions
from aim_parquet.storage.index.run_records import RunRecord
from aim_parquet.system.gc_pause import gc_paused

__all__ = [
    "KEPT_KEY_PREFIX",
    "DamagedRun",
    "IndexEntry",
    "IndexSnapshot",
    "RecordSequence",
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
    """The runs of a repository as of one refresh, in columns with records made on demand.

    Its runs, in stored order, are the rows `rows` of `table` (the index file's columns) and
    then the records `extra` (read from sidecars). `records` maps every readable run's hash to
    its RunRecord (all of them made on first access); `runs` the same as RunMetas;
    `newest_first` the records newest first (a sequence that makes only the records read);
    `damaged` the runs skipped; `sidecars_read` how many sidecars this refresh had to open (0
    when the index was current). `query_cache` is for the query layer: what it derives from
    these runs (columns of values, verdicts), dropped with the snapshot.
    """

    def __init__(
        self,
        records: dict[str, RunRecord] | None,
        damaged: tuple[DamagedRun, ...],
        sidecars_read: int,
        *,
        table: IndexTable | None = None,
        rows: Positions | None = None,
        repair: Callable[[str], RunRecord | None] | None = None,
    ) -> None:
        self.table = table if table is not None else IndexTable.empty()
        self.rows: Positions = rows if rows is not None else np.zeros(0, dtype=np.intp)
        self.extra: list[RunRecord] = list(records.values()) if records else []
        self.damaged = damaged
        self.sidecars_read = sidecars_read
        self.query_cache: dict[Any, Any] = {}
        self.size = len(self.rows) + len(self.extra)
        self._repair = repair  # a run's record read again from its sidecar
        self._repaired: dict[int, RunRecord] = {}

    @cached_property
    def is_whole_table(self) -> bool:
        """Whether `rows` are every row of `table` in order."""
        rows = self.rows
        return len(rows) == self.table.size and bool((rows == np.arange(len(rows))).all())

    def taken(self, column: pa.ChunkedArray) -> pa.ChunkedArray:
        """A column of `table` at `rows`."""
        if self.is_whole_table:
            return column
        return column.take(int64_array(self.rows))

    def __len__(self) -> int:
        return self.size

    def records_at(self, positions: Iterable[int]) -> list[RunRecord]:
        """The records at `positions` of the stored order (made many at a time)."""
        positions = list(positions)
        n = len(self.rows)
        table_rows = [int(self.rows[p]) for p in positions if p < n]
        made = iter(self.table.records(table_rows))
        extra = self.extra
        out = [next(made) if p < n else extra[p - n] for p in positions]
        for i, p in enumerate(positions):
            if p < n and out[i].stored_params() is None:  # its params do not parse: the
                out[i] = self._repaired.get(p) or self._reread(p, out[i])  # sidecar decides
        return out

    def _reread(self, position: int, record: RunRecord) -> RunRecord:
        fresh = None if self._repair is None else self._repair(record.hash)
        self._repaired[position] = fresh if fresh is not None else record
        return self._repaired[position]

    @cached_property
    def records(self) -> dict[str, RunRecord]:
        return {r.hash: r for r in self.records_at(range(self.size))}

    @cached_property
    def runs(self) -> dict[str, RunMeta]:
        return {h: r.meta for h, r in self.records.items()}

    @cached_property
    def hashes(self) -> pa.Array:
        """Every run's hash in stored order (an Arrow array: no object per run)."""
        taken = self.taken(self.table.column("hash"))
        extra = string_array([r.hash for r in self.extra])
        return pa.concat_arrays([*taken.chunks, extra])

    @cached_property
    def creation_times(self) -> npt.NDArray[np.float64]:
        stored = any_numpy(self.taken(self.table.column("creation_time")))
        extra = np.array([r.creation_time for r in self.extra], dtype=np.float64)
        return np.concatenate([stored, extra])

    @cached_property
    def newest_first(self) -> RecordSequence:
        """Records ordered by creation time, newest first (ties by hash, for a stable order)."""
        return RecordSequence(self, self.newest_positions)

    @cached_property
    def in_stored_order(self) -> RecordSequence:
        """The records in stored order."""
        return RecordSequence(self, np.arange(self.size, dtype=np.intp))

    @cached_property
    def newest_positions(self) -> Positions:
        """`newest_first` as positions in the stored order."""
        times = self.creation_times
        if np.isnan(times).any():  # (NaN has no order: Python's sort of the same keys)
            with gc_paused():
                records = self.records_at(range(self.size))  # (their own float objects:
                keys = [(r.creation_time, r.hash) for r in records]  # `is` decides NaN ties)
                by_key = sorted(range(len(keys)), key=keys.__getitem__, reverse=True)
                return np.array(by_key, dtype=np.intp)
        order: Positions = np.argsort(times, kind="stable")
        ordered = times[order]
        if not (ordered[1:] == ordered[:-1]).any():  # no ties (-0.0 == 0.0): no hash needed
            return order[::-1]
        ranks = np.empty(self.size, dtype=np.intp)  # (hashes are unique; UTF-8 order is
        ranks[any_numpy(pc.sort_indices(self.hashes))] = np.arange(self.size)  # Python's)
        positions = np.lexsort((ranks, times))[::-1]
        return positions

    def newest_index(self, run_hash: str) -> int | None:
        """Where the run `run_hash` is in `newest_first`, None if it is not there."""
        found = np.flatnonzero(any_numpy(pc.is_in(self.hashes, value_set=string_array([run_hash]))))
        if not len(found):
            return None
        where = np.flatnonzero(self.newest_positions == found[0])
        return int(where[0])


class RecordSequence(Sequence[RunRecord]):
    """Records of a snapshot at `positions` of its stored order, made when read (iterating
    makes them a block at a time)."""

    BLOCK = 1024

    def __init__(self, snapshot: IndexSnapshot, positions: Positions) -> None:
        self.snapshot = snapshot
        self.positions = positions

    def __len__(self) -> int:
        return len(self.positions)

    @overload
    def __getitem__(self, i: int) -> RunRecord: ...
    @overload
    def __getitem__(self, i: slice) -> list[RunRecord]: ...
    def __getitem__(self, i: int | slice) -> RunRecord | list[RunRecord]:
        if isinstance(i, slice):
            return self.snapshot.records_at(self.positions[i].tolist())
        return self.snapshot.records_at([int(self.positions[i])])[0]

    def __iter__(self) -> Iterator[RunRecord]:
        for start in range(0, len(self.positions), self.BLOCK):
            yield from self.snapshot.records_at(self.positions[start : start + self.BLOCK].tolist())

    def take(self, indices: Sequence[int]) -> list[RunRecord]:
        """The records at `indices` of this sequence, made in one go."""
        return self.snapshot.records_at(self.positions[np.asarray(indices, dtype=np.intp)].tolist())


def read_index_file(raw: bytes) -> dict[str, IndexEntry]:
    """The entries of an index file's bytes (ValueError or pa.ArrowException: not one)."""
    table = IndexTable(decode_table(raw))
    records = table.records(range(table.size))
    return {r.hash: IndexEntry(table.key(i), r) for i, r in enumerate(records)}
