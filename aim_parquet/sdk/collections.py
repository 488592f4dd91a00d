"""Query results: collections of runs and sequences (Aim's `*SequenceCollection` classes).

- `QueryRunSequenceCollection` (`repo.query_runs(...)`): `.iter_runs()` yields one
  `SingleRunSequenceCollection` per matching run (newest first) with the run at `.run`;
  `.dataframe()` has one row per run.
- `QuerySequenceCollection` (`repo.query_metrics(...)`, `query_images(...)`, ...): `.iter_runs()`
  yields per-run collections of the matching sequences; `.iter()` / iteration flattens them;
  `.dataframe()` is the long format of every matching sequence.
- `SingleRunSequenceCollection`: the sequences of one run (`run.metrics()` returns one).

The query is planned when the collection is made (a bad query raises at once); runs are matched
lazily while iterating, and no sequence column is read until a sequence's values are asked for.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from aim_parquet.errors import CorruptFileError, FormatVersionError
from aim_parquet.format.meta import RunMeta, SequenceInfo
from aim_parquet.format.paths import RepoLayout
from aim_parquet.query.executor import execute_plan, warn_unreadable
from aim_parquet.query.planner import QueryPlan, plan_query
from aim_parquet.query.views import RunView
from aim_parquet.sdk import dataframes, frames
from aim_parquet.sdk.sequence import Sequence, make_sequence
from aim_parquet.storage.index.run_index import RunIndex, RunRecord

if TYPE_CHECKING:
    import pandas
    import polars
    import pyarrow as pa


class QueryReportMode(enum.Enum):
    """Aim's `aim.sdk.types.QueryReportMode`.

    PROGRESS_BAR is accepted and, without tqdm, behaves as DISABLED; PROGRESS_TUPLE makes
    `iter_runs()` yield `(collection_or_None, (position, total))` for every candidate run.
    """

    DISABLED = 0
    PROGRESS_BAR = 1
    PROGRESS_TUPLE = 2

    @classmethod
    def _missing_(cls, value: object) -> QueryReportMode | None:
        """Aim's own `aim.sdk.types.QueryReportMode` members (and their names) map by name."""
        name = value if isinstance(value, str) else getattr(value, "name", None)
        if isinstance(name, str) and name.upper() in cls.__members__:
            return cls[name.upper()]
        return None


def open_read_only_run(layout: RepoLayout, meta: RunMeta | RunRecord) -> Any:
    """A read-only `Run` over metadata already read (what `Run(h, read_only=True)` builds,
    without reading the sidecar a second time); a RunRecord's metadata is decoded only when
    the run's fields are first used."""
    from aim_parquet.sdk.run import Run

    run = Run.__new__(Run)
    run._writer = None
    run._metric_seqs = {}
    run._object_seqs = {}
    run._last_context = {}
    run._extensions = []
    run.read_only = True
    run._is_strict = False
    run._layout = layout
    run.hash = meta.hash
    run._meta_cache = meta if isinstance(meta, RunMeta) else None
    run._meta_source = None if isinstance(meta, RunMeta) else meta
    return run


