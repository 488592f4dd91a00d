"""The vectorised run filter (`query.prefilter`) never changes a result: over real repositories
(runs written by the SDK with params of mixed types, missing keys, None, bools next to ints,
nested dicts, NaN and inf, lists, strings; archived runs; several experiments), a random
predicate from a grammar gives the same runs, in the same order, through `execute_plan` (mask
first, the interpreter on the survivors) as the interpreter alone on every run; and the mask
never rejects a run the interpreter accepts."""

from __future__ import annotations

import datetime as dt
import json
import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aim_parquet as aim
from aim_parquet.errors import CorruptFileError, QueryError
from aim_parquet.format.paths import RepoLayout
from aim_parquet.query.executor import iter_matches
from aim_parquet.query.planner import QueryPlan, plan_query
from aim_parquet.query.prefilter import run_mask
from aim_parquet.query.views import RunView
from aim_parquet.storage.index import param_columns
from aim_parquet.storage.index.run_index import RunIndex

QUIET: dict[str, Any] = {
    "system_tracking_interval": None,
    "capture_terminal_logs": False,
    "log_system_params": False,
}
SETTINGS = settings(
    max_examples=400,
    deadline=dt.timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

SCALARS: list[Any] = [
    0, 1, -1, 2, 10**20, 0.0, -0.0, 0.5, 0.0005, 1e-4, math.nan, math.inf, -math.inf,
    True, False, None, "", "a", "b", "exp-1", "adam",
]  # fmt: skip


def _value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth < 2 and roll < 0.12:
        return {k: _value(rng, depth + 1) for k in rng.sample(["x", "lr", "y"], rng.randint(0, 2))}
    if roll < 0.2:
        return [rng.choice([1, "a", 2.5, True, None]) for _ in range(rng.randint(0, 3))]
    return rng.choice(SCALARS)


def _write_repo(root: Path, seed: int, runs: int) -> None:
    rng = random.Random(seed)
    for _ in range(runs):
        run = aim.Run(repo=str(root), experiment=rng.choice(["exp-1", "exp-2", "default"]), **QUIET)
        hparams = {
            k: _value(rng) for k in ["lr", "opt", "batch", "flag", "sub"] if rng.random() < 0.8
        }
        if rng.random() < 0.9:
            run["hparams"] = hparams
        for key in ["lr", "batch", "name2"]:
            if rng.random() < 0.4:
                run[key] = _value(rng)
        if rng.random() < 0.3:
            run.name = rng.choice(["a", "b", "run-x"])
        if rng.random() < 0.3:
            run.description = rng.choice(["", "d", "desc"])
        if rng.random() < 0.3:
            run.add_tag(rng.choice(["a", "b"]))
        if rng.random() < 0.2:
            run.archived = True
        run.close()


@pytest.fixture(scope="module", params=[1, 2])
def repo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp(f"prefilter-{request.param}")
    _write_repo(root, request.param, 28)
    return root


PATHS = [
    "run.hparams.lr", "run.hparams.opt", "run.hparams.batch", "run.hparams.flag",
    "run.hparams.sub", "run.hparams.sub.x", "run.hparams.sub.lr", "run.hparams.missing",
    'run["hparams"]["lr"]', 'run["hparams", "lr"]', 'run["hparams"].sub["x"]', "run.lr",
    "run.batch", "run.name2", "run.missing.deep", "run.experiment", "run.archived", "run.name",
    "run.description", "run.hash", "run.tags", "run.creation_time", "run.end_time",
    "run.hparams.lr.real", "run.hparams.opt[0]", "run.hparams.opt[1:]", 'run["lr"]',
    "run[1]", "run.active", "run.duration",
]  # fmt: skip
CONSTANTS = [
    "0", "1", "-1", "2", "10**20", "0.0", "-0.0", "0.5", "0.0005", "True", "False", "None",
    "''", "'a'", "'exp-1'", "'exp-2'", "'default'", "[1, 'a']", "(1, 2)", "['exp-1', 'default']",
    "float('nan')", "float('inf')", "-float('inf')", "{'x': 1}", "'a' * 3",
]  # fmt: skip
OPS = ["==", "!=", "<", "<=", ">", ">=", "in", "not in", "is", "is not"]
OTHER = [  # leaves the columns never decide
    "run.name.startswith('a')", "len(run.tags) > 0", "run.hparams.lr * 2 > 0.001",
    "0 < run.hparams.lr < 1", "run.hparams.lr == run.lr", "run.metrics['loss'] is None",
    "str(run.hparams.lr) == '0.5'",
]  # fmt: skip


def _leaf() -> st.SearchStrategy[str]:
    path, const, op = st.sampled_from(PATHS), st.sampled_from(CONSTANTS), st.sampled_from(OPS)
    compare = st.tuples(path, op, const).map(lambda t: f"{t[0]} {t[1]} {t[2]}")
    flipped = st.tuples(const, op, path).map(lambda t: f"{t[0]} {t[1]} {t[2]}")
    return st.one_of(compare, compare, flipped, path, st.sampled_from(OTHER))


PREDICATES = st.recursive(
    _leaf(),
    lambda inner: st.one_of(
        st.tuples(inner, inner).map(lambda t: f"({t[0]}) and ({t[1]})"),
        st.tuples(inner, inner).map(lambda t: f"({t[0]}) or ({t[1]})"),
        inner.map(lambda t: f"not ({t})"),
    ),
    max_leaves=5,
)


def _interpreted(layout: RepoLayout, index: RunIndex, plan: QueryPlan) -> Iterator[str]:
    """The interpreter alone, on every run newest first."""
    for record in index.refresh().newest_first:
        if plan.matches_run(RunView(record, layout)):
            yield record.hash


def _outcome(fn: Any) -> Any:
    try:
        return list(fn())
    except QueryError as exc:
        return ("QueryError", str(exc))


def _check(root: Path, text: str) -> None:
    try:
        plan = plan_query(text)
    except (QueryError, SyntaxError):
        return
    layout = RepoLayout(root)
    index = RunIndex.shared(layout)
    snapshot = index.refresh()
    expected = _outcome(lambda: _interpreted(layout, index, plan))
    got = _outcome(lambda: (m.record.hash for m in iter_matches(layout, index, plan)))
    assert got == expected, text
    mask = run_mask(plan.run_filter, snapshot)
    if mask is not None and isinstance(expected, list):
        kept = {r.hash for r, keep in zip(snapshot.newest_first, mask, strict=True) if keep}
        assert set(expected) <= kept, text
    ordered = snapshot.newest_first
    if len(ordered) > 3 and isinstance(expected, list):  # an offset: the runs after it
        offset = ordered[2].hash
        after = {r.hash for r in ordered[3:]}
        tail = [h for h in expected if h in after]
        assert [m.record.hash for m in iter_matches(layout, index, plan, offset=offset)] == tail


@SETTINGS
@given(text=PREDICATES)
def test_prefilter_matches_the_interpreter(repo: Path, text: str) -> None:
    _check(repo, text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "run.archived",
        "run.archived == True or run.hparams.lr < 0.001",
        "run.hparams.lr is None",
        "run.hparams.lr is not None and run.experiment in ['exp-1', 'exp-2']",
        "run.hparams.lr != run.hparams.lr",  # NaN, through the interpreter
        "run.hparams.lr > float('inf') or run.hparams.lr == float('nan')",
        "not run.hparams.flag",
        "run.hparams.flag == 1",  # True == 1 but True is not 1
        "run.hparams.flag is True",
        "'a' in run.tags",
        "run.hparams.opt == [1, 'a']",
        "run.active and run.experiment == 'exp-1'",
        "run.experiment == 'exp-1' and run.active",
        "run.hparams.lr < 'a'",  # not orderable: False, not an error
        "run.hparams.sub.x.y == 1",  # an error on a number: no match
        "run.hparams.opt[0] == 1 or run.experiment == 'exp-2'",
        "run.created_at > datetime(2000, 1, 1) and run.experiment == 'exp-2'",
    ],
)
def test_prefilter_examples(repo: Path, text: str) -> None:
    _check(repo, text)


