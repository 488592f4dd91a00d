"""The run index's refresh on a cold disk (`storage.index.sidecar_stats`): the stats made by
threads and the sidecars read ahead by threads give exactly the one-by-one answer: the same
runs in the same order, the same damaged runs (a run folder without sidecar, a damaged
sidecar), a file named like a run skipped. `ColdDisk` forces that refresh for the other tests of
the threads (`test_sidecar_stats_signals`, `test_sidecar_stats_at_exit`)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage.index import sidecar_stats
from aim_parquet.storage.index.run_index import RunIndex

QUIET: dict[str, Any] = {"system_tracking_interval": None, "capture_terminal_logs": False}


class ColdDisk:
    """Every disk cold for the run index's refresh: after the first `probe` sidecars, stats and
    reads ahead go to the pools' threads (in chunks of `stat_chunk` when given). `calls` counts
    the chunks of each kind ("stat", "read"); `masks` holds the blocked signals of each chunk a
    thread other than the main one ran."""

    def __init__(
        self, monkeypatch: pytest.MonkeyPatch, *, probe: int, stat_chunk: int | None = None
    ) -> None:
        self.calls = {"stat": 0, "read": 0}
        self.masks: dict[str, list[set[int]]] = {"stat": [], "read": []}
        real_stat, real_read = sidecar_stats._stat_chunk, sidecar_stats._read_chunk

        def stat_chunk_spy(*args: Any, **kwargs: Any) -> Any:
            self._seen("stat")
            return real_stat(*args, **kwargs)

        def read_chunk_spy(*args: Any, **kwargs: Any) -> None:
            self._seen("read")
            real_read(*args, **kwargs)

        monkeypatch.setattr(sidecar_stats, "PROBE", probe)
        if stat_chunk is not None:
            monkeypatch.setattr(sidecar_stats, "STAT_CHUNK", stat_chunk)
        monkeypatch.setattr(sidecar_stats, "COLD_PROBE_S", -1.0)  # every disk is cold
        monkeypatch.setattr(sidecar_stats, "_stat_chunk", stat_chunk_spy)
        monkeypatch.setattr(sidecar_stats, "_read_chunk", read_chunk_spy)

    def _seen(self, kind: str) -> None:
        self.calls[kind] += 1
        on_thread = threading.current_thread() is not threading.main_thread()
        if on_thread and hasattr(signal, "pthread_sigmask"):  # (no signal masks on Windows)
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [])
            self.masks[kind].append({int(s) for s in blocked})

    def assert_signals_left_to_the_main_thread(self) -> None:
        """The pools' threads did run, each blocking SIGTERM and SIGINT (README: every thread
        aim_parquet starts does)."""
        assert self.masks["stat"] and self.masks["read"]  # (the pools' threads did run)
        for kind, seen_masks in self.masks.items():
            for mask in seen_masks:
                assert {int(signal.SIGTERM), int(signal.SIGINT)} <= mask, (kind, mask)


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
    cold = ColdDisk(monkeypatch, probe=4, stat_chunk=3)
    assert _answer(repo) == want
    assert cold.calls["stat"] > 5 and cold.calls["read"] > 5  # (the threads' chunks)