class SequenceCollection:
    """What every collection offers: iteration over sequences and DataFrames of them."""

    seq_cls: type[Sequence] = Sequence

    def iter(self) -> Iterator[Sequence]:
        raise NotImplementedError

    def iter_runs(self) -> Iterator[Any]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[Sequence]:
        return self.iter()

    def _tables(self, only_last: bool, flags: dict[str, bool]) -> list[dict[str, Any]]:
        return [dataframes.sequence_columns(s, only_last=only_last, **flags) for s in self.iter()]

    def _add(
        self, frame: frames.MetricFrame, seq: Sequence, points: tuple[Any, ...] | None
    ) -> None:
        frame.add(seq, points)

    def _frame(self, only_last: bool, flags: dict[str, bool]) -> frames.MetricFrame | None:
        """The Arrow-built frame when every sequence is a metric (None otherwise: a frame of
        objects is built by `dataframes`). The points of runs the analyst dataset holds as they
        are now come from its shared files, one read per file instead of one per run."""
        sequences = list(self.iter())
        if not all(s.is_metric for s in sequences):
            return None
        points: dict[tuple[str, str], Any] = {}
        root = sequences[0]._layout.root if sequences else None
        if not only_last and len(sequences) > 1 and all(s._layout.root == root for s in sequences):
            from aim_parquet.storage.compaction.dataset_read import committed_metric_points

            wanted: dict[str, set[str]] = {}
            for seq in sequences:
                wanted.setdefault(seq.run.hash, set()).add(seq.info.seq_id)
            points = committed_metric_points(sequences[0]._layout, wanted)
        frame = frames.MetricFrame(only_last=only_last, **flags)
        for seq in sequences:
            self._add(frame, seq, points.get((seq.run.hash, seq.info.seq_id)))
        return frame

    def to_arrow(
        self,
        only_last: bool = False,
        include_run: bool = True,
        include_name: bool = True,
        include_context: bool = True,
        include_props: bool = True,
        include_params: bool = True,
    ) -> pa.Table | None:
        """The table of `dataframe()` as a `pyarrow.Table` (text columns dictionary-encoded;
        None when there is no sequence). Metrics only: a collection of objects (images,
        texts, ...) raises TypeError."""
        flags = dict(locals())
        del flags["self"], flags["only_last"]
        frame = self._frame(only_last, flags)
        if frame is None:
            raise TypeError("to_arrow() builds metric frames only; use dataframe() for objects.")
        return frame.to_arrow() if len(frame) else None

    def dataframe(
        self,
        only_last: bool = False,
        include_run: bool = True,
        include_name: bool = True,
        include_context: bool = True,
        include_props: bool = True,
        include_params: bool = True,
    ) -> pandas.DataFrame | None:
        """Long-format pandas DataFrame of every sequence (None when there is none)."""
        flags = dict(locals())
        del flags["self"], flags["only_last"]
        frame = self._frame(only_last, flags)
        if frame is not None:
            return frame.to_pandas() if len(frame) else None
        tables = self._tables(only_last, flags)
        return dataframes.to_pandas(tables) if tables else None

    def to_polars(
        self,
        only_last: bool = False,
        include_run: bool = True,
        include_name: bool = True,
        include_context: bool = True,
        include_props: bool = True,
        include_params: bool = True,
    ) -> polars.DataFrame | None:
        """The same table as `dataframe()`, as a polars DataFrame (None when empty)."""
        flags = dict(locals())
        del flags["self"], flags["only_last"]
        frame = self._frame(only_last, flags)
        if frame is not None:
            return frame.to_polars() if len(frame) else None
        tables = self._tables(only_last, flags)
        return dataframes.to_polars(tables) if tables else None


class SingleRunSequenceCollection(SequenceCollection):
    """The sequences of one run, optionally filtered by a query (Aim's class of that name).

    `sequences` (catalogue entries) is given by a query result; otherwise the run's catalogue is
    listed, keeping the kinds of `seq_cls` and, with a `query`, the sequences that satisfy it.
    """

    def __init__(
        self,
        run: Any,
        seq_cls: type[Sequence] = Sequence,
        query: str = "",
        *,
        sequences: tuple[SequenceInfo, ...] | list[SequenceInfo] | None = None,
    ) -> None:
        self.run = run
        self.seq_cls = seq_cls
        self.query = query
        self._infos = None if sequences is None else tuple(sequences)
        self._plan: QueryPlan | None = None
        if query and sequences is None:
            self._plan = plan_query(query, seq_cls.sequence_name())

    def _sequence_infos(self) -> tuple[SequenceInfo, ...]:
        if self._infos is not None:
            return self._infos
        meta, infos = self.run._catalogue()
        infos = [i for i in infos if self.seq_cls.accepts(i.kind)]
        if self._plan is not None:
            view = RunView(meta, self.run._layout)
            infos = (
                self._plan.matching_sequences(view, infos) if self._plan.matches_run(view) else []
            )
        return tuple(infos)

    def iter(self) -> Iterator[Sequence]:
        layout = self.run._layout
        for info in self._sequence_infos():
            yield make_sequence(info, self.run, layout, self.seq_cls)

    def iter_runs(self) -> Iterator[Any]:
        """Empty, as in Aim: this collection is already one run's."""
        return iter(())

    def __len__(self) -> int:
        return len(self._sequence_infos())

    def __repr__(self) -> str:
        return f"<SingleRunSequenceCollection of run {self.run.hash}>"


