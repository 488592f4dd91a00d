"""The plain-case decoders (`format.json_records`, "the plain case") against the checked field
decoders they stand in for: on random sidecars, valid, damaged and odd (wrong types, bools for
numbers, tagged values, subclasses, missing keys, deep nesting), `RunMeta.from_json` gives the same
RunMeta or the same error (type and message) with and without them; `decode_json_values` gives
what `values.decode_json_value` gives."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aim_parquet.format import meta as meta_module
from aim_parquet.format.json_records import (
    decode_json_values,
    is_plain_entry,
    is_plain_sidecar,
    json_bytes,
)
from aim_parquet.format.meta import CatalogueReach, RunMeta, SequenceInfo
from aim_parquet.format.paths import RepoLayout, generate_run_hash
from aim_parquet.format.values import MAX_JSON_DEPTH, TAG, decode_json_value, encode_json_value
from aim_parquet.storage.online.params_file import read_sidecar_object

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class Text(str):
    """A str subclass: never taken as a plain field."""


@contextmanager
def checked_only() -> Iterator[None]:
    """`RunMeta.from_json` and `SequenceInfo.from_json` through their checked decoders only."""
    with (
        mock.patch.object(meta_module, "is_plain_sidecar", lambda data: False),
        mock.patch.object(meta_module, "is_plain_entry", lambda data: False),
        mock.patch.object(meta_module, "decode_json_values", decode_json_value),
    ):
        yield


def outcome(decode: Callable[[], Any]) -> tuple[Any, ...]:
    """What `decode()` gives: its value's repr (exact about int/float/bool, NaN equal to NaN) or
    its error's type and message."""
    try:
        return ("value", repr(decode()))
    except Exception as exc:  # noqa: BLE001  (any error: the two must agree on it)
        return ("error", type(exc), str(exc))


leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
)
tagged = st.fixed_dictionaries(
    {
        TAG: st.sampled_from(["float", "bytes", "dict", "other"]),
        "v": st.one_of(leaves, st.sampled_from(["nan", "-inf", "AAEC", "!!"]), st.just({"a": 1})),
    }
)
json_values = st.recursive(
    st.one_of(leaves, tagged),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(st.text(max_size=3), st.just(TAG)), inner, max_size=3),
    ),
    max_leaves=12,
)
odd_values = st.one_of(
    json_values,
    st.builds(Text, st.text(max_size=3)),
    st.tuples(leaves),
    st.builds(OrderedDict, st.dictionaries(st.text(max_size=2), leaves, max_size=2)),
)

SEQ_IDS = ["0123456789abcdef0123", "ffffffffffffffffffff", "0123", "G123456789abcdef0123"]
SEGMENT = "18edb8b7d5b0762b-12913-9f493c-000001.arrows"
reaches = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {"segment": st.sampled_from([SEGMENT, "x.arrows"]), "bytes": st.integers(-1, 9)},
        optional={"sealed": st.one_of(st.booleans(), st.just(1))},
    ),
    odd_values,
)
numbers = st.one_of(st.floats(allow_nan=True), st.integers(-(2**64), 2**64))
valid_entries = st.fixed_dictionaries(
    {
        "seq_id": st.sampled_from(SEQ_IDS[:2]),
        "name": st.text(max_size=4),
        "context": st.dictionaries(st.text(max_size=3), json_values, max_size=2),
        "kind": st.sampled_from(["float", "int", "aim.image"]),
        "count": st.integers(0, 9),
        "first_step": st.one_of(st.none(), st.integers(0, 2**63 - 1)),
        "last_step": st.one_of(st.none(), st.integers(0, 2**63 - 1)),
        "first": st.one_of(st.none(), numbers),
        "last": st.one_of(st.none(), numbers),
        "min": st.one_of(st.none(), st.floats(allow_nan=True)),
        "max": st.one_of(st.none(), st.floats(allow_nan=True)),
    },
    optional={"reach": reaches, "rewritten": st.one_of(st.booleans(), st.just(1))},
)
ENTRY_KEYS = ["seq_id", "name", "context", "kind", "count", "first_step", "last_step", "first"]
ENTRY_KEYS += ["last", "min", "max", "reach", "rewritten"]
MISSING = object()  # (the key removed)
TRICKY = [
    MISSING, None, True, False, 0, 1, -1, 2**70, 0.0, 1.5, math.nan, -math.inf, "", "x",
    Text("x"), SEQ_IDS[0], SEQ_IDS[2], [], ["a"], [1], (1,), {}, {"a": 1}, OrderedDict(a=1),
    {TAG: "float", "v": "inf"}, {TAG: "float", "v": "x"}, {TAG: "bytes", "v": "AAEC"},
    {TAG: "dict", "v": 1}, {TAG: "other"},
]  # fmt: skip
entry_values = st.one_of(st.sampled_from(TRICKY), odd_values, numbers)


