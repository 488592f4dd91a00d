"""The points of many metric sequences of runs that have no compacted files, read in one pass:
each segment is read once into memory and its record-batch messages are found by walking the IPC
framing (each distinct batch metadata parsed once), so the per-file cost is a `read` and a few
header reads instead of a reader, a table and a dozen numpy calls per sequence. A plain batch
(no null in any column: points tracked with their epochs) has each column's values taken from the
file's bytes where the batch metadata puts them, as the IPC reader would decode them; the other
batches are decoded together as one Arrow stream.

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
    is_valid_seq_id,
    validate_run_hash,
)
from aim_parquet.format.schema import METRIC_SCHEMA
from aim_parquet.storage.base.columns import nan_numpy, to_numpy, validity
from aim_parquet.storage.base.file_checks import (
    I32,
    I64,
    SMALL_FILE_BYTES,
    U32,
    check_segment_schema,
    flatbuffer_field,
)
from aim_parquet.storage.online.run_reader import last_writes, segment_names

Array = np.ndarray[Any, Any]
MetricPoints = tuple[Array, Array, Array, Array]  # steps, values, epochs, timestamps

_RECORD_BATCH = 3
_PAIR = struct.Struct("<qq").unpack_from
_EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"
_SCHEMA_MESSAGE = METRIC_SCHEMA.serialize().to_pybytes()


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
    for batches of as many rows, with as many nulls), each read once (`_batch_meta`)."""

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
            except (AimParquetError, pa.ArrowException, OSError, ValueError):
                verdict = False
            self._ok[key] = verdict
        if not verdict:
            raise _Odd(path)


Plain = tuple[int, int, int, int]  # the data buffers' offsets in a batch's body, by column
Batch = tuple[bytes, int, int, int, int, Plain | None]  # file, message, body, end, rows, plain
Columns = tuple[Array, Array, Array, Array | None, Array]  # steps, values, epochs, missing, stamps
_COLUMNS = len(METRIC_SCHEMA)
_DTYPES = (np.dtype(np.int64), np.dtype(np.float64), np.dtype(np.int64), np.dtype(np.float64))


def _batch_meta(meta: bytes) -> tuple[int, int, Plain | None]:
    """(body length, rows, plain offsets) of a message's metadata; rows -1 when it is not an
    uncompressed record batch (a dictionary and the like: not a metric segment as written).
    The plain offsets, when every column of the batch is without nulls and its data buffer holds
    its rows within the body: where each column's values start in the body (`_plain_points`
    reads them there as the IPC reader would); None otherwise (the IPC reader decodes it)."""
    root = U32(meta, 0)[0]
    body_pos = flatbuffer_field(meta, root, 3)
    body = I64(meta, body_pos)[0] if body_pos else 0
    kind_pos = flatbuffer_field(meta, root, 1)
    header_pos = flatbuffer_field(meta, root, 2)
    if not kind_pos or meta[kind_pos] != _RECORD_BATCH or not header_pos:
        return body, -1, None
    header = header_pos + U32(meta, header_pos)[0]
    if flatbuffer_field(meta, header, 3):
        return body, -1, None  # compressed
    length_pos = flatbuffer_field(meta, header, 0)
    rows = I64(meta, length_pos)[0] if length_pos else 0
    try:
        plain = _plain_offsets(meta, header, rows, body)
    except (struct.error, IndexError, ValueError):
        plain = None
    return body, rows, plain


