"""A live run's sequence that its sidecar does not list yet (the window between a live writer's
segment write and its next sidecar write; `RunMatch.entries` holds it as an `UncataloguedEntry`,
a catalogue entry whose summary was made from its points).

A metric frame whose points mostly come from the points cache: the one sequence left to read
alone was asked for `.info` (AttributeError, when `entries` held a bare `SequenceInfo`), as was
any such sequence of an `only_last` frame. Both now equal the answer without the cache. Every
reader (frames, iteration, the UI's API, the CLI) sees the sequence's points."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pyarrow.csv as pa_csv
import pytest

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.query.executor import UncataloguedEntry, iter_matches
from aim_parquet.query.planner import plan_query
from aim_parquet.storage.index import points_cache
from aim_parquet.storage.index.run_index import RunIndex
from tests.conftest import PYTHON, python_env
from tests.integration.test_frames_bulk import _reference, _same_table
from tests.integration.test_points_cache import _cached_runs, _no_cache, _writer

QUERY = "metric.name == 'loss'"


@pytest.fixture
def small_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    """A small repository: the frame reads and writes the cache (as one of 256 runs does)."""
    monkeypatch.setattr(points_cache, "MIN_READ_RUNS", 1)
    monkeypatch.setattr(points_cache, "MIN_WRITE_RUNS", 1)


def _closed_runs(root: Path, count: int) -> set[str]:
    hashes = set()
    for i in range(count):
        run = aim.Run(repo=root, system_tracking_interval=None, capture_terminal_logs=False)
        for step in range(5):
            run.track(float(step + i) / 7, name="loss", step=step, epoch=step)
        run.close()
        hashes.add(run.hash)
    return hashes


def _drop_from_sidecar(root: Path, run_hash: str, name: str) -> None:
    """The live run's sidecar as it was before its writer's last sidecar write: without `name`."""
    path = root / ".aim" / "runs" / run_hash / "run.json"
    meta = json.loads(path.read_text())
    meta["sequences"] = [s for s in meta["sequences"] if s["name"] != name]
    tmp = path.with_name("run.json.hx19a")
    tmp.write_text(json.dumps(meta))
    os.replace(tmp, path)


@pytest.mark.parametrize("only_last", [False, True])
def test_a_live_runs_uncatalogued_sequence_next_to_cached_runs(
    tmp_path: Path, small_thresholds: None, only_last: bool
) -> None:
    closed = _closed_runs(tmp_path, 4)
    assert aim.Repo(tmp_path).query_metrics(QUERY).to_arrow() is not None  # writes the cache
    assert _cached_runs(tmp_path) == closed
    with _writer(tmp_path, "live") as live:
        _drop_from_sidecar(tmp_path, live, "loss")
        got = aim.Repo(tmp_path).query_metrics(QUERY).to_arrow(only_last=only_last)
        with _no_cache():
            want = _reference(aim.Repo(tmp_path).query_metrics(QUERY), only_last)
        _same_table(got, want)
        assert got is not None
        assert set(got.column("run.hash").to_pylist()) == {*closed, live}


LIVE_STEPS = list(range(6))  # what `test_points_cache.LIVE_WRITER` tracks as "loss"
LIVE_VALUES = [step / 7 for step in LIVE_STEPS]


def test_every_reader_sees_a_live_runs_uncatalogued_sequence(tmp_path: Path) -> None:
    closed = _closed_runs(tmp_path, 1)
    with _writer(tmp_path, "live") as live:
        _drop_from_sidecar(tmp_path, live, "loss")
        layout = RepoLayout(tmp_path)
        plan = plan_query(QUERY, "metric")
        entries = {m.record.hash: m.entries for m in iter_matches(layout, RunIndex(layout), plan)}
        assert {type(e) for e in entries[live]} == {UncataloguedEntry}
        assert [(e.name, e.info.count) for e in entries[live]] == [("loss", len(LIVE_STEPS))]
        repo = aim.Repo(tmp_path)
        for only_last in (False, True):  # frames
            frame = repo.query_metrics(QUERY).to_arrow(only_last=only_last)
            assert frame is not None
            rows = frame.filter(frame.column("run.hash").to_numpy(zero_copy_only=False) == live)
            want = LIVE_VALUES[-1:] if only_last else LIVE_VALUES
            assert rows.column("value").to_pylist() == pytest.approx(want)
            assert set(frame.column("run.hash").to_pylist()) == {*closed, live}
        seen = {m.run.hash: m.values.sparse_numpy() for m in repo.query_metrics(QUERY)}
        assert set(seen) == {*closed, live}  # iteration
        assert seen[live][0].tolist() == LIVE_STEPS
        assert np.allclose(seen[live][1], LIVE_VALUES)
        assert _ui_series(tmp_path, live) == pytest.approx(LIVE_VALUES)
        out = tmp_path / "loss.csv"
        done = subprocess.run(
            [
                PYTHON,
                "-m",
                "aim_parquet",
                "query",
                QUERY,
                "--repo",
                str(tmp_path),
                "--output",
                str(out),
            ],
            capture_output=True,
            text=True,
            env=python_env(),
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        table = pa_csv.read_csv(out)
        assert set(table.column("run.hash").to_pylist()) == {*closed, live}
        mask = [h == live for h in table.column("run.hash").to_pylist()]
        assert table.filter(mask).column("value").to_pylist() == pytest.approx(LIVE_VALUES)


def _ui_series(root: Path, run_hash: str) -> list[float]:
    """The y values `aim-parquet up` (a real server process) sends for the run's "loss"."""
    pytest.importorskip("starlette")
    pytest.importorskip("uvicorn")
    from tests.ui.conftest import start_server, stop_server
    from tests.ui.test_api import client, series

    server = start_server(root)
    try:
        with client(server) as http:
            header, read = series(http.get("/api/metrics/search", params={"q": QUERY}))
    finally:
        code, err = stop_server(server)
        assert code == 0, err
    [found] = [s for c in header["charts"] for s in c["series"] if s["run"] == run_hash]
    values: list[float] = read(found["y"]).tolist()
    return values
