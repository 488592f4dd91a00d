"""The binary series response: a JSON header followed by raw little-endian number buffers.

    bytes 0..3   b"APQ1"
    bytes 4..7   header length H (uint32, little-endian)
    bytes 8..    H bytes of UTF-8 JSON (the header), then zero padding to a multiple of 8
    then         the buffers, each starting at a multiple of 8 from the start of the buffers

The header names every buffer by `[offset, length, dtype]` relative to the first buffer byte
(`dtype` is "f8" or "f4"), so a browser reads them as `Float64Array` / `Float32Array` views
without copying. Sending 1M float32 values this way costs 4 MB and a few ms; as JSON, 20 MB.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import numpy as np

from aim_parquet.ui.api.jsonout import json_bytes

MAGIC = b"APQ1"
MEDIA_TYPE = "application/x-aim-parquet-series"


F32_MAX = float(np.finfo(np.float32).max)
F32_TINY = float(np.finfo(np.float32).tiny)
F32_EXACT_INT = 2**24


def values_dtype(values: np.ndarray[Any, Any]) -> str:
    """The dtype to send `values` as (NaN: empty slot): "f4" when float32 carries them as a
    chart and a tooltip show them, else "f8": a value out of float32's range (1e308 would
    arrive as inf, 1e-40 as 0), a whole number float32 would change (a counter past 2**24), or
    rounding that moves a value by more than a millionth of the values' spread (a curve near
    1e9 varying in its 9th digit)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return "f4"
    magnitude = np.abs(finite)
    if float(magnitude.max()) > F32_MAX:
        return "f8"
    nonzero = magnitude[magnitude > 0]
    if nonzero.size and float(nonzero.min()) < F32_TINY:
        return "f8"
    error = float(np.abs(finite.astype(np.float32).astype(np.float64) - finite).max())
    if error == 0:
        return "f4"
    spread = float(finite.max() - finite.min())
    if spread > 0 and error > spread * 1e-6:
        return "f8"
    is_whole = float(magnitude.max()) >= F32_EXACT_INT and np.array_equal(finite, np.round(finite))
    return "f8" if is_whole else "f4"


class BufferWriter:
    """Collects numpy arrays; `add` returns the `[offset, length, dtype]` the header stores."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._size = 0

    def add(self, array: np.ndarray[Any, Any], dtype: str) -> list[Any]:
        """Append `array` as `dtype` ("f8", "f4"; "values": whichever `values_dtype` picks)."""
        if dtype == "values":
            dtype = values_dtype(np.asarray(array, dtype=np.float64))
        data = np.ascontiguousarray(array, dtype="<" + dtype).tobytes()
        ref = [self._size, int(array.size), dtype]
        pad = (-len(data)) % 8
        self._parts.append(data + b"\0" * pad)
        self._size += len(data) + pad
        return ref

    @property
    def size(self) -> int:
        return self._size

    def encode(self, header: dict[str, Any]) -> bytes:
        head = json_bytes(header)
        pad = (-(8 + len(head))) % 8
        return b"".join([MAGIC, struct.pack("<I", len(head)), head, b" " * pad, *self._parts])


def decode(data: bytes) -> tuple[dict[str, Any], Callable[[list[Any]], np.ndarray[Any, Any]]]:
    """(header, read) for tests and scripts: `read(ref)` turns a buffer ref into numpy."""
    import json

    if data[:4] != MAGIC:
        raise ValueError("not an aim_parquet series response (bad magic)")
    (length,) = struct.unpack("<I", data[4:8])
    header = json.loads(data[8 : 8 + length])
    start = 8 + length + (-(8 + length)) % 8

    def read(ref: list[Any]) -> np.ndarray[Any, Any]:
        offset, count, dtype = ref
        return np.frombuffer(data, dtype="<" + dtype, count=count, offset=start + offset)

    return header, read