def _plain_offsets(meta: bytes, header: int, rows: int, body: int) -> Plain | None:
    """See `_batch_meta`: a column's node says its rows and no null, its data buffer (the second
    of its two) lies within the body and holds 8 bytes per row."""
    nodes_pos = flatbuffer_field(meta, header, 1)
    buffers_pos = flatbuffer_field(meta, header, 2)
    if not nodes_pos or not buffers_pos or rows < 0:
        return None
    nodes = nodes_pos + U32(meta, nodes_pos)[0]
    buffers = buffers_pos + U32(meta, buffers_pos)[0]
    if U32(meta, nodes)[0] != _COLUMNS or U32(meta, buffers)[0] != 2 * _COLUMNS:
        return None
    offsets = []
    for column in range(_COLUMNS):
        length, nulls = _PAIR(meta, nodes + 4 + 16 * column)
        offset, size = _PAIR(meta, buffers + 4 + 16 * (2 * column + 1))
        if length != rows or nulls != 0 or offset < 0 or size < 8 * rows:
            return None
        if offset + 8 * rows > body:
            return None
        offsets.append(offset)
    return offsets[0], offsets[1], offsets[2], offsets[3]


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
            verdict = known[meta] = _batch_meta(meta)
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


def _exists(path: str) -> bool:
    try:
        os.lstat(path)
    except FileNotFoundError:
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
    layout: RepoLayout, run_hash: str, seq_ids: list[str], schemas: _Schemas
) -> list[tuple[list[Batch], int]] | None:
    """Per sequence of one run, its batch messages in write order and their rows; None when the
    run is left to the per-sequence reader."""
    run_dir = f"{os.fspath(layout.runs_dir)}/{validate_run_hash(run_hash)}"
    manifest = f"{run_dir}/{COMPACTED_DIRNAME}/{MANIFEST_FILENAME}"
    key = run_hash.encode()
    try:
        out = []
        for seq_id in seq_ids:
            if not is_valid_seq_id(seq_id):
                return None
            seq_dir = f"{run_dir}/{SEQS_DIRNAME}/{seq_id}"
            messages: list[Batch] = []
            rows = 0
            for name in segment_names(seq_dir):
                path = f"{seq_dir}/{name}"
                data = _read_small(path)
                if not data:
                    continue  # just created, its header not written yet: no points
                found, n = _batches(data, path, key, schemas)
                messages.extend(found)
                rows += n
            out.append((messages, rows))
        if _exists(manifest):
            # compacted, maybe while we read (a manifest, once committed, is only ever
            # replaced, so one absent after the reads was absent during them)
            return None
    except (OSError, AimParquetError, _Odd, struct.error, IndexError, ValueError):
        return None
    return out


def read_metrics_bulk(
    layout: RepoLayout, wanted: list[tuple[str, SequenceInfo | Any]]
) -> dict[int, MetricPoints]:
    """The points of the metric sequences `wanted` ((run hash, entry with `seq_id`), a run's
    sequences next to each other), keyed by position in `wanted`; a position missing from the
    answer is left to `read_metric_columns` (module doc)."""
    schemas = _Schemas()
    placed: list[tuple[int, int]] = []  # (position, rows)
    batches: list[Batch] = []
    i = 0
    while i < len(wanted):
        run_hash = wanted[i][0]
        j = i
        while j < len(wanted) and wanted[j][0] == run_hash:
            j += 1
        seq_ids = [entry.seq_id for _h, entry in wanted[i:j]]
        found = _run_messages(layout, run_hash, seq_ids, schemas)
        if found is not None:
            for position, (messages, rows) in zip(range(i, j), found, strict=True):
                batches.extend(messages)
                placed.append((position, rows))
        i = j
    if not placed:
        return {}
    columns = _columns(batches)
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
    bounds = zip([p for p, _n in placed], (ends - counts).tolist(), ends.tolist(), strict=True)
    for n, (position, start, end) in enumerate(bounds):
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


