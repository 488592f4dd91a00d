"""Hypothesis round trips at type boundaries: params through the sidecar, metric values and steps
through segments, names and contexts through the catalogue. Every read is done twice: by our
reader and independently (plain `json` on the sidecar bytes, plain pyarrow on the segments).

Decisions asserted here:
- lone surrogates in param strings round-trip (the sidecar stays strict UTF-8: they are written
  as `\\uXXXX` escapes); in sequence names and contexts they are refused with a clear error;
- ints beyond int64 round-trip as params (JSON has no int limit); as metric values they are
  stored as floats (±inf beyond the float range); steps outside [0, 2**63-1] are refused.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout, canonical_context
from aim_parquet.storage import discover_sequences, load_run_meta, read_sequence
from tests.conftest import raw_points

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

FAST = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SLOW = settings(FAST, max_examples=1000)

# every str, lone surrogates included
any_text = st.text(st.characters(exclude_categories=()), max_size=20)
# valid Unicode only (what names and contexts accept)
unicode_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(INT64_MIN, INT64_MAX),
    st.sampled_from([INT64_MIN, INT64_MAX, INT64_MAX + 1, INT64_MIN - 1, 2**200, -(2**200)]),
    st.floats(allow_nan=True, allow_infinity=True),
    any_text,
    st.binary(max_size=20),
)
param_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(any_text, inner, max_size=4),
        st.dictionaries(st.just("$aim_parquet"), inner, min_size=1, max_size=1),  # reserved key
    ),
    max_leaves=20,
)


def expected_param(value: Any) -> Any:
    """What reading a param back must give: tuples become lists, everything else is kept."""
    if isinstance(value, (list, tuple)):
        return [expected_param(v) for v in value]
    if isinstance(value, dict):
        return {k: expected_param(v) for k, v in value.items()}
    return value


def same(a: Any, b: Any) -> bool:
    """Exact equality: NaN equals NaN, 0.0 differs from -0.0, 1 from 1.0 and True."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def is_plain_json(value: Any) -> bool:
    """Values that any JSON reader sees unchanged (no NaN/inf, no bytes, no reserved key)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, bytes):
        return False
    if isinstance(value, (list, tuple)):
        return all(is_plain_json(v) for v in value)
    if isinstance(value, dict):
        return "$aim_parquet" not in value and all(is_plain_json(v) for v in value.values())
    return True


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Any]]:
    repo = tmp_path_factory.mktemp("params")
    run = aim.Run(repo=repo, system_tracking_interval=None, capture_terminal_logs=False)
    yield repo, run
    run.close()


def check_param_round_trip(repo: Path, run: Any, value: Any) -> None:
    run[...] = {"p": value}  # replaces all params: one sidecar write per example
    expected = expected_param(value)
    assert same(run["p"], expected)
    ro = aim.Run(run.hash, repo=repo, read_only=True)  # read from the file
    assert same(ro["p"], expected)
    raw = (repo / ".aim" / "runs" / run.hash / "run.json").read_bytes()
    doc = json.loads(raw.decode("utf-8"))  # strict UTF-8, standard JSON (no NaN tokens)
    if is_plain_json(value):
        assert same(doc["params"]["p"], expected)


@FAST
@given(value=param_values)
def test_params_round_trip(shared_run: tuple[Path, Any], value: Any) -> None:
    check_param_round_trip(*shared_run, value)


@pytest.mark.slow
@SLOW
@given(value=param_values)
def test_params_round_trip_many(shared_run: tuple[Path, Any], value: Any) -> None:
    check_param_round_trip(*shared_run, value)


# -- metrics -----------------------------------------------------------------------------------

steps = st.one_of(
    st.integers(0, INT64_MAX),
    st.sampled_from([0, 1, INT64_MAX - 1, INT64_MAX]),
    st.integers(0, 20),  # small steps repeat, so duplicates are common
)
metric_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(INT64_MIN, INT64_MAX),
    st.sampled_from([2**64, -(2**64), 10**400, -(10**400)]),
)


def as_stored(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


_counter = itertools.count()


def fresh_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / f"ex{next(_counter)}"


def check_metric_round_trip(
    repo: Path, points: list[tuple[int | None, int | float]], *, segment_bytes: int | None = None
) -> None:
    run = aim.Run(repo=repo, system_tracking_interval=None, capture_terminal_logs=False)
    if segment_bytes is not None:
        run._writer.segments.max_segment_bytes = segment_bytes  # test knob: a new segment per flush
    written: list[tuple[int, float]] = []
    next_step = 0
    for step, value in points:
        if step is None and next_step > INT64_MAX:
            with pytest.raises(ValueError, match="largest step"):
                run.track(value, name="m")
            continue
        run.track(value, name="m", step=step)
        actual = next_step if step is None else step
        next_step = max(next_step, actual + 1)
        written.append((actual, as_stored(value)))
        if segment_bytes is not None:
            run.flush()
    run.close()
    # plain pyarrow: every write, in write order
    raw = raw_points(repo, run.hash)[("m", "{}")]
    assert [r["step"] for r in raw] == [s for s, _ in written]
    assert all(same(r["value"], v) for r, (_, v) in zip(raw, written, strict=True))
    # our reader: sorted by step, the last write of a step wins
    last = dict(written)
    layout = RepoLayout(repo)
    info = load_run_meta(layout, run.hash).sequences[0]
    table = read_sequence(layout, run.hash, info)
    assert table.column("step").to_pylist() == sorted(last)
    for step, value in zip(
        table.column("step").to_pylist(), table.column("value").to_pylist(), strict=True
    ):
        assert same(value, last[step])
    assert info.count == len(last)  # visible points: last write wins
    assert info.last_step == max(last) and info.first_step == min(last)


@FAST
@given(points=st.lists(st.tuples(st.none() | steps, metric_values), min_size=1, max_size=30))
def test_metric_values_and_steps_round_trip(
    tmp_path_factory: pytest.TempPathFactory, points: list[tuple[int | None, Any]]
) -> None:
    check_metric_round_trip(fresh_repo(tmp_path_factory), points)


@FAST
@given(points=st.lists(st.tuples(st.integers(0, 4), st.floats(-10, 10)), min_size=2, max_size=12))
def test_last_write_wins_across_many_segments(
    tmp_path_factory: pytest.TempPathFactory, points: list[tuple[int, float]]
) -> None:
    """Regression: segments of one session once sorted by a random token, not by write
    order, so a repeated step could read back an older value."""
    check_metric_round_trip(fresh_repo(tmp_path_factory), list(points), segment_bytes=1)


@pytest.mark.slow
@SLOW
@given(points=st.lists(st.tuples(st.none() | steps, metric_values), min_size=1, max_size=200))
def test_metric_values_and_steps_round_trip_many(
    tmp_path_factory: pytest.TempPathFactory, points: list[tuple[int | None, Any]]
) -> None:
    check_metric_round_trip(fresh_repo(tmp_path_factory), points)


@FAST
@given(
    step=st.one_of(
        st.integers(max_value=-1), st.integers(min_value=INT64_MAX + 1), st.floats(), st.text()
    )
)
def test_steps_outside_int64_or_negative_are_refused(
    shared_run: tuple[Path, Any], step: Any
) -> None:
    _, run = shared_run
    with pytest.raises(ValueError, match="step must be"):
        run.track(1.0, name="refused", step=step)
    assert all(info.name != "refused" for info in run._writer.snapshot().sequences)


# -- names and contexts ------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(INT64_MIN, INT64_MAX),
    st.floats(allow_nan=False, allow_infinity=False),
    unicode_text,
)
contexts = st.dictionaries(
    unicode_text,
    st.recursive(
        json_scalars,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(unicode_text, inner, max_size=3)
        ),
        max_leaves=6,
    ),
    max_size=4,
)
names = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=30)


@FAST
@given(seqs=st.lists(st.tuples(names, contexts), min_size=1, max_size=5))
def test_names_and_contexts_round_trip(
    tmp_path_factory: pytest.TempPathFactory, seqs: list[tuple[str, dict[str, Any]]]
) -> None:
    repo = fresh_repo(tmp_path_factory)
    run = aim.Run(repo=repo, system_tracking_interval=None, capture_terminal_logs=False)
    expected: dict[tuple[str, str], list[float]] = {}
    for i, (name, context) in enumerate(seqs):
        for _ in range(2):  # the second call takes the cached fast path
            run.track(float(i), name=name, context=context)
            expected.setdefault((name, canonical_context(context)), []).append(float(i))
    run.close()
    layout = RepoLayout(repo)
    infos = discover_sequences(layout, run.hash, load_run_meta(layout, run.hash))
    got = {(i.name, canonical_context(i.context)): i for i in infos}
    assert set(got) == set(expected)
    raw = raw_points(repo, run.hash)  # decodes the segment metadata as strict UTF-8
    for key, values in expected.items():
        assert [r["value"] for r in raw[key]] == values
        table = read_sequence(layout, run.hash, got[key])  # auto steps: one row per call
        assert table.column("value").to_pylist() == values


@FAST
@given(
    text=st.builds(
        lambda a, c, b: a + c + b, unicode_text, st.integers(0xD800, 0xDFFF).map(chr), unicode_text
    )
)
def test_lone_surrogates_in_names_and_contexts_are_refused(
    shared_run: tuple[Path, Any], text: str
) -> None:
    _, run = shared_run
    with pytest.raises(ValueError, match="lone surrogate"):
        run.track(1.0, name=text)
    with pytest.raises(aim.UnsupportedValueError, match="lone surrogate"):
        run.track(1.0, name="ok", context={"k": text})


def test_segment_files_open_with_plain_pyarrow_after_round_trips(
    shared_run: tuple[Path, Any],
) -> None:
    repo, run = shared_run
    run.track(1.0, name="final")
    run.flush()
    for seg in (repo / ".aim").rglob("*.arrows"):
        with pa.OSFile(str(seg)) as f:
            table = pa.ipc.open_stream(f).read_all()
        table.validate(full=True)
