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
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from aim_parquet.errors import CorruptFileError, FormatVersionError
from aim_parquet.format.kinds import METRIC_KINDS
from aim_parquet.format.paths import RepoLayout
from aim_parquet.query.executor import execute_plan, warn_unreadable
from aim_parquet.query.planner import QueryPlan
from aim_parquet.sdk import frames
from aim_parquet.sdk.frame_tables import table_to_pandas
from aim_parquet.sdk.prefetch import BATCH_RUNS, MetricBatch, finish_iteration
from aim_parquet.sdk.query_frame_columns import query_frame_columns
from aim_parquet.sdk.run_base import RunBase
from aim_parquet.sdk.run_frame import RunColumns, query_run_columns
from aim_parquet.sdk.run_read import ReadableRun
from aim_parquet.sdk.run_sequences import SequenceCollection, SingleRunSequenceCollection
from aim_parquet.sdk.sequence import Sequence, sequence_columns
from aim_parquet.storage.index.run_index import RunIndex, RunRecord
from aim_parquet.system.gc_pause import gc_paused

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


RunOpener = Callable[[RepoLayout, RunRecord], ReadableRun]
"""Makes the read-only run of a matching run's index record: the `Repo`'s `_open_run`
(`Run.open_read_only` with that Repo as `run.repo`), passed in since the run class stands above
the collections."""

__all__ = [
    "QueryReportMode", "QueryRunSequenceCollection", "QuerySequenceCollection",
    "SequenceCollection", "SingleRunSequenceCollection",
]  # fmt: skip


class _QueryCollection(SequenceCollection):
    """Common part of the two repo-wide query results."""

    def __init__(
        self,
        layout: RepoLayout,
        index: RunIndex,
        plan: QueryPlan,
        seq_cls: type[Sequence],
        open_run: RunOpener,
        *,
        offset: str | None = None,
        report_mode: QueryReportMode | int = QueryReportMode.PROGRESS_BAR,
    ) -> None:
        self._layout = layout
        self._index = index
        self.plan = plan
        self.query = plan.text
        self.seq_cls = seq_cls
        self._open_run = open_run
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
                run = self._open_run(self._layout, step.match.record)
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
        """Every matching sequence; a metric's points are read with those of the metrics of
        the next closed runs (`sdk.prefetch`)."""
        if not self.plan.kinds or not self.plan.kinds <= METRIC_KINDS:
            for coll, _progress in self._collections():
                if coll is not None:
                    yield from coll.iter()
            return
        cache: dict[str, Any] = {}  # (sdk.prefetch: the dataset's files read by the batches)
        steps = self._collections()
        while True:
            with gc_paused():  # (never while the caller runs)
                batch = self._next_batch(steps, cache)
            if not batch:
                with gc_paused():
                    finish_iteration(cache)  # (the points cache, written once)
                return
            yield from batch

    def _next_batch(
        self,
        steps: Iterator[tuple[SingleRunSequenceCollection | None, Any]],
        cache: dict[str, Any],
    ) -> list[Sequence]:
        """The sequences of the next matching runs, up to `BATCH_RUNS` closed ones, in result
        order; those of closed runs are read together (`sdk.prefetch`), those of live runs
        when asked for."""
        out: list[Sequence] = []
        closed: list[Sequence] = []
        runs = 0
        for coll, _progress in steps:
            if coll is None:
                continue
            seqs = list(coll.iter())
            out.extend(seqs)
            record = coll.run._meta_source
            if record is not None and record.has_end_time:
                closed.extend(seqs)
                runs += 1
                if runs >= BATCH_RUNS:
                    break
        if closed:
            if "stat_keys" not in cache:  # (those of the refresh the query's records came from)
                cache["stat_keys"] = self._index.stat_keys()
            MetricBatch(self._layout, cache, closed)
        return out

    def _tables(self, only_last: bool, flags: dict[str, bool]) -> list[dict[str, Any]]:
        """As for one run, but a sequence whose files cannot be read (damaged, a newer format,
        permission denied) is left out with a warning: one bad run never stops a repo-wide
        table."""
        tables = []
        for seq in self.iter():
            try:
                tables.append(sequence_columns(seq, only_last=only_last, **flags))
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

    def iter_run_objects(self) -> Iterator[RunBase]:
        for coll, _progress in self._collections():
            if coll is not None:
                yield coll.run

    def _run_columns(
        self, include_props: bool, include_params: bool, metrics: list[str] | None
    ) -> RunColumns | None:
        """The run-level frame's columns (`sdk.run_frame.query_run_columns`)."""
        with gc_paused():
            return query_run_columns(
                self._layout,
                self._index,
                self.plan,
                offset=self.offset,
                include_props=include_props,
                include_params=include_params,
                metrics=metrics,
            )

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
        columns = self._run_columns(include_props, include_params, metrics)
        return None if columns is None else table_to_pandas(columns.to_arrow())

    def to_polars(  # type: ignore[override]
        self,
        only_last: bool = False,
        include_props: bool = True,
        include_params: bool = True,
        metrics: list[str] | None = None,
        **_ignored: bool,
    ) -> polars.DataFrame | None:
        """The same table as `dataframe()`, as a polars DataFrame."""
        columns = self._run_columns(include_props, include_params, metrics)
        return None if columns is None else columns.to_polars()

    def to_arrow(  # type: ignore[override]
        self,
        only_last: bool = False,
        include_props: bool = True,
        include_params: bool = True,
        metrics: list[str] | None = None,
        **_ignored: bool,
    ) -> pa.Table | None:
        """The same table as `dataframe()`, as a `pyarrow.Table`."""
        columns = self._run_columns(include_props, include_params, metrics)
        return None if columns is None else columns.to_arrow()


class QuerySequenceCollection(_QueryCollection):
    """`repo.query_metrics(query)` and friends: the matching sequences, grouped by run."""

    def _frame(self, only_last: bool, flags: dict[str, bool]) -> Any:
        """A query of metrics only is built in bulk (`sdk.query_frames`); other kinds as any
        collection's."""
        if not self.plan.kinds or not self.plan.kinds <= METRIC_KINDS:
            return super()._frame(only_last, flags)
        with gc_paused():  # (the runs the index's columns decide without a record each)
            return query_frame_columns(
                self._layout,
                self._index,
                self.plan,
                self.seq_cls.sequence_name(),
                offset=self.offset,
                flags=flags,
                stat_keys=self._index.stat_keys,
                only_last=only_last,
            )
