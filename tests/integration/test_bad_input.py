"""A corpus of bad and borderline input fed to every public entry point.

Each input either gets the documented behaviour (checked by reading it back) or a clear error
(its type and a message fragment are asserted), and none corrupts the run: after every call the
run still tracks, closes, reads back (our reader and plain pyarrow/json) and resumes by hash.

The corpus sizes are counted by `tools/fault_report.py` (`corpus_size()`).
"""

from __future__ import annotations

import collections
import datetime
import decimal
import json
import math
import reprlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import aim_parquet as aim
from aim_parquet.errors import StorageError
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage import discover_sequences, load_run_meta, read_sequence
from tests.conftest import raw_points

HUGE = 100_000
TEN_MB = 10 * 1024 * 1024


@dataclass(frozen=True)
class Bad:
    """The call must raise `error` with `match` (a plain substring) in its message."""

    error: type[BaseException]
    match: str


def nested_dict(depth: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(depth - 1):
        node["a"] = {}
        node = node["a"]
    node["leaf"] = 1
    return root


def nested_list(depth: int) -> list[Any]:
    root: list[Any] = []
    node = root
    for _ in range(depth - 1):
        child: list[Any] = []
        node.append(child)
        node = child
    node.append(1)
    return root


def recursive_list() -> list[Any]:
    items: list[Any] = []
    items.append(items)
    return items


class FakeTensor:
    """Anything with `.item()` (torch/jax tensors) is tracked as its number."""

    def item(self) -> float:
        return 0.25


class BrokenTensor:
    def item(self) -> float:
        raise RuntimeError("cannot convert")


def short_id(value: Any) -> str:
    """A test id that stays short (and safe for values too deep for repr())."""
    return reprlib.repr(value)[:30]


def raises(case: Any, call: Callable[[], Any]) -> None:
    with pytest.raises(case.error) as info:
        call()
    assert case.match in str(info.value), (case.match, str(info.value)[:300])


# -- a healthy run and the checks that it stayed healthy --------------------------------------


@pytest.fixture
def run(make_run: Any) -> Any:
    run = make_run()
    run["base"] = {"lr": 0.1}
    run.track(0.0, name="m", step=0)
    return run


def sequences(repo: Path, run_hash: str) -> dict[tuple[str, str], Any]:
    layout = RepoLayout(repo)
    infos = discover_sequences(layout, run_hash, load_run_meta(layout, run_hash))
    return {(i.name, json.dumps(i.context, sort_keys=True)): i for i in infos}


def read_metric(repo: Path, run_hash: str, name: str, context: Any = None) -> list[tuple[int, Any]]:
    """(step, value) pairs read by our reader, checked against plain pyarrow."""
    info = sequences(repo, run_hash)[(name, json.dumps(context or {}, sort_keys=True))]
    table = read_sequence(RepoLayout(repo), run_hash, info)
    steps, values = table.column("step").to_pylist(), table.column("value").to_pylist()
    ours = list(zip(steps, values, strict=True))
    ctx = json.dumps(context or {}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    raw = raw_points(repo, run_hash)[(name, ctx)]
    by_step = {p["step"]: p["value"] for p in raw}  # last write wins, as our reader does
    assert len(ours) == len(by_step)
    for (step, value), (rstep, rvalue) in zip(ours, sorted(by_step.items()), strict=True):
        assert step == rstep
        assert value == rvalue or (math.isnan(value) and math.isnan(rvalue))
    return ours


def assert_healthy(repo: Path, run: Any) -> None:
    """The run still tracks, closes, reads back and resumes; its files are valid."""
    run.track(1.0, name="m", step=1)
    run.close()
    assert read_metric(repo, run.hash, "m") == [(0, 0.0), (1, 1.0)]
    ro = aim.Run(run.hash, repo=repo, read_only=True)
    assert ro["base"] == {"lr": 0.1} and ro.end_time is not None
    sidecar = repo / ".aim" / "runs" / run.hash / "run.json"
    json.loads(sidecar.read_bytes().decode("utf-8"))  # strict UTF-8 JSON for any reader
    assert not list((repo / ".aim").rglob(".tmp-*"))
    with aim.Run(
        run.hash, repo=repo, system_tracking_interval=None, capture_terminal_logs=False
    ) as again:
        again.track(2.0, name="m")
    assert read_metric(repo, run.hash, "m")[-1] == (2, 2.0)


# -- Run(...) arguments ------------------------------------------------------------------------

BAD_HASHES = [
    123,
    1.5,
    b"0" * 24,
    "",
    "..",
    "../../etc/passwd",
    "/abs/path/00000000000000",
    "a\x00b",
    "0" * 23 + "\x00",
    "A" * 24,
    "0" * 25,
    "0" * 23,
    "\uff10" * 24,  # fullwidth digits
    "0" * 23 + "\n",
    "g" * 24,
]


@pytest.mark.parametrize("run_hash", BAD_HASHES, ids=repr)
def test_malformed_run_hash_is_refused_before_touching_disk(repo_root: Path, run_hash: Any) -> None:
    with pytest.raises(aim.InvalidRunHashError, match="24 lowercase hex") as info:
        aim.Run(run_hash, repo=repo_root, system_tracking_interval=None)
    assert isinstance(info.value, ValueError)
    with pytest.raises(aim.InvalidRunHashError):
        aim.Run(run_hash, repo=repo_root, read_only=True)
    assert list(repo_root.iterdir()) == []  # not even the repo was created


RUN_ARG_CASES: list[tuple[str, dict[str, Any], Bad]] = [
    ("missing hash", {"run_hash": "0" * 24}, Bad(aim.MissingRunError, "No run")),
    ("repo int", {"repo": 123}, Bad(TypeError, "PathLike")),
    ("repo NUL", {"repo": "a\x00b"}, Bad(ValueError, "null byte")),
    ("read_only without hash", {"read_only": True}, Bad(ValueError, "run_hash")),
    ("interval str", {"system_tracking_interval": "x"}, Bad(ValueError, "system_tracking")),
    ("interval negative", {"system_tracking_interval": -1}, Bad(ValueError, "between 0.1")),
    ("interval zero", {"system_tracking_interval": 0}, Bad(ValueError, "between 0.1")),
    ("interval NaN", {"system_tracking_interval": math.nan}, Bad(ValueError, "between 0.1")),
    ("interval inf", {"system_tracking_interval": math.inf}, Bad(ValueError, "between 0.1")),
    ("interval bool", {"system_tracking_interval": True}, Bad(ValueError, "between 0.1")),
    ("interval huge", {"system_tracking_interval": 10**9}, Bad(ValueError, "between 0.1")),
]


@pytest.mark.parametrize(
    ("kwargs", "bad"), [c[1:] for c in RUN_ARG_CASES], ids=[c[0] for c in RUN_ARG_CASES]
)
def test_bad_run_arguments_are_clear_errors(
    repo_root: Path, run: Any, kwargs: dict[str, Any], bad: Bad
) -> None:
    kwargs = {"repo": repo_root, "capture_terminal_logs": False, **kwargs}
    kwargs.setdefault("system_tracking_interval", None)
    raises(bad, lambda: aim.Run(**kwargs))
    assert_healthy(repo_root, run)


def test_repo_that_is_a_file_is_a_clear_os_error(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("not a folder")
    with pytest.raises(StorageError, match=f"{target} is a file, not a folder"):
        aim.Run(repo=target, system_tracking_interval=None, capture_terminal_logs=False)
    assert target.read_text() == "not a folder"


def test_missing_repo_read_only_is_repo_not_found(tmp_path: Path) -> None:
    with pytest.raises(aim.RepoNotFoundError, match="Cannot find an aim_parquet repository"):
        aim.Run("0" * 24, repo=tmp_path / "nowhere", read_only=True)
    assert not (tmp_path / "nowhere").exists()


EXPERIMENT_CASES: list[tuple[Any, str]] = [
    (None, "default"),
    ("", "default"),
    (123, "123"),  # documented: coerced with str()
    ("x" * HUGE, "x" * HUGE),
    ("実験 ✓ ñ", "実験 ✓ ñ"),
    ("a\x00b", "a\x00b"),
    ("../../etc/passwd", "../../etc/passwd"),  # only ever stored as JSON text
]


@pytest.mark.parametrize(("experiment", "stored"), EXPERIMENT_CASES, ids=short_id)
def test_experiment_names_are_stored_as_text(
    repo_root: Path, make_run: Any, experiment: Any, stored: str
) -> None:
    run = make_run(experiment=experiment)
    run["base"] = {"lr": 0.1}
    run.track(0.0, name="m", step=0)
    assert run.experiment == stored
    assert_healthy(repo_root, run)
    assert aim.Run(run.hash, repo=repo_root, read_only=True).experiment == stored


# -- properties --------------------------------------------------------------------------------

PROPERTY_CASES: list[tuple[str, Any, Any]] = [
    ("name", None, "Run: {hash}"),  # None restores the default name
    ("name", 123, "123"),
    ("name", "", ""),
    ("name", "n" * HUGE, "n" * HUGE),
    ("name", "a\x00b ✓", "a\x00b ✓"),
    ("description", None, None),
    ("description", 5, "5"),
    ("description", "d" * HUGE, "d" * HUGE),
    ("experiment", None, "default"),
    ("experiment", "exp\x00", "exp\x00"),
    ("archived", 1, True),
    ("archived", 0, False),
]


@pytest.mark.parametrize(("prop", "value", "stored"), PROPERTY_CASES, ids=short_id)
def test_property_setters_coerce_and_persist(
    repo_root: Path, run: Any, prop: str, value: Any, stored: Any
) -> None:
    setattr(run, prop, value)
    if isinstance(stored, str):
        stored = stored.replace("{hash}", run.hash)
    assert getattr(run, prop) == stored
    assert getattr(aim.Run(run.hash, repo=repo_root, read_only=True), prop) == stored
    assert_healthy(repo_root, run)


@pytest.mark.parametrize("tag", [123, None, "t" * HUGE, "tag\x00", "ü"], ids=repr)
def test_tags_are_coerced_to_str(repo_root: Path, run: Any, tag: Any) -> None:
    run.add_tag(tag)
    run.add_tag(tag)
    assert run.tags == [str(tag)]
    assert run.remove_tag(str(tag)) is True
    assert run.remove_tag(["not", "hashable"]) is False
    assert_healthy(repo_root, run)


# -- params ------------------------------------------------------------------------------------

BAD_PARAM_KEYS: list[Any] = [1, None, 1.5, b"k", ("a", 1), (), ["a"], object()]

BAD_PARAM_VALUES: list[tuple[str, Any, Bad]] = [
    ("object", object(), Bad(TypeError, "values of type object are not supported")),
    ("set", {1, 2}, Bad(TypeError, "values of type set")),
    ("complex", 1 + 2j, Bad(TypeError, "values of type complex")),
    ("decimal", decimal.Decimal(1), Bad(TypeError, "decimal.Decimal")),
    ("datetime", datetime.datetime(2024, 1, 1), Bad(TypeError, "datetime.datetime")),
    ("ndarray", np.ones(3), Bad(TypeError, "numpy.ndarray")),
    ("function", len, Bad(TypeError, "not supported")),
    ("int keys", {1: "x"}, Bad(TypeError, "only str keys")),
    ("tuple keys", {(1, 2): 1}, Bad(TypeError, "only str keys")),
    ("deep int keys", {"a": {"b": {2: 3}}}, Bad(TypeError, "only str keys")),
    ("object in list", [1, object()], Bad(TypeError, "'p[1]'")),
    ("depth 1000 dict", nested_dict(1000), Bad(TypeError, "nested deeper than 200")),
    ("depth 1000 list", nested_list(1000), Bad(TypeError, "nested deeper than 200")),
    ("self-referencing list", recursive_list(), Bad(TypeError, "nested deeper than 200")),
]


@pytest.mark.parametrize("key", BAD_PARAM_KEYS, ids=repr)
def test_bad_param_keys_are_refused(repo_root: Path, run: Any, key: Any) -> None:
    with pytest.raises(aim.UnsupportedValueError, match="Param key") as info:
        run[key] = 1
    assert isinstance(info.value, TypeError)
    assert_healthy(repo_root, run)


@pytest.mark.parametrize(
    ("value", "bad"), [c[1:] for c in BAD_PARAM_VALUES], ids=[c[0] for c in BAD_PARAM_VALUES]
)
def test_bad_param_values_name_the_key_and_type(
    repo_root: Path, run: Any, value: Any, bad: Bad
) -> None:
    def store() -> None:
        run["p"] = value

    raises(bad, store)
    assert "p" not in run[...]
    assert_healthy(repo_root, run)


def test_bad_param_value_is_stored_as_repr_when_not_strict(repo_root: Path, run: Any) -> None:
    run.set("lenient", {1, 2}, strict=False)
    assert run["lenient"] == "{1, 2}"
    assert_healthy(repo_root, run)


def test_whole_params_set_needs_a_dict(repo_root: Path, run: Any) -> None:
    with pytest.raises(aim.UnsupportedValueError, match="needs a dict"):
        run[...] = 5
    with pytest.raises(KeyError, match="No param 'missing'"):
        del run["missing"]
    assert run.get("missing", "default") == "default"
    assert_healthy(repo_root, run)


def same(a: Any, b: Any) -> bool:
    """Equality that treats NaN as equal to NaN and tells 0.0 from -0.0 and 1 from 1.0/True."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


ODD_PARAMS: list[tuple[str, Any, Any, Any]] = [
    # (id, key, value, value read back)
    ("empty key", "", 1, 1),
    ("NUL key", "a\x00b", "v", "v"),
    ("unicode key", "ключ ✓ 鍵", "值", "值"),
    ("huge key", "k" * HUGE, 1, 1),
    ("path key", "../../etc/passwd", "x", "x"),
    ("dotted key", "a.b.c", 1, 1),
    ("reserved tag key", "$aim_parquet", {"$aim_parquet": "float", "v": "nan"}, None),
    ("NaN", "p", math.nan, math.nan),
    ("inf", "p", math.inf, math.inf),
    ("-inf", "p", -math.inf, -math.inf),
    ("-0.0", "p", -0.0, -0.0),
    ("int64 max", "p", 2**63 - 1, 2**63 - 1),
    ("int64 min", "p", -(2**63), -(2**63)),
    ("beyond int64", "p", 2**200, 2**200),
    ("bytes with NUL", "p", b"\x00\xff\x00", b"\x00\xff\x00"),
    ("bytearray", "p", bytearray(b"ab"), b"ab"),
    ("memoryview", "p", memoryview(b"cd"), b"cd"),
    ("NUL str", "p", "a\x00b", "a\x00b"),
    ("lone surrogate str", "p", "a\ud800b", "a\ud800b"),  # round-trips (JSON \u escape)
    ("emoji", "p", "🙂" * 10, "🙂" * 10),
    ("tuple", "p", (1, (2, 3)), [1, [2, 3]]),
    ("numpy float32", "p", np.float32(0.5), 0.5),
    ("numpy 0-d", "p", np.array(7), 7),
    ("numpy bool", "p", np.bool_(True), True),
    ("depth 50 dict", "p", nested_dict(50), nested_dict(50)),
    ("depth 50 list", "p", nested_list(50), nested_list(50)),
    ("ordered dict", "p", collections.OrderedDict(b=1, a=2), {"b": 1, "a": 2}),
    ("10 MB string", "p", "x" * TEN_MB, "x" * TEN_MB),
]


@pytest.mark.parametrize(
    ("key", "value", "expected"), [c[1:] for c in ODD_PARAMS], ids=[c[0] for c in ODD_PARAMS]
)
def test_odd_params_round_trip(
    repo_root: Path, run: Any, key: str, value: Any, expected: Any
) -> None:
    if expected is None:
        expected = dict(value)
    run[key] = value
    assert same(run[key], expected)
    assert_healthy(repo_root, run)
    assert same(aim.Run(run.hash, repo=repo_root, read_only=True)[key], expected)


# -- track(): values, names, steps, epochs, contexts -------------------------------------------

NOT_NUMBERS = [
    "str",
    None,
    b"bytes",
    1 + 2j,
    object(),
    [1.0, 2.0],
    (1.0,),
    np.ones(3),
    np.array(["s"]),
    np.datetime64("2020"),
    decimal.Decimal("1.5"),
    BrokenTensor(),
]


@pytest.mark.parametrize("value", NOT_NUMBERS, ids=lambda v: type(v).__name__)
def test_values_that_are_not_numbers_or_objects(repo_root: Path, run: Any, value: Any) -> None:
    with pytest.raises(ValueError, match="is neither python number nor AimObject"):
        run.track(value, name="bad")
    assert ("bad", "{}") not in sequences(repo_root, run.hash)
    assert_healthy(repo_root, run)


ODD_VALUES: list[tuple[str, Any, float]] = [
    ("NaN", math.nan, math.nan),
    ("inf", math.inf, math.inf),
    ("-inf", -math.inf, -math.inf),
    ("huge int", 10**400, math.inf),  # beyond float range: documented as +-inf
    ("huge negative int", -(10**400), -math.inf),
    ("int64 max", 2**63 - 1, float(2**63 - 1)),
    ("bool", True, 1.0),
    ("numpy float16", np.float16(1.5), 1.5),
    ("numpy bool", np.bool_(False), 0.0),
    ("size-1 2-D array", np.array([[5.0]]), 5.0),
    ("tensor-like", FakeTensor(), 0.25),
    ("-0.0", -0.0, -0.0),
    ("subnormal", 5e-324, 5e-324),
]


@pytest.mark.parametrize(
    ("value", "stored"), [c[1:] for c in ODD_VALUES], ids=[c[0] for c in ODD_VALUES]
)
def test_odd_numbers_are_stored(repo_root: Path, run: Any, value: Any, stored: float) -> None:
    run.track(value, name="odd", step=0)
    assert_healthy(repo_root, run)
    [(step, got)] = read_metric(repo_root, run.hash, "odd")
    assert step == 0 and same(got, stored)


BAD_NAMES = [None, "", 1, b"m", ["m"], ("m",), 1.5]


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_bad_sequence_names(repo_root: Path, run: Any, name: Any) -> None:
    with pytest.raises(ValueError, match="non-empty str name"):
        run.track(1.0, name=name)
    assert_healthy(repo_root, run)


def test_lone_surrogate_names_and_contexts_are_refused(repo_root: Path, run: Any) -> None:
    """Decision: names and contexts become UTF-8 Arrow/Parquet metadata, so text that is not
    valid Unicode is refused up front (params and Text payloads round-trip it instead)."""
    with pytest.raises(ValueError, match="lone surrogate"):
        run.track(1.0, name="bad\ud800")
    with pytest.raises(aim.UnsupportedValueError, match="lone surrogate"):
        run.track(1.0, name="m2", context={"k\udc00": "v"})
    with pytest.raises(aim.UnsupportedValueError, match="lone surrogate"):
        run.track(1.0, name="m2", context={"k": ["ok", "\ud800"]})
    with pytest.raises(ValueError, match="lone surrogate"):
        run.track({"dict\ud800": 1.0})
    assert_healthy(repo_root, run)


ODD_NAMES = [
    "a\x00b",
    "ünïcødé ✓ 名前 🙂",
    "n" * HUGE,
    "../../etc/passwd",
    "/abs/path",
    "..",
    ".",
    "a/b\\c",
    " ",
    "\n",
]


@pytest.mark.parametrize("name", ODD_NAMES, ids=short_id)
def test_odd_names_round_trip(repo_root: Path, run: Any, name: str) -> None:
    run.track(3.0, name=name, step=7)
    assert_healthy(repo_root, run)
    assert read_metric(repo_root, run.hash, name) == [(7, 3.0)]


BAD_STEPS: list[tuple[Any, str]] = [
    (-1, "between 0 and 2**63-1"),
    (-(2**63), "between 0"),
    (2**63, "between 0"),
    (2**100, "between 0"),
    (np.uint64(2**63), "between 0"),
    (1.5, "step must be an int"),
    (1.0, "step must be an int"),
    (math.nan, "step must be an int"),
    ("3", "step must be an int"),
    (True, "step must be an int"),
    (b"1", "step must be an int"),
]


@pytest.mark.parametrize(("step", "match"), BAD_STEPS, ids=repr)
def test_bad_steps(repo_root: Path, run: Any, step: Any, match: str) -> None:
    with pytest.raises(ValueError) as info:
        run.track(1.0, name="m", step=step)
    assert match in str(info.value)
    with pytest.raises(ValueError):  # the slow path (objects) checks the same way
        run.track(aim.Text("t"), name="texts", step=step)
    assert_healthy(repo_root, run)


BAD_EPOCHS: list[tuple[Any, str]] = [
    ("x", "epoch must be an int"),
    (1.0, "epoch must be an int"),
    (True, "epoch must be an int"),
    (2**63, "epoch must fit in int64"),
    (-(2**63) - 1, "epoch must fit in int64"),
]


@pytest.mark.parametrize(("epoch", "match"), BAD_EPOCHS, ids=repr)
def test_bad_epochs(repo_root: Path, run: Any, epoch: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        run.track(1.0, name="m", epoch=epoch)
    assert_healthy(repo_root, run)


def test_step_and_epoch_bounds_and_numpy_ints(repo_root: Path, run: Any) -> None:
    run.track(1.0, name="bounds", step=2**63 - 1, epoch=-(2**63))
    run.track(2.0, name="bounds", step=np.int32(4), epoch=np.int64(-5))
    assert_healthy(repo_root, run)
    assert read_metric(repo_root, run.hash, "bounds") == [(4, 2.0), (2**63 - 1, 1.0)]
    rows = raw_points(repo_root, run.hash)[("bounds", "{}")]
    assert [r["epoch"] for r in rows] == [-(2**63), -5]


def test_out_of_order_and_duplicate_steps(repo_root: Path, run: Any) -> None:
    """Documented: every write is stored; readers sort by step and the last write of a step
    wins; auto-step continues at max step + 1."""
    for step, value in [(5, 1.0), (2, 2.0), (None, 3.0), (2, 4.0), (0, 5.0), (6, 6.0)]:
        run.track(value, name="ooo", step=step)
    assert_healthy(repo_root, run)
    rows = raw_points(repo_root, run.hash)[("ooo", "{}")]
    assert [r["step"] for r in rows] == [5, 2, 6, 2, 0, 6]
    assert read_metric(repo_root, run.hash, "ooo") == [(0, 5.0), (2, 4.0), (5, 1.0), (6, 6.0)]


BAD_CONTEXTS: list[tuple[Any, Bad]] = [
    ("train", Bad(TypeError, "context must be a dict")),
    ([("a", 1)], Bad(TypeError, "context must be a dict")),
    ([], Bad(TypeError, "context must be a dict")),
    ("", Bad(TypeError, "context must be a dict")),
    (0, Bad(TypeError, "context must be a dict")),
    (frozenset(), Bad(TypeError, "context must be a dict")),
    ({1: "a"}, Bad(TypeError, "only str keys")),
    ({None: "a"}, Bad(TypeError, "only str keys")),
    ({"a": object()}, Bad(TypeError, "not supported")),
    ({"a": {1, 2}}, Bad(TypeError, "not supported")),
    ({"a": math.nan}, Bad(TypeError, "NaN or infinite")),
    ({"a": [1, -math.inf]}, Bad(TypeError, "NaN or infinite")),
    ({"a": b"x"}, Bad(TypeError, "bytes")),
    ({"a": nested_dict(1000)}, Bad(TypeError, "nested deeper than 200")),
]


@pytest.mark.parametrize(("context", "bad"), BAD_CONTEXTS, ids=short_id)
def test_bad_contexts(repo_root: Path, run: Any, context: Any, bad: Bad) -> None:
    raises(bad, lambda: run.track(1.0, name="m", context=context))
    raises(bad, lambda: run.track(1.0, name="m", context=context))  # also once "m" is cached
    raises(bad, lambda: run.track(aim.Text("t"), name="texts", context=context))
    assert_healthy(repo_root, run)


ODD_CONTEXTS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"": 1}, {"": 1}),
    ({"a\x00b": "v\x00"}, {"a\x00b": "v\x00"}),
    ({"ключ": "值 ✓"}, {"ключ": "值 ✓"}),
    ({"k" * HUGE: "v" * HUGE}, {"k" * HUGE: "v" * HUGE}),
    ({"a": (1, 2)}, {"a": [1, 2]}),
    ({"a": None}, {"a": None}),
    ({"a": [1, {"b": 2}]}, {"a": [1, {"b": 2}]}),
    ({"a": 2**70}, {"a": 2**70}),
    ({"a": nested_dict(50)}, {"a": nested_dict(50)}),
    ({"../../x": "/etc/passwd"}, {"../../x": "/etc/passwd"}),
]


@pytest.mark.parametrize(("context", "stored"), ODD_CONTEXTS, ids=short_id)
def test_odd_contexts_round_trip(
    repo_root: Path, run: Any, context: dict[str, Any], stored: dict[str, Any]
) -> None:
    run.track(4.0, name="ctx", step=1, context=context)
    run.track(5.0, name="ctx", context=context)  # the cached fast path lands in the same place
    assert_healthy(repo_root, run)
    assert read_metric(repo_root, run.hash, "ctx", stored) == [(1, 4.0), (2, 5.0)]


def test_contexts_equal_in_python_but_not_in_json_stay_apart(repo_root: Path, run: Any) -> None:
    """{"a": 1}, {"a": 1.0} and {"a": True} compare equal in Python but are three sequences;
    the fast path once merged them depending on which was tracked first."""
    for _ in range(2):
        run.track(1.0, name="c", context={"a": 1})
        run.track(2.0, name="c", context={"a": True})
        run.track(3.0, name="c", context={"a": 1.0})
    assert_healthy(repo_root, run)
    for ctx, value in (({"a": 1}, 1.0), ({"a": True}, 2.0), ({"a": 1.0}, 3.0)):
        assert [v for _, v in read_metric(repo_root, run.hash, "c", ctx)] == [value, value]


def test_dict_tracking_and_kind_mismatch(repo_root: Path, run: Any) -> None:
    run.track({}, step=3)  # nothing to track: documented no-op
    with pytest.raises(ValueError, match="name must be None"):
        run.track({"a": 1.0}, name="x")
    with pytest.raises(ValueError, match="non-empty str name"):
        run.track({1: 2.0})
    # documented: keys are tracked in order; the first bad one raises, earlier ones stay
    with pytest.raises(ValueError, match="neither python number"):
        run.track({"good": 1.0, "bad": "x"}, step=0)
    with pytest.raises(ValueError, match="Incompatible data types"):
        run.track(aim.Text("t"), name="m")
    with pytest.raises(aim.UnsupportedValueError, match="mixes kinds"):
        run.track([aim.Text("a"), 1.0], name="mixed")
    assert_healthy(repo_root, run)
    assert read_metric(repo_root, run.hash, "good") == [(0, 1.0)]
    assert ("bad", "{}") not in sequences(repo_root, run.hash)


# -- objects -----------------------------------------------------------------------------------

OBJECT_CASES: list[tuple[str, Callable[[], Any], Bad]] = [
    ("Text int", lambda: aim.Text(123), Bad(TypeError, "Text takes a str, not int")),
    ("Text None", lambda: aim.Text(None), Bad(TypeError, "Text takes a str")),
    ("Text bytes", lambda: aim.Text(b"x"), Bad(TypeError, "Text takes a str, not bytes")),
    ("Image int", lambda: aim.Image(123), Bad(TypeError, "Image cannot be made from int")),
    (
        "Image missing file",
        lambda: aim.Image("no/such.png"),
        Bad(FileNotFoundError, "no such file"),
    ),
    ("Image empty", lambda: aim.Image(np.zeros((0, 0))), Bad(ValueError, "holds no pixels")),
    ("Image str dtype", lambda: aim.Image(np.array([["a"]])), Bad(TypeError, "not a number type")),
    (
        "Image format",
        lambda: aim.Image(np.zeros((2, 2)), format="xyz"),
        Bad(ValueError, "unsupported image format"),
    ),
    (
        "Image quality",
        lambda: aim.Image(np.zeros((2, 2)), quality=101),
        Bad(ValueError, "between 0 and 100"),
    ),
    ("Distribution empty", lambda: aim.Distribution([]), Bad(ValueError, "at least one sample")),
    ("Distribution str", lambda: aim.Distribution("abc"), Bad(TypeError, "not str")),
    ("Distribution None", lambda: aim.Distribution(None), Bad(ValueError, "needs samples")),
    (
        "Distribution bins 0",
        lambda: aim.Distribution([1, 2], bin_count=0),
        Bad(ValueError, "between 1 and 512"),
    ),
    (
        "Distribution bins huge",
        lambda: aim.Distribution([1, 2], bin_count=10**9),
        Bad(ValueError, "between 1 and 512"),
    ),
    ("Audio int", lambda: aim.Audio(123), Bad(TypeError, "Audio cannot be made from int")),
    (
        "Audio missing file",
        lambda: aim.Audio("no/such.wav"),
        Bad(FileNotFoundError, "no such file"),
    ),
    ("Audio rate 0", lambda: aim.Audio(np.zeros(10), rate=0), Bad(ValueError, "positive int")),
]


@pytest.mark.parametrize(
    "make,bad", [c[1:] for c in OBJECT_CASES], ids=[c[0] for c in OBJECT_CASES]
)
def test_bad_object_constructors(repo_root: Path, run: Any, make: Any, bad: Bad) -> None:
    raises(bad, make)
    assert issubclass(bad.error, Exception)
    assert_healthy(repo_root, run)


def test_objects_with_odd_content_round_trip(repo_root: Path, run: Any) -> None:
    big = "é" * (TEN_MB // 2) + "\x00"
    run.track(aim.Text(big), name="big text", step=0)
    run.track(aim.Text("lone \ud800 surrogate"), name="odd text", step=0)  # Text round-trips it
    with pytest.warns(UserWarning, match="non-finite"):
        dist = aim.Distribution([1.0, math.nan, 2.0])  # documented: non-finite samples dropped
    run.track(dist, name="dist")
    run.track(aim.Image(np.full((3, 3), np.nan)), name="nan image")
    run.track([], name="empty list")  # documented: creates nothing to read
    assert_healthy(repo_root, run)
    ro = aim.Run(run.hash, repo=repo_root, read_only=True)
    assert ro.get_text_sequence("big text") is not None
    assert ro.get_distribution_sequence("dist") is not None
    raw = raw_points(repo_root, run.hash)
    assert raw[("big text", "{}")][0]["payload"] == big.encode()
    assert raw[("odd text", "{}")][0]["payload"] == "lone \ud800 surrogate".encode(
        "utf-8", "surrogatepass"
    )


# -- Repo(...) ---------------------------------------------------------------------------------

REPO_CASES: list[tuple[str, Callable[[Path], Any], Bad | None]] = [
    ("int path", lambda root: aim.Repo(123), Bad(TypeError, "PathLike")),
    ("NUL path", lambda root: aim.Repo("a\x00b"), Bad(aim.RepoNotFoundError, "Cannot find")),
    (
        "missing",
        lambda root: aim.Repo(str(root / "nowhere")),
        Bad(aim.RepoNotFoundError, "Cannot find"),
    ),
    ("get_run traversal", lambda root: aim.Repo(str(root)).get_run("../../etc/passwd"), None),
    ("get_run int", lambda root: aim.Repo(str(root)).get_run(123), None),
    ("get_run NUL", lambda root: aim.Repo(str(root)).get_run("0" * 23 + "\x00"), None),
    ("get_run unknown", lambda root: aim.Repo(str(root)).get_run("0" * 24), None),
    ("delete traversal", lambda root: aim.Repo(str(root)).delete_run("../" * 8), None),
]


@pytest.mark.parametrize("call,bad", [c[1:] for c in REPO_CASES], ids=[c[0] for c in REPO_CASES])
def test_repo_entry_points(repo_root: Path, run: Any, call: Any, bad: Bad | None) -> None:
    if bad is None:
        assert call(repo_root) in (None, False)  # documented: "no such run"
    else:
        raises(bad, lambda: call(repo_root))
    assert not (repo_root / "nowhere").exists()
    assert_healthy(repo_root, run)


def corpus_size() -> dict[str, int]:
    """How many inputs this file feeds to the entry points (for tools/fault_report.py)."""
    return {
        "run arguments": len(BAD_HASHES) + len(RUN_ARG_CASES) + len(EXPERIMENT_CASES) + 2,
        "properties and tags": len(PROPERTY_CASES) + 5,
        "params": len(BAD_PARAM_KEYS) + len(BAD_PARAM_VALUES) + len(ODD_PARAMS) + 4,
        "track values": len(NOT_NUMBERS) + len(ODD_VALUES) + 7,
        "names": len(BAD_NAMES) + len(ODD_NAMES) + 4,
        "steps and epochs": len(BAD_STEPS) * 2 + len(BAD_EPOCHS) + 4 + 6,
        "contexts": len(BAD_CONTEXTS) * 3 + len(ODD_CONTEXTS) * 2 + 6,
        "objects": len(OBJECT_CASES) + 5,
        "repo": len(REPO_CASES),
    }