class _QueryCollection(SequenceCollection):
    """Common part of the two repo-wide query results."""

    def __init__(
        self,
        layout: RepoLayout,
        index: RunIndex,
        plan: QueryPlan,
        seq_cls: type[Sequence],
        *,
        offset: str | None = None,
        report_mode: QueryReportMode | int = QueryReportMode.PROGRESS_BAR,
    ) -> None:
        self._layout = layout
        self._index = index
        self.plan = plan
        self.query = plan.text
        self.seq_cls = seq_cls
        self.offset = offset
        self.report_mode = QueryReportMode(report_mode)

    def _collections(
        self, with_misses: bool = False
    ) -> Iterator[tuple[SingleRunSequenceCollection | None, tuple[int, int]]]:
        is_seq_query = self.plan.seq_var is not None
        steps = execute_plan(
            self._layout, self._index, self.plan, offset=self.offset, with_misses=with_misses
        )
        for step in steps:
            coll = None
            if step.match is not None:
                run = open_read_only_run(self._layout, step.match.record)
                sequences = step.match.sequences if is_seq_query else None
                coll = SingleRunSequenceCollection(run, self.seq_cls, sequences=sequences)
            yield coll, (step.position, step.total)

    def iter_runs(self) -> Iterator[Any]:
        """One collection per matching run, newest first (with PROGRESS_TUPLE:
        `(collection_or_None, (position, total))` for every candidate run)."""
        with_progress = self.report_mode is QueryReportMode.PROGRESS_TUPLE
        for coll, progress in self._collections(with_misses=with_progress):
            if with_progress:
                yield coll, progress
            elif coll is not None:
                yield coll

    def iter(self) -> Iterator[Sequence]:
        for coll, _progress in self._collections():
            if coll is not None:
                yield from coll.iter()

    def _tables(self, only_last: bool, flags: dict[str, bool]) -> list[dict[str, Any]]:
        """As for one run, but a sequence whose files cannot be read (damaged, a newer format,
        permission denied) is left out with a warning: one bad run never stops a repo-wide
        table."""
        tables = []
        for seq in self.iter():
            try:
                tables.append(dataframes.sequence_columns(seq, only_last=only_last, **flags))
            except (CorruptFileError, FormatVersionError, PermissionError) as exc:
                warn_unreadable(seq.run.hash, exc, stacklevel=4)
        return tables

    def _add(
        self, frame: frames.MetricFrame, seq: Sequence, points: tuple[Any, ...] | None
    ) -> None:
        """As `_tables`: a sequence whose files cannot be read is left out with a warning."""
        try:
            frame.add(seq, points)
        except (CorruptFileError, FormatVersionError, PermissionError) as exc:
            warn_unreadable(seq.run.hash, exc, stacklevel=5)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.query!r}>"


class QueryRunSequenceCollection(_QueryCollection):
    """`repo.query_runs(query)`: the matching runs (their sequences on iteration)."""

    def iter_run_objects(self) -> Iterator[Any]:
        for coll, _progress in self._collections():
            if coll is not None:
                yield coll.run

    def _run_rows(
        self, include_props: bool, include_params: bool, metrics: list[str] | None = None
    ) -> list[dict[str, Any]]:
        rows = []
        wanted = frozenset(metrics or ())
        for coll, _progress in self._collections():
            if coll is None:
                continue
            record = coll.run._meta_source  # (decoding the run's fields drops it)
            row = dataframes.run_row(
                coll.run, include_props=include_props, include_params=include_params
            )
            if wanted:
                row.update(frames.summary_columns(coll.run, wanted, record))
            rows.append(row)
        return rows

    def dataframe(  # type: ignore[override]
        self,
        only_last: bool = False,
        include_props: bool = True,
        include_params: bool = True,
        metrics: list[str] | None = None,
        **_ignored: bool,
    ) -> pandas.DataFrame | None:
        """One row per matching run (Aim's `Run.dataframe()` rows); None when no run matches.

        `metrics`: names of metrics whose stored summaries join the row (MLflow's
        `search_runs` shape): `<name>.last`, `<name>.last_step`, `<name>.min`, `<name>.max`
        for the sequence without context, `<name><context JSON>.<stat>` for each other
        context (`loss{"subset":"val"}.last`); NaN where a run has no such metric."""
        rows = self._run_rows(include_props, include_params, metrics)
        return frames.rows_to_pandas(rows) if rows else None

    def to_polars(  # type: ignore[override]
        self,
        only_last: bool = False,
        include_props: bool = True,
        include_params: bool = True,
        metrics: list[str] | None = None,
        **_ignored: bool,
    ) -> polars.DataFrame | None:
        """The same table as `dataframe()`, as a polars DataFrame."""
        rows = self._run_rows(include_props, include_params, metrics)
        return dataframes.runs_to_polars(rows) if rows else None

    def to_arrow(  # type: ignore[override]
        self,
        only_last: bool = False,
        include_props: bool = True,
        include_params: bool = True,
        metrics: list[str] | None = None,
        **_ignored: bool,
    ) -> pa.Table | None:
        """The same table as `dataframe()`, as a `pyarrow.Table`."""
        rows = self._run_rows(include_props, include_params, metrics)
        return frames.rows_to_arrow(rows) if rows else None


class QuerySequenceCollection(_QueryCollection):
    """`repo.query_metrics(query)` and friends: the matching sequences, grouped by run."""
