"""Running a QueryPlan over a repository: runs newest first, pruned on metadata.

`execute_plan` refreshes the run index (one `stat` per sidecar; only changed sidecars are read),
orders the runs newest first, skips up to and including `offset`, evaluates the run part of the
plan on each run's metadata and, for a sequence query, the sequence part on the catalogue of each
surviving run. No sequence file is opened here: the caller reads the columns of the returned
sequences when (and if) they are asked for.

Damaged runs (a sidecar that is not valid JSON, a newer format, ...) are skipped with a
`RuntimeWarning` naming the file, so one bad run never breaks a repo-wide query.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass

from aim_parquet.format.meta import RunMeta, SequenceInfo
from aim_parquet.format.paths import RepoLayout
from aim_parquet.query.planner import QueryPlan
from aim_parquet.query.views import RunView
from aim_parquet.storage.catalogue_scan import uncatalogued_sequences
from aim_parquet.storage.run_index import CatalogueEntry, IndexSnapshot, RunIndex, RunRecord


@dataclass(frozen=True)
class RunMatch:
    """A run that satisfies a query and, for a sequence query, its matching sequences."""

    record: RunRecord
    sequences: tuple[SequenceInfo, ...] = ()

    @property
    def meta(self) -> RunMeta:
        """The run's full metadata (its catalogue parsed on first access)."""
        return self.record.meta


@dataclass(frozen=True)
class MatchStep:
    """One candidate run of a query: `match` is None when the run did not satisfy it."""

    match: RunMatch | None
    position: int  # 1-based position among the candidate runs
    total: int  # number of candidate runs


def warn_damaged(snapshot: IndexSnapshot, *, stacklevel: int = 3) -> None:
    """Warn once per damaged run of a snapshot (the run is left out of the results)."""
    for bad in snapshot.damaged:
        warnings.warn(
            f"aim_parquet: skipping damaged run {bad.run_hash}: {bad.reason} (file {bad.path}). "
            "Run `aim-parquet verify --repair` to repair or quarantine it.",
            RuntimeWarning,
            stacklevel=stacklevel,
        )


def candidate_runs(
    index: RunIndex, offset: str | None = None, *, warn: bool = True
) -> list[RunRecord]:
    """Every readable run newest first, starting after the run `offset` when given (`warn`:
    a RuntimeWarning per damaged run; a server reports them in its answer instead)."""
    snapshot = index.refresh()
    if warn:
        warn_damaged(snapshot, stacklevel=4)
    ordered = snapshot.newest_first
    if offset:
        for i, record in enumerate(ordered):
            if record.hash == offset:
                return ordered[i + 1 :]
    return ordered


def execute_plan(
    layout: RepoLayout,
    index: RunIndex,
    plan: QueryPlan,
    *,
    offset: str | None = None,
    with_misses: bool = True,
    warn: bool = True,
) -> Iterator[MatchStep]:
    """One MatchStep per candidate run in result order (newest run first); with
    `with_misses=False` only the matching runs' steps; `warn` as in `candidate_runs`."""
    candidates = candidate_runs(index, offset, warn=warn)
    total = len(candidates)
    matches_run = plan.matches_run
    for position, record in enumerate(candidates, 1):
        view = RunView(record, layout)
        match = None
        if matches_run(view):
            if plan.seq_var is None:
                match = RunMatch(record)
            else:
                entries: list[CatalogueEntry | SequenceInfo] = [*record.catalogue()]
                if record.end_time is None and not record.is_rebuilt:  # a live writer may be ahead
                    known = {e.seq_id for e in entries}
                    entries.extend(uncatalogued_sequences(layout, record.hash, known))
                matched = plan.matching_sequences(view, entries)
                if matched:
                    infos = (e.info if isinstance(e, CatalogueEntry) else e for e in matched)
                    match = RunMatch(record, tuple(infos))
        if match is not None or with_misses:
            yield MatchStep(match, position, total)


def iter_matches(
    layout: RepoLayout,
    index: RunIndex,
    plan: QueryPlan,
    *,
    offset: str | None = None,
    warn: bool = True,
) -> Iterator[RunMatch]:
    """Only the matching runs of `execute_plan`."""
    steps = execute_plan(layout, index, plan, offset=offset, with_misses=False, warn=warn)
    for step in steps:
        if step.match is not None:
            yield step.match
