"""The run-level frame of a repo-wide query (`repo.query_runs(q).dataframe(metrics=[...])`,
`to_arrow()`, `to_polars()`), built column by column from the index records the query matched,
without a run object per run.

The table is the one the per-run builder it replaced made (a read-only run per match, its
`sdk.dataframes.run_row` and summary columns, the rows then turned into a table; kept as the
reference of `tests/integration/test_run_frame.py`): one row per matching run in result order
(newest first), `hash`, the props, the params flattened (`sdk.run_rows`), then each wanted
metric's `<name>[<context JSON>].<stat>` summary columns (`last`, `last_step`, `min`, `max`;
NaN for a stat not stored), columns in the order the rows first name them (a summary column
named like a param takes the param's place and value, as a dict update does). A closed run's
summaries come from the run index's catalogue columns when its row is plain
(`storage.index.catalogue_columns`: no JSON parsed), else from its record's catalogue (no file
is opened either way), a live run's from its own catalogue (sidecar and segments, which a live
writer may have moved ahead of the index).

`query_run_columns` (what `repo.query_runs(q)` uses) takes the runs the prefilter surely matches
(a run it cannot decide goes through the interpreter), reads the rows the index's columns tell
from them (`sdk.run_table`: no record per run) and builds the others per run (`_run_cells`, as
`run_columns` does); `assemble` merges both in result order. `run_columns` over any matches
stays the per-run builder (the reference of `tests/property/test_run_frame_columnwise.py`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from aim_parquet.format.kinds import METRIC_KINDS, is_metric_kind
from aim_parquet.format.paths import RepoLayout, canonical_context
from aim_parquet.format.values import utf8_safe
from aim_parquet.query.executor import RunMatch, candidates, warn_unreadable
from aim_parquet.query.planner import QueryPlan
from aim_parquet.query.prefilter import run_verdicts
from aim_parquet.query.views import RunView, sequence_key
from aim_parquet.sdk.dataframes import PROP_KEYS
from aim_parquet.sdk.frame_arrays import key_column
from aim_parquet.sdk.frame_tables import table_to_polars
from aim_parquet.sdk.frames import SUMMARY_STATS
from aim_parquet.sdk.query_frames import UNREADABLE, RecordRun
from aim_parquet.sdk.run_rows import RunRows, row_columns
from aim_parquet.sdk.run_table import ColumnRows, column_rows
from aim_parquet.storage.index.catalogue_columns import CatalogueColumns
from aim_parquet.storage.index.run_index import RunIndex
from aim_parquet.storage.index.run_records import RunRecord
from aim_parquet.storage.online.catalogue_scan import ScanCache, read_catalogue
from aim_parquet.storage.online.run_reader import load_run_meta

if TYPE_CHECKING:
    import polars

_NAN = math.nan


class RunColumns:
    """The columns of a run-level frame: `names` in table order, one list of cells each."""

    def __init__(self, columns: dict[str, list[Any] | pa.Array], n_runs: int) -> None:
        self.columns = columns
        self.n_runs = n_runs

    def to_arrow(self) -> pa.Table:
        """Each column typed by `frame_arrays.key_column`, as a run row's column always was
        (a column given as Arrow is typed so already)."""
        return pa.table(
            {
                name: key_column(values) if isinstance(values, list) else values
                for name, values in self.columns.items()
            }
        )

    def to_polars(self) -> polars.DataFrame:
        """`to_arrow()`'s table in polars, column for column (`frame_tables.table_to_polars`:
        a column no run has a value in is null text, as in the metric frame)."""
        return table_to_polars(self.to_arrow())


class _Summaries:
    """The summary columns of each run, the label of each (name, context) made once."""

    def __init__(self, layout: RepoLayout, names: frozenset[str]) -> None:
        self._layout = layout
        self.names = names
        self._labels: dict[Any, str] = {}
        self._column_labels: dict[tuple[str, str], tuple[str, ...]] = {}
        self._stats: tuple[CatalogueColumns, tuple[list[Any], ...]] | None = None

    def of(self, record: RunRecord) -> dict[str, Any]:
        out: dict[str, Any] = {}
        names = self.names
        found = record.catalogue_columns()
        if found is not None and (record.has_end_time or record.is_rebuilt):
            return self._of_columns(*found)
        if record.has_end_time or record.is_rebuilt:
            infos: Iterable[Any] = (
                record.sequence_info(i)
                for i, key in enumerate(record.sequence_keys())
                if self.is_wanted(key)
            )
        else:  # a live run: its own catalogue, read fresh (sidecar and segments)
            meta = load_run_meta(self._layout, record.hash)
            infos = read_catalogue(self._layout, record.hash, meta, cache=ScanCache())
        for info in infos:
            if info.name not in names or info.kind not in METRIC_KINDS:
                continue
            label = self._label(info)
            for stat in SUMMARY_STATS:
                value = getattr(info, stat)
                out[f"{label}.{stat}"] = _NAN if value is None else value
        return out

    def _of_columns(self, columns: CatalogueColumns, row: int) -> dict[str, Any]:
        """`of` a closed run whose catalogue the index holds as columns (no JSON parsed)."""
        out: dict[str, Any] = {}
        _, names, kinds, contexts = columns.key_lists
        starts = columns.starts
        wanted = self.names
        for i in range(starts[row], starts[row + 1]):
            name = names[i]
            if name not in wanted or kinds[i] not in METRIC_KINDS:
                continue
            labels = self._column_labels.get((name, contexts[i]))
            if labels is None:
                labels = self._column_labels[(name, contexts[i])] = self._stat_labels(
                    name, columns.context(contexts[i])
                )
            for label, values in zip(labels, self._stat_lists(columns), strict=True):
                value = values[i]
                out[label] = _NAN if value is None else value
        return out

    def _stat_labels(self, name: str, context: dict[str, Any]) -> tuple[str, ...]:
        label = name if not context else f"{name}{canonical_context(context)}"
        label = utf8_safe(label)
        return tuple(f"{label}.{stat}" for stat in SUMMARY_STATS)

    def _stat_lists(self, columns: CatalogueColumns) -> tuple[list[Any], ...]:
        if self._stats is None or self._stats[0] is not columns:
            self._stats = (columns, tuple(columns.stat(stat) for stat in SUMMARY_STATS))
        return self._stats[1]

    def is_wanted(self, key: list[Any]) -> bool:
        """Whether a catalogue key row (`[seq_id, name, kind, context, ...]`) is a wanted metric."""
        return key[1] in self.names and is_metric_kind(key[2])

    def _label(self, info: Any) -> str:
        key = sequence_key(info)
        label = self._labels.get(key)
        if label is None:
            context = info.context
            label = info.name if not context else f"{info.name}{canonical_context(context)}"
            label = self._labels[key] = utf8_safe(label)
        return label


def run_columns(
    layout: RepoLayout,
    matches: Iterable[RunMatch],
    *,
    include_props: bool,
    include_params: bool,
    metrics: list[str] | None,
    reread: Callable[[str], RunRecord | None] | None = None,
) -> RunColumns | None:
    """The run-level frame's columns of `matches` (module doc); None when nothing matched.
    `reread`: a run's record read again from its sidecar, for an index entry found damaged
    only here (`RunIndex.reread`; a query that matched by the run's fields alone never decoded
    its catalogue or params)."""
    rows = RunRows(include_props=include_props, include_params=include_params)
    wanted = frozenset(metrics or ())
    summaries = _Summaries(layout, wanted)
    hashes: list[str] = []
    extra: list[dict[str, Any]] = []  # params then summaries, one dict per run
    for match in matches:
        cells = _run_cells(layout, match.record, rows, summaries, reread)
        if cells is not None:
            hashes.append(match.record.hash)
            extra.append(cells)
    if not hashes:
        return None
    columns: dict[str, list[Any]] = {"hash": hashes}
    if include_props:
        props = zip(*rows.props, strict=True)
        columns.update(zip(PROP_KEYS, map(list, props), strict=True))
    columns.update(row_columns(extra))
    return RunColumns(columns, len(hashes))


def _run_cells(
    layout: RepoLayout,
    record: RunRecord,
    rows: RunRows,
    summaries: _Summaries,
    reread: Callable[[str], RunRecord | None] | None,
) -> dict[str, Any] | None:
    """One run's params then summaries (its props added to `rows`); None, with a warning,
    when it cannot be read (one bad run never stops a repo-wide frame)."""
    wanted = summaries.names
    try:
        found = summaries.of(record) if wanted else {}
        rows.add(RecordRun(layout, record))  # (adds nothing when it raises)
    except UNREADABLE as exc:  # a damaged index entry: the sidecar decides (as matching)
        fresh = None if reread is None else reread(record.hash)
        try:
            if fresh is None:
                raise exc
            found = summaries.of(fresh) if wanted else {}
            rows.add(RecordRun(layout, fresh))
        except UNREADABLE as again:
            warn_unreadable(record.hash, again)
            return None
    cells = rows.params[-1] if rows.include_params else {}
    return {**cells, **found} if found else cells


def query_run_columns(
    layout: RepoLayout,
    index: RunIndex,
    plan: QueryPlan,
    *,
    offset: str | None,
    include_props: bool,
    include_params: bool,
    metrics: list[str] | None,
) -> RunColumns | None:
    """The run-level frame of a run query: the runs its run part matches (as `execute_plan`:
    column-wise where `query.prefilter` decides a run, else the interpreter), their rows from
    the index's columns where those tell them (`sdk.run_table`), else from their records
    (`run_columns`); None when nothing matched."""
    snapshot, start = candidates(index, offset, warn=True, stacklevel=6)
    newest = snapshot.newest_positions[start:]
    records: dict[int, RunRecord] = {}  # runs matched by the interpreter, by position
    if plan.run_filter is None:
        matched = newest
    else:
        mask, sure = run_verdicts(plan.run_filter, snapshot)
        may = np.ones(len(newest), dtype=bool) if mask is None else mask[start:]
        is_sure = np.zeros(len(newest), dtype=bool) if sure is None else sure[start:]
        unsure = np.flatnonzero(may & ~is_sure)
        keep = is_sure.copy()
        if len(unsure):
            positions = newest[unsure].tolist()
            for k, p, record in zip(
                unsure.tolist(), positions, snapshot.records_at(positions), strict=True
            ):
                found = _interpreted(layout, plan, record, index.reread)
                if found is not None:
                    keep[k] = True
                    records[p] = found
        matched = newest[keep]
    wanted = frozenset(metrics or ())
    fast, taken = column_rows(
        snapshot,
        np.asarray([p for p in matched.tolist() if p not in records], dtype=np.intp)
        if records
        else matched,
        include_props=include_props,
        include_params=include_params,
        metrics=wanted,
    )
    is_fast = np.zeros(len(matched), dtype=bool)
    if records:
        is_fast[np.flatnonzero(~np.isin(matched, list(records)))[taken]] = True
    else:
        is_fast[taken] = True
    slow_positions = matched[~is_fast].tolist()
    todo = [p for p in slow_positions if p not in records]
    records.update(zip(todo, snapshot.records_at(todo), strict=True))
    rows = RunRows(include_props=include_props, include_params=include_params)
    summaries = _Summaries(layout, wanted)
    slow: list[tuple[int, str, dict[str, Any]]] = []  # (row, hash, cells)
    slow_at = np.flatnonzero(~is_fast).tolist()
    for i, p in zip(slow_at, slow_positions, strict=True):
        cells = _run_cells(layout, records[p], rows, summaries, index.reread)
        if cells is not None:
            slow.append((i, records[p].hash, cells))
    return assemble(fast, is_fast, slow, rows)


def _interpreted(
    layout: RepoLayout,
    plan: QueryPlan,
    record: RunRecord,
    reread: Callable[[str], RunRecord | None],
) -> RunRecord | None:
    """`record` (or, when its entry is damaged, the one read again from its sidecar) when the
    interpreter matches it, as `execute_plan` decides a run the columns do not."""
    try:
        return record if plan.matches_run(RunView(record, layout)) else None
    except UNREADABLE as exc:
        fresh = reread(record.hash)
        try:
            if fresh is None:
                raise exc
            return fresh if plan.matches_run(RunView(fresh, layout)) else None
        except UNREADABLE as again:
            warn_unreadable(record.hash, again)
            return None


def assemble(
    fast: ColumnRows,
    is_fast: npt.NDArray[np.bool_],
    slow: list[tuple[int, str, dict[str, Any]]],
    rows: RunRows,
) -> RunColumns | None:
    """The columns of the matched runs in result order: those taken from the index's columns
    (`fast`, at the True places of `is_fast`) and those built per run (`slow`: their place,
    hash and cells, their props in `rows`), named in the order the rows first name them."""
    keep = is_fast.copy()
    slow_places = np.array([i for i, _, _ in slow], dtype=np.intp)
    keep[slow_places] = True
    n = int(keep.sum())
    if not n:
        return None
    final = np.cumsum(keep) - 1
    fast_at = final[is_fast]
    slow_at = final[slow_places].tolist()
    _, firsts = np.unique(fast.groups, return_index=True)  # (group g first at firsts[g])
    events = [(int(fast_at[f]), keys) for f, keys in zip(firsts, fast.keys, strict=True)]
    events += [(i, tuple(cells)) for i, (_, _, cells) in zip(slow_at, slow, strict=True)]
    events.sort(key=lambda e: e[0])
    names: dict[str, None] = {}
    for _, keys in events:
        names.update(dict.fromkeys(keys))

    def column(fast_values: list[Any] | None) -> npt.NDArray[np.object_]:
        out = np.full(n, None, dtype=object)
        if fast_values is not None and len(fast_at):
            out[fast_at] = _objects(fast_values)
        return out

    columns: dict[str, Any] = {}
    if not slow:  # (then the columns' own Arrow arrays)
        columns["hash"] = fast.arrow_hashes()
        if rows.include_props:
            columns.update(fast.arrow_props())
    else:
        columns["hash"] = column(fast.hashes)
        for i, (_, run_hash, _) in zip(slow_at, slow, strict=True):
            columns["hash"][i] = run_hash
        if rows.include_props:
            for k, key in enumerate(PROP_KEYS):
                columns[key] = out = column(fast.props[key] if len(fast_at) else None)
                for i, props in zip(slow_at, rows.props, strict=True):
                    out[i] = props[k]
    slow_names = {name for _, _, found in slow for name in found}
    sources: dict[str, dict[Any, list[int]]] = {}  # each name's sources, and their groups
    for g, (keys, group_cells) in enumerate(zip(fast.keys, fast.sources, strict=True)):
        for name, source in zip(keys, group_cells, strict=True):
            sources.setdefault(name, {}).setdefault(source, []).append(g)
    for name in names:
        found = sources.get(name, {})
        if name not in slow_names and len(found) == 1:  # one source, no row built per run
            ((source, groups),) = found.items()
            has = np.isin(fast.groups, groups)
            index = np.full(n, -1, dtype=np.intp)
            index[fast_at[has]] = np.flatnonzero(has)
            columns[name] = fast.arrow_cells(source, index)
            continue
        out = columns[name] = column(None)
        for source, groups in found.items():
            values = _objects(fast.cell_values(source))
            where = np.isin(fast.groups, groups)
            out[fast_at[where]] = values[where]
        for i, (_, _, cells) in zip(slow_at, slow, strict=True):
            if name in cells:
                out[i] = cells[name]
    return RunColumns(
        {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in columns.items()}, n
    )


def _objects(values: list[Any]) -> npt.NDArray[np.object_]:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out
