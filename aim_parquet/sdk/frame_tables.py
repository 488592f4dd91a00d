"""A frame's Arrow table (`sdk.frames`) handed to pandas and polars: text columns go over from
Arrow (pandas 3's Arrow-backed strings, polars' string views) and make the same frames as the
plain conversions (pandas from columns of `str` objects, polars from plain Arrow text).

A bulk-built frame's columns (`Spread`) can go to polars before their run-level and
sequence-level columns are spread to the points: a text column's string views are then repeated
per sequence straight from its value's view (`_spread_views`), with no per-point dictionary
codes made first and scanned for runs again."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from aim_parquet.sdk.dataframes import require_pandas, require_polars
from aim_parquet.sdk.frame_arrays import repeat
from aim_parquet.storage.base.columns import to_numpy
from aim_parquet.storage.base.columns import validity as validity_mask

if TYPE_CHECKING:
    import pandas
    import polars

Array = np.ndarray[Any, Any]
_VIEW_HEAD = struct.Struct("<i")
_VIEW_REF = struct.Struct("<ii")


def _text_dtype(pd: Any) -> Any:
    """The dtype pandas gives a column of `str` objects: object, or (pandas 3, or 2 with
    `future.infer_string`) its Arrow-backed string dtype."""
    return pd.DataFrame({"t": np.array(["t", None], dtype=object)}, copy=False)["t"].dtype


def _arrow_text(pd: Any, column: pa.ChunkedArray, dtype: Any) -> Any:
    """A dictionary text column as pandas' Arrow-backed string array of `dtype` (what pandas
    makes of the `str` objects, without them); None when this pandas makes it otherwise."""
    if getattr(dtype, "storage", None) != "pyarrow" or column.null_count == len(column):
        return None  # (no text at all: pandas keeps such a column as objects)
    try:
        out = pd.arrays.ArrowStringArray(column.cast(pa.large_string()), dtype=dtype)
    except (TypeError, ValueError, pa.ArrowException):
        return None
    return out if out.dtype == dtype else None


def _pandas_column(column: pa.ChunkedArray) -> Array:
    """One column as pandas wants it: text as shared `str` objects (None when missing),
    numbers as numpy (NaN when missing), times as datetime64[us]."""
    typ = column.type
    if pa.types.is_dictionary(typ):
        parts = []
        for chunk in column.chunks:
            uniques = np.empty(len(chunk.dictionary) + 1, dtype=object)
            uniques[:-1] = chunk.dictionary.to_pylist()
            codes = (
                chunk.indices.fill_null(len(chunk.dictionary))
                if chunk.null_count
                else chunk.indices
            )
            parts.append(uniques[codes.to_numpy(zero_copy_only=False)])
        return np.concatenate(parts) if parts else np.empty(0, dtype=object)
    if pa.types.is_null(typ):
        return np.full(len(column), None, dtype=object)
    if pa.types.is_boolean(typ) and column.null_count:
        return np.array(column.to_pylist(), dtype=object)
    if pa.types.is_integer(typ) and column.null_count:  # (as pandas: beyond 2**53 rounded)
        column = column.cast(pa.float64(), safe=False)
    out: Array = column.to_numpy()
    return out


def table_to_pandas(table: pa.Table) -> pandas.DataFrame:
    """The table as pandas (`_pandas_column`); a text column goes to the Arrow-backed string
    dtype of pandas 3 straight from Arrow, the same column as its `str` objects would give."""
    pd = require_pandas()
    text_dtype = _text_dtype(pd)
    data: dict[str, Any] = {}
    for name in table.column_names:
        column = table.column(name)
        data[name] = None
        if pa.types.is_dictionary(column.type):
            data[name] = _arrow_text(pd, column, text_dtype)
        if data[name] is None:
            data[name] = _pandas_column(column)
    return pd.DataFrame(data, copy=False)


def plain_text(table: pa.Table) -> pa.Table:
    """Dictionary-encoded text columns decoded to plain text (null columns as text too)."""
    fields = [
        pa.field(f.name, pa.string())
        if pa.types.is_dictionary(f.type) or pa.types.is_null(f.type)
        else f
        for f in table.schema
    ]
    return table.cast(pa.schema(fields))


def _views(words: pa.Array) -> tuple[Array, pa.Buffer]:
    """The 16-byte Arrow string views of a string array's entries (none missing) over its
    data buffer: the length, then the text itself when it fits in 12 bytes, else its first
    four bytes, buffer 0 and its offset there."""
    _validity, offsets_buffer, data = words.buffers()
    n = len(words)
    offsets = np.frombuffer(offsets_buffer, dtype=np.int32, count=words.offset + n + 1)
    offsets = offsets[words.offset :].tolist()
    raw = bytearray(16 * n)
    text = memoryview(data) if data is not None else memoryview(b"")
    for i in range(n):
        start, end = offsets[i], offsets[i + 1]
        at = 16 * i
        _VIEW_HEAD.pack_into(raw, at, end - start)
        if end - start <= 12:
            raw[at + 4 : at + 4 + end - start] = text[start:end]
        else:
            raw[at + 4 : at + 8] = text[start : start + 4]
            _VIEW_REF.pack_into(raw, at + 8, 0, start)
    views = np.frombuffer(raw, dtype=np.uint64).reshape(n, 2)  # (one view per row: 2 words)
    return views, data if data is not None else pa.py_buffer(b"")


def _spread(views: Array, codes: Array) -> Array:
    """`views[codes]` (one 16-byte view per row): a run-level column's codes come in long runs
    (one per sequence), so each run's view is repeated rather than each row's gathered."""
    flat = views.view(np.complex128).reshape(-1)  # (one 16-byte item per view)
    if len(codes) < 2:
        return np.take(flat, codes)
    starts = np.flatnonzero(codes[1:] != codes[:-1])
    if len(starts) * 8 > len(codes):  # (short runs: gathering is as fast)
        return np.take(flat, codes)
    bounds = np.empty(len(starts) + 2, dtype=np.int64)
    bounds[0], bounds[-1] = 0, len(codes)
    np.add(starts, 1, out=bounds[1:-1])
    return np.repeat(np.take(flat, codes[bounds[:-1]]), np.diff(bounds))


def _text_views(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A dictionary text column as Arrow string views (the text polars holds): each row's
    16-byte view is its dictionary entry's, taken by index, over the dictionary's own bytes,
    so no row's text is copied."""
    view = pa.string_view()
    chunks = []
    for chunk in column.chunks:
        words = chunk.dictionary
        if words.type != pa.string() or words.null_count:
            raise TypeError(words.type)  # (the plain conversion takes it)
        if not len(words):  # (every row missing)
            chunks.append(pa.nulls(len(chunk), view))
            continue
        views, data = _views(words)
        indices = chunk.indices
        codes = to_numpy(indices)
        validity = None
        if indices.null_count:
            valid = validity_mask(indices)
            validity = pa.py_buffer(np.packbits(valid, bitorder="little"))
            codes = np.where(valid, codes, 0)
        rows = pa.py_buffer(_spread(views, codes))
        chunks.append(
            pa.Array.from_buffers(view, len(chunk), [validity, rows, data], chunk.null_count)
        )
    return pa.chunked_array(chunks, view)


