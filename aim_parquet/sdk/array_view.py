"""`ArrayView`: one column of a sequence (`metric.values`, `.epochs`, `.timestamps`), keyed by the
real step, in step order. It reads through `ColumnSource`, the one thing it needs of a sequence,
so it sits below `sdk.sequence` (which builds it) and `sdk.sequence_data` (which reads with it)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np

Array = np.ndarray[Any, Any]


class ColumnSource(Protocol):
    """What a view reads from: a sequence's name and its step-keyed columns (`sdk.sequence.Sequence`)."""

    @property
    def name(self) -> str: ...

    def _column(self, name: str) -> tuple[Array, Any]:
        """`(steps, values)` of column `name` ('value', 'epoch', 'timestamp'), read-only, cached."""
        ...

    def preload(self) -> None:
        """Read every column in one consistent read."""
        ...


class ArrayView:
    """One column of a sequence keyed by real step, in step order (read on first use)."""

    __slots__ = ("_seq", "_col")

    def __init__(self, seq: ColumnSource, column: str) -> None:
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
