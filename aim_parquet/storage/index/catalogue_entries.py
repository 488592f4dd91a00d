"""A run's catalogue as the run index keeps it (`storage.index.run_records`): where its
lines lie in the index file's text (`Catalogue`) and one entry as a query sees it
(`CatalogueEntry`), its summary decoded on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from aim_parquet.format.kinds import is_metric_kind
from aim_parquet.format.meta import SequenceInfo

if TYPE_CHECKING:
    from aim_parquet.storage.index.run_records import RunRecord

__all__ = ["Catalogue", "CatalogueEntry"]


class Catalogue(NamedTuple):
    """Where a run's catalogue lies in the index file's bytes: its keys line is
    `raw[start:keys_end]`, its stats line `raw[keys_end + 1:stats_end]`."""

    raw: bytes
    start: int
    keys_end: int
    stats_end: int


class CatalogueEntry:
    """One catalogue entry of a RunRecord, as a query sees it: `seq_id`, `name`, `kind`,
    `context` and `is_metric` at once; the summary fields (`count`, `first_step`, `last_step`,
    `first`, `last`, `min`, `max`) and `info` decode the entry's stats on first use."""

    __slots__ = ("record", "position", "seq_id", "name", "kind", "context")

    def __init__(self, record: RunRecord, position: int, key: list[Any]) -> None:
        self.record = record
        self.position = position
        self.seq_id, self.name, self.kind, self.context = key[0], key[1], key[2], key[3]

    @property
    def is_metric(self) -> bool:
        return is_metric_kind(self.kind)

    @property
    def info(self) -> SequenceInfo:
        return self.record.sequence_info(self.position)

    @property
    def count(self) -> int:
        return self.info.count

    @property
    def first_step(self) -> int | None:
        return self.info.first_step

    @property
    def last_step(self) -> int | None:
        return self.info.last_step

    @property
    def first(self) -> Any:
        return self.info.first

    @property
    def last(self) -> Any:
        return self.info.last

    @property
    def min(self) -> float | None:
        return self.info.min

    @property
    def max(self) -> float | None:
        return self.info.max
