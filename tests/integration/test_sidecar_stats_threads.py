"""The run index's refresh on a cold disk (`storage.index.sidecar_stats`): the stats made by
threads and the sidecars read ahead by threads give exactly the one-by-one answer: the same
runs in the same order, the same damaged runs (a run folder without sidecar, a damaged
sidecar), a file named like a run skipped."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage.index import sidecar_stats
from aim_parquet.storage.index.run_index import RunIndex

QUIET: dict[str, Any] = {"system_tracking_interval": None, "capture_terminal_logs": False}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    for i in range(40):
        with aim.Run(repo=tmp_path, experiment=f"e{i % 3}", **QUIET) as run:
            run["hparams"] = {"lr": i / 100, "seed": i}
            run.track(float(i), name="loss", step=0)
    layout = RepoLayout(tmp_path)
    (layout.index_dir / "closed.jsonl").unlink()  # (the writers' rows: the sidecars are read)
    runs = sorted(layout.runs_dir.iterdir())
    (runs[5] / "run.json").write_text("{damaged")
    (runs[9] / "run.json").unlink()  # a run folder without sidecar, long ago: damaged
    old = time.time() - 3600
    os.utime(runs[9], (old, old))
    (layout.runs_dir / ("f" * 24)).write_text("a file named like a run")
    return tmp_path


def _answer(root: Path) -> tuple[list[str], list[tuple[str, str]]]:
    index = RunIndex(RepoLayout(root))
    index._write = lambda: None  # type: ignore[method-assign]
    snapshot = index.refresh()
    runs = [repr(r.meta) for r in snapshot.records.values()]
    return runs, sorted((d.run_hash, d.reason) for d in snapshot.damaged)


def test_threaded_stats_and_reads_give_the_same_answer(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    want = _answer(repo)
    assert len(want[0]) == 38 and len(want[1]) == 2
    calls = {"stat": 0, "read": 0}
    real_stat, real_read = sidecar_stats._stat_chunk, sidecar_stats._read_chunk

    def stat_chunk(paths: list[str], dir_fd: int) -> Any:
        calls["stat"] += 1
        return real_stat(paths, dir_fd)

    def read_chunk(paths: list[str]) -> None:
        calls["read"] += 1
        real_read(paths)

    monkeypatch.setattr(sidecar_stats, "PROBE", 4)
    monkeypatch.setattr(sidecar_stats, "STAT_CHUNK", 3)
    monkeypatch.setattr(sidecar_stats, "COLD_PROBE_S", -1.0)  # every disk is cold
    monkeypatch.setattr(sidecar_stats, "_stat_chunk", stat_chunk)
    monkeypatch.setattr(sidecar_stats, "_read_chunk", read_chunk)
    assert _answer(repo) == want
    assert calls["stat"] > 5 and calls["read"] > 5  # (the threads' chunks)
