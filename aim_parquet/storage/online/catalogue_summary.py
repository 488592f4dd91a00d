"""Catalogue entries summarised from points: the one place that folds rows into an entry (as
the writer does, or exactly, deduplicated by last write wins) and compares a stored entry with
the true one (FORMAT.md: every field describes the visible points)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import replace
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa

from aim_parquet.format.kinds import INT_KIND, NUMBER_KIND, is_metric_kind
from aim_parquet.format.meta import SequenceInfo
from aim_parquet.storage.base.columns import int64_array, to_numpy
from aim_parquet.storage.online.seq_buffer import summarize, visible_rows

__all__ = [
    "Piece", "blank", "stale_sequences", "stats_differ", "summarize_exact", "summarize_pieces",
]  # fmt: skip

Piece: TypeAlias = (
    pa.RecordBatch | pa.Table
)  # rows with `step` first and, for metrics, `value` second


def blank(info: SequenceInfo) -> SequenceInfo:
    """The entry of `info`'s sequence before any point: identity and kind, no summary."""
    return SequenceInfo(info.seq_id, info.name, info.context, info.kind)


def summarize_pieces(info: SequenceInfo, pieces: Iterable[Piece]) -> SequenceInfo:
    """`info` after the rows of `pieces`, in order (as the writer folds its batches). An `int`
    metric that meets a value that is not an integer becomes `number`, as the writer's does."""
    for piece in pieces:
        for batch in piece.to_batches() if isinstance(piece, pa.Table) else (piece,):
            if batch.num_rows == 0:
                continue
            if info.kind == INT_KIND:
                values = to_numpy(batch.column(1))
                if not bool(np.all(np.isfinite(values) & (values == np.floor(values)))):
                    info = replace(info, kind=NUMBER_KIND)
            info = summarize(info, batch)
    return info


def _piece_batches(pieces: Iterable[Piece]) -> list[pa.RecordBatch]:
    out: list[pa.RecordBatch] = []
    for piece in pieces:
        batches = piece.to_batches() if isinstance(piece, pa.Table) else [piece]
        out.extend(b for b in batches if b.num_rows)
    return out


def summarize_exact(info: SequenceInfo, pieces: Iterable[Piece]) -> SequenceInfo:
    """`info`'s entry made from all of its rows (`pieces` in write order: metrics `step, value`,
    objects `step, index` first), deduplicated by last write wins, then folded as one growing
    batch: exact whatever steps were rewritten. `reach` is kept."""
    batches = _piece_batches(pieces)
    entry = replace(blank(info), reach=info.reach)
    if not batches:
        return entry
    steps = np.concatenate([to_numpy(b.column(0)) for b in batches])
    second = np.concatenate([to_numpy(b.column(1)) for b in batches])
    is_metric = is_metric_kind(info.kind)
    if info.kind == "int" and not bool(np.all(np.isfinite(second) & (second == np.floor(second)))):
        entry = replace(entry, kind="number")  # as the writer's would (any value ever written)
    keep = visible_rows(steps, None if is_metric else second)
    if keep is not None:
        steps, second = steps[keep], second[keep]
    name = "value" if is_metric else "index"
    second_array = _plain_array(second, np.float64 if is_metric else np.int32)
    batch = pa.record_batch([int64_array(steps), second_array], names=["step", name])
    return summarize(entry, batch)


def _plain_array(values: np.ndarray[Any, Any], dtype: type[np.generic]) -> pa.Array:
    """`values` as an Arrow array without `pa.array`, which imports pandas: this runs in the
    close at interpreter exit, where that import fails (columns.py)."""
    data = np.ascontiguousarray(values, dtype=dtype)
    return pa.Array.from_buffers(
        pa.from_numpy_dtype(data.dtype), len(data), [None, pa.py_buffer(data)]
    )


def _same_value(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


def stats_differ(stored: SequenceInfo, true: SequenceInfo) -> bool:
    """Whether two entries of one sequence disagree on any summary field (kind and reach are
    not compared: `int` and `number` hold the same values)."""
    fields = ("count", "first_step", "last_step", "first", "last", "min", "max")
    return not all(_same_value(getattr(stored, f), getattr(true, f)) for f in fields)


def stale_sequences(stored: Iterable[SequenceInfo], true: Iterable[SequenceInfo]) -> list[str]:
    """Names of the sequences whose stored entry disagrees with the true one, or is missing (a
    sequence without a point may be missing: a catalogue rebuilt from the data leaves it out)."""
    have = {s.seq_id: s for s in stored}
    stale = []
    for info in true:
        old = have.get(info.seq_id)
        if (old is None and info.count) or (old is not None and stats_differ(old, info)):
            stale.append(info.name)
    return stale
