"""Building Arrow arrays from Python lists through numpy buffers.

`pa.array()` on any input makes pyarrow import pandas when it is installed (a 0.4 s, 50 MB
surprise that also fails during interpreter shutdown, when the last flush runs). These builders
go through `pa.Array.from_buffers`, which imports nothing, and are faster for our column types.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa


def int64_array(values: list[int] | np.ndarray[Any, Any]) -> pa.Array:
    if isinstance(values, np.ndarray):
        data = np.ascontiguousarray(values, dtype=np.int64)
    else:
        data = np.fromiter(values, dtype=np.int64, count=len(values))
    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(data)])


def int32_array(values: list[int]) -> pa.Array:
    data = np.fromiter(values, dtype=np.int32, count=len(values))
    return pa.Array.from_buffers(pa.int32(), len(values), [None, pa.py_buffer(data)])


def float64_array(values: list[Any]) -> pa.Array:
    """Floats (ints and huge ints converted; values beyond float range become +-inf)."""
    try:
        data = np.fromiter(values, dtype=np.float64, count=len(values))
    except (OverflowError, TypeError, ValueError):
        data = np.array([_to_float(v) for v in values], dtype=np.float64)
    return pa.Array.from_buffers(pa.float64(), len(values), [None, pa.py_buffer(data)])


def _to_float(value: Any) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def validity_bitmap(present: np.ndarray[Any, Any]) -> tuple[pa.Buffer | None, int]:
    """The validity bitmap of a boolean mask of present entries (None when all are) and the
    count of nulls."""
    nulls = len(present) - int(np.count_nonzero(present))
    if not nulls:
        return None, 0
    return pa.py_buffer(np.packbits(present, bitorder="little")), nulls


def nullable_int64_array(values: list[int | None]) -> pa.Array:
    return nullable_scalars(values, pa.int64())


def nullable_scalars(values: list[Any], typ: pa.DataType) -> pa.Array:
    """`pa.array(values, typ)` of bools, ints (int64) or floats (float64), None as null; values
    these buffers cannot hold go to `pa.array` itself."""
    n = len(values)
    if None not in values:  # (no nulls: one conversion, no bitmap)
        kind = bool if typ == pa.bool_() else np.int64 if typ == pa.int64() else np.float64
        try:
            array = np.array(values, dtype=kind)
        except (TypeError, ValueError, OverflowError):
            return pa.array(values, typ)
        if array.shape == (n,):
            if kind is bool:
                bits = pa.py_buffer(np.packbits(array, bitorder="little"))
                return pa.Array.from_buffers(typ, n, [None, bits], 0)
            return pa.Array.from_buffers(typ, n, [None, pa.py_buffer(array)], 0)
    try:
        if typ == pa.bool_():
            bits = np.fromiter((v is not None and bool(v) for v in values), dtype=bool, count=n)
            data = pa.py_buffer(np.packbits(bits, bitorder="little"))
        elif typ == pa.int64():
            data = pa.py_buffer(
                np.fromiter((0 if v is None else v for v in values), dtype=np.int64, count=n)
            )
        else:
            floats = (np.nan if v is None else float(v) for v in values)
            data = pa.py_buffer(np.fromiter(floats, dtype=np.float64, count=n))
    except (TypeError, ValueError, OverflowError):
        return pa.array(values, typ)
    present = np.fromiter((v is not None for v in values), dtype=bool, count=n)
    bitmap, nulls = validity_bitmap(present)
    return pa.Array.from_buffers(typ, n, [bitmap, data], nulls)


def large_binary_array(values: list[bytes]) -> pa.Array:
    lengths = np.fromiter((len(v) for v in values), dtype=np.int64, count=len(values))
    offsets = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = b"".join(values)
    return pa.Array.from_buffers(
        pa.large_binary(), len(values), [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


def string_array(values: list[str]) -> pa.Array:
    """UTF-8 strings; a lone surrogate (not valid Unicode) becomes the visible escape `\\udcxx`,
    so a string column never holds invalid UTF-8."""
    n = len(values)
    joined = "".join(values)
    if joined.isascii():  # (run hashes, JSON text: one encode, characters are bytes)
        data = joined.encode("ascii")
        lengths = np.fromiter(map(len, values), dtype=np.int64, count=n)
    else:
        encoded = [v.encode("utf-8", "backslashreplace") for v in values]
        lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=n)
        data = b"".join(encoded)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if offsets[-1] >= 2**31:
        return pa.Array.from_buffers(
            pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
        ).cast(pa.string())
    return pa.Array.from_buffers(
        pa.string(), n, [None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)]
    )


def constant_array(value: Any, typ: pa.DataType, n: int) -> pa.Array:
    """`n` copies of one bool, int64, float64 or string value (None: `n` nulls)."""
    if value is None:
        validity = pa.py_buffer(np.zeros((n + 7) // 8, dtype=np.uint8))
        if typ == pa.string():
            offsets = pa.py_buffer(np.zeros(n + 1, dtype=np.int32))
            return pa.Array.from_buffers(typ, n, [validity, offsets, pa.py_buffer(b"")], n)
        width = (n + 7) // 8 if typ == pa.bool_() else n * 8
        return pa.Array.from_buffers(typ, n, [validity, pa.py_buffer(bytes(width))], n)
    if typ == pa.string():
        return _repeated_string(value, n)
    data: np.ndarray[Any, Any]
    if typ == pa.bool_():
        data = np.packbits(np.full(n, bool(value)), bitorder="little")
    elif typ == pa.int64():
        data = np.full(n, value, dtype=np.int64)
    elif typ == pa.float64():
        data = np.full(n, value, dtype=np.float64)
    else:
        raise TypeError(f"constant_array supports bool, int64, float64 and string, not {typ}")
    return pa.Array.from_buffers(typ, n, [None, pa.py_buffer(data)])


def empty_table(schema: pa.Schema) -> pa.Table:
    """A table of no rows (`schema.empty_table()` goes through `pa.array`)."""
    return pa.Table.from_batches([], schema=schema)


def _repeated_string(value: str, n: int) -> pa.Array:
    encoded = value.encode("utf-8", "backslashreplace")
    if len(encoded) * n >= 2**31:  # beyond a string column's 32-bit offsets: one at a time
        return string_array([value] * n)
    offsets = np.arange(n + 1, dtype=np.int32) * np.int32(len(encoded))
    return pa.Array.from_buffers(
        pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(encoded * n)]
    )


def nullable_strings(values: list[str | None]) -> pa.Array:
    """`string_array` with None as null."""
    n = len(values)
    if None not in values:  # (no nulls: no bitmap)
        return string_array(values)  # type: ignore[arg-type]
    present = np.fromiter((v is not None for v in values), dtype=bool, count=n)
    strings = string_array(["" if v is None else v for v in values])
    bitmap, nulls = validity_bitmap(present)
    return pa.Array.from_buffers(pa.string(), n, [bitmap, *strings.buffers()[1:]], nulls)


def nullable_string_lists(values: list[list[str] | None]) -> pa.Array:
    """A list<string> column of `values`, None as null."""
    n = len(values)
    lengths = np.fromiter((0 if v is None else len(v) for v in values), dtype=np.int32, count=n)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    flat = string_array([t for v in values if v is not None for t in v])
    present = np.fromiter((v is not None for v in values), dtype=bool, count=n)
    bitmap, nulls = validity_bitmap(present)
    return pa.ListArray.from_buffers(
        pa.list_(pa.string()), n, [bitmap, pa.py_buffer(offsets)], nulls, children=[flat]
    )


def int8_array(values: np.ndarray[Any, Any]) -> pa.Array:
    data = np.ascontiguousarray(values, dtype=np.int8)
    return pa.Array.from_buffers(pa.int8(), len(data), [None, pa.py_buffer(data)])


def any_numpy(column: pa.Array | pa.ChunkedArray) -> np.ndarray[Any, Any]:
    """`to_numpy`, also of bool (nulls False) and uint64 columns."""
    if column.type == pa.bool_():
        chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
        parts = [validity(c) & _bits(c) for c in chunks]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)
    return to_numpy(column)


def positions_numpy(column: pa.Array) -> np.ndarray[Any, Any]:
    """An int column of positions as intp, -1 for null (`fill_null(-1)` would import pandas)."""
    out = to_numpy(column).astype(np.intp)
    if column.null_count:
        out[~validity(column)] = -1
    return out


def _bits(chunk: pa.Array) -> np.ndarray[Any, Any]:
    n = len(chunk)
    if not n:
        return np.zeros(0, dtype=bool)
    bits = np.unpackbits(np.frombuffer(chunk.buffers()[1], dtype=np.uint8), bitorder="little")
    return bits[chunk.offset : chunk.offset + n].astype(bool)


_NUMPY_TYPES = {
    pa.uint64(): np.uint64,
    pa.int8(): np.int8,
    pa.int16(): np.int16,
    pa.int64(): np.int64,
    pa.int32(): np.int32,
    pa.float64(): np.float64,
}


def to_numpy(column: pa.Array | pa.ChunkedArray) -> np.ndarray[Any, Any]:
    """A numpy array of a fixed-width int/float column without importing pandas.

    Nulls read as 0 for ints and NaN for floats (use `validity` to tell them apart).
    """
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    dtype = _NUMPY_TYPES.get(column.type)
    if dtype is None:
        raise TypeError(f"to_numpy supports int8/16/32/64 and float64 columns, not {column.type}")
    parts = []
    for chunk in chunks:
        buffers = chunk.buffers()
        part = (
            np.frombuffer(
                buffers[1],
                dtype=dtype,
                count=len(chunk),
                offset=chunk.offset * np.dtype(dtype).itemsize,
            )
            if len(chunk)
            else np.empty(0, dtype)
        )
        if chunk.null_count:
            part = part.copy()
            valid = validity(chunk)
            part[~valid] = np.nan if dtype is np.float64 else 0
        parts.append(part)
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.empty(0, dtype)


def nan_numpy(column: pa.Array | pa.ChunkedArray) -> np.ndarray[Any, Any]:
    """`to_numpy`, except that an int column with nulls (a missing epoch) becomes float64 with
    NaN there."""
    array = to_numpy(column)
    if column.null_count:
        chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
        valid = np.concatenate([validity(chunk) for chunk in chunks])
        array = array.astype(np.float64)
        array[~valid] = np.nan
    return array


def validity(chunk: pa.Array) -> np.ndarray[Any, Any]:
    """Boolean mask of non-null entries of one array chunk."""
    n = len(chunk)
    bitmap = chunk.buffers()[0]
    if bitmap is None or chunk.null_count == 0:
        return np.ones(n, dtype=bool)
    bits = np.unpackbits(np.frombuffer(bitmap, dtype=np.uint8), bitorder="little")
    return bits[chunk.offset : chunk.offset + n].astype(bool)
