"""The points of many metric sequences of runs that have no compacted files, read in one pass:
each segment is read once into memory and its record-batch messages are found by walking the IPC
framing (each distinct batch metadata parsed once), so the per-file cost is a `read` and a few
header reads instead of a reader, a table and a dozen numpy calls per sequence. The batches'
columns are taken from the files' bytes where a batch without nulls has them, the other batches
decoded together as one Arrow stream (`storage.online.batch_columns`).

The result is what `run_reader.read_metric_columns` reads for each sequence (module doc of
`run_reader`: steps in step order, the last write of a step winning; `epoch` int64, or float64
with NaN when one of the points kept has none; `value` as stored, float64). Anything out of the
ordinary leaves the sequence out of the answer, and the caller reads it with
`read_metric_columns`, which gives the same points or raises the error that says what is wrong:
a run with a compaction manifest (before or after the read: a compaction committed meanwhile), a
file that vanished or cannot be read, a segment larger than `SMALL_FILE_BYTES`, a link, a schema
that is not the metric schema of a readable format version, a compressed or dictionary message,
or a stream the decoder refuses.
"""

from __future__ import annotations

import os
import stat
import struct
from typing import Any

import numpy as np
import pyarrow as pa

from aim_parquet.errors import AimParquetError
from aim_parquet.format.meta import SequenceInfo
from aim_parquet.format.paths import (
    COMPACTED_DIRNAME,
    MANIFEST_FILENAME,
    SEQS_DIRNAME,
    RepoLayout,
    is_segment_name,
    is_valid_seq_id,
    validate_run_hash,
)
from aim_parquet.format.schema import METRIC_SCHEMA
from aim_parquet.storage.base.file_checks import (
    I32,
    I64,
    SMALL_FILE_BYTES,
    U16,
    U32,
    check_segment_schema,
    flatbuffer_field,
)
from aim_parquet.storage.online.batch_columns import Batch, Plain, batch_columns, batch_meta
from aim_parquet.storage.online.run_reader import last_writes

Array = np.ndarray[Any, Any]
MetricPoints = tuple[Array, Array, Array, Array]  # steps, values, epochs, timestamps


class _Odd(Exception):
    """A file the bulk reader leaves to the per-sequence reader."""


def _message(data: bytes, pos: int) -> tuple[int, int, int] | None:
    """(metadata start, metadata length, body length) of the message at `pos`; None at the end of
    the stream or at a torn tail (what `read_segment` skips)."""
    end = len(data)
    if pos + 8 > end:
        return None
    length = I32(data, pos)[0]
    pos += 4
    if length == -1:
        length = I32(data, pos)[0]
        pos += 4
    if length <= 0 or pos + length > end:
        return None
    meta = data[pos : pos + length]
    root = U32(meta, 0)[0]
    body_pos = flatbuffer_field(meta, root, 3)
    body = I64(meta, body_pos)[0] if body_pos else 0
    if body < 0 or pos + length + body > end:
        return None
    return pos, length, body


class _Schemas:
    """Verdicts on segment schema messages: equal messages but for the run hash (one per
    sequence name, context and kind) are checked once; and on batch message metadata (equal
    for batches of as many rows, with as many nulls), each read once (`batch_meta`)."""

    def __init__(self) -> None:
        self._ok: dict[bytes, bool] = {}
        self.batches: dict[bytes, tuple[int, int, Plain | None]] = {}

    def check(self, message: bytes, run_hash: bytes, path: str) -> None:
        key = message.replace(run_hash, b"")
        verdict = self._ok.get(key)
        if verdict is None:
            try:
                schema = pa.ipc.read_schema(pa.py_buffer(message))
                check_segment_schema(schema, path)
                verdict = schema.equals(METRIC_SCHEMA, check_metadata=False)
                verdict = verdict and _little_endian(message)  # (as `batch_columns` reads)
            except (AimParquetError, pa.ArrowException, OSError, ValueError, struct.error):
                verdict = False
            self._ok[key] = verdict
        if not verdict:
            raise _Odd(path)


