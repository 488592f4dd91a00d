"""The sequence part of a query decided over the run index's catalogue columns
(`storage.index.catalogue_columns`), for every closed run at once, before any run's record is
made: `metric.name == 'loss'`, a context test, a kind test, any sequence part that reads only a
sequence's key fields (`query.views.KEY_FIELDS`: name, context, kind, version).

The interpreter itself gives each verdict: the sequence part is evaluated once per distinct
(name, kind, context text) of the columns, on a `RecordingSequenceView`, exactly as the planner's
memo does it (`QueryPlan.matching_sequences`; the text keeps the stored key order and each value's
text, as `query.views.verdict_key` does), and the verdict is used only when that
evaluation read key fields alone; when it also read summary fields, the sequence part is
evaluated on each entry of that key, its SequenceInfo made from the columns, and the verdict is
used when that evaluation read key and summary fields alone (and did not raise a QueryError: the per-run path then raises
it where it always did). A run is decided only when its row is plain (its lists are its
catalogue), it is closed or its catalogue was rebuilt (no live writer can be ahead of it) and
every entry of it got a verdict; every other run goes through `QueryPlan.matching_sequences`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from aim_parquet.errors import QueryError
from aim_parquet.format.meta import SequenceInfo
from aim_parquet.query.planner import QueryPlan
from aim_parquet.query.views import KEY_FIELDS, RecordingSequenceView
from aim_parquet.storage.index.index_entries import IndexSnapshot

__all__ = ["SequenceVerdicts", "any_matched", "matched_entries", "sequence_verdicts"]

_SUMMARY_FIELDS = KEY_FIELDS | {"count", "first_step", "last_step", "first", "last", "min", "max"}
_UNKNOWN: Any = object()  # a key whose verdict depends on more than the entry (`metric.run`)


class SequenceVerdicts(NamedTuple):
    """`decided[p]`: the run at stored position `p` is decided by the columns; its matching
    entries are then `matched[starts[row]:starts[row + 1]]` (row: its table row)."""

    decided: npt.NDArray[np.bool_]
    matched: npt.NDArray[np.bool_]
    starts: list[int]

    def positions(self, row: int) -> list[int]:
        """The positions, in the run's catalogue, of its matching entries."""
        start, end = self.starts[row], self.starts[row + 1]
        return np.flatnonzero(self.matched[start:end]).tolist()


def sequence_verdicts(plan: QueryPlan, snapshot: IndexSnapshot) -> SequenceVerdicts | None:
    """The sequence part's verdicts from the columns (module doc); None when they decide no run."""
    seq_filter, var = plan.seq_filter, plan.seq_var
    if var is None or (seq_filter is not None and "run" in seq_filter.names):
        return None
    table = snapshot.table
    if not table.size or not len(snapshot.rows):
        return None
    columns = table.catalogue
    ids, names, kinds, contexts = columns.key_lists
    verdicts: dict[tuple[str, str, str], Any] = {}
    matched = np.zeros(len(names), dtype=bool)
    known = np.ones(len(names), dtype=bool)
    kinds_wanted = plan.kinds
    for i, key in enumerate(zip(names, kinds, contexts, strict=True)):
        verdict = verdicts.get(key, ...)
        if verdict is ...:
            if key[1] not in kinds_wanted:
                verdict = False
            elif seq_filter is None:
                verdict = True
            else:
                context = columns.context(key[2])
                info = SequenceInfo(seq_id=ids[i], name=key[0], context=context, kind=key[1])
                seen = RecordingSequenceView(info, None)
                try:
                    verdict = seq_filter.matches({var: seen})
                except QueryError:
                    return None  # (the per-run path raises it, at the run it always did)
                if not seen.read <= KEY_FIELDS:
                    verdict = None if seen.read <= _SUMMARY_FIELDS else _UNKNOWN
            verdicts[key] = verdict
        if verdict is None:  # it reads the summary: evaluated on this entry's (no JSON)
            seen = RecordingSequenceView(columns.flat_info(i), None)
            try:
                found = seq_filter.matches({var: seen})  # type: ignore[union-attr]
            except QueryError:
                return None
            if seen.read <= _SUMMARY_FIELDS:
                matched[i] = found
            else:  # (its own values led it to `metric.run`: the run decides)
                known[i] = False
        elif verdict is _UNKNOWN:
            known[i] = False
        else:
            matched[i] = verdict
    starts = columns.starts
    all_known = _per_row(~known, starts) == 0
    row_ok = all_known & columns.plain & ~table.is_open
    decided = np.zeros(snapshot.size, dtype=bool)
    decided[: len(snapshot.rows)] = row_ok[snapshot.rows]
    if not decided.any():
        return None
    return SequenceVerdicts(decided, matched, starts)


def any_matched(verdicts: SequenceVerdicts, snapshot: IndexSnapshot) -> Any:
    """Per stored position, whether a decided run has a matching entry (True for the others)."""
    counts = _per_row(verdicts.matched, verdicts.starts)
    out = np.ones(snapshot.size, dtype=bool)
    n = len(snapshot.rows)
    out[:n] = ~verdicts.decided[:n] | (counts[snapshot.rows] > 0)
    return out


def _per_row(flags: npt.NDArray[np.bool_], starts: list[int]) -> npt.NDArray[np.int64]:
    """How many of each row's entries are set."""
    sums = np.concatenate([[0], np.cumsum(flags, dtype=np.int64)])
    bounds = np.asarray(starts, dtype=np.int64)
    return sums[bounds[1:]] - sums[bounds[:-1]]  # type: ignore[no-any-return]


def matched_entries(verdicts: SequenceVerdicts, rows: npt.NDArray[np.intp]) -> list[list[int]]:
    """The flat catalogue entries (indices into the catalogue columns' lists) that matched, in
    catalogue order, of each of the table `rows` (decided rows)."""
    if not len(rows):
        return []
    bounds = np.asarray(verdicts.starts, dtype=np.int64)
    lo, hi = bounds[rows], bounds[np.asarray(rows) + 1]
    lengths = hi - lo
    ends = np.cumsum(lengths)
    flat = np.repeat(lo - (ends - lengths), lengths) + np.arange(int(ends[-1]))
    hit = verdicts.matched[flat]
    # the hits up to each row's end (a row of no entries ends where the one before it ends)
    stops = np.concatenate([[0], np.cumsum(hit, dtype=np.int64)])[ends].tolist()
    picked = flat[hit].tolist()
    return [picked[begin:stop] for begin, stop in zip([0, *stops[:-1]], stops, strict=True)]
