"""CRC-32C (Castagnoli), the checksum of TFRecord framing, without a compiled dependency.

Checking every record of an event file one byte at a time in Python costs about 0.1 µs a byte,
more than decoding the record. Here the work is vectorised with numpy instead:

- many short records of the same length are checked together, one numpy operation per byte
  position (`crc32c_many`);
- a long record is cut into lanes of `LANE_BYTES` whose CRCs are computed side by side and then
  combined pairwise (CRC is linear over GF(2): crc(A+B) = shift(crc(A), len(B)) ^ crc(B)).

When the `crc32c` or `google-crc32c` package is installed its compiled function is used instead
(`fast_crc32c`); both give the same values (the tests check them against a bytewise reference).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

POLY = 0x82F63B78  # CRC-32C, reflected
MASK_DELTA = 0xA282EAD8
LANE_BYTES = 64
_U32 = np.uint32


def _make_table() -> np.ndarray[Any, np.dtype[np.uint32]]:
    table = np.zeros(256, dtype=np.uint32)
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ POLY if crc & 1 else crc >> 1
        table[i] = crc
    return table


TABLE = _make_table()
_TABLE_LIST = [int(v) for v in TABLE]


def crc32c_reference(data: bytes) -> int:
    """Bytewise CRC-32C (slow; the definition the other paths are tested against)."""
    crc = 0xFFFFFFFF
    table = _TABLE_LIST
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def mask(crc: int) -> int:
    """TFRecord's masked CRC: rotate right by 15 bits and add a constant."""
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + MASK_DELTA) & 0xFFFFFFFF


def mask_array(crc: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.uint32]]:
    crc = crc.astype(np.uint32)
    rotated = (crc >> _U32(15)) | (crc << _U32(17))
    return (rotated.astype(np.uint64) + MASK_DELTA).astype(np.uint32)


def _raw_columns(columns: np.ndarray[Any, np.dtype[np.uint8]]) -> np.ndarray[Any, Any]:
    """CRC register (initial value 0, no final xor) of each row of a (rows, length) byte matrix."""
    crc = np.zeros(columns.shape[0], dtype=np.uint32)
    table = TABLE
    for j in range(columns.shape[1]):
        crc = table[(crc ^ columns[:, j]) & _U32(0xFF)] ^ (crc >> _U32(8))
    return crc


@functools.lru_cache(maxsize=64)
def _shift_tables(n_bytes: int) -> np.ndarray[Any, np.dtype[np.uint32]]:
    """Four 256-entry tables applying `n_bytes` (a power of two) zero bytes to a CRC register:
    a linear map, so it is fixed by where it sends the 32 one-bit registers."""
    basis = np.array([1 << b for b in range(32)], dtype=np.uint32)
    if n_bytes <= 8:
        shifted = _raw_columns_from(basis, n_bytes)
    else:
        half = n_bytes // 2
        shifted = _shift(_shift(basis, half), half)
    values = np.arange(256, dtype=np.uint32)
    tables = np.zeros((4, 256), dtype=np.uint32)
    for t in range(4):
        for bit in range(8):
            hit = (values >> _U32(bit)) & _U32(1) == 1
            tables[t, hit] ^= shifted[t * 8 + bit]
    return tables


def _raw_columns_from(registers: np.ndarray[Any, Any], n_zero_bytes: int) -> np.ndarray[Any, Any]:
    crc = registers.astype(np.uint32)
    table = TABLE
    for _ in range(n_zero_bytes):
        crc = table[crc & _U32(0xFF)] ^ (crc >> _U32(8))
    return crc


def _shift(crc: np.ndarray[Any, Any], n_bytes: int) -> np.ndarray[Any, Any]:
    """Append `n_bytes` (a power of two) zero bytes to each init-0 register in `crc`."""
    t = _shift_tables(n_bytes)
    shifted: np.ndarray[Any, Any] = (
        t[0][crc & _U32(0xFF)]
        ^ t[1][(crc >> _U32(8)) & _U32(0xFF)]
        ^ t[2][(crc >> _U32(16)) & _U32(0xFF)]
        ^ t[3][crc >> _U32(24)]
    )
    return shifted


_ALL_ONES = np.array([0xFFFFFFFF], dtype=np.uint32)


def _finish(raw: np.ndarray[Any, Any], length: int) -> np.ndarray[Any, Any]:
    """Standard CRC-32C (init and final xor 0xFFFFFFFF) from the init-0 register."""
    return raw ^ _register_of_ones(length) ^ _U32(0xFFFFFFFF)


@functools.lru_cache(maxsize=4096)
def _register_of_ones_cached(length: int) -> int:
    return int(_shift_big(_ALL_ONES, length)[0])


def _register_of_ones(length: int) -> np.uint32:
    return _U32(_register_of_ones_cached(length))


def _shift_big(crc: np.ndarray[Any, Any], n_bytes: int) -> np.ndarray[Any, Any]:
    """Shift by any number of zero bytes with power-of-two tables (log n table look-ups)."""
    out = crc.astype(np.uint32)
    power = 1
    while n_bytes:
        if n_bytes & 1:
            out = _shift(out, power)
        n_bytes >>= 1
        power <<= 1
    return out


def crc32c_many(matrix: np.ndarray[Any, np.dtype[np.uint8]]) -> np.ndarray[Any, Any]:
    """CRC-32C of each row of a (rows, length) uint8 matrix."""
    return _finish(_raw_columns(matrix), matrix.shape[1])


def crc32c_long(data: bytes | memoryview) -> int:
    """CRC-32C of one long buffer, computed in lanes of LANE_BYTES bytes side by side."""
    length = len(data)
    if length <= LANE_BYTES:
        return int(crc32c_many(np.frombuffer(data, dtype=np.uint8).reshape(1, length))[0])
    pad = (-length) % LANE_BYTES  # leading zero bytes leave an init-0 register at zero
    array = np.frombuffer(data, dtype=np.uint8)
    if pad:
        array = np.concatenate([np.zeros(pad, dtype=np.uint8), array])
    lanes = _raw_columns(array.reshape(-1, LANE_BYTES))
    width = LANE_BYTES
    while len(lanes) > 1:
        if len(lanes) % 2:  # a zero lane in front changes nothing
            lanes = np.concatenate([np.zeros(1, dtype=np.uint32), lanes])
        lanes = _shift(lanes[0::2], width) ^ lanes[1::2]
        width *= 2
    return int(_finish(lanes, length)[0])


def _load_fast() -> Callable[[bytes], int] | None:
    try:
        import crc32c as fast  # type: ignore[import-not-found,unused-ignore]

        return fast.crc32c  # type: ignore[no-any-return]
    except ImportError:
        pass
    try:
        import google_crc32c  # type: ignore[import-not-found,unused-ignore]

        return google_crc32c.value  # type: ignore[no-any-return]
    except ImportError:
        return None


@functools.lru_cache(maxsize=1)
def fast_crc32c() -> Callable[[bytes], int] | None:
    """A compiled CRC-32C function when a package providing one is installed, else None."""
    return _load_fast()
