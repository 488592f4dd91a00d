"""`sdk.dataframes.flatten_params` and the params of `run_row` (their fast paths for plain
values and ASCII text) against the straightforward walk they replaced, on random params:
nesting past the depth, empty dicts, lists, non-ASCII text, lone surrogates in keys and
values."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from aim_parquet.format.values import utf8_safe
from aim_parquet.sdk.dataframes import PARAM_DEPTH, flatten_params, run_row


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
