"""Running a QueryPlan over a repository: runs newest first, pruned on metadata.

`execute_plan` refreshes the run index (one `stat` per sidecar; only changed sidecars are read),
orders the runs newest first, skips up to and including `offset`, evaluates the run part of the
plan on each run's metadata (first column-wise over every run, `query.prefilter`: the
interpreter then looks only at the runs that may match) and, for a sequence query, the sequence
part on the catalogue of each surviving run (first over the run index's catalogue columns,
`query.seq_columns`, which decide the closed runs whose catalogue they hold: a run without a
matching sequence is then never looked at, and the others' matching entries are known). For a
closed run no sequence file is opened here (its catalogue is complete); for a run without
`end_time` (a live writer may be ahead of its sidecar) the sequence folders are listed, and the
points of a sequence folder the catalogue does not list yet are read to summarise it
(`uncatalogued_sequences`). The caller reads the columns of the returned sequences when (and
if) they are asked for.

Damaged runs (a sidecar that is not valid JSON, a newer format, ...) are skipped with a
`RuntimeWarning` naming the file, so one bad run never breaks a repo-wide query.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from aim_parquet.errors import CorruptFileError, FormatVersionError
from aim_parquet.format.meta import RunMeta, SequenceInfo
from aim_parquet.format.paths import RepoLayout
from aim_parquet.query.planner import QueryPlan
from aim_parquet.query.prefilter import run_verdicts
from aim_parquet.query.seq_columns import any_matched, sequence_verdicts
from aim_parquet.query.views import RunView
from aim_parquet.storage.index.run_index import (
    CatalogueEntry,
    DamagedRun,
    IndexSnapshot,
    RecordSequence,
    RunIndex,
    RunRecord,
)
from aim_parquet.storage.online.catalogue_scan import uncatalogued_sequences


class UncataloguedEntry(CatalogueEntry):
    """A sequence of a live run that the run's sidecar does not list yet (a folder found by
    `uncatalogued_sequences`), as a catalogue entry: `info` is the summary made from its points
    and it has no place in the catalogue (`position` -1)."""

    __slots__ = ("_info",)

    def __init__(self, record: RunRecord, info: SequenceInfo) -> None:
        super().__init__(record, -1, [info.seq_id, info.name, info.kind, info.context])
        self._info = info

    @property
    def info(self) -> SequenceInfo:
        return self._info


class RunMatch:
    """A run that satisfies a query and, for a sequence query, its matching catalogue entries
    (`entries`, whose summaries are decoded on first use; a sequence a live writer has not
    catalogued yet is an `UncataloguedEntry`)."""

    __slots__ = ("record", "entries", "_sequences")

    def __init__(self, record: RunRecord, entries: tuple[CatalogueEntry, ...] = ()) -> None:
        self.record = record
        self.entries = entries
        self._sequences: tuple[SequenceInfo, ...] | None = None

    @property
    def sequences(self) -> tuple[SequenceInfo, ...]:
        """The matching sequences' full catalogue entries (summaries decoded)."""
        if self._sequences is None:
            self._sequences = tuple(e.info for e in self.entries)
        return self._sequences

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
        warnings.warn(f"aim_parquet: {bad.describe()}", RuntimeWarning, stacklevel=stacklevel)


def warn_unreadable(run_hash: str, exc: BaseException, *, stacklevel: int = 3) -> None:
    """Warn that a run is left out of a result because one of its files cannot be read."""
    if isinstance(exc, PermissionError):
        what = f"cannot read run {run_hash}: permission denied ({exc}); ask its owner"
    else:
        what = f"skipping damaged run {run_hash}: {exc}"
    warnings.warn(f"aim_parquet: {what}", RuntimeWarning, stacklevel=stacklevel)


