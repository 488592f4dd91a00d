"""Series to pixels: every series of one chart on one shared x grid, at most two values per
pixel column (its min and its max, so a one-step spike stays visible), before anything is sent.

A chart has one x grid shared by all its series (what uPlot draws without any join):

- **exact**: when the series together have no more distinct x values than the chart has slots,
  the grid is those x values and every point sits at its own x (nothing is lost);
- **binned**: otherwise the x range is cut into `columns` equal pixel columns of two slots each.
  A series puts its column's extreme values there, in the order they occur (the max first in a
  column where the series falls, so a steep line is not drawn as a zigzag). Slot positions are
  the quarter and three-quarter points of the column.

Non-finite values (NaN, inf) are left out of the drawing and counted. Empty slots are NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

Array = np.ndarray[Any, Any]

EXACT_CHECK_POINTS = 2_000_000
"""Above this many points in a chart, the distinct-x check (a sort) is skipped: binned."""


@dataclass(frozen=True)
class SeriesPoints:
    """One series' points on its x axis (sorted, finite x) and its values (float64)."""

    x: Array
    y: Array


@dataclass(frozen=True)
class ChartGrid:
    """The shared x grid of a chart and each series' values on it (float64; NaN: no point)."""

    mode: str  # "exact" | "binned" | "empty"
    x: Array  # float64, increasing
    ys: list[Array]  # float64, len(x) each
    nonfinite: list[int]  # non-finite values left out, per series


def clean(x: Array, y: Array) -> tuple[SeriesPoints, int]:
    """Points with a finite x, sorted by x (stable), and the count of non-finite y values."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x)
    if not keep.all():
        x, y = x[keep], y[keep]
    if x.size > 1 and np.any(x[1:] < x[:-1]):
        order = np.argsort(x, kind="stable")
        x, y = x[order], y[order]
    finite = np.isfinite(y)
    nonfinite = int(y.size - np.count_nonzero(finite))
    if nonfinite:
        x, y = x[finite], y[finite]
    return SeriesPoints(x, y), nonfinite


def build_grid(series: list[SeriesPoints], nonfinite: list[int], columns: int) -> ChartGrid:
    """The grid of one chart with at most `2 * columns` slots."""
    columns = max(1, int(columns))
    sizes = [s.x.size for s in series]
    total = sum(sizes)
    if total == 0:
        empty = np.zeros(0, np.float64)
        return ChartGrid("empty", empty, [np.zeros(0, np.float64) for _ in series], nonfinite)
    if total <= EXACT_CHECK_POINTS:
        xs = np.unique(np.concatenate([s.x for s in series if s.x.size]))
        if xs.size <= 2 * columns:
            ys = []
            for s in series:
                row = np.full(xs.size, np.nan, np.float64)
                if s.x.size:
                    pos = np.searchsorted(xs, s.x)
                    row[pos] = s.y  # a repeated x (epoch axis) keeps its last value
                ys.append(row)
            return ChartGrid("exact", xs, ys, nonfinite)
    lo = min(float(s.x[0]) for s in series if s.x.size)
    hi = max(float(s.x[-1]) for s in series if s.x.size)
    if hi <= lo:
        hi = lo + 1.0
    width = (hi - lo) / columns
    offsets = np.repeat(np.arange(columns, dtype=np.float64), 2)
    offsets[0::2] += 0.25
    offsets[1::2] += 0.75
    grid_x = lo + offsets * width
    return ChartGrid("binned", grid_x, [_bin(s, lo, width, columns) for s in series], nonfinite)


def _bin(s: SeriesPoints, lo: float, width: float, columns: int) -> Array:
    row = np.full(2 * columns, np.nan, np.float64)
    if s.x.size == 0:
        return row
    col = np.minimum(((s.x - lo) / width).astype(np.int64), columns - 1)
    np.maximum(col, 0, out=col)
    starts = np.flatnonzero(np.concatenate(([True], col[1:] != col[:-1])))
    ends = np.append(starts[1:], col.size)
    used = col[starts]
    lows = np.minimum.reduceat(s.y, starts)
    highs = np.maximum.reduceat(s.y, starts)
    falling = s.y[starts] >= s.y[ends - 1]
    first = np.where(falling, highs, lows)
    second = np.where(falling, lows, highs)
    single = (ends - starts) == 1
    row[2 * used] = first
    row[2 * used + 1] = np.where(single, np.nan, second)
    return row


def minmax_points(x: Array, y: Array, columns: int) -> tuple[Array, Array]:
    """Real points of one series (their own x) with at most two per pixel column: the min and
    the max of each column in step order. For live updates, where a series arrives alone."""
    if x.size <= 2 * columns:
        return x, y
    lo, hi = float(x[0]), float(x[-1])
    width = (hi - lo) / columns if hi > lo else 1.0
    col = np.clip(((x - lo) / width).astype(np.int64), 0, columns - 1)
    order = np.lexsort((y, col))  # by column, then value
    bounds = np.flatnonzero(np.concatenate(([True], col[order][1:] != col[order][:-1])))
    lows = order[bounds]
    highs = order[np.append(bounds[1:], order.size) - 1]
    keep = np.unique(np.concatenate((lows, highs)))
    return x[keep], y[keep]
