"""The metric frame of a repo-wide query (`repo.query_metrics(q).dataframe()`) with the runs the
index's columns decide taken without a record per run: the same table, cell for cell, as
`sdk.query_frames.build_query_frame` over `execute_plan`'s matches (the reference of
`tests/property/test_metric_frame_columnwise.py`).

A run is taken from the columns ("column run") when the query's run part surely holds for it
column-wise (`query.prefilter`, or there is no run part), its sequence part is decided by the
catalogue columns (`query.seq_columns`: a plain, closed row, no `metric.run`) and its run-level
cells are told by the columns (`sdk.run_table.column_rows`: closed, no extra fields, params of a
plain shape). Its matching sequences are the flat catalogue entries the verdicts matched, their
name and context columns made once per distinct (name, kind, context text), their points read
as any sequence's (`query_frames.sequence_points`: the entry itself, and so the run's record, is
made only for a sequence whose points are not cached); its run-level cells come from
`sdk.run_frame.assemble`, as in the run-level frame. Every other run (rejected runs are skipped
as `execute_plan` skips them) goes through `execute_plan`'s per-run match (`executor.match_run`,
the sidecar read again for a damaged index entry) and `sdk.run_rows`, in result order.
With `only_last` the column runs' sequences are their summaries in the catalogue columns (a
SequenceInfo each, as the run's record would make of them: no record per run).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import chain
from typing import Any

import numpy as np
import pyarrow as pa

from aim_parquet.format.meta import SequenceInfo
from aim_parquet.format.paths import RepoLayout
from aim_parquet.query.executor import RunMatch, candidates, match_run, warn_unreadable
from aim_parquet.query.planner import QueryPlan
from aim_parquet.query.prefilter import run_verdicts
from aim_parquet.query.seq_columns import matched_entries, sequence_verdicts
from aim_parquet.query.views import sequence_key
from aim_parquet.sdk.frame_arrays import EMPTY_F, EMPTY_I
from aim_parquet.sdk.query_frames import (
    UNREADABLE,
    BuiltFrame,
    Wanted,
    frame_table,
    sequence_points,
)
from aim_parquet.sdk.run_frame import assemble
from aim_parquet.sdk.run_rows import RunRows
from aim_parquet.sdk.run_table import column_rows
from aim_parquet.storage.base.columns import int64_array
from aim_parquet.storage.index.catalogue_entries import CatalogueEntry
from aim_parquet.storage.index.run_index import RunIndex

__all__ = ["query_frame_columns"]


def query_frame_columns(
    layout: RepoLayout,
    index: RunIndex,
    plan: QueryPlan,
    var: str,
    *,
    offset: str | None,
    flags: dict[str, bool],
    stat_keys: Callable[[], dict[str, str]] | None,
    only_last: bool = False,
) -> BuiltFrame:
    """The metric frame of a query of metrics (module doc); `flags` and `only_last` as in
    `build_query_frame`."""
    flags = dict(flags)
    flags["include_props"] = flags["include_props"] and flags["include_run"]
    flags["include_params"] = flags["include_params"] and flags["include_run"]
    snapshot, start = candidates(index, offset, warn=True, stacklevel=6)
    newest = snapshot.newest_positions
    mask, sure = run_verdicts(plan.run_filter, snapshot)
    seq = sequence_verdicts(plan, snapshot)
    order = np.arange(start, len(newest), dtype=np.intp)  # (newest-first places)
    if mask is not None:
        order = order[np.asarray(mask, dtype=bool)[order]]
    is_col = np.zeros(len(order), dtype=bool)
    if seq is not None:
        is_col = seq.decided[newest[order]]
        if plan.run_filter is not None:
            is_col &= False if sure is None else np.asarray(sure, dtype=bool)[order]
    # column runs without a matching sequence are never looked at (as `execute_plan`)
    entry_lists: list[list[int]] = []
    if is_col.any():
        assert seq is not None
        rows = snapshot.rows[newest[order[is_col]]]
        entry_lists = matched_entries(seq, rows)
        has = np.fromiter(map(bool, entry_lists), dtype=bool, count=len(entry_lists))
        drop = np.flatnonzero(is_col)[~has]
        order = np.delete(order, drop)
        is_col = np.delete(is_col, drop)
        entry_lists = [e for e in entry_lists if e]
    col_positions = newest[order[is_col]]
    wanted = Wanted(var, flags)
    fast = None
    if len(col_positions):
        fast, taken = column_rows(
            snapshot,
            col_positions,
            include_props=flags["include_props"],
            include_params=flags["include_params"],
            metrics=frozenset(),
        )
        is_col[np.flatnonzero(is_col)[~taken]] = False  # (built per run, with its verdicts)
    decided = dict(zip(col_positions.tolist(), entry_lists, strict=True))
    col_at = newest[order[is_col]]  # (the column runs, result order)
    col_rows = snapshot.rows[col_at]
    hashes = snapshot.table.column("hash").take(int64_array(col_rows)).to_pylist()
    slow_at = order[~is_col].tolist()
    records = dict(zip(slow_at, snapshot.records_at(newest[slow_at].tolist()), strict=True))
    columns = snapshot.table.catalogue
    starts = columns.starts
    ids, names, kinds, contexts = columns.key_lists
    # the column runs' sequences, all at once: flat entry, stored position, catalogue position
    lists = [decided[p] for p in col_at.tolist()]
    counts = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    flat = list(chain.from_iterable(lists))
    ends = np.concatenate([[0], np.cumsum(counts)]).tolist()
    seq_position = np.repeat(col_at, counts).tolist()
    first_entry = np.repeat(np.asarray(starts, dtype=np.int64)[col_rows], counts)
    seq_in_run = (np.asarray(flat, dtype=np.int64) - first_entry).tolist()
    triples = list(
        zip(
            map(names.__getitem__, flat),
            map(kinds.__getitem__, flat),
            map(contexts.__getitem__, flat),
            strict=True,
        )
    )
    key_of: dict[tuple[str, str, str], int] = {}
    for name, kind, text in dict.fromkeys(triples):  # (once per distinct key)
        context = columns.context(text)
        shown = SequenceInfo(seq_id="", name=name, context=context, kind=kind)
        key_of[(name, kind, text)] = wanted.key_position(sequence_key(shown), name, context)
    seq_keys = list(map(key_of.__getitem__, triples))
    seq_ids = list(map(ids.__getitem__, flat))
    made: list[tuple[int, int]] = []  # each sequence's (stored position, catalogue position)
    run_slow: list[int] = []  # per run of `wanted`: its index in `wanted.rows`, -1 for a column run
    run_position: list[int] = []  # per run of `wanted`: its stored position
    n_slow = 0  # (the runs built per run so far: their cells' index in `wanted.rows`)
    memo: dict[Any, bool] = {}
    done = 0  # (the column runs added so far)

    def add_columns(stop: int) -> None:
        """Add the column runs `done:stop` and their sequences."""
        nonlocal done
        if stop == done:
            return
        first_run, n = len(wanted.hashes), stop - done
        wanted.hashes.extend(hashes[done:stop])
        wanted.closed.extend([True] * n)
        wanted.records.extend([None] * n)
        run_slow.extend([-1] * n)
        run_position.extend(col_at[done:stop].tolist())
        lo, hi = ends[done], ends[stop]
        runs = np.arange(first_run, first_run + n, dtype=np.int64)
        wanted.seq_run.extend(np.repeat(runs, counts[done:stop]).tolist())
        wanted.seq_key.extend(seq_keys[lo:hi])
        wanted.seq_ids.extend(seq_ids[lo:hi])
        wanted.entries.extend([None] * (hi - lo))
        made.extend(zip(seq_position[lo:hi], seq_in_run[lo:hi], strict=True))
        done = stop

    column_run = 0
    for i, col in zip(order.tolist(), is_col.tolist(), strict=True):
        if col:
            column_run += 1
            continue
        add_columns(column_run)
        p = int(newest[i])
        row = int(snapshot.rows[p]) if p < len(snapshot.rows) else -1
        found = decided.get(p)
        relative = None if found is None else [e - starts[row] for e in found]
        match = _slow_match(layout, index, plan, records[i], memo, sure, i, row, relative)
        if match is not None:
            before = len(wanted.hashes)
            wanted.add_run(layout, match)
            if len(wanted.hashes) > before:
                run_slow.append(n_slow)
                n_slow += 1
                run_position.append(p)
                made.extend([(-1, -1)] * (len(wanted.seq_ids) - len(made)))
    add_columns(column_run)

    def resolve(which: list[int]) -> None:
        at = sorted({made[i][0] for i in which})
        by_position = dict(zip(at, snapshot.records_at(at), strict=True))
        for i in which:
            p, position = made[i]
            record = by_position[p]
            wanted.entries[i] = CatalogueEntry(record, position, record.sequence_keys()[position])

    wanted.resolve = resolve
    if only_last:
        flat_at = [-1 if p < 0 else starts[int(snapshot.rows[p])] + k for p, k in made]
        points = _last_points(wanted, flat_at, columns.stat("last_step"), columns.stat("last"))
    else:
        points = sequence_points(layout, wanted, False, stat_keys)

    def run_level(runs: list[int]) -> dict[str, list[Any] | pa.Array]:
        if fast is None:  # (no column run: as the per-run builder)
            out: dict[str, list[Any] | pa.Array] = {"hash": [wanted.hashes[r] for r in runs]}
            out.update(wanted.rows.columns([run_slow[r] for r in runs]))
            return out
        kept_fast = [run_position[r] for r in runs if run_slow[r] < 0]
        rows = fast
        if len(kept_fast) != len(fast.positions):  # (a column run none of whose points were read)
            rows, _ = column_rows(
                snapshot,
                np.asarray(kept_fast, dtype=np.intp),
                include_props=flags["include_props"],
                include_params=flags["include_params"],
                metrics=frozenset(),
            )
        is_fast = np.asarray([run_slow[r] < 0 for r in runs], dtype=bool)
        slow_rows = RunRows(
            include_props=flags["include_props"], include_params=flags["include_params"]
        )
        slow: list[tuple[int, str, dict[str, Any]]] = []
        for place, r in enumerate(runs):
            k = run_slow[r]
            if k < 0:
                continue
            cells = wanted.rows.params[k] if flags["include_params"] else {}
            slow.append((place, wanted.hashes[r], cells))
            if flags["include_props"]:
                slow_rows.props.append(wanted.rows.props[k])
        built = assemble(rows, is_fast, slow, slow_rows)
        assert built is not None
        return dict(built.columns)

    return frame_table(wanted, points, run_level)


def _slow_match(
    layout: RepoLayout,
    index: RunIndex,
    plan: QueryPlan,
    record: Any,
    memo: dict[Any, bool],
    sure: Any,
    i: int,
    row: int,
    decided: list[int] | None,
) -> RunMatch | None:
    """`execute_plan`'s match of one run (its sidecar read again for a damaged index entry);
    `decided`: the catalogue positions of its matching sequences the columns found, used as
    `execute_plan` uses them (when the record is the index row's, not one read again)."""
    is_sure = bool(sure is not None and sure[i])
    if decided is not None:
        found = record.catalogue_columns()
        if found is None or found[1] != row:
            decided = None
    try:
        return match_run(layout, plan, record, memo, False, is_sure, decided)
    except UNREADABLE as exc:
        fresh = index.reread(record.hash)
        try:
            if fresh is None:
                raise exc
            return match_run(layout, plan, fresh, memo, False)
        except UNREADABLE as again:
            warn_unreadable(record.hash, again, stacklevel=7)
            return None


def _last_points(
    wanted: Wanted, flat_at: list[int], last_steps: list[Any], lasts: list[Any]
) -> list[tuple[Any, ...] | None]:
    """`sequence_points(..., only_last=True)`: each sequence's last step and value, a column run's
    (`flat_at`: its flat catalogue entry, -1 for a sequence of a run built per run) from the
    catalogue columns' `last_steps` and `lasts`, as views of one array."""
    n = len(flat_at)
    out: list[tuple[Any, ...] | None] = [None] * n
    slow = [i for i, f in enumerate(flat_at) if f < 0]
    for i, entry in zip(slow, wanted.entries_at(slow), strict=True):
        try:
            info = entry.info
        except UNREADABLE as exc:
            warn_unreadable(wanted.hashes[wanted.seq_run[i]], exc, stacklevel=6)
            continue
        step, last = info.last_step, info.last
        out[i] = _last(None if step is None or last is None else (step, float(last)))
    steps = np.zeros(n, dtype=np.int64)
    values = np.zeros(n, dtype=np.float64)
    nans = np.full(n, np.nan)
    empty = _last(None)
    for i, f in enumerate(flat_at):
        if f >= 0:
            step, last = last_steps[f], lasts[f]
            if step is None or last is None:
                out[i] = empty
            else:
                steps[i], values[i] = step, last
                out[i] = (steps[i : i + 1], values[i : i + 1], nans[i : i + 1], nans[i : i + 1])
    return out


def _last(found: tuple[int, float] | None) -> tuple[Any, ...]:
    """The points of a sequence's summary: its last (step, value), none when it has none."""
    if found is None:
        return (EMPTY_I, EMPTY_F, np.full(0, np.nan), np.full(0, np.nan))
    steps = np.array([found[0]], dtype=np.int64)
    return (steps, np.array([found[1]], dtype=np.float64), np.full(1, np.nan), np.full(1, np.nan))