def test_a_limit_error_still_raises(repo: Path) -> None:
    """A rejected run's conjunct is never evaluated, as with the interpreter's `and`; but an
    error of the limits in a run the mask cannot decide still raises."""
    text = "run.experiment == 'exp-1' and len(run.name * 10**9) > 0"
    _check(repo, text)
    plan = plan_query(text)
    layout = RepoLayout(repo)
    with pytest.raises(QueryError):
        list(iter_matches(layout, RunIndex.shared(layout), plan))


def test_the_mask_prunes_and_is_cached(repo: Path) -> None:
    layout = RepoLayout(repo)
    snapshot = RunIndex.shared(layout).refresh()
    plan = plan_query("run.experiment == 'exp-1' and run.hparams.lr < 1")
    mask = run_mask(plan.run_filter, snapshot)
    assert mask is not None and not mask.all()
    assert run_mask(plan.run_filter, snapshot) is mask
    assert run_mask(plan_query("run.name.startswith('a')").run_filter, snapshot) is not None
    everything = plan_query("run.archived or not run.archived")
    assert run_mask(everything.run_filter, snapshot) is None


def test_a_damaged_index_entry_is_left_to_the_interpreter(tmp_path: Path) -> None:
    """A run whose params in the index file do not decode: the columns cannot tell its value,
    so the interpreter decides it, exactly as without the mask."""

    root = tmp_path / "repo"
    _write_repo(root, 3, 6)
    layout = RepoLayout(root)
    RunIndex(layout).refresh()  # the index file written
    table = pa.ipc.open_file(pa.BufferReader(layout.index_file.read_bytes())).read_all()
    # a run queries see (an archived one is left out by every query, masked or not)
    row = next(i for i, a in enumerate(table.column("archived").to_pylist()) if not a)
    damaged = table.column("hash")[row].as_py()
    damaged_file = _with_params(
        table, row, {"hparams": {"lr": {"$aim_parquet": "float", "v": "not a number"}}}
    )
    for text in ["run.hparams.lr < 1", "run.experiment != 'nothing' and run.hparams.lr is None"]:
        # damaged again each time: a query that met the entry reread the sidecar, and a later
        # refresh may have written the repaired entry back
        layout.index_file.write_bytes(damaged_file)
        snapshot = RunIndex(layout).refresh()
        with pytest.raises(CorruptFileError):
            _ = snapshot.records[damaged].meta.params  # the entry really is damaged
        mask = run_mask(plan_query(text).run_filter, snapshot)
        assert mask is not None
        kept = {r.hash for r, k in zip(snapshot.newest_first, mask, strict=True) if k}
        assert damaged in kept  # never ruled out by the columns
        _check_fresh(root, text)


def _with_params(table: pa.Table, row: int, params: Any) -> bytes:
    """The bytes of an index file whose run at `row` has stored params `params`, its param
    columns made as the writer makes them (`storage.index.param_columns`)."""
    texts = table.column("params").to_pylist()
    texts[row] = json.dumps(params)
    table = table.set_column(
        table.schema.get_field_index("params"), "params", pa.array(texts, pa.string())
    )
    decoded = [json.loads(t) for t in texts]
    for at, name in enumerate(table.schema.names):
        path = param_columns.parse_column_name(name)
        if path is None:
            continue
        kind = param_columns.python_kind(table.schema.field(name).type)
        values, statuses = param_columns.param_arrays(decoded, path, kind)
        table = table.set_column(at, name, values).set_column(
            at + 1, table.schema.names[at + 1], statuses
        )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _check_fresh(root: Path, text: str) -> None:
    """`_check` with new `RunIndex`es (the index file read again) on each side."""
    layout = RepoLayout(root)
    plan = plan_query(text)
    index = RunIndex(layout)
    expected = _outcome(lambda: _interpreted(layout, index, plan))
    other = RunIndex(layout)
    got = _outcome(lambda: (m.record.hash for m in iter_matches(layout, other, plan)))
    assert got == expected, text