def _little_endian(message: bytes) -> bool:
    """Whether a schema message says its buffers are little-endian (Arrow's default; a file
    from a big-endian writer is left to the per-sequence reader, whose IPC reader swaps)."""
    found = _message(message, 0)
    if found is None:
        return False
    pos, length, _body = found
    meta = message[pos : pos + length]
    header_pos = flatbuffer_field(meta, U32(meta, 0)[0], 2)
    if not header_pos:
        return False
    field = flatbuffer_field(meta, header_pos + U32(meta, header_pos)[0], 0)
    return not field or U16(meta, field)[0] == 0


def _batches(data: bytes, path: str, run_hash: bytes, schemas: _Schemas) -> tuple[list[Batch], int]:
    """The complete record-batch messages of one segment, each as (the file's bytes, where its
    message starts, where its body starts, where it ends, its rows, its plain offsets), and
    their rows (the framing read as `_message` reads it, each distinct metadata parsed once)."""
    first = _message(data, 0)
    if first is None:
        raise _Odd(path)  # no schema: the per-sequence reader says what is wrong
    pos, length, body = first
    schemas.check(data[: pos + length + body], run_hash, path)
    pos += length + body
    out: list[Batch] = []
    rows = 0
    known = schemas.batches
    size = len(data)
    while pos + 8 <= size:
        start = pos + 4
        length = I32(data, pos)[0]
        if length == -1:
            length = I32(data, start)[0]
            start += 4
        if length <= 0 or start + length > size:
            break  # the end, or a torn tail
        meta = data[start : start + length]
        verdict = known.get(meta)
        if verdict is None:
            verdict = batch_meta(meta)
            end = start + length + verdict[0]
            if verdict[0] < 0 or end > size:
                break  # a torn tail (no verdict kept: an equal metadata elsewhere is whole)
            if verdict[2] is not None and not _ipc_reads(data[pos:end]):
                verdict = (verdict[0], verdict[1], None)  # (the IPC reader says what is wrong)
            known[meta] = verdict
        body, n, plain = verdict
        end = start + length + body
        if body < 0 or end > size:
            break  # a torn tail
        if n < 0:
            raise _Odd(path)
        rows += n
        out.append((data, pos, start + length, end, n, plain))
        pos = end
    return out, rows


def _ipc_reads(message: bytes) -> bool:
    """Whether the IPC reader decodes this record batch message (its metadata verified, its
    version supported, its buffers within its body): a plain batch is read from the file's bytes
    only where the IPC reader would read it. (Checked once per distinct metadata: the verdict
    does not depend on a plain batch's values.)"""
    try:
        pa.ipc.read_record_batch(pa.ipc.read_message(pa.py_buffer(message)), METRIC_SCHEMA)
    except (pa.ArrowException, OSError, ValueError):
        return False
    return True


_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
_OPEN_FLAGS |= getattr(os, "O_CLOEXEC", 0)


def _read_small(path: str) -> bytes:
    """The bytes of a regular segment file of at most `SMALL_FILE_BYTES` (`_Odd` otherwise: a
    link, a FIFO, a larger file, one that grows while read)."""
    fd = os.open(path, _OPEN_FLAGS)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > SMALL_FILE_BYTES:
            raise _Odd(path)
        data = os.read(fd, st.st_size + 1)
    finally:
        os.close(fd)
    if len(data) != st.st_size:
        raise _Odd(path)  # it changed under us
    return data


