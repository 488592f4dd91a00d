"""A param whose values differ in kind between runs (bytes in one, an int in another; text and
numbers; a bool and an int; lists, dicts and None) in the three frames of a query:
`query_runs(q)`, `query_runs(q)` with metric summaries and `query_metrics(q)`. Every output
(`to_arrow()`, `dataframe()`, `to_polars()`) has the column, one cell per run, holding the JSON
text of each value (`sdk.frames` module doc): never a polars inference error (bytes with ints
raised a SchemaError) nor a silent cast (a bool among ints became 1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import aim_parquet as aim
from aim_parquet.sdk.frame_tables import plain_text

pd = pytest.importorskip("pandas")
pl = pytest.importorskip("polars")
import polars.testing as pl_testing  # noqa: E402

QUIET: dict[str, Any] = {"system_tracking_interval": None, "capture_terminal_logs": False}

# each case: the param's value in each run, and the cell each run gets
CASES: dict[str, list[tuple[Any, Any]]] = {
    "bytes_int": [(b"\x00\xff", json.dumps(repr(b"\x00\xff"))), (3, "3")],
    "str_int": [("two", '"two"'), (2, "2")],
    "bool_int": [(True, "true"), (3, "3"), (False, "false")],
    "float_bool": [(0.5, "0.5"), (False, "false")],
    # (a list or an empty dict is flattened to its JSON text first, then a text among ints)
    "list_dict_none": [([1, 2], '"[1, 2]"'), ({}, '"{}"'), (None, None), (5, "5")],
}


def _build(root: Path, values: list[Any]) -> dict[str, Any]:
    """One run per value (param `k`, a `loss` metric); each run's hash -> its value."""
    hashes = {}
    for i, value in enumerate(values):
        with aim.Run(repo=root, **QUIET) as run:
            run["k"] = value
            run.track(float(i), name="loss", step=0)
        hashes[run.hash] = value
    return hashes


def _frames(repo: aim.Repo) -> dict[str, tuple[Any, str, str]]:
    """Each frame: (a function of the output's name giving it, hash column, param column)."""
    runs = repo.query_runs("True")
    metrics = repo.query_metrics("metric.name == 'loss'")
    return {
        "runs": (lambda out: getattr(runs, out)(), "hash", "k"),
        "runs+metrics": (lambda out: getattr(runs, out)(metrics=["loss"]), "hash", "k"),
        "metrics": (lambda out: getattr(metrics, out)(), "run.hash", "run.k"),
    }


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_param_of_mixed_kinds_is_json_text_in_every_frame(tmp_path: Path, case: str) -> None:
    values = [value for value, _cell in CASES[case]]
    cell_of = {repr(value): cell for value, cell in CASES[case]}
    want = {h: cell_of[repr(value)] for h, value in _build(tmp_path, values).items()}
    for name, (make, hash_col, col) in _frames(aim.Repo(tmp_path)).items():
        table = make("to_arrow")
        assert pa.types.is_dictionary(table.schema.field(col).type), (name, table.schema)
        assert pa.types.is_string(table.schema.field(col).type.value_type), name
        got_arrow = dict(
            zip(table.column(hash_col).to_pylist(), table.column(col).to_pylist(), strict=True)
        )
        assert got_arrow == want, (name, got_arrow)

        frame = make("to_polars")
        assert frame.schema[col] == pl.String, (name, frame.schema)
        assert dict(zip(frame[hash_col].to_list(), frame[col].to_list(), strict=True)) == want
        pl_testing.assert_frame_equal(frame, pl.from_arrow(plain_text(table)), check_exact=True)

        df = make("dataframe")
        cells_pd = [None if c is None or c != c else c for c in df[col].tolist()]
        assert dict(zip(df[hash_col].tolist(), cells_pd, strict=True)) == want, name
        assert list(df.columns) == frame.columns == table.column_names, name


def test_a_param_of_one_kind_keeps_its_type_in_polars(tmp_path: Path) -> None:
    """Numbers stay numbers (ints int64, missing as null), bools bools: the frames' polars
    columns are their Arrow columns (a column without a value is null text, as in Arrow's
    frame once decoded; the run-level frame's was polars' Null type before)."""
    for i, (flag, count) in enumerate([(True, 3), (False, None), (None, 2**40)]):
        with aim.Run(repo=tmp_path, **QUIET) as run:
            run["flag"], run["count"] = flag, count
            run.track(float(i), name="loss")
    repo = aim.Repo(tmp_path)
    for frame, prefix in [
        (repo.query_runs("True").to_polars(), ""),
        (repo.query_runs("True").to_polars(metrics=["loss"]), ""),
        (repo.query_metrics("True").to_polars(), "run."),
    ]:
        assert frame.schema[f"{prefix}flag"] == pl.Boolean
        assert frame.schema[f"{prefix}count"] == pl.Int64
        assert sorted(frame[f"{prefix}count"].to_list(), key=str) == [2**40, 3, None]
        # a prop no run has (no description) is a text column of nulls, in every frame
        assert frame.schema[f"{prefix}description"] == pl.String
        assert frame[f"{prefix}description"].null_count() == 3


@pytest.mark.parametrize("case", ["bytes_int", "str_int", "bool_int"])
def test_an_object_frame_gives_polars_the_same_json_text(tmp_path: Path, case: str) -> None:
    """A frame of texts (built row by row, `sdk.dataframes`) gives polars such a param as JSON
    text too; pandas keeps each run's own value in an object column."""
    for value, _cell in CASES[case]:
        with aim.Run(repo=tmp_path, **QUIET) as run:
            run["k"] = value
            run.track(aim.Text("x"), name="notes")
    cell_of = {repr(value): cell for value, cell in CASES[case]}
    query = aim.Repo(tmp_path).query_texts("True")
    frame, df = query.to_polars(), query.dataframe()
    assert frame.schema["run.k"] == pl.String
    values = df["run.k"].tolist()
    assert sorted(map(repr, values)) == sorted(repr(v) for v, _cell in CASES[case])
    assert frame["run.k"].to_list() == [cell_of[repr(v)] for v in values]
