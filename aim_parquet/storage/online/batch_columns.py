"""The columns of the record batches `bulk_read` finds in metric segments. A plain batch (no
null in any column: points tracked with their epochs) has each column's values taken from the
file's bytes where the batch's metadata puts them, as the IPC reader would decode them: small
batches of one layout (most: a few points per segment) gathered together, a large one copied
alone. The other batches are decoded together by the IPC reader as one stream."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pyarrow as pa

from aim_parquet.format.schema import METRIC_SCHEMA
from aim_parquet.storage.base.columns import nan_numpy, to_numpy, validity
from aim_parquet.storage.base.file_checks import I64, U32, flatbuffer_field

Array = np.ndarray[Any, Any]
RECORD_BATCH = 3
_PAIR = struct.Struct("<qq").unpack_from
_EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"
_SCHEMA_MESSAGE = METRIC_SCHEMA.serialize().to_pybytes()
Plain = tuple[int, int, int, int]  # the data buffers' offsets in a batch's body, by column
Batch = tuple[bytes, int, int, int, int, Plain | None]  # file, message, body, end, rows, plain
Columns = tuple[Array, Array, Array, Array | None, Array]  # steps, values, epochs, missing, stamps
_COLUMNS = len(METRIC_SCHEMA)
_DTYPES = (np.dtype(np.int64), np.dtype(np.float64), np.dtype(np.int64), np.dtype(np.float64))


def batch_meta(meta: bytes) -> tuple[int, int, Plain | None]:
    """(body length, rows, plain offsets) of a message's metadata; rows -1 when it is not an
    uncompressed record batch (a dictionary and the like: not a metric segment as written).
    The plain offsets, when every column of the batch is without nulls and its data buffer holds
    its rows within the body: where each column's values start in the body (`batch_columns`
    reads them there as the IPC reader would); None otherwise (the IPC reader decodes it)."""
    root = U32(meta, 0)[0]
    body_pos = flatbuffer_field(meta, root, 3)
    body = I64(meta, body_pos)[0] if body_pos else 0
    kind_pos = flatbuffer_field(meta, root, 1)
    header_pos = flatbuffer_field(meta, root, 2)
    if not kind_pos or meta[kind_pos] != RECORD_BATCH or not header_pos:
        return body, -1, None
    header = header_pos + U32(meta, header_pos)[0]
    if flatbuffer_field(meta, header, 3):
        return body, -1, None  # compressed
    length_pos = flatbuffer_field(meta, header, 0)
    rows = I64(meta, length_pos)[0] if length_pos else 0
    if rows < 0 or 8 * rows > body:  # more rows than its body holds steps for: damaged
        return body, -1, None
    try:
        plain = _plain_offsets(meta, header, rows, body)
    except (struct.error, IndexError, ValueError):
        plain = None
    return body, rows, plain


def _plain_offsets(meta: bytes, header: int, rows: int, body: int) -> Plain | None:
    """See `batch_meta`: a column's node says its rows and no null, its data buffer (the second
    of its two) lies within the body, as declared, and holds 8 bytes per row."""
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
        if offset + size > body:  # (the IPC reader refuses a buffer past the body)
            return None
        offsets.append(offset)
    return offsets[0], offsets[1], offsets[2], offsets[3]


def batch_columns(batches: list[Batch]) -> Columns | None:
    """The columns of `batches`, in order: those of plain batches (`batch_meta`) taken from
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
        decoded = decoded_points([batches[k] for k in rest], int(rows.sum()))
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


def decoded_points(batches: list[Batch], rows: int) -> Columns | None:
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
