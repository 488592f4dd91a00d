"""The run index's catalogue columns (`storage.index.catalogue_columns`, index format 6) never
change an answer: over real repositories (contexts of every plain type, key orders, nested
contexts the columns cannot hold, int metrics, NaN and inf values, resumed, archived, live and
damaged runs), a sequence query decided from the columns (`query.seq_columns`) gives the same
runs, sequences and summaries, in the same order, as the interpreter alone on each run's JSON
catalogue; and the run-level frame built from the columns is the frame built from the JSON."""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aim_parquet as aim
from aim_parquet.errors import QueryError
from aim_parquet.format.paths import RepoLayout
from aim_parquet.query.executor import iter_matches
from aim_parquet.query.planner import plan_query
from aim_parquet.query.seq_columns import sequence_verdicts
from aim_parquet.query.views import RunView
from aim_parquet.storage.index import index_table
from aim_parquet.storage.index.index_table import index_file_problem
from aim_parquet.storage.index.run_index import RunIndex
from aim_parquet.storage.index.run_records import json_text
from aim_parquet.storage.online.catalogue_scan import uncatalogued_sequences

QUIET: dict[str, Any] = {
    "system_tracking_interval": None,
    "capture_terminal_logs": False,
    "log_system_params": False,
}
SETTINGS = settings(
    max_examples=150,
    deadline=dt.timedelta(seconds=10),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
CONTEXTS: list[dict[str, Any]] = [
    {}, {}, {"subset": "train"}, {"subset": "val"}, {"b": 1, "a": 2}, {"a": 2, "b": 1},
    {"x": True}, {"x": 1}, {"x": 1.0}, {"x": None}, {"nested": {"a": 1}}, {"l": [1, 2]},
    {"s": "\u00e9"},
]  # fmt: skip
NAMES = ["loss", "acc", "l\u00f4ss", "lr"]
VALUES = [0.5, 0.25, -0.0, 1e-9, math.nan, math.inf, -math.inf, 3.0]


def _track(run: aim.Run, rng: random.Random, start: int) -> None:
    for _ in range(rng.randint(0, 3)):
        name, context = rng.choice(NAMES), rng.choice(CONTEXTS)
        is_int = name == "lr" and rng.random() < 0.5
        for step in range(start, start + rng.randint(1, 4)):
            value: Any = rng.randint(-3, 3) if is_int else rng.choice(VALUES)
            run.track(value, name=name, step=step, context=context)


def _write_repo(root: Path, seed: int, runs: int) -> list[aim.Run]:
    """The repo's runs; the open runs returned (still live)."""
    rng = random.Random(seed)
    hashes = []
    for _ in range(runs):
        run = aim.Run(repo=str(root), experiment=rng.choice(["e1", "e2"]), **QUIET)
        run["hparams"] = {"lr": rng.choice([0.1, 0.01, 1])}
        _track(run, rng, 0)
        if rng.random() < 0.2:
            run.archived = True
        hashes.append(run.hash)
        run.close()
    for run_hash in rng.sample(hashes, 3):  # resumed: new steps and rewritten ones
        run = aim.Run(run_hash=run_hash, repo=str(root), **QUIET)
        _track(run, rng, rng.randint(0, 3))
        run.close()
    live = aim.Run(repo=str(root), **QUIET)
    live.track(0.5, name="loss", step=0)
    live.track(0.5, name="loss", step=0, context={"subset": "val"})
    live.flush()  # (its catalogue then holds still while the tests read it)
    bad = root / ".aim" / "runs" / hashes[0] / "run.json"  # a damaged run
    bad.write_text("{ not json")
    return [live]


@pytest.fixture(scope="module", params=[1, 2])
def repo(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    root = tmp_path_factory.mktemp(f"catcols-{request.param}")
    live = _write_repo(root, request.param, 24)
    yield root
    for run in live:
        run.close()


SEQ_LEAVES = [
    "metric.name == 'loss'", "metric.name != 'acc'", "metric.name in ['loss', 'lr']",
    "metric.context.subset == 'train'", "metric.context == {}", "metric.context == {'a': 2, 'b': 1}",
    "not metric.context", "metric.context.x == 1", "metric.context.x is True",
    "metric.context.get('x') is None", "metric.dtype == 'int'", "metric.version == 2",
    "metric.name.startswith('l')", "str(metric.context) == \"{'b': 1, 'a': 2}\"",
    "str(metric.context) == \"{'a': 2, 'b': 1}\"", "list(metric.context) == ['b', 'a']",
    "str(metric.context) == \"{'b': 1, 'a': 2}\" and run.archived in (True, False)",
    "metric.last < 0.5", "metric.count > 2", "metric.max == float('inf')",
    "metric.context.nested.a == 1", "metric.run.hparams.lr == 0.1", "metric.nothing == 1",
    "metric.last < 0.5 or metric.run.hparams.lr == 0.1", "metric.first_step == 0",
    "metric.min != metric.min", "metric.last_step >= 2 and metric.name == 'lr'",
    "run.hparams.lr == 0.1", "run.experiment == 'e1'", "run.archived",
]  # fmt: skip
QUERIES = st.recursive(
    st.sampled_from(SEQ_LEAVES),
    lambda inner: st.one_of(
        st.tuples(inner, inner).map(lambda t: f"({t[0]}) and ({t[1]})"),
        st.tuples(inner, inner).map(lambda t: f"({t[0]}) or ({t[1]})"),
        inner.map(lambda t: f"not ({t})"),
    ),
    max_leaves=3,
)


def _summary(info: Any) -> str:
    """The summary fields (`reach` and `rewritten` are bookkeeping a sidecar's entry has and
    the index's leaves out, with or without columns)."""
    data = info.to_json()
    data.pop("reach", None)
    data.pop("rewritten", None)
    return json_text(data)


def _entry(entry: Any) -> tuple[Any, ...]:
    return (entry.seq_id, entry.name, entry.kind, json.dumps(entry.context))


def _interpreted(layout: RepoLayout, index: RunIndex, text: str) -> Iterator[Any]:
    """The interpreter alone, on each run's JSON catalogue, newest first (no memo)."""
    plan = plan_query(text, "metric")
    for stored in index.refresh().newest_first:
        record = stored.without_columns()
        view = RunView(record, layout)
        if not plan.matches_run(view):
            continue
        entries: list[Any] = [*record.catalogue()]
        if record.end_time is None and not record.is_rebuilt:
            entries.extend(uncatalogued_sequences(layout, record.hash, {e.seq_id for e in entries}))
        matched = plan.matching_sequences(view, entries)
        if matched:
            infos = [e.info if hasattr(e, "info") else e for e in matched]
            yield record.hash, [_entry(e) for e in matched], [_summary(i) for i in infos]


def _outcome(fn: Any) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return list(fn())
    except QueryError as exc:
        return ("QueryError", str(exc))


def _check(root: Path, text: str) -> None:
    try:
        plan = plan_query(text, "metric")
    except (QueryError, SyntaxError):
        return
    layout = RepoLayout(root)
    expected = _outcome(lambda: _interpreted(layout, RunIndex(layout), text))

    def got() -> Iterator[Any]:
        for m in iter_matches(layout, RunIndex(layout), plan):
            texts = [_summary(i) for i in m.sequences]
            yield m.record.hash, [_entry(e) for e in m.entries], texts

    assert _outcome(got) == expected, text


@SETTINGS
@given(text=QUERIES)
def test_columns_match_the_interpreter(repo: Path, text: str) -> None:
    _check(repo, text)


@pytest.mark.parametrize("text", SEQ_LEAVES)
def test_each_leaf(repo: Path, text: str) -> None:
    _check(repo, text)


def test_the_columns_decide_plain_runs(repo: Path) -> None:
    """Most runs are plain (their catalogue is in the columns), some are not (nested or list
    contexts, int metrics): both kinds are in the repo the tests use."""
    layout = RepoLayout(repo)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = RunIndex(layout).refresh().table
    plain = table.catalogue.plain
    assert plain.any() and not plain.all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snapshot = RunIndex(layout).refresh()
    decided = sequence_verdicts(plan_query("metric.name == 'loss'", "metric"), snapshot)
    assert decided is not None and decided.decided.any()
    by_summary = sequence_verdicts(plan_query("metric.last < 0.5", "metric"), snapshot)
    assert by_summary is not None and by_summary.decided.any()
    by_run = sequence_verdicts(plan_query("metric.run.hparams.lr == 0.1", "metric"), snapshot)
    if by_run is not None:  # (only the runs without a sequence: the run decides the others)
        lengths = np.diff(np.asarray(by_run.starts))
        rows = snapshot.rows[by_run.decided[: len(snapshot.rows)]]
        assert (lengths[rows] == 0).all()


def _frame_without_columns(root: Path, metrics: list[str], monkeypatch: Any) -> pa.Table:
    real = index_table._make_record
    with monkeypatch.context() as patch:
        patch.setattr(index_table, "_make_record", lambda row, *_: real(row, None, -1))
        patch.setattr("aim_parquet.query.executor.sequence_verdicts", lambda *_: None)
        return aim.Repo(str(root)).query_runs("").to_arrow(metrics=metrics)


@pytest.mark.parametrize("metrics", [["loss"], ["loss", "lr", "l\u00f4ss"], ["acc", "none"]])
def test_run_frame_from_columns_is_the_frame_from_json(
    repo: Path, tmp_path: Path, metrics: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = _frame_without_columns(_copy(repo, tmp_path / "a"), metrics, monkeypatch)
        got = aim.Repo(str(_copy(repo, tmp_path / "b"))).query_runs("").to_arrow(metrics=metrics)
    assert got.schema == reference.schema
    assert got.to_pydict().keys() == reference.to_pydict().keys()
    assert json.dumps(got.to_pylist(), default=repr) == json.dumps(
        reference.to_pylist(), default=repr
    )
    labels = [n for n in got.column_names if n.endswith(".last")]
    assert any("{" in n for n in labels) or "loss" not in metrics  # contexts were labelled


def _copy(root: Path, to: Path) -> Path:
    shutil.copytree(root, to)
    (to / ".aim" / "index" / "runs.arrow").unlink(missing_ok=True)  # built here, fresh
    return to


def test_columns_that_disagree_with_the_json_are_reported(repo: Path, tmp_path: Path) -> None:
    """`verify` (index_file_problem) compares the columns with the JSON catalogue."""
    root = _copy(repo, tmp_path / "c")
    layout = RepoLayout(root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        RunIndex(layout).refresh()
    assert index_file_problem(layout) is None
    table = pa.ipc.open_file(pa.BufferReader(layout.index_file.read_bytes())).read_all()
    plain = table.column("seq_plain").to_pylist()
    lasts = table.column("seq_last").to_pylist()
    row = next(i for i, p in enumerate(plain) if p and lasts[i])
    lasts[row] = [123.0] + lasts[row][1:]
    at = table.schema.get_field_index("seq_last")
    table = table.set_column(at, "seq_last", pa.array(lasts, pa.list_(pa.float64())))
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    layout.index_file.write_bytes(sink.getvalue().to_pybytes())
    problem = index_file_problem(layout)
    assert problem is not None and "disagree" in problem


def test_a_damaged_index_entry_of_a_plain_run(repo: Path, tmp_path: Path) -> None:
    """A plain run whose params in the index file do not parse is read again from its sidecar
    (`IndexSnapshot.records_at`): the columns' verdicts are not used for that record, and the
    answer is the interpreter's."""
    root = _copy(repo, tmp_path / "d")
    layout = RepoLayout(root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        RunIndex(layout).refresh()
    table = pa.ipc.open_file(pa.BufferReader(layout.index_file.read_bytes())).read_all()
    plain = table.column("seq_plain").to_pylist()
    names = table.column("seq_name").to_pylist()
    archived = table.column("archived").to_pylist()
    row = next(i for i, p in enumerate(plain) if p and "loss" in names[i] and not archived[i])
    texts = table.column("params").to_pylist()
    texts[row] = "{not json"  # (its param columns left as they were)
    at = table.schema.get_field_index("params")
    table = table.set_column(at, "params", pa.array(texts, pa.string()))
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    damaged = sink.getvalue().to_pybytes()
    for text in ["metric.name == 'loss'", "metric.last < 0.5", "metric.name == 'nothing'"]:
        plan = plan_query(text, "metric")
        layout.index_file.write_bytes(damaged)  # (damaged again: a query that met it repairs it)
        index = RunIndex(layout)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            snapshot = index.refresh()
            assert snapshot.table.catalogue.plain[row]  # the row is read from the damaged file
            position = int(np.flatnonzero(snapshot.rows == row)[0])
            assert snapshot.records_at([position])[0].catalogue_columns() is None  # reread
            got = [
                (m.record.hash, [_entry(e) for e in m.entries], [_summary(i) for i in m.sequences])
                for m in iter_matches(layout, index, plan)
            ]
        layout.index_file.write_bytes(damaged)
        expected = list(_interpreted(layout, RunIndex(layout), text))
        assert got == expected, text
