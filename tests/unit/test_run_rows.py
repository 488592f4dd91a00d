"""`sdk.dataframes.flatten_params` and the params of `run_row` (their fast paths for plain
values and ASCII text) against the straightforward walk they replaced, on random params:
nesting past the depth, empty dicts, lists, non-ASCII text, lone surrogates in keys and
values; and the bulk frame's run rows (`sdk.run_rows`) against `run_row`."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from aim_parquet.format.paths import RepoLayout
from aim_parquet.format.values import TAG, encode_json_value, utf8_safe
from aim_parquet.sdk.dataframes import PARAM_DEPTH, flatten_params, run_row
from aim_parquet.sdk.query_frames import RecordRun
from aim_parquet.sdk.run_rows import RunRows, row_columns
from aim_parquet.storage.index.run_records import RunRecord


def _reference(params: dict[str, Any], depth: int = PARAM_DEPTH) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def walk(node: dict[str, Any], prefix: str, level: int) -> None:
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else key
            if isinstance(value, dict) and value and level < depth:
                walk(value, path, level + 1)
            elif isinstance(value, (dict, list)):
                out[path] = utf8_safe(json.dumps(value, ensure_ascii=False, default=repr))
            else:
                out[path] = value

    walk(params, "", 1)
    return out


TEXTS = ["a", "é", "lr", "\udcff", "x\ud800y", ""]


def _value(rng: random.Random, level: int) -> Any:
    kind = rng.randrange(8 if level < 5 else 6)
    if kind == 0:
        return rng.choice(TEXTS)
    if kind == 1:
        return rng.choice([0, -3, 2**70])
    if kind == 2:
        return rng.choice([0.5, float("nan"), float("inf")])
    if kind == 3:
        return rng.choice([True, False, None])
    if kind == 4:
        return [rng.choice(TEXTS), 1, None]
    if kind == 5:
        return {}
    return {rng.choice(TEXTS) + str(i): _value(rng, level + 1) for i in range(rng.randrange(4))}


class _Fields:
    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params


class _Row:
    hash = "0123456789abcdef01234567"
    active = False

    def __init__(self, params: dict[str, Any]) -> None:
        self.props = _Fields(params)


@pytest.mark.parametrize("seed", range(25))
def test_flat_params_are_the_walks(seed: int) -> None:
    rng = random.Random(seed)
    params = {rng.choice(TEXTS) + str(i): _value(rng, 1) for i in range(rng.randrange(8))}
    want = _reference(params)
    got = flatten_params(params)
    assert list(got) == list(want)
    assert json.dumps(got, default=repr) == json.dumps(want, default=repr)
    row = run_row(_Row(params), include_props=False)  # type: ignore[arg-type]
    expected: dict[str, Any] = {"hash": _Row.hash}
    for key, value in want.items():
        expected.setdefault(utf8_safe(key), utf8_safe(value) if isinstance(value, str) else value)
    assert list(row) == list(expected)
    assert json.dumps(row, default=repr) == json.dumps(expected, default=repr)


@pytest.mark.parametrize("seed", range(12))
def test_bulk_run_rows_are_run_rows_transposed(seed: int, tmp_path: Path) -> None:
    """`sdk.run_rows.RunRows` (the bulk frame's run-level columns, params flattened from the
    index record's stored JSON where they are plain) gives `run_row`'s cells of each run, in
    `run_row`'s column order, with and without the props: params named like a prop or `hash`,
    tagged values (bytes, NaN, a dict with the tag's key), lists, deep and empty dicts,
    non-ASCII text and lone surrogates in keys and values, runs with different keys."""
    rng = random.Random(seed)
    layout = RepoLayout(tmp_path)
    records = []
    for i in range(30):
        params = {rng.choice(TEXTS) + str(j): _value(rng, 1) for j in range(rng.randrange(6))}
        if rng.random() < 0.3:
            params[rng.choice(["name", "hash", "tags", "active", TAG])] = _value(rng, 2)
        if rng.random() < 0.2:
            params["blob"] = rng.choice([b"\x00x", float("nan"), {TAG: 1}])
        if rng.random() < 0.5:
            params = {"hparams": {"lr": rng.random(), "seed": i}}  # the common shape
        run_hash = f"{i:024x}"
        data = {
            "hash": run_hash, "name": rng.choice([None, "n", "é\udcff"]),
            "experiment": rng.choice([None, "", "x"]), "description": rng.choice([None, "d"]),
            "tags": rng.choice([[], ["a"], ["b", "\ud800"]]), "archived": rng.random() < 0.3,
            "creation_time": 1.5 + i, "end_time": 2.5 + i,
            "params": encode_json_value(params), "sequences": [],
        }  # fmt: skip
        records.append(RunRecord(run_hash, data))
    for include_props in (True, False):
        rows = RunRows(include_props=include_props, include_params=True)
        want = []
        for record in records:
            rows.add(RecordRun(layout, record))
            want.append(run_row(RecordRun(layout, record), include_props=include_props))
        runs = rng.sample(range(len(records)), 20)
        expected = row_columns([want[r] for r in runs])
        del expected["hash"]
        got = rows.columns(runs)
        assert list(got) == list(expected)
        assert json.dumps(got, default=repr) == json.dumps(expected, default=repr)