def _columns(batches: list[Batch]) -> Columns | None:
    """The columns of `batches`, in order: those of plain batches (`_batch_meta`) taken from
    the files' bytes where their metadata puts each column, as the IPC reader decodes them
    (`_fill_plain`), the others decoded by the IPC reader as one stream; None when it refuses
    them or finds other rows than the framing said."""
    counts = np.fromiter((b[4] for b in batches), dtype=np.int64, count=len(batches))
    starts = np.cumsum(counts) - counts  # a batch's first row in the columns
    total = int(counts.sum())
    columns = [np.empty(total, dtype) for dtype in _DTYPES]
    rest = _fill_plain(batches, starts, columns)
    missing = None
    if rest:
        which = np.asarray(rest, dtype=np.int64)
        rows = counts[which]
        decoded = _decoded_points([batches[k] for k in rest], int(rows.sum()))
        if decoded is None:
            return None
        dest = np.arange(int(rows.sum()), dtype=np.int64)
        dest += np.repeat(starts[which] - (np.cumsum(rows) - rows), rows)
        steps, values, epochs, miss, stamps = decoded
        for column, part in zip(columns, (steps, values, epochs, stamps), strict=True):
            column[dest] = part
        if miss is not None:
            missing = np.zeros(total, dtype=bool)
            missing[dest] = miss
    steps, values, epochs, stamps = columns
    return steps, values, epochs, missing, stamps


def _fill_plain(batches: list[Batch], starts: Array, columns: list[Array]) -> list[int]:
    """Fill `columns` with the rows of the plain batches; returns the positions of the others.
    Small batches with the same layout (most: a few points per segment) are gathered together
    from the files' bytes joined; a large one is copied alone."""
    files: dict[int, int] = {}  # id of a file's bytes: where they start in the joined bytes
    datas: list[bytes] = []
    joined = 0
    groups: dict[tuple[int, Plain], list[int]] = {}
    bases = np.zeros(len(batches), dtype=np.int64)  # a batch's body in the joined bytes
    rest = []
    for k, (data, _pos, body, _end, rows, plain) in enumerate(batches):
        if plain is None:
            rest.append(k)
            continue
        if rows >= _GATHER_ROWS:
            a = int(starts[k])
            for column, dtype, offset in zip(columns, _DTYPES, plain, strict=True):
                column[a : a + rows] = np.frombuffer(data, dtype, rows, body + offset)
            continue
        at = files.get(id(data))
        if at is None:
            at = files[id(data)] = joined
            datas.append(data)
            joined += len(data)
        bases[k] = at + body
        groups.setdefault((rows, plain), []).append(k)
    if not groups:
        return rest
    raw = np.frombuffer(b"".join(datas), dtype=np.uint8)
    for (rows, plain), members in groups.items():
        if rows == 0:
            continue
        which = np.asarray(members, dtype=np.int64)
        dest = (starts[which][:, None] + np.arange(rows)).ravel()
        span = np.arange(8 * rows)
        for column, dtype, offset in zip(columns, _DTYPES, plain, strict=True):
            source = ((bases[which] + offset)[:, None] + span).ravel()
            column[dest] = raw[source].view(dtype)
    return rest


_GATHER_ROWS = 256  # a batch of fewer rows is gathered with the others of its layout


def _decoded_points(batches: list[Batch], rows: int) -> Columns | None:
    """The columns of `batches` decoded by the IPC reader as one stream; None when it refuses
    them or finds other rows than the framing said."""
    chunks = [_SCHEMA_MESSAGE, *(data[pos:end] for data, pos, _b, end, _n, _p in batches), _EOS]
    try:
        table = pa.ipc.open_stream(pa.py_buffer(b"".join(chunks))).read_all()
    except (pa.ArrowException, OSError, ValueError):
        return None
    if table.num_rows != rows:
        return None
    table = table.combine_chunks()
    if table.column("step").null_count:
        return None
    steps = to_numpy(table.column("step")).astype(np.int64, copy=False)
    values = nan_numpy(table.column("value")).astype(np.float64, copy=False)
    epoch_column = table.column("epoch")
    ints = to_numpy(epoch_column).astype(np.int64, copy=False)  # (a null reads as 0)
    missing = None
    if epoch_column.null_count:
        missing = ~np.concatenate([validity(chunk) for chunk in epoch_column.chunks])
    stamps = nan_numpy(table.column("timestamp")).astype(np.float64, copy=False)
    return steps, values, ints, missing, stamps
