"""A frame's Arrow table handed to pandas and polars (`sdk.frames.table_to_pandas`,
`table_to_polars`): the text columns go over from Arrow (pandas' Arrow-backed strings, polars'
string views), and the frames are exactly the ones the plain conversions give (pandas from
columns of `str` objects, polars from plain Arrow text): values, missing cells, dtypes."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from aim_parquet.sdk import frames

pd = pytest.importorskip("pandas")
pl = pytest.importorskip("polars")

WORDS = ["", "a", "sgd", "twelve bytes", "thirteen byte", "a text longer than twelve bytes", "é✓"]


def _text(rng: random.Random, n: int, nulls: bool) -> pa.ChunkedArray:
    words = rng.sample(WORDS, rng.randrange(1, len(WORDS) + 1))
    values = [None if nulls and rng.random() < 0.3 else rng.choice(words) for _ in range(n)]
    encoded = pa.array(values, pa.string()).dictionary_encode()
    cut = rng.randrange(0, n + 1)
    return pa.chunked_array([encoded.slice(0, cut), encoded.slice(cut)])  # (offsets)


def _table(seed: int) -> pa.Table:
    rng = random.Random(seed)
    n = rng.randrange(0, 40)
    columns: dict[str, Any] = {
        "step": pa.array(np.arange(n, dtype=np.int64)),
        "value": pa.array([rng.choice([0.5, float("nan"), float("inf")]) for _ in range(n)]),
        "run.hash": _text(rng, n, nulls=False),
        "run.tag": _text(rng, n, nulls=True),
        "run.none": pa.nulls(n),
        "run.flag": pa.array([rng.choice([True, False, None]) for _ in range(n)], pa.bool_()),
        "run.count": pa.array([rng.choice([1, 2, None]) for _ in range(n)], pa.int64()),
    }
    if n:
        columns["run.all_missing"] = pa.array([None] * n, pa.string()).dictionary_encode()
    return pa.table(columns)


@pytest.mark.parametrize("seed", range(12))
def test_pandas_frame_is_the_one_of_str_objects(seed: int) -> None:
    table = _table(seed)
    want = pd.DataFrame(
        {name: frames._pandas_column(table.column(name)) for name in table.column_names},
        copy=False,
    )
    got = frames.table_to_pandas(table)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert list(got.dtypes) == list(want.dtypes)
    for name in table.column_names:
        assert got[name].tolist() == want[name].tolist() or (
            got[name].isna().equals(want[name].isna())
        ), name


@pytest.mark.parametrize("seed", range(12))
def test_polars_frame_is_the_one_of_plain_text(seed: int) -> None:
    table = _table(seed)
    want = pl.from_arrow(frames.plain_text(table), rechunk=False)
    got = frames.table_to_polars(table)
    assert got.schema == want.schema
    assert got.equals(want)
    for name in table.column_names:
        assert got[name].to_list() == want[name].to_list() or name == "value", name
