"""Collections of one run's sequences: `SequenceCollection` (what every collection offers:
iteration and DataFrames) and `SingleRunSequenceCollection` (`run.metrics()`, and the per-run
collections of a query result, `sdk.collections`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from aim_parquet.format.meta import SequenceInfo
from aim_parquet.query.planner import QueryPlan, plan_query
from aim_parquet.query.views import RunView
from aim_parquet.sdk import dataframes, frames
from aim_parquet.sdk.run_base import RunBase
from aim_parquet.sdk.sequence import Sequence, make_sequence, sequence_columns

if TYPE_CHECKING:
    import pandas
    import polars
    import pyarrow as pa


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
        return [sequence_columns(s, only_last=only_last, **flags) for s in self.iter()]

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
        run: RunBase,
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
