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
from collections.abc import Iterable, Iterator, Mapping
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
from aim_parquet.storage.base.columns import nan_numpy
from aim_parquet.storage.online.run_reader import read_metric_columns, read_sequence

if TYPE_CHECKING:
    import pandas
    import polars

    from aim_parquet.sdk.sequence_data import SequenceData

Array = np.ndarray[Any, Any]


class Context(Mapping[str, Any]):
    """A sequence context (immutable): `ctx["subset"]`, `ctx.subset`, `ctx.to_dict()`."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._data: dict[str, Any] = dict(data or {})

    def to_dict(self) -> dict[str, Any]:
        """A deep copy of the context as a plain dict."""
        return json.loads(canonical_context(self._data))  # type: ignore[no-any-return]

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(f"context has no key {name!r}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(canonical_context(self._data))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return canonical_context(self._data) == canonical_context(dict(other))
        return NotImplemented

    @property
    def idx(self) -> str:
        """A stable identity of the context (its canonical JSON)."""
        return canonical_context(self._data)

    def __repr__(self) -> str:
        return f"<Context {self._data!r}>"


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

    def __init__(self, info: SequenceInfo, run: Any, layout: RepoLayout | None = None) -> None:
        self._info = info
        self.run = run
        self._layout: RepoLayout = layout if layout is not None else run._layout
        self._columns: dict[str, tuple[Array, Any]] = {}

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
        run_hash = getattr(self.run, "hash", "?")
        return f"<{type(self).__name__} {self.name!r} {self._info.context!r} of run {run_hash}>"

    # -- reading ---------------------------------------------------------------------------
    def _read(self, columns: list[str]) -> None:
        if self.is_metric:
            steps, arrays = read_metric_columns(self._layout, self.run.hash, self._info, columns)
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
        from aim_parquet.sdk.sequence_data import SequenceData

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
        from aim_parquet.sdk import dataframes

        cols = dataframes.sequence_columns(
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
        from aim_parquet.sdk import dataframes

        defaults = {"include_name": False, "include_context": False, "include_run": False}
        return dataframes.to_polars([dataframes.sequence_columns(self, **{**defaults, **flags})])


class ArrayView:
    """One column of a sequence keyed by real step, in step order (read on first use)."""

    __slots__ = ("_seq", "_col")

    def __init__(self, seq: Sequence, column: str) -> None:
        self._seq = seq
        self._col = column

    def _pair(self) -> tuple[Array, Any]:
        return self._seq._column(self._col)

    def _py(self, value: Any) -> Any:
        """A Python scalar; a missing epoch (stored as NaN in numpy) becomes None."""
        if isinstance(value, np.generic):
            value = value.item()
        if self._col == "epoch" and isinstance(value, float):
            return None if value != value else int(value)
        return value

    def sparse_numpy(self) -> tuple[Array, Array]:
        """`(steps, values)`: int64 steps in increasing order and the values at those steps."""
        return self.indices_numpy(), self.values_numpy()

    def sparse_list(self) -> tuple[list[int], list[Any]]:
        return self.indices_list(), self.values_list()

    def indices_numpy(self) -> Array:
        """The int64 steps: a writable array of the caller's own."""
        return self._pair()[0].copy()

    def values_numpy(self) -> Array:
        """The values (numbers, or an object array of objects): a writable array of the
        caller's own, so `vals /= vals.max()` or `vals.sort()` work as in Aim."""
        values = self._values_array()
        return values.copy() if values is self._pair()[1] else values

    def _values_array(self) -> Array:
        """The values without a copy (read-only when cached): for our own read-only use."""
        values = self._pair()[1]
        if isinstance(values, np.ndarray):
            return values
        out = np.empty(len(values), dtype=object)
        for i, value in enumerate(values):
            out[i] = value
        return out

    def indices_list(self) -> list[int]:
        return self._pair()[0].tolist()  # type: ignore[no-any-return]

    def values_list(self) -> list[Any]:
        values = self._pair()[1]
        if not isinstance(values, np.ndarray):
            return list(values)
        if self._col == "epoch" and values.dtype.kind == "f":
            return [self._py(v) for v in values.tolist()]
        return values.tolist()  # type: ignore[no-any-return]

    def tolist(self) -> list[Any]:
        return self.values_list()

    def keys(self) -> Iterator[int]:
        return iter(self.indices_list())

    indices = keys

    def values(self) -> Iterator[Any]:
        return iter(self.values_list())

    def items(self) -> Iterator[tuple[int, Any]]:
        return zip(self.indices_list(), self.values_list(), strict=True)

    def __iter__(self) -> Iterator[Any]:
        return self.values()

    def __len__(self) -> int:
        return len(self._pair()[0])

    def __getitem__(self, step: int | slice) -> Any:
        """The value at real step `step` (KeyError when none was tracked there); a slice
        `view[a:b]` gives the list of values at the tracked steps `a <= step < b` (Aim raises
        NotImplementedError for slices)."""
        steps, values = self._pair()
        if isinstance(step, slice):
            return self._slice(steps, values, step)
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)):
            raise TypeError(
                f"an ArrayView is indexed by step (an int) or a step slice, not {step!r}"
            )
        pos = int(np.searchsorted(steps, step))
        if pos >= len(steps) or steps[pos] != step:
            raise KeyError(f"no point at step {step} in {self._seq.name!r}")
        return self._py(values[pos])

    def _slice(self, steps: Array, values: Any, part: slice) -> list[Any]:
        if part.step not in (None, 1):
            raise ValueError(f"an ArrayView slice takes no stride, got {part!r}")
        for bound in (part.start, part.stop):
            if bound is not None and (
                isinstance(bound, bool) or not isinstance(bound, (int, np.integer))
            ):
                raise TypeError(f"an ArrayView is sliced by steps (ints), got {part!r}")
        lo = 0 if part.start is None else int(np.searchsorted(steps, part.start))
        hi = len(steps) if part.stop is None else int(np.searchsorted(steps, part.stop))
        return [self._py(v) for v in values[lo : max(lo, hi)]]

    def _at(self, pos: int) -> tuple[int, Any]:
        steps, values = self._pair()
        if len(steps) == 0:
            raise IndexError(f"sequence {self._seq.name!r} has no points")
        return int(steps[pos]), self._py(values[pos])

    def first(self) -> tuple[int, Any]:
        """`(step, value)` of the lowest step; IndexError when empty."""
        return self._at(0)

    def last(self) -> tuple[int, Any]:
        """`(step, value)` of the highest step; IndexError when empty."""
        return self._at(-1)

    def first_idx(self) -> int:
        return self.first()[0]

    def first_value(self) -> Any:
        return self.first()[1]

    def last_idx(self) -> int:
        return self.last()[0]

    def last_value(self) -> Any:
        return self.last()[1]


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
    run: Any,
    layout: RepoLayout | None = None,
    seq_cls: type[Sequence] = Sequence,
) -> Sequence:
    """A view of `info`: of `seq_cls`, or of the class matching its kind when that is `Sequence`."""
    cls = sequence_class_for(info.kind) if seq_cls is Sequence else seq_cls
    return cls(info, run, layout)
