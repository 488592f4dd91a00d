"""The protobuf wire format, decoded by hand: enough to read TensorBoard's messages without the
`protobuf` package or TensorFlow.

A message is a run of fields `key, value` where key = field_number << 3 | wire_type; wire types
are 0 varint, 1 fixed 64-bit, 2 length-delimited, 5 fixed 32-bit (3/4, groups, are obsolete and
refused). `fields` walks them; the helpers decode packed repeated numbers.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5

_DOUBLE = struct.Struct("<d")
_FLOAT = struct.Struct("<f")


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """(value, next position) of the varint at `pos` (unsigned, up to 64 bits)."""
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise WireError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise WireError("varint longer than 10 bytes")


def signed64(value: int) -> int:
    """A varint's two's complement int64 value (int32/int64 fields)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def fields(buf: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int, object]]:
    """(field number, wire type, value) of each field in buf[start:end]. Varints come as int,
    fixed64/fixed32 as their raw 8/4 bytes, length-delimited fields as (start, end) offsets."""
    pos = start
    stop = len(buf) if end is None else end
    while pos < stop:
        key, pos = read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == VARINT:
            value, pos = read_varint(buf, pos)
            yield number, wire, value
        elif wire == LENGTH:
            size, pos = read_varint(buf, pos)
            if pos + size > stop:
                raise WireError(f"field {number} runs past the end of its message")
            yield number, wire, (pos, pos + size)
            pos += size
        elif wire == FIXED64:
            if pos + 8 > stop:
                raise WireError(f"field {number} runs past the end of its message")
            yield number, wire, buf[pos : pos + 8]
            pos += 8
        elif wire == FIXED32:
            if pos + 4 > stop:
                raise WireError(f"field {number} runs past the end of its message")
            yield number, wire, buf[pos : pos + 4]
            pos += 4
        else:
            raise WireError(f"unsupported wire type {wire} (field {number})")
    if pos != stop:
        raise WireError("message runs past its end")


def as_double(raw: object) -> float:
    assert isinstance(raw, bytes)
    return float(_DOUBLE.unpack(raw)[0])


def as_float(raw: object) -> float:
    assert isinstance(raw, bytes)
    return float(_FLOAT.unpack(raw)[0])


def span(value: object) -> tuple[int, int]:
    assert isinstance(value, tuple)
    return value


def text(buf: bytes, value: object) -> str:
    """A string field (UTF-8; undecodable bytes replaced, as protobuf's Python runtime would
    refuse the whole message)."""
    start, end = span(value)
    return buf[start:end].decode("utf-8", "replace")


def packed_varints(buf: bytes, start: int, end: int) -> list[int]:
    out = []
    pos = start
    while pos < end:
        value, pos = read_varint(buf, pos)
        out.append(value)
    return out


def packed_fixed(buf: bytes, start: int, end: int, fmt: str) -> list[float]:
    width = struct.calcsize(fmt)
    if (end - start) % width:
        raise WireError("packed field length is not a multiple of its element size")
    count = (end - start) // width
    return [float(v) for v in struct.unpack_from(f"<{count}{fmt}", buf, start)]