def unreadable_run(layout: RepoLayout, run_hash: str, exc: BaseException) -> DamagedRun:
    """A run left out of a result because one of its files cannot be read, as a DamagedRun
    (permission denied is not damage)."""
    name = getattr(exc, "filename", None)
    path = name if isinstance(name, str) else str(layout.run_dir(run_hash))
    return DamagedRun(run_hash, path, str(exc), isinstance(exc, PermissionError))


def candidate_runs(
    index: RunIndex, offset: str | None = None, *, warn: bool = True
) -> Sequence[RunRecord]:
    """Every readable run newest first, starting after the run `offset` when given (`warn`:
    a RuntimeWarning per damaged run; a server reports them in its answer instead)."""
    snapshot, start = candidates(index, offset, warn=warn, stacklevel=5)
    ordered = snapshot.newest_first
    return ordered[start:] if start else ordered


def candidates(
    index: RunIndex, offset: str | None, *, warn: bool, stacklevel: int = 4
) -> tuple[IndexSnapshot, int]:
    """The candidate runs of a repo-wide query: the run index refreshed once (`RunIndex.refresh`)
    and the place in the snapshot's `newest_first` where the candidates start (just after the
    run `offset` when the snapshot holds it, else 0). With `warn`, a RuntimeWarning per damaged
    run of the snapshot (`warn_damaged`, given `stacklevel` as is). Callers may rely on exactly
    this: `candidate_runs` and `execute_plan` start from it, and so do the builders that read the
    snapshot's columns themselves (`sdk.run_frame`, `sdk.query_frame_columns`), which then see
    the same runs in the same order as `execute_plan`."""
    snapshot = index.refresh()
    if warn:
        warn_damaged(snapshot, stacklevel=stacklevel)
    if offset:
        found = snapshot.newest_index(offset)
        if found is not None:
            return snapshot, found + 1
    return snapshot, 0


def execute_plan(
    layout: RepoLayout,
    index: RunIndex,
    plan: QueryPlan,
    *,
    offset: str | None = None,
    with_misses: bool = True,
    warn: bool = True,
    skipped: list[DamagedRun] | None = None,
    summaries: bool = True,
) -> Iterator[MatchStep]:
    """One MatchStep per candidate run in result order (newest run first); with
    `with_misses=False` only the matching runs' steps; `warn` as in `candidate_runs` (also for a
    run whose files cannot be read while it is matched: left out of the result). `skipped`
    collects such runs, for a caller that reports them itself. With `summaries=False` the
    matching sequences' summaries are left undecoded until `RunMatch.sequences` is read (a
    frame of points never reads them; a damaged one then raises there). The runs the run part
    surely rejects (`query.prefilter`, over columns of the whole snapshot) are not looked at."""
    snapshot, start = candidates(index, offset, warn=warn)
    ordered = snapshot.newest_first
    total = len(ordered) - start
    mask, sure = run_verdicts(plan.run_filter, snapshot)
    seq = sequence_verdicts(plan, snapshot)
    newest = ordered.positions
    if seq is not None:  # runs the columns find no matching sequence in, where the run part
        ruled_out = ~any_matched(seq, snapshot)[newest]  # needs no interpreter either
        if plan.run_filter is not None:
            ruled_out &= sure if sure is not None else False
        if ruled_out.any():
            mask = ~ruled_out if mask is None else mask & ~ruled_out
    positions: Iterable[int] = range(start, len(ordered))
    if mask is not None and not with_misses:
        positions = (start + np.flatnonzero(mask[start:])).tolist()
    memo: dict[Any, bool] = {}  # the sequence part's verdicts by sequence key (`planner`)
    for i, record in _records(ordered, positions, mask):
        position = i - start + 1
        if record is None:
            if with_misses:
                yield MatchStep(None, position, total)
            continue
        decided = None
        if seq is not None and seq.decided[newest[i]]:
            row = int(snapshot.rows[newest[i]])
            found = record.catalogue_columns()  # (not a record read again from its sidecar)
            if found is not None and found[1] == row:
                decided = seq.positions(row)
        try:
            match = match_run(
                layout, plan, record, memo, summaries, sure is not None and sure[i], decided
            )
        except (CorruptFileError, FormatVersionError, PermissionError) as exc:
            match = None
            fresh = index.reread(record.hash)  # a damaged index entry: the sidecar decides
            try:
                if fresh is None:
                    raise exc
                match = match_run(layout, plan, fresh, memo, summaries)
            except (CorruptFileError, FormatVersionError, PermissionError) as again:
                # one bad run never stops a repo-wide query
                if warn:
                    warn_unreadable(record.hash, again)
                if skipped is not None:
                    skipped.append(unreadable_run(layout, record.hash, again))
        if match is not None or with_misses:
            yield MatchStep(match, position, total)


