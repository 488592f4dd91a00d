"""The run-level frame built from the index's columns (`sdk.run_table`, through
`sdk.run_frame.query_run_columns`) equals the per-run builder (`run_frame.run_columns` over the
matches of `execute_plan`, a record per run) cell for cell and type for type, on random
repositories with odd params: deep nesting, dotted keys next to the same nested keys, mixed
kinds in one path, lists and dicts, non-ASCII and escaped text (JSON punctuation in keys and
values), ints beyond int64, NaN and inf, params named like props, params only a few runs have
(under the 1% a typed column needs), resumed and archived runs, several contexts of one metric,
and index entries damaged in ways that keep or break the shape of their params text."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.query.executor import execute_plan
from aim_parquet.query.planner import plan_query
from aim_parquet.sdk.run_frame import query_run_columns, run_columns
from aim_parquet.storage.index.run_index import RunIndex
from tests.conftest import read_index_table, with_index_column, write_index_table

QUIET: dict[str, Any] = {"system_tracking_interval": None, "capture_terminal_logs": False}
RUNS = 130  # a param of one run is under the 1% share of a typed column
QUERIES = [
    "",
    "run.hparams.lr < 0.05",
    "run.archived == True",
    "run.rare == 1",
    "run.mixed == 'two'",
    "run.hparams.seed > 2 or run.experiment == 'exp-1'",
]
METRICS: list[list[str] | None] = [None, ["loss"], ["loss", "count", "acc", "nothing"]]
ODD: list[tuple[str, Any]] = [
    ("mixed", [1, 2.5, "two", True, None, [1, "a"], {"x": 1}, 2**70]),
    ("deep", [{"a": {"b": {"c": {"d": 1}}}}, {"a": {"b": 2}}, {"a": {}}]),
    ("a.b", [1, "x"]),
    ("a", [{"b": 2}, {"b": {"c": 3}}]),
    ("name", ["like a prop"]),
    ("hash", ["like the hash"]),
    ("loss", [{"last": 5}]),
    ("ünï", ["cödé", "\u2603"]),
    ('we":ird,}', ['va":l,}ue', "\\", "\n", ""]),
    ("nums", [float("nan"), float("inf"), -0.0, 1e300, -(2**63), 2**63]),
    ("flags", [True, False, None]),
    ("tuple", [(1, 2), b"xy"]),
]


def _params(rng: random.Random, i: int) -> dict[str, Any]:
    params: dict[str, Any] = {"hparams": {"lr": rng.choice([0.1, 0.01, 0.001]), "seed": i % 5}}
    for key, values in ODD:
        if rng.random() < 0.15:
            params[key] = rng.choice(values)
    if rng.random() < 0.01:  # in about one run: no typed column
        params["rare"] = rng.choice([1, 1.5, "r", {"x": 1}])
    if rng.random() < 0.01:
        params["hparams"]["rare_nested"] = 1
    return params


def _build(root: Path, seed: int) -> None:
    rng = random.Random(seed)
    hashes = []
    for i in range(RUNS):
        run = aim.Run(repo=root, experiment=f"exp-{i % 3}" if i % 7 else None, **QUIET)
        for key, value in _params(rng, i).items():
            run[key] = value
        if rng.random() < 0.2:
            run.add_tag(rng.choice(["a", "b", "ü"]))
        for name, context in rng.sample([("loss", {}), ("loss", {"s": "v"}), ("count", {})], 2):
            for step in range(rng.randrange(0, 3)):
                value: Any = rng.choice([rng.random(), float("nan"), -float("inf")])
                run.track(step if name == "count" else value, name=name, step=step, context=context)
        if i % 9 == 4:
            run.archived = True
        run.close()
        hashes.append(run.hash)
    for run_hash in rng.sample(hashes, 5):  # resumed: new params and steps
        run = aim.Run(run_hash=run_hash, repo=root, **QUIET)
        run["resumed"] = {"again": True}
        run.track(0.5, name="loss", step=7)
        run.close()


def _damage(root: Path, rng: random.Random) -> None:
    """Damage the params or catalogue text of a few index rows: cut, or a value token changed
    into one that is not JSON while the text keeps its shape (`1.2.3`, `"x"1`)."""
    aim.Repo(root).query_runs("").to_arrow()  # (writes the index)
    table = read_index_table(root)
    for column in ("params", "params", "params", "catalogue_stats"):
        values = table.column(column).to_pylist()
        row = rng.randrange(len(values))
        text = values[row]
        values[row] = rng.choice(
            [text[:-1], text.replace("0.", "0.1.", 1), text.replace('":', '"x":1', 1)]
        )
        table = with_index_column(table, column, values)
    write_index_table(root, table)  # (as a fresh process)


def _same(got: pa.Table | None, want: pa.Table | None, what: str) -> None:
    assert (got is None) == (want is None), what
    if got is None or want is None:
        return
    assert got.schema == want.schema, what
    for name in want.column_names:
        a, b = got.column(name), want.column(name)
        if pa.types.is_floating(b.type):
            x, y = a.to_numpy(zero_copy_only=False), b.to_numpy(zero_copy_only=False)
            assert np.array_equal(x, y, equal_nan=True), (what, name)
            assert np.signbit(x).tolist() == np.signbit(y).tolist(), (what, name)
            assert a.is_null().equals(b.is_null()), (what, name)
        else:
            assert a.equals(b), (what, name)


def _compare(root: Path) -> None:
    layout = RepoLayout(root)
    index = RunIndex.shared(layout)
    for query in QUERIES:
        plan = plan_query(query, None)
        for metrics in METRICS:
            for props, params in ((True, True), (False, True), (True, False)):
                flags = {"include_props": props, "include_params": params, "metrics": metrics}
                steps = execute_plan(layout, index, plan, with_misses=False)
                want = run_columns(
                    layout, (s.match for s in steps if s.match), reread=index.reread, **flags
                )
                got = query_run_columns(layout, index, plan, offset=None, **flags)
                what = f"{query!r} {flags}"
                _same(
                    None if got is None else got.to_arrow(),
                    None if want is None else want.to_arrow(),
                    what,
                )


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # (damaged runs left out, as both do)
@pytest.mark.parametrize("seed", [11, 12])
def test_column_rows_equal_the_per_run_rows(tmp_path: Path, seed: int) -> None:
    _build(tmp_path, seed)
    RunIndex._shared.clear()
    _compare(tmp_path)
    _damage(tmp_path, random.Random(seed))
    _compare(tmp_path)


def _build_plain(root: Path, seed: int) -> None:
    """Runs whose rows all come from the columns (then every column is Arrow from them)."""
    rng = random.Random(seed)
    for i in range(40):
        run = aim.Run(repo=root, experiment=rng.choice([None, "", "e1", "é2"]), **QUIET)
        if rng.random() < 0.5:
            run.name = rng.choice([f"run {i}", "ü", ""])
        if rng.random() < 0.3:
            run.description = rng.choice(["d", "ü"])
        if rng.random() < 0.3:
            run.add_tag(rng.choice(["a", "b"]))
        run["hparams"] = {"lr": rng.choice([0.1, 1e-05, None]), "seed": i, "opt": "adam"}
        run["flag"] = rng.choice([True, False])
        if i % 2:
            run["maybe"] = rng.choice([None, 3])
        if rng.random() < 0.8:
            context = rng.choice([{}, {"s": "v"}])
            for step in range(rng.randrange(1, 4)):
                value: Any = (
                    step if i % 5 == 0 and seed % 2 else rng.choice([rng.random(), float("inf")])
                )
                run.track(value, name="loss", step=step, context=context)
        if i % 9 == 4:
            run.archived = True
        run.close()


@pytest.mark.parametrize("seed", [21, 22])
def test_rows_all_from_the_columns_equal_the_per_run_rows(tmp_path: Path, seed: int) -> None:
    _build_plain(tmp_path, seed)
    RunIndex._shared.clear()
    _compare(tmp_path)


def test_metric_contexts_in_another_order_per_run(tmp_path: Path) -> None:
    """Runs whose catalogues list the wanted metrics' contexts in different orders: each row's
    summary columns in its own catalogue order (the newest run's first; its order interleaves
    two names, so it is not the order of any sort by name and context)."""
    orders: list[list[tuple[str, dict[str, Any]]]] = [
        [("loss", {}), ("loss", {"s": "v"})],
        [("loss", {"s": "v"}), ("acc", {}), ("loss", {})],
        [("loss", {"s": "a"}), ("acc", {"s": "b"}), ("loss", {"s": "b"})],
    ]
    for seqs in orders:
        run = aim.Run(repo=tmp_path, **QUIET)
        run["hparams"] = {"lr": 0.1}
        for name, context in seqs:
            run.track(1.5, name=name, step=0, context=context)
        run.close()
    RunIndex._shared.clear()
    _compare(tmp_path)
    table = aim.Repo(tmp_path).query_runs("").to_arrow(metrics=["loss", "acc"])
    assert table is not None
    assert [n for n in table.column_names if n.endswith(".last")][:3] == [
        'loss{"s":"a"}.last',
        'acc{"s":"b"}.last',
        'loss{"s":"b"}.last',
    ]
