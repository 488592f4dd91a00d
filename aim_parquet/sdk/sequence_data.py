"""`seq.data`: every column of a sequence at once, step-ordered (Aim's `SequenceData`).

    steps, (values, epochs, times) = metric.data.numpy()       # writable arrays of your own
    steps, [values, epochs, times] = metric.data.items_list()  # Python lists
    for step, (value, epoch, time) in metric.data: ...          # or .items()
    metric.data.view("val").values_list()                       # one column (Aim's names)
    metric.data.sample(100).items_list()                        # about 100 evenly spaced points
    metric.data.range(10, 20).indices_list()                    # steps 10 <= step < 20

As in Aim, epochs are float64 here, with NaN for a point tracked without an epoch (the `epochs`
ArrayView gives int or None instead), and `time` is epoch seconds. Columns are named as in Aim
(`val`, `epoch`, `time`); ours (`value`, `timestamp`) are accepted too. `sample(k)` is Aim's
downsampling of its object sequences for every kind: every `len // k`-th point from the first,
plus the last point, so a sample always holds the first and last step (for metrics Aim 3.29 takes
the first k points in hashed-key order instead, which is no even spread). Two deliberate differences:
`values()` yields each point's column tuple (Aim yields the whole column lists, in 1-tuples), and
an unknown column name raises ValueError (Aim drops it without a word).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from aim_parquet.sdk.array_view import Array, ArrayView, ColumnSource

_COLUMNS = {"val": "value", "value": "value", "epoch": "epoch", "time": "timestamp"}
_COLUMNS["timestamp"] = "timestamp"
ALL_COLUMNS = ("value", "epoch", "timestamp")


class SequenceData:
    """A view of a sequence's columns; `view`, `sample` and `range` make narrower views."""

    __slots__ = ("_seq", "columns", "_n_items", "_step_range")

    def __init__(
        self,
        seq: ColumnSource,
        columns: Iterable[str] = ALL_COLUMNS,
        *,
        n_items: int = -1,
        step_range: tuple[int, int] | None = None,
    ) -> None:
        self._seq = seq
        self.columns: tuple[str, ...] = _checked(columns)
        self._n_items = n_items
        self._step_range = step_range

    def __repr__(self) -> str:
        return f"<SequenceData of {self._seq!r} columns={list(self.columns)}>"

    # -- narrower views --------------------------------------------------------------------
    def view(self, columns: str | Iterable[str]) -> SequenceData:
        """The same points with only `columns` ('val', 'epoch', 'time')."""
        names = [columns] if isinstance(columns, str) else list(columns)
        return SequenceData(self._seq, names, n_items=self._n_items, step_range=self._step_range)

    def sample(self, k: int) -> SequenceData:
        """About `k` evenly spaced points, the first and last included (Aim's downsampling)."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise TypeError(f"sample(k) needs an int, got {k!r}")
        return SequenceData(self._seq, self.columns, n_items=int(k), step_range=self._step_range)

    def range(self, start: int, stop: int) -> SequenceData:
        """The points with `start <= step < stop`."""
        return SequenceData(
            self._seq, self.columns, n_items=self._n_items, step_range=(int(start), int(stop))
        )

    # -- reading ---------------------------------------------------------------------------
    def _arrays(self) -> tuple[Array, list[Array]]:
        """Steps and the selected columns (read-only cached arrays, or slices of them)."""
        seq = self._seq
        seq.preload()
        steps = seq._column("value")[0]
        cols = [ArrayView(seq, col)._values_array() for col in self.columns]
        cols = [
            c.astype(np.float64) if n == "epoch" else c
            for n, c in zip(self.columns, cols, strict=True)
        ]
        if self._step_range is not None:
            start, stop = self._step_range
            lo, hi = np.searchsorted(steps, [start, max(start, stop)])
            steps, cols = steps[lo:hi], [c[lo:hi] for c in cols]
        positions = downsample(len(steps), self._n_items)
        if positions is not None:
            steps, cols = steps[positions], [c[positions] for c in cols]
        return steps, cols

    def numpy(self) -> tuple[Array, list[Array]]:
        """`(steps, [values, epochs, times])`: writable arrays of the caller's own; epochs are
        float64 with NaN for no epoch."""
        steps, cols = self._arrays()
        return np.array(steps), [np.array(c) for c in cols]

    def items_list(self) -> tuple[list[int], list[list[Any]]]:
        """`(steps, [values, epochs, times])` as Python lists (epoch NaN when unset, as Aim)."""
        steps, cols = self._arrays()
        return steps.tolist(), [c.tolist() for c in cols]

    def indices_list(self) -> list[int]:
        return self._arrays()[0].tolist()  # type: ignore[no-any-return]

    def values_list(self) -> list[list[Any]]:
        """One list per column (as Aim)."""
        return self.items_list()[1]

    def items(self) -> Iterator[tuple[int, tuple[Any, ...]]]:
        """`(step, (value, epoch, time))` for each point, in step order."""
        steps, cols = self.items_list()
        return zip(steps, zip(*cols, strict=True), strict=True)

    def values(self) -> Iterator[tuple[Any, ...]]:
        """`(value, epoch, time)` for each point (see the module doc)."""
        return zip(*self.items_list()[1], strict=True)

    def indices(self) -> Iterator[int]:
        return iter(self.indices_list())

    def __iter__(self) -> Iterator[tuple[int, tuple[Any, ...]]]:
        return self.items()

    def __len__(self) -> int:
        return len(self._arrays()[0])


def _checked(columns: Iterable[str]) -> tuple[str, ...]:
    out = []
    for name in columns:
        column = _COLUMNS.get(name) if isinstance(name, str) else None
        if column is None:
            raise ValueError(f"unknown column {name!r}; a sequence has 'val', 'epoch' and 'time'")
        if column not in out:
            out.append(column)
    if not out:
        raise ValueError("SequenceData needs at least one column ('val', 'epoch', 'time')")
    return tuple(out)


def downsample(length: int, k: int) -> Array | None:
    """Positions of Aim's `sample(k)` among `length` points (None: keep all): every
    `length // k`-th from the first, and the last."""
    if k <= 0:
        return None
    every = length // k or 1
    if every == 1:
        return None
    positions = np.arange(0, length, every)
    if (length - 1) % every != 0:
        positions = np.append(positions, length - 1)
    return positions
