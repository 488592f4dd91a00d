"""The run index's cold-disk threads (`storage.index.sidecar_stats`: the stat and read-ahead
pools) block the asynchronous signals as every thread aim_parquet starts does (README,
"Processes, threads and signals"; `system.threads`): a SIGTERM or Ctrl-C is left to the main
thread, which otherwise waits for the pool without running its handler (hx18a)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage.index.run_index import RunIndex
from tests.integration.test_sidecar_stats_threads import ColdDisk

QUIET: dict[str, Any] = {"system_tracking_interval": None, "capture_terminal_logs": False}

pytestmark = pytest.mark.skipif(
    not hasattr(signal, "pthread_sigmask"), reason="no per-thread signal masks"
)


def test_cold_disk_threads_block_the_asynchronous_signals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(20):
        with aim.Run(repo=tmp_path, **QUIET) as run:
            run.track(float(i), name="loss", step=0)
    (RepoLayout(tmp_path).index_dir / "closed.jsonl").unlink()  # (the sidecars are read)
    cold = ColdDisk(monkeypatch, probe=4, stat_chunk=3)
    index = RunIndex(RepoLayout(tmp_path))
    index._write = lambda: None  # type: ignore[method-assign]
    assert len(index.refresh().newest_first) == 20
    cold.assert_signals_left_to_the_main_thread()
