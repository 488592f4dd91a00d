"""Read views of one tracked sequence: `Metric`, `Images`, `Texts`, ... and their `ArrayView`s.

A sequence object holds only its catalogue entry (name, context, kind, summary); points are read
on first access through `storage.online.run_reader.read_sequence` (which merges compacted Parquet with
live segments and keeps the last write of a step), and only the columns asked for: `values` of a
metric reads `step` + `value`, `epochs` reads `step` + `epoch`, and an image sequence reads its
payload bytes only when its values are asked for. The cached columns are read-only; arrays handed
out to the caller (`sparse_numpy()`, `values_numpy()`, `data.numpy()`, ...) are writable copies of
their own, as Aim's are (see BENCHMARKS.md for the cost of that copy).

Unlike Aim, every array view is keyed by the **real step**, in step order:
`steps, values = metric.values.sparse_numpy()` is correct (Aim returns hashed keys there).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from aim_parquet.format.kinds import (
    SEQUENCE_KINDS,
    element_kind,
    is_list_kind,
    is_metric_kind,
    metric_values,
)
from aim_parquet.format.meta import SequenceInfo
from aim_parquet.format.paths import RepoLayout, canonical_context
from aim_parquet.format.values import utf8_safe
from aim_parquet.sdk import dataframes
from aim_parquet.sdk.array_view import Array, ArrayView
from aim_parquet.sdk.context import Context
from aim_parquet.sdk.dataframes import (
    PROP_KEYS,
    full_column,
    jsonable,
    local_times,
    run_row,
    text_value,
)
from aim_parquet.sdk.run_base import RunBase
from aim_parquet.sdk.sequence_data import SequenceData
from aim_parquet.storage.base.columns import nan_numpy
from aim_parquet.storage.online.run_reader import read_metric_columns, read_sequence

if TYPE_CHECKING:
    import pandas
    import polars

__all__ = [
    "ArrayView", "Audios", "Context", "Distributions", "Figures", "Images", "LogLines",
    "LogRecords", "Metric", "Sequence", "SequenceData", "Texts",
]  # fmt: skip
_MAX_EXACT_INT = 2.0**53


def _readonly(array: Array) -> Array:
    array.flags.writeable = False
    return array


def column_numpy(table: Any, name: str) -> Array:
    """A fixed-width column as numpy without pyarrow's pandas import; an int column with nulls
    (a missing epoch) becomes float64 with NaN there."""
    return nan_numpy(table.column(name))


def _step_starts(steps: Array) -> Array:
    """Indices where a new step begins in a step-sorted array."""
    if steps.size == 0:
        return np.zeros(0, dtype=np.intp)
    return np.flatnonzero(np.concatenate(([True], steps[1:] != steps[:-1])))


class Sequence:
    """One (name, context) sequence of a run; subclasses fix the kinds they accept."""

    KINDS: ClassVar[frozenset[str] | None] = None  # None: any kind
    SEQUENCE_NAME: ClassVar[str] = "sequence"

    def __init__(self, info: SequenceInfo, run: RunBase, layout: RepoLayout | None = None) -> None:
        self._info = info
        self.run = run
        self._layout: RepoLayout = layout if layout is not None else run._layout
        self._columns: dict[str, tuple[Array, Any]] = {}
        self._prefetch: tuple[Any, int] | None = None  # (`sdk.prefetch.MetricBatch`, position)

    @classmethod
    def sequence_name(cls) -> str:
        return cls.SEQUENCE_NAME

    @classmethod
    def allowed_dtypes(cls) -> frozenset[str] | None:
        return cls.KINDS

    @classmethod
    def accepts(cls, kind: str) -> bool:
        return cls.KINDS is None or kind in cls.KINDS

    # -- metadata --------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._info.name

    @property
    def context(self) -> Context:
        return Context(self._info.context)

    @property
    def dtype(self) -> str:
        return self._info.kind

    @property
    def version(self) -> int:
        return 2 if self.is_metric else 1

    @property
    def is_metric(self) -> bool:
        return is_metric_kind(self._info.kind)

    @property
    def info(self) -> SequenceInfo:
        """The catalogue entry: count, first/last step and value, min, max."""
        return self._info

    def first_step(self) -> int | None:
        return self._info.first_step

    def last_step(self) -> int | None:
        return self._info.last_step

    def __bool__(self) -> bool:
        return True

    def __eq__(self, other: object) -> bool:
        """Equal when (name, context, run) are (as in Aim): the same sequence of the same run."""
        if not isinstance(other, Sequence):
            return NotImplemented
        return (self.name, self.context, self.run) == (other.name, other.context, other.run)

    def __hash__(self) -> int:
        return hash((self.name, self.context, self.run))

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.name!r} {self._info.context!r} of run {self.run.hash}>"
        )

    # -- reading ---------------------------------------------------------------------------
    def _read(self, columns: list[str]) -> None:
        if self.is_metric:
            points = None
            if self._prefetch is not None:  # read with the other sequences of its batch
                batch, position = self._prefetch
                self._prefetch = None
                points = batch.points(position)
            if points is not None:
                steps, values, epochs, stamps = points
                arrays = {"value": values, "epoch": epochs, "timestamp": stamps}
                columns = ["value", "epoch", "timestamp"]
            else:
                steps, arrays = read_metric_columns(
                    self._layout, self.run.hash, self._info, columns
                )
            _readonly(steps)
            for col in columns:
                arr = arrays[col]
                if col == "value":
                    arr = metric_values(arr, self._info.kind)
                self._columns[col] = (steps, _readonly(arr))
            return
        table = read_sequence(self._layout, self.run.hash, self._info, columns=columns)
        steps = column_numpy(table, "step")
        starts = _step_starts(steps)
        step_keys = _readonly(steps[starts])
        for col in columns:
            if col == "payload":
                self._columns["value"] = (step_keys, self._decode(table, steps, starts))
            elif col in ("epoch", "timestamp"):
                self._columns[col] = (step_keys, _readonly(column_numpy(table, col)[starts]))

    def _decode(self, table: Any, steps: Array, starts: Array) -> list[Any]:
        from aim_parquet.objects import object_class

        kind = self._info.kind
        is_list = is_list_kind(kind)
        cls = object_class(element_kind(kind))
        payloads = table.column("payload").to_pylist()
        metas = table.column("meta").to_pylist()
        objects = [cls.from_record(p, json.loads(m)) for p, m in zip(payloads, metas, strict=True)]
        if not is_list:
            return objects
        bounds = [*starts.tolist(), len(objects)]
        return [objects[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    def _column(self, name: str) -> tuple[Array, Any]:
        if name not in self._columns:
            if name == "value":
                self._read(["value"] if self.is_metric else ["payload", "meta"])
            else:
                self._read([name])
        return self._columns[name]

    def preload(self) -> None:
        """Read every column now, in one consistent read."""
        if self.is_metric:
            self._read(["value", "epoch", "timestamp"])
        else:
            self._read(["epoch", "timestamp", "payload", "meta"])

    @property
    def values(self) -> ArrayView:
        return ArrayView(self, "value")

    @property
    def epochs(self) -> ArrayView:
        return ArrayView(self, "epoch")

    @property
    def timestamps(self) -> ArrayView:
        return ArrayView(self, "timestamp")

    @property
    def data(self) -> SequenceData:
        """Every column at once: `numpy()`, `items_list()`, iteration, `view`, `sample`, ..."""
        return SequenceData(self)

    def __len__(self) -> int:
        """The number of points (tracked steps); reads the step and epoch columns only."""
        return len(self._column("epoch")[0])

    def record_length(self) -> int | None:
        """The most objects tracked at one step of a list sequence (`run.track([img, img])`);
        None for a sequence of single objects or numbers (as Aim)."""
        if not is_list_kind(self._info.kind):
            return None
        table = read_sequence(self._layout, self.run.hash, self._info, columns=["step"])
        starts = _step_starts(column_numpy(table, "step"))
        if starts.size == 0:
            return 0
        return int(np.diff(np.append(starts, table.num_rows)).max())

    # -- dataframes ------------------------------------------------------------------------
    def dataframe(
        self,
        include_name: bool = False,
        include_context: bool = False,
        include_run: bool = False,
        only_last: bool = False,
        include_props: bool = True,
        include_params: bool = True,
    ) -> pandas.DataFrame:
        """Long-format pandas DataFrame: idx, step, value, epoch, timestamp, time, plus the
        run/name/context columns asked for (see `aim_parquet.sdk.dataframes`)."""
        cols = sequence_columns(
            self,
            only_last=only_last,
            include_run=include_run,
            include_name=include_name,
            include_context=include_context,
            include_props=include_props,
            include_params=include_params,
        )
        return dataframes.to_pandas([cols])

    def to_polars(self, **flags: bool) -> polars.DataFrame:
        """`dataframe(**flags)` as a polars DataFrame (same defaults)."""
        defaults = {"include_name": False, "include_context": False, "include_run": False}
        return dataframes.to_polars([sequence_columns(self, **{**defaults, **flags})])


class Metric(Sequence):
    SEQUENCE_NAME = "metric"
    KINDS = SEQUENCE_KINDS[SEQUENCE_NAME]


class Images(Sequence):
    SEQUENCE_NAME = "images"
    KINDS = SEQUENCE_KINDS[SEQUENCE_NAME]


class Texts(Sequence):
    SEQUENCE_NAME = "texts"
    KINDS = SEQUENCE_KINDS[SEQUENCE_NAME]


class Distributions(Sequence):
    SEQUENCE_NAME = "distributions"
    KINDS = SEQUENCE_KINDS[SEQUENCE_NAME]


class Audios(Sequence):
    SEQUENCE_NAME = "audios"
    KINDS = SEQUENCE_KINDS[SEQUENCE_NAME]


class Figures(Sequence):
    SEQUENCE_NAME = "figures"
    KINDS = SEQUENCE_KINDS[SEQUENCE_NAME]


class LogLines(Sequence):
    SEQUENCE_NAME = "logs"
    KINDS = SEQUENCE_KINDS[SEQUENCE_NAME]


class LogRecords(Sequence):
    SEQUENCE_NAME = "log_records"
    KINDS = SEQUENCE_KINDS[SEQUENCE_NAME]


SEQUENCE_CLASSES: tuple[type[Sequence], ...] = (
    Metric, Images, Texts, Distributions, Audios, Figures, LogLines, LogRecords,
)  # fmt: skip


def sequence_class_for(kind: str) -> type[Sequence]:
    """The most specific sequence class for a dtype (Sequence for unknown kinds)."""
    for cls in SEQUENCE_CLASSES:
        if cls.accepts(kind):
            return cls
    return Sequence


def kinds_like(dtypes: Iterable[str]) -> frozenset[str]:
    """Every dtype of the sequence types `dtypes` belong to ('float' -> every metric dtype,
    'aim.image' -> images and image lists); a dtype no sequence class takes stands for itself."""
    out: set[str] = set()
    for dtype in dtypes:
        cls = sequence_class_for(dtype)
        out.update(cls.KINDS if cls.KINDS is not None else (dtype,))
        out.add(dtype)
    return frozenset(out)


def make_sequence(
    info: SequenceInfo,
    run: RunBase,
    layout: RepoLayout | None = None,
    seq_cls: type[Sequence] = Sequence,
) -> Sequence:
    """A view of `info`: of `seq_cls`, or of the class matching its kind when that is `Sequence`."""
    cls = sequence_class_for(info.kind) if seq_cls is Sequence else seq_cls
    return cls(info, run, layout)


def sequence_columns(
    seq: Sequence,
    *,
    only_last: bool = False,
    include_run: bool = True,
    include_name: bool = True,
    include_context: bool = True,
    include_props: bool = True,
    include_params: bool = True,
) -> dict[str, Array]:
    """Columns of one sequence as numpy arrays of equal length (`sdk.dataframes` gives the
    columns and their order)."""
    seq.preload()
    steps = seq._column("value")[0]
    values = ArrayView(seq, "value")._values_array()
    epochs = ArrayView(seq, "epoch")._values_array().astype(np.float64)
    stamps = ArrayView(seq, "timestamp")._values_array()
    if seq.is_metric:
        values = values.astype(np.float64)
    if only_last and len(steps):
        steps, values, epochs, stamps = steps[-1:], values[-1:], epochs[-1:], stamps[-1:]
    n = len(steps)
    var = seq.sequence_name()
    cols: dict[str, Array] = {
        "idx": np.arange(n, dtype=np.int64),
        "step": steps,
        "value": values,
        "epoch": epochs,
        "time": local_times(stamps),
    }
    row = {}
    if include_run:
        cols["run.hash"] = full_column(n, seq.run.hash)
        if include_props or include_params:
            row = run_row(seq.run, include_props=include_props, include_params=include_params)
            for key, value in row.items():
                if key != "hash" and key not in PROP_KEYS:
                    cols.setdefault(f"run.{key}", full_column(n, value))
    context = seq.context.to_dict() if include_context else {}
    if include_name:
        cols[f"{var}.name"] = full_column(n, seq.name)
    for key, value in context.items():
        shown = jsonable(value) if isinstance(value, (dict, list)) else text_value(value)
        cols[utf8_safe(f"{var}.context.{key}")] = full_column(n, shown)
    cols["timestamp"] = stamps
    if include_context:
        cols[f"{var}.context"] = full_column(n, canonical_context(context))
    for key in PROP_KEYS:
        if key in row:
            cols.setdefault(f"run.{key}", full_column(n, row[key]))
    return cols
