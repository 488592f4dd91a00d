"""The pandas-free Arrow builders (`storage.base.columns`) give what `pa.array` gives."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from aim_parquet.storage.base.columns import constant_array, empty_table

CASES: list[tuple[Any, pa.DataType]] = [
    ("3f2a", pa.string()),
    ("", pa.string()),
    ("héllo ✓", pa.string()),
    (True, pa.bool_()),
    (False, pa.bool_()),
    (-(2**63), pa.int64()),
    (7, pa.int64()),
    (2.5, pa.float64()),
    (float("inf"), pa.float64()),
    (None, pa.string()),
    (None, pa.bool_()),
    (None, pa.int64()),
    (None, pa.float64()),
]


@pytest.mark.parametrize(("value", "typ"), CASES)
@pytest.mark.parametrize("n", [0, 1, 9, 1000])
def test_constant_array_is_pa_array_of_copies(value: Any, typ: pa.DataType, n: int) -> None:
    got = constant_array(value, typ, n)
    got.validate(full=True)
    assert got.type == typ and got.equals(pa.array([value] * n, typ))


def test_a_lone_surrogate_is_written_escaped_not_as_invalid_utf8() -> None:
    got = constant_array("a\udcff", pa.string(), 3)
    got.validate(full=True)
    assert got.to_pylist() == ["a\\udcff"] * 3


def test_other_types_are_refused() -> None:
    with pytest.raises(TypeError, match="not int32"):
        constant_array(1, pa.int32(), 2)


def test_empty_table_keeps_the_schema() -> None:
    schema = pa.schema([("a", pa.string()), ("b", pa.list_(pa.float64()))], metadata={b"k": b"v"})
    table = empty_table(schema)
    assert table.num_rows == 0 and table.schema.equals(schema, check_metadata=True)
    assert pa.concat_tables([table, schema.empty_table()]).num_rows == 0