def _spread_views(values: pa.Array, index: Array, lengths: Array) -> pa.Array | pa.ChunkedArray:
    """`_text_views` of `repeat(values, index, lengths)` (a dictionary text column with one
    entry per sequence key or run, `index` its entry per sequence, `lengths` each sequence's
    points): each sequence's view is taken once and repeated over its points."""
    words = values.dictionary
    if values.offset or words.type != pa.string() or words.null_count or not len(words):
        return _text_views(pa.chunked_array([repeat(values, index, lengths)]))
    view = pa.string_view()
    n = int(lengths.sum())
    views, data = _views(words)
    indices = values.indices
    codes = to_numpy(indices)[index]
    validity, nulls = None, 0
    if indices.null_count:
        valid = validity_mask(indices)[index]
        codes = np.where(valid, codes, 0)
        rows_valid = np.repeat(valid, lengths)
        validity = pa.py_buffer(np.packbits(rows_valid, bitorder="little"))
        nulls = n - int(np.count_nonzero(rows_valid))
    flat = views.view(np.complex128).reshape(-1)  # (one 16-byte item per view)
    rows = pa.py_buffer(np.repeat(flat[codes], lengths))
    return pa.Array.from_buffers(view, n, [validity, rows, data], nulls)


class Spread:
    """A frame's columns in order, each an Arrow array with a value per point or (a run-level or
    sequence-level column) an array with one entry per run or key and each sequence's place in
    it, to be repeated over the `lengths` points of each sequence (`frame_arrays.repeat`)."""

    def __init__(
        self, columns: dict[str, pa.Array | tuple[pa.Array, Array]], lengths: Array
    ) -> None:
        self.columns = columns
        self.lengths = lengths

    def table(self) -> pa.Table:
        arrays = [
            c if isinstance(c, pa.Array) else repeat(c[0], c[1], self.lengths)
            for c in self.columns.values()
        ]
        return pa.Table.from_arrays(arrays, names=list(self.columns))

    def to_polars(self) -> polars.DataFrame | None:
        """The frame `table_to_polars(self.table())` makes, text columns spread as views
        (`_spread_views`); None where it cannot be made so (`_polars_views`)."""
        pl = require_polars()
        n = int(self.lengths.sum())
        fields, columns = [], []
        try:
            for name, column in self.columns.items():
                values = column if isinstance(column, pa.Array) else column[0]
                fields.append(pa.field(name, values.type))
                if pa.types.is_null(values.type):
                    columns.append(pa.nulls(n if isinstance(column, tuple) else len(values)))
                elif isinstance(column, pa.Array):
                    columns.append(column)
                elif pa.types.is_dictionary(values.type):
                    columns.append(_spread_views(values, column[1], self.lengths))
                else:
                    columns.append(repeat(values, column[1], self.lengths))
        except (TypeError, ValueError, pa.ArrowException):
            return None
        return _polars_views(pl, pa.schema(fields), columns)


