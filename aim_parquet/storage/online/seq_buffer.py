"""The in-memory buffer of one sequence (`SeqBuffer`) and the catalogue summary of written batches.

`Run.track` extends a `SeqBuffer` with one atomic list operation per point, without a lock; the
run writer's flusher takes the points out as one Arrow record batch (see `RunWriter`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from aim_parquet.format.kinds import INT_KIND, NUMBER_KIND, is_metric_kind, metric_value
from aim_parquet.format.meta import SequenceInfo
from aim_parquet.format.schema import METRIC_SCHEMA, OBJECT_SCHEMA
from aim_parquet.storage.base.columns import (
    float64_array,
    int32_array,
    int64_array,
    large_binary_array,
    nullable_int64_array,
    string_array,
    to_numpy,
)
from aim_parquet.storage.online.segments import SegmentFile

METRIC_STRIDE = 4  # step, value, epoch, timestamp
OBJECT_STRIDE = 6  # step, index, epoch, timestamp, payload, meta_json


class SeqBuffer:
    """Points of one sequence not yet flushed, plus its running summary.

    `points` is a flat list that `Run.track` extends by one point at a time, without a lock:
    `step, value, epoch, timestamp` for metrics (METRIC_STRIDE values a point), `step, index,
    epoch, timestamp, payload, meta_json` for objects. One `list.extend` is atomic under the GIL,
    so a point's values stay together whichever threads track; and a flat list of numbers holds
    no object the garbage collector tracks (a list of tuples made every gen-0 collection scan the
    buffer: +200 ns a point). The flusher takes the first n values with a slice copy and
    `del points[:n]`, each atomic, so points added meanwhile land in the next batch.
    """

    __slots__ = (
        "info",
        "is_metric",
        "stride",
        "flush_at",
        "next_step",
        "points",
        "segment",
        "unwritten",
        "dir",
    )

    def __init__(self, info: SequenceInfo, seq_dir: Path, max_buffer_points: int) -> None:
        self.info = info
        self.is_metric = is_metric_kind(info.kind)
        self.stride = METRIC_STRIDE if self.is_metric else OBJECT_STRIDE
        self.flush_at = max_buffer_points * self.stride  # len(points) that asks for a flush
        self.next_step = 0 if info.last_step is None else info.last_step + 1
        self.points: list[Any] = []
        self.segment: SegmentFile | None = None
        self.unwritten: list[pa.RecordBatch] = []  # taken from `points`, not yet appended
        self.dir = seq_dir

    def take_batch(self) -> pa.RecordBatch | None:
        """Move the buffered points out as one record batch."""
        points = self.points
        n = len(points)
        if n == 0:
            return None
        chunk = points[:n]
        del points[:n]
        if self.is_metric:
            values = chunk[1::4]
            if self.info.kind == INT_KIND and any(type(v) is float for v in values):
                self.info = replace(self.info, kind=NUMBER_KIND)
            arrays = [
                int64_array(chunk[0::4]),
                float64_array(values),
                nullable_int64_array(chunk[2::4]),
                float64_array(chunk[3::4]),
            ]
            return pa.record_batch(arrays, schema=METRIC_SCHEMA)
        arrays = [
            int64_array(chunk[0::6]),
            int32_array(chunk[1::6]),
            nullable_int64_array(chunk[2::6]),
            float64_array(chunk[3::6]),
            large_binary_array(chunk[4::6]),
            string_array(chunk[5::6]),
        ]
        return pa.record_batch(arrays, schema=OBJECT_SCHEMA)


def visible_rows(steps: np.ndarray, index: np.ndarray | None = None) -> np.ndarray | None:
    """Positions of the rows that last write wins keeps (the last row of each step; objects: of
    each `(step, index)`), in key order; None when every row is kept in the order given (keys
    strictly increasing: the usual case, one vectorised comparison)."""
    n = len(steps)
    if n < 2:
        return None
    later, same = steps[1:] > steps[:-1], steps[1:] == steps[:-1]
    if index is None:
        if bool(np.all(later)):
            return None
        order = np.argsort(steps, kind="stable")
        keyed = steps[order]
        is_last = np.ones(n, dtype=bool)
        is_last[:-1] = keyed[1:] != keyed[:-1]
        return order[is_last]
    if bool(np.all(later | (same & (index[1:] > index[:-1])))):
        return None
    order = np.lexsort((index, steps))  # stable: equal keys keep their write order
    s, i = steps[order], index[order]
    is_last = np.ones(n, dtype=bool)
    is_last[:-1] = (s[1:] != s[:-1]) | (i[1:] != i[:-1])
    return order[is_last]


def summarize(info: SequenceInfo, batch: pa.RecordBatch) -> SequenceInfo:
    """The catalogue entry after `batch` was written (count, first/last step and value, min/max),
    by last write wins. Exact and incremental while steps only grow (every step of the batch
    after `last_step`: nothing visible is replaced); a batch that writes a step at or before
    `last_step` may replace a point, so the entry is marked `has_rewrites` until a recount from
    the data (`catalogue_scan.recount_sequences`) makes `count`, `min` and `max` exact again."""
    steps = to_numpy(batch.column(0))
    n = len(steps)
    if n == 0:
        return info
    values = to_numpy(batch.column(1)) if info.is_metric else None
    keep = visible_rows(steps, None if info.is_metric else to_numpy(batch.column(1)))
    hi = int(steps.max())
    lo = int(steps.min())
    is_growing = info.last_step is None or lo > info.last_step
    changes: dict[str, Any] = {
        "count": info.count + (n if keep is None else len(keep)),
        "has_rewrites": info.has_rewrites or not is_growing,
    }
    if info.last_step is None or hi >= info.last_step:
        changes["last_step"] = hi
        if values is not None:
            last = float(values[n - 1 - int(np.argmax(steps[::-1] == hi))])
            changes["last"] = metric_value(last, info.kind)
    if info.first_step is None or lo <= info.first_step:
        changes["first_step"] = lo
        if values is not None:
            first = float(values[n - 1 - int(np.argmax(steps[::-1] == lo))])
            changes["first"] = metric_value(first, info.kind)
    if values is not None:
        seen = values if keep is None else values[keep]
        finite = seen[~np.isnan(seen)]
        if finite.size:
            bmin, bmax = float(finite.min()), float(finite.max())
            changes["min"] = bmin if info.min is None else min(info.min, bmin)
            changes["max"] = bmax if info.max is None else max(info.max, bmax)
    return replace(info, **changes)