@st.composite
def damaged(draw: st.DrawFn, valid: st.SearchStrategy[Any], keys: list[str]) -> Any:
    """A valid object, often with some of its keys set to odd values or removed."""
    data = dict(draw(valid))
    for key in draw(st.lists(st.sampled_from(keys), max_size=3)):
        data[key] = draw(entry_values)
        if data[key] is MISSING:
            del data[key]
    return data


entries = st.one_of(valid_entries, damaged(valid_entries, ENTRY_KEYS), odd_values)
VALID_ENTRY = {
    "seq_id": SEQ_IDS[0], "name": "loss", "context": {"a": 1}, "kind": "float", "count": 2,
    "first_step": 0, "last_step": 1, "first": 1.0, "last": 2, "min": 1.0, "max": 2.0,
    "reach": {"segment": SEGMENT, "bytes": 3, "sealed": True}, "rewritten": True,
}  # fmt: skip
valid_sidecars = st.fixed_dictionaries(
    {
        "format": st.just("aim_parquet"),
        "format_version": st.sampled_from([1, 2]),
        "hash": st.just("0001c9275b0011a00541a00b"),
        "name": st.one_of(st.none(), st.text(max_size=4)),
        "description": st.one_of(st.none(), st.text(max_size=4)),
        "experiment": st.one_of(st.none(), st.text(max_size=4)),
        "tags": st.lists(st.text(max_size=3), max_size=2),
        "archived": st.booleans(),
        "creation_time": numbers,
        "end_time": st.one_of(st.none(), numbers),
        "updated_at": st.one_of(st.just(0), numbers),
        "params": st.dictionaries(st.text(max_size=3), json_values, max_size=3),
        "sequences": st.lists(st.one_of(valid_entries, entries), max_size=3),
    }
)
SIDECAR_KEYS = ["format_version", "hash", "name", "description", "experiment", "tags"]
SIDECAR_KEYS += ["archived", "creation_time", "end_time", "updated_at", "params", "sequences"]
SIDECAR_KEYS += ["params_file"]
sidecars = st.one_of(valid_sidecars, damaged(valid_sidecars, SIDECAR_KEYS))
VALID_SIDECAR = {
    "format_version": 1, "hash": "0001c9275b0011a00541a00b", "name": "n", "description": "d",
    "experiment": "e", "tags": ["t"], "archived": False, "creation_time": 1.5, "end_time": 2,
    "updated_at": 3.0, "params": {"p": [1, {"q": None}]}, "sequences": [VALID_ENTRY],
}  # fmt: skip