def _run_messages(
    runs_dir: str, run_hash: str, seq_ids: list[str], schemas: _Schemas
) -> list[tuple[list[Batch], int]] | None:
    """Per sequence of one run, its batch messages in write order and their rows; None when the
    run is left to the per-sequence reader. (Per run: one listing and one read per segment, and
    one `lstat` of the manifest after them; `run_reader.segment_names`' names, inline.)"""
    run_dir = f"{runs_dir}/{validate_run_hash(run_hash)}"
    key = run_hash.encode()
    try:
        out = []
        for seq_id in seq_ids:
            if not is_valid_seq_id(seq_id):
                return None
            seq_dir = f"{run_dir}/{SEQS_DIRNAME}/{seq_id}"
            try:
                names = [n for n in os.listdir(seq_dir) if is_segment_name(n)]
            except FileNotFoundError:
                names = []
            if len(names) > 1:
                names.sort()
            messages: list[Batch] = []
            rows = 0
            for name in names:
                path = f"{seq_dir}/{name}"
                data = _read_small(path)
                if not data:
                    continue  # just created, its header not written yet: no points
                found, n = _batches(data, path, key, schemas)
                messages += found
                rows += n
            out.append((messages, rows))
    except (OSError, AimParquetError, _Odd, struct.error, IndexError, ValueError):
        return None
    try:
        # compacted, maybe while we read (a manifest, once committed, is only ever replaced,
        # so one absent after the reads was absent during them)
        os.lstat(f"{run_dir}/{COMPACTED_DIRNAME}/{MANIFEST_FILENAME}")
    except FileNotFoundError:
        return out
    except OSError:
        pass
    return None


def read_metrics_bulk(
    layout: RepoLayout, wanted: list[tuple[str, SequenceInfo | Any]]
) -> dict[int, MetricPoints]:
    """The points of the metric sequences `wanted` ((run hash, entry with `seq_id`), a run's
    sequences next to each other), keyed by position in `wanted`; a position missing from the
    answer is left to `read_metric_columns` (module doc)."""
    schemas = _Schemas()
    runs_dir = os.fspath(layout.runs_dir)
    placed: list[tuple[int, int]] = []  # (position, rows)
    batches: list[Batch] = []
    i, size = 0, len(wanted)
    while i < size:
        run_hash, entry = wanted[i]
        j = i + 1
        while j < size and wanted[j][0] == run_hash:
            j += 1
        seq_ids = [entry.seq_id] if j == i + 1 else [e.seq_id for _h, e in wanted[i:j]]
        found = _run_messages(runs_dir, run_hash, seq_ids, schemas)
        if found is not None:
            for position, (messages, rows) in enumerate(found, i):
                batches += messages
                placed.append((position, rows))
        i = j
    if not placed:
        return {}
    columns = batch_columns(batches)
    if columns is None:
        return {}
    steps, values, ints, missing, stamps = columns
    out: dict[int, MetricPoints] = {}
    counts = np.fromiter((n for _p, n in placed), dtype=np.int64, count=len(placed))
    ends = np.cumsum(counts)
    # a sequence whose steps do not increase strictly (a step written again) is deduplicated
    # alone (`last_writes`); the others are kept as they are, found in one pass
    rises = np.ones(len(steps) + 1, dtype=bool)
    rises[1:-1] = steps[1:] > steps[:-1]
    rises[ends[ends < len(steps)]] = True  # (a sequence's first row rises from nothing)
    falls = np.flatnonzero(~rises)
    redo = set(np.searchsorted(ends, falls, side="right").tolist())
    positions = [p for p, _n in placed]
    starts, stops = (ends - counts).tolist(), ends.tolist()
    if missing is None and not redo:  # (most reads: every sequence kept as it is)
        for position, start, end in zip(positions, starts, stops, strict=True):
            out[position] = (
                steps[start:end],
                values[start:end],
                ints[start:end],
                stamps[start:end],
            )
        return out
    for n, (position, start, end) in enumerate(zip(positions, starts, stops, strict=True)):
        s, v, e, t = steps[start:end], values[start:end], ints[start:end], stamps[start:end]
        miss = None if missing is None else missing[start:end]
        if n in redo:
            chosen = last_writes(s)
            if chosen is not None:
                s, v, e, t = s[chosen], v[chosen], e[chosen], t[chosen]
                miss = None if miss is None else miss[chosen]
        if miss is not None and miss.any():  # (a kept point's missing epoch)
            e = np.where(miss, np.nan, e)  # as `nan_numpy` of such a piece
        out[position] = (s, v, e, t)
    return out
