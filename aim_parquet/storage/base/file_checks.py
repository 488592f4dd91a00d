"""What every segment and compacted file must pass before its rows are decoded.

A repository may come from anywhere (a colleague's tarball, a shared folder), so a reader checks a
data file before it trusts it, and names the file when it refuses it:

- It is a regular file inside the run folder, opened without following a link (`storage.base.safe_fs`).
- Its format version is one this reader implements: a newer one raises `FormatVersionError`
  (FORMAT.md, reader rule 6); its columns have the types FORMAT.md gives (`CorruptFileError`).
- What it decodes to is bounded: at most `max(DECODED_FLOOR_BYTES, DECODED_RATIO x its size)`
  (`UnsafeFileError`). aim_parquet writes segments uncompressed and compacted files whose rows
  decode to a few times their size, so only a crafted file (a 60 KB zstd-compressed segment that
  would decode to gigabytes, a 4 KB Parquet file claiming billions of rows) comes near the bound.
  For a segment the sizes are read from each IPC message's header (its flatbuffer) before any
  body is decompressed; for a Parquet file from its footer (row count, uncompressed sizes).
"""

from __future__ import annotations

import os
import struct
from typing import Any

import pyarrow as pa

from aim_parquet.errors import CorruptFileError, FormatVersionError, UnsafeFileError
from aim_parquet.format.meta import FORMAT_VERSION
from aim_parquet.format.schema import METRIC_SCHEMA, OBJECT_SCHEMA, format_version_of
from aim_parquet.storage.base.safe_fs import map_regular

DECODED_FLOOR_BYTES = 512 << 20
DECODED_RATIO = 128
MIN_ROW_BYTES = 32  # every compacted row decodes to at least step, timestamp and two more fields
SMALL_FILE_BYTES = 1 << 20  # read into memory; larger files are memory-mapped

_MESSAGE_SCHEMA, _MESSAGE_DICTIONARY, _MESSAGE_RECORD_BATCH = 1, 2, 3


def decoded_limit(size: int) -> int:
    """How many bytes a file of `size` bytes may decode to."""
    return max(DECODED_FLOOR_BYTES, DECODED_RATIO * size)


def _refuse_bomb(path: str | os.PathLike[str], what: str, decoded: int, size: int) -> None:
    if decoded > decoded_limit(size):
        raise UnsafeFileError(
            f"{what} {os.fspath(path)} would decode to {decoded:,} bytes from {size:,} on disk, "
            f"more than aim_parquet decodes from such a file ({decoded_limit(size):,}); it is not "
            "a file aim_parquet wrote. `aim-parquet verify --repair` quarantines it."
        )


def check_version(version: int, path: str | os.PathLike[str], what: str) -> None:
    if version < 0:
        raise CorruptFileError(f"{what} {os.fspath(path)} has an invalid format version.")
    if version > FORMAT_VERSION:
        raise FormatVersionError(
            f"{what} {os.fspath(path)} was written by format version {version}, newer than this "
            f"aim_parquet (reads up to {FORMAT_VERSION}). Upgrade aim_parquet: "
            "pip install -U aim_parquet."
        )


# -- segments (Arrow IPC streams) --------------------------------------------------------------


I32 = struct.Struct("<i").unpack_from
U32 = struct.Struct("<I").unpack_from
U16 = struct.Struct("<H").unpack_from
I64 = struct.Struct("<q").unpack_from
_BUFFER = struct.Struct("<qq").unpack_from


def flatbuffer_field(buf: bytes | memoryview, table: int, index: int) -> int:
    """Position of field `index` of the flatbuffer table at `table`, 0 when it is absent."""
    vtable = table - I32(buf, table)[0]
    slot = 4 + 2 * index
    if slot + 2 > U16(buf, vtable)[0]:
        return 0
    offset: int = U16(buf, vtable + slot)[0]
    return table + offset if offset else 0


def _table(buf: memoryview, table: int, index: int) -> int:
    """Position of the table that field `index` points to, 0 when it is absent."""
    pos = flatbuffer_field(buf, table, index)
    return pos + U32(buf, pos)[0] if pos else 0


def _compressed_size(meta: memoryview, batch: int, body: memoryview) -> int:
    """Bytes the buffers of a compressed RecordBatch decode to: each buffer starts with its
    decoded length (-1: stored as is)."""
    pos = flatbuffer_field(meta, batch, 2)
    if not pos:
        return 0
    vec = pos + U32(meta, pos)[0]
    count = U32(meta, vec)[0]
    if vec + 4 + 16 * count > len(meta):
        raise ValueError("buffer vector beyond the message")
    total = 0
    for i in range(count):
        offset, length = _BUFFER(meta, vec + 4 + 16 * i)
        if length < 8 or offset < 0 or offset + 8 > len(body):
            continue  # an empty buffer, or a torn body pyarrow reports itself
        raw = I64(body, offset)[0]
        total += length - 8 if raw == -1 else max(0, raw)
    return total


