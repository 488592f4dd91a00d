"""The Arrow arrays of a frame's columns, built from numpy arrays and Python lists over their
buffers (`pa.Array.from_buffers`) rather than by `pa.array`, whose every call imports pandas
where it is installed (a `to_polars()` or `to_arrow()` user would pay for that import, a few
tenths of a second, on the first frame). Each array is the one `pa.array` makes of the same
input: values, nulls (None; a float NaN stays a value) and type; an input these builders do not
expect goes to `pa.array`."""

from __future__ import annotations

from contextlib import suppress
from typing import Any

import numpy as np
import pyarrow as pa

from aim_parquet.sdk.dataframes import jsonable, local_times, representable_times
from aim_parquet.storage.base.columns import nullable_scalars, validity, validity_bitmap

Array = np.ndarray[Any, Any]
EMPTY_F = np.empty(0, dtype=np.float64)
EMPTY_I = np.empty(0, dtype=np.int64)
_MAX_OFFSET = 2**31 - 1
_FIXED = {
    np.dtype(np.int64): pa.int64(),
    np.dtype(np.float64): pa.float64(),
    np.dtype(np.int32): pa.int32(),
}


def numbers(array: Array, typ: pa.DataType | None = None) -> pa.Array:
    """An int64, int32 or float64 numpy array as Arrow (`typ`: a type of the same width to
    view it as), every entry a value (NaN too, as `pa.array` of numpy keeps it)."""
    known = _FIXED.get(array.dtype)
    if known is None or array.ndim != 1:
        return pa.array(array, typ)
    data = np.ascontiguousarray(array)
    return pa.Array.from_buffers(typ or known, len(data), [None, pa.py_buffer(data)], 0)


def times(stamps: Array) -> pa.Array:
    """Naive local-time timestamps (µs) of float epoch seconds, as Aim's `time` column
    (`sdk.dataframes.local_times`); NaN (and a time no datetime holds) is missing."""
    if len(stamps) and _all_datetimes(stamps):  # (the usual column: no mask, no copy)
        local = np.ascontiguousarray(local_times(stamps).view(np.int64))
        return pa.Array.from_buffers(pa.timestamp("us"), len(local), [None, pa.py_buffer(local)], 0)
    missing = ~representable_times(stamps)
    local = np.ascontiguousarray(local_times(np.where(missing, 0.0, stamps)).view(np.int64))
    bitmap, nulls = validity_bitmap(~missing)
    buffers = [bitmap, pa.py_buffer(local)]
    return pa.Array.from_buffers(pa.timestamp("us"), len(local), buffers, nulls)


def _all_datetimes(stamps: Array) -> bool:
    """Every timestamp is a datetime (finite, years 1 to 9999): its least and greatest are."""
    low, high = float(stamps.min()), float(stamps.max())  # (NaN when one is: False below)
    return bool(representable_times(np.array([low, high])).all())


def _strings(values: list[Any]) -> pa.Array:
    """`pa.array(values, pa.string())` of str values and None."""
    try:
        encoded = [b"" if v is None else v.encode("utf-8") for v in values]
    except (AttributeError, UnicodeEncodeError):
        return pa.array(values, pa.string())
    n = len(values)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=n), out=offsets[1:])
    if offsets[-1] > _MAX_OFFSET:
        return pa.array(values, pa.string())
    present = np.fromiter((v is not None for v in values), dtype=bool, count=n)
    bitmap, nulls = validity_bitmap(present)
    buffers = [bitmap, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(b"".join(encoded))]
    return pa.Array.from_buffers(pa.string(), n, buffers, nulls)


def _is_number(value: Any) -> bool:
    return isinstance(value, (bool, int, float, np.integer, np.floating))


def _encoded(values: list[Any]) -> pa.Array:
    """`pa.array(values, pa.string()).dictionary_encode()` of str values and None: the
    distinct values in the order they first appear, int32 indices, None as a null index."""
    codes: dict[str, int] = {}
    indices = np.fromiter(
        (-1 if v is None else codes.setdefault(v, len(codes)) for v in values),
        dtype=np.int32,
        count=len(values),
    )
    bitmap, nulls = validity_bitmap(indices >= 0)
    np.maximum(indices, 0, out=indices)
    index_array = pa.Array.from_buffers(
        pa.int32(), len(indices), [bitmap, pa.py_buffer(indices)], nulls
    )
    return pa.DictionaryArray.from_arrays(index_array, _strings(list(codes)))