def with_value(data: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    changed = {k: v for k, v in data.items() if k != key}
    if value is not MISSING:
        changed[key] = value
    return changed


@pytest.mark.parametrize("value", TRICKY, ids=repr)
@pytest.mark.parametrize("key", ENTRY_KEYS)
def test_each_entry_field_each_odd_value(key: str, value: Any) -> None:
    data = with_value(VALID_ENTRY, key, value)
    fast = outcome(lambda: SequenceInfo.from_json(data))
    with checked_only():
        assert fast == outcome(lambda: SequenceInfo.from_json(data))


@pytest.mark.parametrize("value", TRICKY, ids=repr)
@pytest.mark.parametrize("key", SIDECAR_KEYS)
def test_each_sidecar_field_each_odd_value(key: str, value: Any) -> None:
    data = with_value(VALID_SIDECAR, key, value)
    fast = outcome(lambda: RunMeta.from_json(data, "sidecar x"))
    with checked_only():
        assert fast == outcome(lambda: RunMeta.from_json(data, "sidecar x"))


@SETTINGS
@given(sidecars)
def test_run_meta_is_the_checked_decoders_result(data: dict[str, Any]) -> None:
    fast = outcome(lambda: RunMeta.from_json(data, "sidecar x"))
    with checked_only():
        checked = outcome(lambda: RunMeta.from_json(data, "sidecar x"))
    assert fast == checked


@SETTINGS
@given(entries)
def test_sequence_info_is_the_checked_decoders_result(data: Any) -> None:
    fast = outcome(lambda: SequenceInfo.from_json(data))
    with checked_only():
        checked = outcome(lambda: SequenceInfo.from_json(data))
    assert fast == checked


@SETTINGS
@given(odd_values)
def test_decode_json_values_is_decode_json_value(value: Any) -> None:
    assert outcome(lambda: decode_json_values(value)) == outcome(lambda: decode_json_value(value))


@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1])
@pytest.mark.parametrize("leaf", [1.5, [], {}, {TAG: "float", "v": "nan"}])
def test_decode_json_values_keeps_the_depth_bound(levels: int, leaf: Any) -> None:
    value: Any = leaf
    for i in range(levels):
        value = [value] if i % 2 else {"k": value}
    assert outcome(lambda: decode_json_values(value)) == outcome(lambda: decode_json_value(value))


def test_what_writers_write_is_the_plain_case() -> None:
    """The plain case is the usual one: a sidecar as `RunMeta.to_json` writes it (non-finite
    and bytes params, reach, rewrites included) passes the predicates and reads back equal; a
    catalogue entry with a non-finite summary is not plain and reads back equal too."""
    info = SequenceInfo(
        "0123456789abcdef0123", "loss", {"subset": "train"}, "float", 3, 0, 2, 0.5, -1.0,
        -1.0, 0.5, CatalogueReach(SEGMENT, 10, True), has_rewrites=True,
    )  # fmt: skip
    inf = SequenceInfo("ffffffffffffffffffff", "acc", {}, "float", 1, 0, 0, math.inf, math.inf)
    meta = RunMeta(
        "0001c9275b0011a00541a00b",
        1.5,
        name="n",
        experiment="e",
        tags=("a",),
        end_time=2.0,
        params={"lr": 0.1, "x": math.nan, "b": b"\x00", TAG: {"y": [1, 2]}},
        sequences=(info, inf),
    )
    data = meta.to_json()
    assert is_plain_sidecar(data)
    assert [is_plain_entry(s) for s in data["sequences"]] == [True, False]
    assert repr(RunMeta.from_json(data)) == repr(meta)
    with checked_only():
        assert repr(RunMeta.from_json(data)) == repr(meta)


@SETTINGS
@given(valid_sidecars)
def test_sidecar_files_read_the_same(tmp_path_factory: pytest.TempPathFactory, data: Any) -> None:
    """Through the real file path (`read_sidecar_object` on bytes written as writers write
    them), with and without the plain case."""
    layout = RepoLayout(tmp_path_factory.mktemp("repo"))
    run_hash = generate_run_hash()
    path = Path(layout.sidecar_path(run_hash))
    assert path == layout.sidecar(run_hash)
    path.parent.mkdir(parents=True)
    try:
        raw = json_bytes(encode_json_value(data))
    except ValueError:
        return  # a NaN creation_time & co. cannot be written by `json_bytes`
    path.write_bytes(raw)
    fast = outcome(lambda: RunMeta.from_json(read_sidecar_object(path), "sidecar"))
    with checked_only():
        checked = outcome(lambda: RunMeta.from_json(read_sidecar_object(str(path)), "sidecar"))
    assert fast == checked