def _records(
    ordered: RecordSequence, positions: Iterable[int], mask: Any
) -> Iterator[tuple[int, RunRecord | None]]:
    """(position, record) for `positions` of `ordered`, the record None where `mask` rules the
    run out; records are made a block at a time."""
    block: list[int] = []
    for i in positions:
        block.append(i)
        if len(block) == RecordSequence.BLOCK:
            yield from _block(ordered, block, mask)
            block = []
    yield from _block(ordered, block, mask)


def _block(
    ordered: RecordSequence, block: list[int], mask: Any
) -> Iterator[tuple[int, RunRecord | None]]:
    wanted = block if mask is None else [i for i in block if mask[i]]
    made = dict(zip(wanted, ordered.take(wanted), strict=True)) if wanted else {}
    for i in block:
        yield i, made.get(i)


def match_run(
    layout: RepoLayout,
    plan: QueryPlan,
    record: RunRecord,
    memo: dict[Any, bool] | None = None,
    summaries: bool = True,
    is_sure: Any = False,
    decided: list[int] | None = None,
) -> RunMatch | None:
    """The match of one run, or None (`is_sure`: the columns found that its run part holds,
    `query.prefilter`, so the interpreter need not say it again; `decided`: the catalogue
    positions of its matching sequences, found from the columns, `query.seq_columns`).

    `execute_plan`'s per-run step; callers may rely on: `memo` is shared by the runs of one
    plan (`QueryPlan.matching_sequences`); a sequence query's match holds at least one entry (a
    live run's sequence its sidecar does not list yet is an `UncataloguedEntry`); with
    `summaries` the entries' summaries are decoded here. A record whose files cannot be read
    raises CorruptFileError, FormatVersionError or PermissionError, which the caller handles
    (`execute_plan` reads the sidecar again, `RunIndex.reread`, and matches once more)."""
    view = None if is_sure else RunView(record, layout)
    if view is not None and not plan.matches_run(view):
        return None
    if plan.seq_var is None:
        return RunMatch(record)
    matched: list[CatalogueEntry]
    if decided is not None:
        keys = record.sequence_keys()
        matched = [CatalogueEntry(record, p, keys[p]) for p in decided]
    else:
        entries = record.catalogue()
        if record.end_time is None and not record.is_rebuilt:  # a live writer may be ahead
            known = {e.seq_id for e in entries}
            found = uncatalogued_sequences(layout, record.hash, known)
            entries.extend(UncataloguedEntry(record, info) for info in found)
        view = view or RunView(record, layout)
        matched = plan.matching_sequences(view, entries, memo)
    if not matched:
        return None
    match = RunMatch(record, tuple(matched))
    if summaries:
        _ = match.sequences  # decoded here, where a damaged entry is caught
    return match


def iter_matches(
    layout: RepoLayout,
    index: RunIndex,
    plan: QueryPlan,
    *,
    offset: str | None = None,
    warn: bool = True,
    skipped: list[DamagedRun] | None = None,
) -> Iterator[RunMatch]:
    """Only the matching runs of `execute_plan`."""
    steps = execute_plan(
        layout, index, plan, offset=offset, with_misses=False, warn=warn, skipped=skipped
    )
    for step in steps:
        if step.match is not None:
            yield step.match