def repeat(column: pa.Array, index: Array, lengths: Array | None = None) -> pa.Array:
    """`column.take(index)` (rows by position, `index` int64 in range) for the columns
    `key_column` makes, without `pyarrow.compute` (its import is tens of milliseconds); with
    `lengths`, each row taken is repeated that many times (`take(np.repeat(index, lengths))`,
    the rows gathered per entry of `index` and then spread, not gathered per row)."""
    n = len(index) if lengths is None else int(lengths.sum())
    typ = column.type
    if pa.types.is_null(typ):
        return pa.nulls(n, typ)

    def rows(array: Array) -> Array:
        taken = array[index]
        return taken if lengths is None else np.repeat(taken, lengths)

    if column.offset or not (
        pa.types.is_dictionary(typ) or typ in (pa.int64(), pa.float64(), pa.bool_())
    ):
        return column.take(numbers(index if lengths is None else np.repeat(index, lengths)))
    base = column.indices if pa.types.is_dictionary(typ) else column
    bitmap, nulls = None, 0
    if column.null_count:
        bitmap, nulls = validity_bitmap(rows(validity(base)))
    if pa.types.is_dictionary(typ):
        codes = np.frombuffer(base.buffers()[1], dtype=np.int32, count=len(column))
        taken = pa.py_buffer(np.ascontiguousarray(rows(codes)))
        indices = pa.Array.from_buffers(pa.int32(), n, [bitmap, taken], nulls)
        return pa.DictionaryArray.from_arrays(indices, column.dictionary)
    if typ == pa.bool_():
        bits = np.unpackbits(
            np.frombuffer(column.buffers()[1], dtype=np.uint8), count=len(column), bitorder="little"
        )
        data = pa.py_buffer(np.packbits(rows(bits), bitorder="little"))
    else:
        width = np.int64 if typ == pa.int64() else np.float64
        values = np.frombuffer(column.buffers()[1], dtype=width, count=len(column))
        data = pa.py_buffer(np.ascontiguousarray(rows(values)))
    return pa.Array.from_buffers(typ, n, [bitmap, data], nulls)


def key_column(values: list[Any]) -> pa.Array:
    """One run-level column (one value per sequence) as Arrow (`sdk.frames` module doc: its
    type)."""
    kinds = set(map(type, values))
    kinds.discard(type(None))
    if kinds == {str}:
        return _encoded(values)
    if kinds == {int}:  # (the usual cases, decided by the values' exact types)
        present = [v for v in values if v is not None]
        if min(present) >= -(2**63) and max(present) < 2**63:
            return nullable_scalars(values, pa.int64())
    elif kinds == {float} or kinds == {int, float}:
        with suppress(OverflowError):  # (an int beyond float64 among them: JSON texts below)
            floats = [None if v is None else float(v) for v in values]
            return nullable_scalars(floats, pa.float64())
    present = [v for v in values if v is not None]
    if not present:
        return pa.nulls(len(values), pa.null())
    if all(isinstance(v, str) for v in present):
        return _encoded(values)
    if all(isinstance(v, (bool, np.bool_)) for v in present):
        return nullable_scalars(values, pa.bool_())
    if all(_is_number(v) and not isinstance(v, (bool, np.bool_)) for v in present):
        is_int = all(isinstance(v, (int, np.integer)) for v in present)
        if is_int and all(-(2**63) <= int(v) < 2**63 for v in present):
            return nullable_scalars(values, pa.int64())
        with suppress(OverflowError):
            floats = [None if v is None else float(v) for v in values]
            return nullable_scalars(floats, pa.float64())
    texts = [None if v is None else jsonable(v) for v in values]
    return _encoded(texts)


def cat(parts: list[Array], empty: Array, dtype: Any) -> Array:
    """The arrays end to end, as `dtype`."""
    if not parts:
        return empty
    out = np.concatenate(parts) if len(parts) > 1 else parts[0]
    return out if out.dtype == dtype else out.astype(dtype)