def ipc_decoded_size(data: bytes | pa.Buffer | memoryview) -> int:
    """What the record batches of an Arrow IPC stream decode to, from the message headers (their
    flatbuffers) alone, before any body is decompressed; stops at the end of the stream or at a
    torn or unreadable message (the reader reports those itself). An uncompressed batch decodes
    to its body; a compressed one to the lengths its buffers declare."""
    buf = memoryview(data)
    pos, total, end = 0, 0, len(buf)
    while pos + 8 <= end:
        length = I32(buf, pos)[0]
        pos += 4
        if length == -1:  # continuation marker, then the metadata length
            length = I32(buf, pos)[0]
            pos += 4
        if length <= 0 or pos + length > end:
            break
        try:
            meta = buf[pos : pos + length]
            message = U32(meta, 0)[0]
            kind_pos = flatbuffer_field(meta, message, 1)
            kind = meta[kind_pos] if kind_pos else 0
            body_pos = flatbuffer_field(meta, message, 3)
            body_length = I64(meta, body_pos)[0] if body_pos else 0
            body_start = pos + length
            if body_length < 0 or body_start + body_length > end:
                break
            if kind in (_MESSAGE_RECORD_BATCH, _MESSAGE_DICTIONARY):
                header = _table(meta, message, 2)
                if header and kind == _MESSAGE_DICTIONARY:
                    header = _table(meta, header, 1)
                if header and flatbuffer_field(meta, header, 3):  # body compression
                    body = buf[body_start : body_start + body_length]
                    total += _compressed_size(meta, header, body)
                else:
                    total += body_length
        except (struct.error, ValueError, IndexError):
            break
        pos = body_start + body_length
    return total


def segment_source(path: str | os.PathLike[str], *, memory_map: bool = True) -> bytes | pa.Buffer:
    """A segment's bytes (memory-mapped when large), checked: a regular file, not a link, and
    decoding to a bounded size. Raises FileNotFoundError when it is gone."""
    small = SMALL_FILE_BYTES if memory_map else 1 << 62
    source = map_regular(path, "segment", small_bytes=small)
    _refuse_bomb(path, "segment", ipc_decoded_size(source), len(source))
    return source


def check_segment_tail(
    path: str | os.PathLike[str], source: bytes | pa.Buffer, offset: int
) -> None:
    """The messages of a segment from byte `offset` on (where one starts) decode to a bounded
    size (`UnsafeFileError` beyond): what a reader that skips the first `offset` bytes decodes."""
    tail = memoryview(source)[offset:]
    _refuse_bomb(path, "segment", ipc_decoded_size(tail), len(source))


def check_segment_schema(schema: pa.Schema, path: str | os.PathLike[str]) -> None:
    """A segment schema of this format version with the columns FORMAT.md gives."""
    check_version(format_version_of(schema.metadata), path, "segment")
    expected = OBJECT_SCHEMA if "payload" in schema.names else METRIC_SCHEMA
    if not schema.equals(expected, check_metadata=False):  # (the usual case costs one call)
        _check_columns(schema, expected, path, "segment")


def _check_columns(
    schema: pa.Schema, expected: pa.Schema, path: str | os.PathLike[str], what: str
) -> None:
    for field in expected:
        index = schema.get_field_index(field.name)
        if index < 0:
            raise CorruptFileError(f"{what} {os.fspath(path)} has no column {field.name!r}.")
        typ = _plain(schema.field(index).type)
        if typ != _plain(field.type):
            raise CorruptFileError(
                f"{what} {os.fspath(path)}: column {field.name!r} is of type {typ}, not "
                f"{field.type} as FORMAT.md says. `aim-parquet verify --repair` quarantines it."
            )


def _plain(typ: pa.DataType) -> pa.DataType:
    """The type without dictionary encoding and 64-bit offsets (as Parquet may read it back)."""
    if pa.types.is_dictionary(typ):
        typ = typ.value_type
    if pa.types.is_large_binary(typ):
        return pa.binary()
    if pa.types.is_large_string(typ):
        return pa.string()
    return typ


# -- compacted Parquet files -------------------------------------------------------------------


def parquet_source(path: str | os.PathLike[str]) -> tuple[pa.NativeFile, int]:
    """A compacted file opened safely (regular, not a link): in memory when small, else mapped;
    and its size."""
    source = map_regular(path, "compacted file", small_bytes=SMALL_FILE_BYTES * 8)
    return pa.BufferReader(source), len(source)


def check_parquet(
    metadata: Any,
    path: str | os.PathLike[str],
    size: int,
    *,
    schema: pa.Schema | None = None,
    expected: pa.Schema | None = None,
) -> None:
    """A compacted file's footer (a `pyarrow.parquet.FileMetaData`) of a file of `size` bytes:
    this format version and a bounded decoded size; with `schema` (its Arrow schema) and
    `expected`, the columns FORMAT.md gives."""
    check_version(format_version_of(metadata.metadata), path, "compacted file")
    uncompressed = 0
    for g in range(metadata.num_row_groups):
        group = metadata.row_group(g)
        for c in range(group.num_columns):
            uncompressed += max(0, int(group.column(c).total_uncompressed_size))
    decoded = max(uncompressed, int(metadata.num_rows) * MIN_ROW_BYTES)
    _refuse_bomb(path, "compacted file", decoded, size)
    if schema is not None and expected is not None:
        _check_columns(schema, expected, path, "compacted file")
