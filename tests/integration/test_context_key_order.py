"""Contexts that are equal dicts in another key order ({"b": 1, "a": 2} and {"a": 2, "b": 1})
are one context to `==` but not to `str()`: a query that reads the order gets, for each
sequence, the verdict of its own context as the run stored it, whether the run is decided from
the index's catalogue columns or record by record with the sequence part's verdicts shared
between runs (`QueryPlan.matching_sequences`' memo), through iteration and the frames."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.query.planner import plan_query
from aim_parquet.query.views import RunView
from aim_parquet.storage.index.run_index import RunIndex

QUIET: dict[str, Any] = {
    "system_tracking_interval": None,
    "capture_terminal_logs": False,
    "log_system_params": False,
}
BA, AB = {"b": 1, "a": 2}, {"a": 2, "b": 1}


def _repo(root: Path, plain: bool) -> dict[str, str]:
    """Runs by name, oldest first; with `plain` False each run also has an int metric, so its
    catalogue is not in the columns and the runs are matched one by one."""
    hashes = {}
    for name, context in [("ab", AB), ("ba", BA), ("ab again", AB)]:
        run = aim.Run(repo=str(root), **QUIET)
        run.name = name
        run.track(0.5, name="loss", step=0, context=context)
        if not plain:
            run.track(1, name="epoch", step=0)
        hashes[name] = run.hash
        run.close()
    # resumed: the same context in the other order is the same sequence (stored order kept),
    # and a new sequence keeps the order it was first tracked in
    run = aim.Run(run_hash=hashes["ba"], repo=str(root), **QUIET)
    run.track(0.25, name="loss", step=1, context=AB)
    run.track(0.25, name="l\u00f4ss", step=1, context=AB)
    run.archived = True
    run.close()
    return hashes


def _interpreted(root: Path, text: str) -> list[tuple[str, str, str]]:
    """(run hash, name, context JSON) of each match, the interpreter alone on each run's
    JSON catalogue, newest first, nothing shared between runs."""
    layout = RepoLayout(root)
    plan = plan_query(text, "metric")
    out = []
    for stored in RunIndex(layout).refresh().newest_first:
        record = stored.without_columns()
        view = RunView(record, layout)
        if plan.matches_run(view):
            for entry in plan.matching_sequences(view, record.catalogue()):
                out.append((record.hash, entry.name, json.dumps(entry.context)))
    return out


@pytest.mark.parametrize("plain", [True, False], ids=["columns", "per-run"])
@pytest.mark.parametrize("shown", [BA, AB], ids=["ba", "ab"])
@pytest.mark.parametrize(
    "run_part", ["", " and run.archived", " and run.archived in (True, False)"]
)
def test_str_of_a_context_reads_its_stored_key_order(
    tmp_path: Path, plain: bool, shown: dict[str, int], run_part: str
) -> None:
    hashes = _repo(tmp_path, plain)
    query = f"str(metric.context) == {str(shown)!r}{run_part}"
    expected = _interpreted(tmp_path, query)
    stored = [
        ("ab", "loss", AB),
        ("ba", "loss", BA),
        ("ba", "l\u00f4ss", AB),
        ("ab again", "loss", AB),
    ]
    runs = {"": {"ab", "ab again"}, " and run.archived": {"ba"}}.get(run_part, set(hashes))
    assert {(h, n) for h, n, _ in expected} == {
        (hashes[run], name) for run, name, context in stored
        if run in runs and list(context) == list(shown)
    }  # fmt: skip
    repo = aim.Repo(str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = [
            (m.run.hash, m.name, json.dumps(dict(m.context)))
            for m in repo.query_metrics(query).iter()
        ]
        frame = repo.query_metrics(query).dataframe(only_last=True)
    assert got == expected, query
    rows = [] if frame is None else frame[["run.hash", "metric.name"]].values.tolist()
    assert sorted(map(tuple, rows)) == sorted((h, n) for h, n, _ in expected), query


TWINS = [
    ({"x": 0.0}, {"x": -0.0}),
    ({"n": {"a": 1, "b": 2}}, {"n": {"b": 2, "a": 1}}),
    ({"l": [{"a": 1, "b": 2}]}, {"l": [{"b": 2, "a": 1}]}),
]


@pytest.mark.parametrize("twins", TWINS, ids=["minus zero", "nested order", "in a list"])
@pytest.mark.parametrize("which", [0, 1])
def test_str_of_equal_contexts_with_other_texts(
    tmp_path: Path, twins: tuple[dict[str, Any], ...], which: int
) -> None:
    """Equal dicts with other texts (`-0.0`, a nested dict's key order): each run matched one
    by one (an int metric keeps its catalogue out of the columns) gets its own verdict."""
    for context in twins:
        with aim.Run(repo=str(tmp_path), **QUIET) as run:
            run.track(0.5, name="loss", step=0, context=context)
            run.track(1, name="epoch", step=0)
    query = f"str(metric.context) == {str(twins[which])!r}"
    expected = _interpreted(tmp_path, query)
    assert [context for _, _, context in expected] == [json.dumps(twins[which])]
    got = aim.Repo(str(tmp_path)).query_metrics(query).iter()
    assert [(m.run.hash, m.name, json.dumps(dict(m.context))) for m in got] == expected
