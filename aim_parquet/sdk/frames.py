"""Metric and run frames built column by column in Arrow (`to_arrow()`, `dataframe()`,
`to_polars()`), never row by row in Python.

A metric frame has the columns of `sdk.dataframes` (its module doc). What is the same for every
point of a sequence (the run's hash, props and params, the sequence's name and context) is built
once per sequence, in a small table of one row per sequence, and repeated by index
(`Table.take`): its text columns are dictionary-encoded, so 10,000 runs x 2,000 points hold each
run's hash once. The per-point columns are the numpy arrays the reader returns, concatenated.
`to_arrow()` hands that table out as it is; `dataframe()` gives pandas numpy columns (text as
pandas makes it of Python `str` objects: objects shared between the rows of a run, or pandas 3's
Arrow-backed strings, built from Arrow directly; missing numbers as NaN, missing text as None);
`to_polars()` gives polars the Arrow memory (text as plain strings, handed over as string views
of the dictionary's bytes: `sdk.frame_tables`). The arrays are built over their buffers
(`sdk.frame_arrays`), so a frame imports neither pandas (which `pa.array` would) nor
`pyarrow.compute` unless asked for pandas.

Types: `step` int64, `value` float64, `epoch` float64 (NaN where none was tracked), `timestamp`
float64, `time` a naive local-time timestamp (µs, as Aim's; `timestamp` is the instant). A run-level column whose values are all numbers
(bools, ints, floats) stays a number column (ints and floats: float64, ints alone: int64;
an int beyond int64, or beyond float64 among floats, makes it a column of JSON texts); all
text stays text; a column that mixes kinds across runs (a param that is a number in one run and
text in another, a bool among ints, bytes) holds the JSON text of each value (`"two"`, `2`,
`true`; bytes as the JSON string of their Python repr), as `aim-parquet query --output` writes
such a column. `to_polars()` is `to_arrow()`'s table in polars, column for column, here and in
the run-level frame (`sdk.run_frame`): polars' own inference of such a column is never reached
(bytes among ints is a polars SchemaError there, a bool among ints silently 1).

`only_last=True` comes from the catalogue summaries without reading a point: `step` and `value`
are each sequence's last step and its value as of the run's last flush; `epoch`, `timestamp`
and `time` are not summarised and are missing (NaN, NaT).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from aim_parquet.format.paths import canonical_context
from aim_parquet.format.values import utf8_safe
from aim_parquet.sdk.dataframes import column_rank, jsonable, run_row
from aim_parquet.sdk.frame_arrays import EMPTY_F, EMPTY_I, cat, key_column, times
from aim_parquet.sdk.frame_tables import table_to_pandas, table_to_polars

if TYPE_CHECKING:
    import pandas
    import polars

    from aim_parquet.sdk.sequence import Sequence

Array = np.ndarray[Any, Any]


class MetricFrame:
    """Collects metric sequences, then builds their long-format table (module doc)."""

    def __init__(
        self,
        *,
        only_last: bool = False,
        include_run: bool = True,
        include_name: bool = True,
        include_context: bool = True,
        include_props: bool = True,
        include_params: bool = True,
    ) -> None:
        self.only_last = only_last
        self.include_run = include_run
        self.include_name = include_name
        self.include_context = include_context
        self.include_props = include_props and include_run
        self.include_params = include_params and include_run
        self._var = "metric"
        self._keys: dict[str, list[Any]] = {}  # run-level columns, one value per sequence
        self._n_seqs = 0
        self._lengths: list[int] = []
        self._steps: list[Array] = []
        self._values: list[Array] = []
        self._epochs: list[Array] = []
        self._stamps: list[Array] = []
        self._run_rows: dict[str, dict[str, Any]] = {}

    def _key(self, name: str, value: Any) -> None:
        column = self._keys.get(name)
        if column is None:
            column = self._keys[name] = [None] * self._n_seqs
        if len(column) == self._n_seqs:  # the first value of this sequence wins
            column.append(value)

    def add(self, seq: Sequence, points: tuple[Array, ...] | None = None) -> None:
        """Read one metric sequence (or its summary, for `only_last`) into the frame; `points`
        (steps, values, epochs, timestamps), when given, are its points read already (from the
        analyst dataset's shared files: `committed_metric_points`)."""
        info = seq.info
        if points is not None and not self.only_last:
            steps, values, epochs, stamps = points
        elif self.only_last:
            if info.last_step is None or info.last is None:
                steps, values = EMPTY_I, EMPTY_F
            else:
                steps = np.array([info.last_step], dtype=np.int64)
                values = np.array([float(info.last)], dtype=np.float64)
            epochs = np.full(len(steps), np.nan)
            stamps = np.full(len(steps), np.nan)
        else:
            from aim_parquet.sdk.sequence import ArrayView

            seq.preload()
            steps = ArrayView(seq, "value").indices_numpy()
            values = ArrayView(seq, "value").values_numpy()
            epochs = ArrayView(seq, "epoch").values_numpy()
            stamps = ArrayView(seq, "timestamp").values_numpy()
        self._var = seq.sequence_name()
        self._lengths.append(len(steps))
        self._steps.append(steps)
        self._values.append(values)
        self._epochs.append(epochs)
        self._stamps.append(stamps)
        var = self._var
        if self.include_run:
            self._key("run.hash", seq.run.hash)
        if self.include_name:
            self._key(f"{var}.name", utf8_safe(seq.name))
        if self.include_context:
            context = info.context
            self._key(f"{var}.context", utf8_safe(canonical_context(context)))
            for key, value in context.items():
                shown = jsonable(value) if isinstance(value, (dict, list)) else value
                self._key(utf8_safe(f"{var}.context.{key}"), _text(shown))
        if self.include_props or self.include_params:
            row = self._run_rows.get(seq.run.hash)
            if row is None:
                row = run_row(
                    seq.run, include_props=self.include_props, include_params=self.include_params
                )
                self._run_rows[seq.run.hash] = row
            for key, value in row.items():
                if key != "hash":
                    self._key(f"run.{key}", value)
        self._n_seqs += 1
        for column in self._keys.values():
            if len(column) < self._n_seqs:
                column.append(None)

    def __len__(self) -> int:
        return self._n_seqs

    def to_arrow(self) -> pa.Table:
        """The frame as an Arrow table (text columns dictionary-encoded)."""
        lengths = np.asarray(self._lengths, dtype=np.int64)
        total = int(lengths.sum())
        repeat = np.repeat(np.arange(self._n_seqs, dtype=np.int64), lengths)
        starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
        taken = pa.array(repeat)
        stamps = cat(self._stamps, EMPTY_F, np.float64)
        per_point: dict[str, pa.Array] = {
            "idx": pa.array(np.arange(total, dtype=np.int64) - starts),
            "step": pa.array(cat(self._steps, EMPTY_I, np.int64)),
            "value": pa.array(cat(self._values, EMPTY_F, np.float64)),
            "epoch": pa.array(cat(self._epochs, EMPTY_F, np.float64)),
            "time": times(stamps),
            "timestamp": pa.array(stamps),
        }
        # Aim's columns first, in Aim's order, then ours (`sdk.dataframes.column_rank`)
        order = sorted([*per_point, *self._keys], key=column_rank)
        columns: dict[str, pa.Array | pa.ChunkedArray] = {}
        for name in order:
            if name in per_point:
                columns[name] = per_point[name]
            else:
                columns[name] = key_column(self._keys[name]).take(taken)
        return pa.table(columns)

    def to_pandas(self) -> pandas.DataFrame:
        return table_to_pandas(self.to_arrow())

    def to_polars(self) -> polars.DataFrame:
        return table_to_polars(self.to_arrow())


def _text(value: Any) -> Any:
    return utf8_safe(value) if isinstance(value, str) else value


def build_metric_frame(
    sequences: Iterable[Sequence], add: Callable[[MetricFrame, Sequence], None], **flags: Any
) -> MetricFrame:
    """A frame of `sequences`, each added through `add` (which may skip one it cannot read)."""
    frame = MetricFrame(**flags)
    for seq in sequences:
        add(frame, seq)
    return frame


SUMMARY_STATS = ("last", "last_step", "min", "max")