def _polars_views(pl: Any, schema: pa.Schema, columns: list[Any]) -> polars.DataFrame | None:
    """The table of `schema` with `columns` as polars, its dictionary text columns handed over
    as string views (`_text_views`; a column already made views is taken as it is); None where
    this pyarrow or polars cannot, or where polars types them otherwise."""
    try:
        converted = []
        for field, column in zip(schema, columns, strict=True):
            if column.type == pa.string_view():
                pass
            elif pa.types.is_dictionary(field.type):
                column = _text_views(column)
            elif pa.types.is_null(field.type):
                column = pa.nulls(len(column), pa.string_view())
            converted.append(column)
        frame: polars.DataFrame = pl.from_arrow(
            pa.table(converted, names=schema.names), rechunk=False
        )
    except (AttributeError, TypeError, ValueError, NotImplementedError, pa.ArrowException):
        return None
    except pl.exceptions.PolarsError:  # (a polars that does not take string views)
        return None
    for field in schema:
        text = pa.types.is_dictionary(field.type) or pa.types.is_null(field.type)
        if text and frame.schema[field.name] != pl.String:
            return None
    return frame


def table_to_polars(table: pa.Table) -> polars.DataFrame:
    """The table as polars: text columns as polars strings (`_polars_views`, or decoded to
    plain Arrow text first where that cannot be)."""
    pl = require_polars()
    frame = _polars_views(pl, table.schema, table.columns)
    if frame is None:
        frame = pl.from_arrow(plain_text(table), rechunk=False)
    return frame
