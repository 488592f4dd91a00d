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


class BufferWriter:
    """Collects numpy arrays; `add` returns the `[offset, length, dtype]` the header stores."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._size = 0

    def add(self, array: np.ndarray[Any, Any], dtype: str) -> list[Any]:
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
