"""A metric frame whose points mostly come from the points cache, plus a live run's sequence that
its sidecar does not list yet (the window between a live writer's segment write and its next
sidecar write; `RunMatch.entries` then holds that sequence's `SequenceInfo`, not a catalogue
entry): the one sequence left to read alone was asked for `.info` (AttributeError), as was any
such sequence of an `only_last` frame. Both now equal the answer without the cache."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import aim_parquet as aim
from aim_parquet.storage.index import points_cache
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
