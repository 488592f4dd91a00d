"""What compaction did: `RunCompaction` (one run) and `CompactionReport` (`compact_repo`)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RunCompaction:
    """What compacting one run did. `status`: compacted, kept (its segments left as
    written: Parquet would not have made it smaller), unchanged, skipped or failed."""

    run_hash: str
    status: str
    note: str = ""
    generation: int = 0
    segments: int = 0  # segments newly merged into Parquet
    points: int = 0  # rows read from those segments
    rows: int = 0  # rows written into the new Parquet files (old generation rows included)
    bytes_before: int = 0  # every file of the run folder
    bytes_after: int = 0
    files_before: int = 0
    files_after: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class CompactionReport:
    """The result of `compact_repo`: one entry per run, plus totals."""

    runs: tuple[RunCompaction, ...]
    seconds: float
    notes: tuple[str, ...] = field(default_factory=tuple)

    def _sum(self, attr: str) -> int:
        return sum(getattr(r, attr) for r in self.runs)

    def count(self, status: str) -> int:
        return sum(1 for r in self.runs if r.status == status)

    @property
    def points(self) -> int:
        return self._sum("points")

    @property
    def bytes_before(self) -> int:
        return self._sum("bytes_before")

    @property
    def bytes_after(self) -> int:
        return self._sum("bytes_after")

    @property
    def files_before(self) -> int:
        return self._sum("files_before")

    @property
    def files_after(self) -> int:
        return self._sum("files_after")

    @property
    def has_failures(self) -> bool:
        return any(r.status == "failed" for r in self.runs)

    def summary(self) -> str:
        """One line: runs by status, points, bytes and files before and after, time, rate."""
        rate = self.points / self.seconds if self.seconds > 0 else 0.0
        return (
            f"compacted {self.count('compacted')} of {len(self.runs)} run(s) "
            f"({self.count('kept')} kept as written, {self.count('unchanged')} unchanged, "
            f"{self.count('skipped')} skipped, "
            f"{self.count('failed')} failed): {self.points:,} points, "
            f"{self.bytes_before:,} -> {self.bytes_after:,} bytes, "
            f"{self.files_before} -> {self.files_after} files, {self.seconds:.2f} s "
            f"({rate:,.0f} points/s)"
        )
