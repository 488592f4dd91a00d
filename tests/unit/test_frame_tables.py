"""A frame's Arrow table handed to pandas and polars (`sdk.frame_tables.table_to_pandas`,
`table_to_polars`): the text columns go over from Arrow (pandas' Arrow-backed strings, polars'
string views), and the frames are exactly the ones the plain conversions give (pandas from
columns of `str` objects, polars from plain Arrow text): values, missing cells, dtypes."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from aim_parquet.sdk import frame_arrays, frame_tables

pd = pytest.importorskip("pandas")
pl = pytest.importorskip("polars")

WORDS = ["", "a", "sgd", "twelve bytes", "thirteen byte", "a text longer than twelve bytes", "é✓"]


def _text(rng: random.Random, n: int, nulls: bool) -> pa.ChunkedArray:
    words = rng.sample(WORDS, rng.randrange(1, len(WORDS) + 1))
    values = [None if nulls and rng.random() < 0.3 else rng.choice(words) for _ in range(n)]
    encoded = pa.array(values, pa.string()).dictionary_encode()
    cut = rng.randrange(0, n + 1)
    return pa.chunked_array([encoded.slice(0, cut), encoded.slice(cut)])  # (offsets)


def _runs_text(rng: random.Random, n: int, nulls: bool) -> pa.ChunkedArray:
    """A run-level column: one value per sequence repeated over its points (long runs)."""
    values: list[str | None] = []
    while len(values) < n:
        value = None if nulls and rng.random() < 0.3 else rng.choice(WORDS)
        values.extend([value] * rng.randrange(1, 40))
    encoded = pa.array(values[:n], pa.string()).dictionary_encode()
    cut = rng.randrange(0, n + 1)
    return pa.chunked_array([encoded.slice(0, cut), encoded.slice(cut)])


def _table(seed: int) -> pa.Table:
    rng = random.Random(seed)
    n = rng.randrange(0, 120)
    columns: dict[str, Any] = {
        "step": pa.array(np.arange(n, dtype=np.int64)),
        "value": pa.array([rng.choice([0.5, float("nan"), float("inf")]) for _ in range(n)]),
        "run.hash": _text(rng, n, nulls=False),
        "run.tag": _text(rng, n, nulls=True),
        "run.name": _runs_text(rng, n, nulls=False),
        "run.note": _runs_text(rng, n, nulls=True),
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
        {name: frame_tables._pandas_column(table.column(name)) for name in table.column_names},
        copy=False,
    )
    got = frame_tables.table_to_pandas(table)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert list(got.dtypes) == list(want.dtypes)
    for name in table.column_names:
        assert got[name].tolist() == want[name].tolist() or (
            got[name].isna().equals(want[name].isna())
        ), name


@pytest.mark.parametrize("seed", range(12))
def test_polars_frame_is_the_one_of_plain_text(seed: int) -> None:
    table = _table(seed)
    want = pl.from_arrow(frame_tables.plain_text(table), rechunk=False)
    got = frame_tables.table_to_polars(table)
    assert got.schema == want.schema
    assert got.equals(want)
    for name in table.column_names:
        assert got[name].to_list() == want[name].to_list() or name == "value", name


def _reference_key_column(values: list[Any]) -> pa.Array:
    """`key_column` as it was written with `pa.array` (before the buffers)."""
    import json

    kinds = set(map(type, values))
    kinds.discard(type(None))
    number = (bool, int, float, np.integer, np.floating)
    present = [v for v in values if v is not None]
    if kinds == {int} and min(present) >= -(2**63) and max(present) < 2**63:
        return pa.array(values, pa.int64())
    if kinds == {float} or kinds == {int, float}:
        return pa.array([None if v is None else float(v) for v in values], pa.float64())
    if not present:
        return pa.nulls(len(values), pa.null())
    if all(isinstance(v, str) for v in present):
        return pa.array(values, pa.string()).dictionary_encode()
    if all(isinstance(v, (bool, np.bool_)) for v in present):
        return pa.array(values, pa.bool_())
    if all(isinstance(v, number) and not isinstance(v, (bool, np.bool_)) for v in present):
        is_int = all(isinstance(v, (int, np.integer)) for v in present)
        if is_int and all(-(2**63) <= int(v) < 2**63 for v in present):
            return pa.array(values, pa.int64())
        return pa.array([None if v is None else float(v) for v in values], pa.float64())
    texts = [None if v is None else json.dumps(v, ensure_ascii=False, default=repr) for v in values]
    return pa.array(texts, pa.string()).dictionary_encode()


KINDS: list[list[Any]] = [
    [0, -1, 2**63 - 1, -(2**63)],
    [2**63, 1],
    [0.5, float("nan"), float("inf"), -0.0],
    [1, 2.5],
    [True, False, np.bool_(True)],
    [np.int64(3), np.int32(-4), 5],
    [np.float32(0.25), 1],
    ["", "a", "é✓", "a text longer than twelve bytes"],
    ["x", 1, [1, "a"], {"k": None}, 2.5, True],
    [],
]


@pytest.mark.parametrize("seed", range(40))
def test_key_column_is_the_array_pa_array_makes(seed: int) -> None:
    rng = random.Random(seed)
    kind = KINDS[seed % len(KINDS)]
    n = rng.randrange(1, 30)
    values = [None if rng.random() < 0.3 or not kind else rng.choice(kind) for _ in range(n)]
    got, want = frame_arrays.key_column(values), _reference_key_column(values)
    assert got.type == want.type
    assert got.null_count == want.null_count
    assert got.is_null().to_pylist() == want.is_null().to_pylist()
    if pa.types.is_floating(want.type):  # (bit for bit: NaN, -0.0)
        x, y = (np.asarray(a.fill_null(0.0).to_pylist(), dtype=float) for a in (got, want))
        assert x.view(np.int64).tolist() == y.view(np.int64).tolist()
    else:
        assert got.equals(want)
        assert got.to_pylist() == want.to_pylist()


@pytest.mark.parametrize("seed", range(6))
def test_numbers_and_times_are_the_arrays_pa_array_makes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 50))
    floats = rng.choice([0.5, np.nan, np.inf, -1.0, 1.7e9], size=n)
    ints = rng.integers(-(2**62), 2**62, size=n)
    got, want = frame_arrays.numbers(floats), pa.array(floats)
    assert got.type == want.type and got.null_count == want.null_count == 0
    assert got.to_numpy().view(np.int64).tolist() == want.to_numpy().view(np.int64).tolist()
    assert frame_arrays.numbers(ints[::2]).equals(pa.array(ints[::2]))
    assert frame_arrays.numbers(np.arange(n, dtype=np.int32)).equals(
        pa.array(np.arange(n, dtype=np.int32))
    )
    stamps = rng.choice([1.7e9, 1.7e9 + 0.123456, np.nan], size=n)
    missing = np.isnan(stamps)
    local = frame_arrays.local_times(np.where(missing, 0.0, stamps)).view(np.int64)
    want = pa.array(local, pa.int64(), mask=missing if missing.any() else None)
    assert frame_arrays.times(stamps).equals(want.view(pa.timestamp("us")))
    every = rng.choice([1.7e9, 1.7e9 + 0.123456, -6e10, 2.5e11], size=n)  # (all datetimes)
    want = pa.array(frame_arrays.local_times(every).view(np.int64), pa.int64())
    assert frame_arrays.times(every).equals(want.view(pa.timestamp("us")))


def test_a_polars_frame_imports_no_pandas(tmp_path: Any) -> None:
    """pyarrow imports pandas on its first `pa.array` (where pandas is installed): a
    `to_polars()` user does not pay for it."""
    import subprocess
    import sys

    code = (
        "import sys, aim_parquet as aim\n"
        f"run = aim.Run(repo={str(tmp_path)!r}, system_tracking_interval=None,"
        " capture_terminal_logs=False)\n"
        "run['hparams'] = {'lr': 0.1, 'opt': 'sgd'}\n"
        "for i in range(5): run.track(float(i), name='loss', step=i, context={'subset': 'train'})\n"
        "run.close()\n"
        f"frame = aim.Repo({str(tmp_path)!r}).query_metrics(\"metric.name == 'loss'\").to_polars()\n"
        "assert frame.height == 5, frame\n"
        "print('pandas' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize("seed", range(30))
def test_repeat_is_take(seed: int) -> None:
    rng = random.Random(seed)
    kind = KINDS[seed % len(KINDS)]
    n = rng.randrange(1, 20)
    values = [None if rng.random() < 0.3 or not kind else rng.choice(kind) for _ in range(n)]
    column = frame_arrays.key_column(values)
    index = np.array([rng.randrange(n) for _ in range(rng.randrange(0, 50))], dtype=np.int64)
    got, want = frame_arrays.repeat(column, index), column.take(pa.array(index))
    _same_taken(got, want)
    lengths = np.array([rng.randrange(4) for _ in index], dtype=np.int64)  # (each row spread)
    got = frame_arrays.repeat(column, index, lengths)
    _same_taken(got, column.take(pa.array(np.repeat(index, lengths), pa.int64())))


def _same_taken(got: pa.Array, want: pa.Array) -> None:
    assert got.type == want.type
    assert got.is_null().to_pylist() == want.is_null().to_pylist()
    if pa.types.is_dictionary(want.type):
        assert got.dictionary.equals(want.dictionary)
        assert got.indices.fill_null(0).equals(want.indices.fill_null(0))
    elif pa.types.is_floating(want.type):
        x, y = (np.asarray(a.fill_null(0.0).to_pylist(), dtype=float) for a in (got, want))
        assert x.view(np.int64).tolist() == y.view(np.int64).tolist()
    else:
        assert got.equals(want)


@pytest.mark.parametrize("seed", range(30))
def test_spread_to_polars_is_the_frame_of_the_spread_table(seed: int) -> None:
    """`Spread.to_polars` (run-level columns spread as string views, no per-point codes) makes
    the frame `table_to_polars` makes of the table spread first: values, missing cells, dtypes,
    column order; with sequences of no points, missing and empty text, a sliced column."""
    rng = random.Random(seed)
    n = rng.randrange(1, 12)
    seqs = rng.randrange(0, 30)
    index = np.array([rng.randrange(n) for _ in range(seqs)], dtype=np.int64)
    lengths = np.array([rng.choice([0, 1, 2, 7, 40]) for _ in range(seqs)], dtype=np.int64)
    points = int(lengths.sum())
    columns: dict[str, Any] = {"step": pa.array(np.arange(points, dtype=np.int64))}
    for k, kind in enumerate(KINDS):
        values = [None if rng.random() < 0.3 or not kind else rng.choice(kind) for _ in range(n)]
        columns[f"run.c{k}"] = (frame_arrays.key_column(values), index)
    words = [None if rng.random() < 0.3 else rng.choice(WORDS) for _ in range(n + 1)]
    sliced = pa.array(words, pa.string()).dictionary_encode().slice(1)  # (an offset)
    columns["run.sliced"] = (sliced, index)
    columns["run.none"] = (pa.nulls(n), index)
    spread = frame_tables.Spread(columns, lengths)
    want = frame_tables.table_to_polars(spread.table())
    got = spread.to_polars()
    assert got is not None
    assert got.schema == want.schema
    assert got.columns == want.columns
    assert got.equals(want)
    for name in got.columns:
        assert got[name].to_list() == want[name].to_list() or name == "run.c2", name  # (NaN)
