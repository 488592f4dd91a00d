"""CRC-32C: the vectorised paths against the bytewise definition and the standard check value."""

from __future__ import annotations

import random

import numpy as np
import pytest

from aim_parquet.convert import crc32c as c
from tests.convert_helpers import crc32c as independent_crc32c


def test_check_value() -> None:
    # The CRC-32C catalogue's check value for "123456789".
    assert c.crc32c_reference(b"123456789") == 0xE3069283
    assert c.crc32c_long(b"123456789") == 0xE3069283


@pytest.mark.parametrize("length", [0, 1, 7, 8, 63, 64, 65, 127, 128, 129, 1000, 4097, 70001])
def test_long_buffers_match_the_reference(length: int) -> None:
    data = random.Random(length).randbytes(length)
    expected = independent_crc32c(data)
    assert c.crc32c_reference(data) == expected
    assert c.crc32c_long(data) == expected


def test_many_rows_match_the_reference() -> None:
    rng = random.Random(7)
    for length in (1, 12, 40, 255):
        rows = [rng.randbytes(length) for _ in range(50)]
        matrix = np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(50, length)
        assert [int(v) for v in c.crc32c_many(matrix)] == [independent_crc32c(r) for r in rows]


def test_mask_matches_between_scalar_and_array() -> None:
    values = [0, 1, 0xFFFFFFFF, 0x12345678, 0xE3069283]
    assert [int(v) for v in c.mask_array(np.array(values, dtype=np.uint32))] == [
        c.mask(v) for v in values
    ]
