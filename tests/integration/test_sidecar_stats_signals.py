"""The run index's cold-disk threads (`storage.index.sidecar_stats`: the stat and read-ahead
pools) block the asynchronous signals as every thread aim_parquet starts does (README,
"Processes, threads and signals"; `system.threads`): a SIGTERM or Ctrl-C is left to the main
thread, which otherwise waits for the pool without running its handler (hx18a)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import pytest

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage.index import sidecar_stats
from aim_parquet.storage.index.run_index import RunIndex

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
    masks: dict[str, list[set[int]]] = {"stat": [], "read": []}
    real_stat, real_read = sidecar_stats._stat_chunk, sidecar_stats._read_chunk

    def seen(kind: str) -> None:
        if threading.current_thread() is not threading.main_thread():
            masks[kind].append(set(signal.pthread_sigmask(signal.SIG_BLOCK, [])))

    def stat_chunk(paths: list[str], dir_fd: int) -> Any:
        seen("stat")
        return real_stat(paths, dir_fd)

    def read_chunk(paths: list[str]) -> None:
        seen("read")
        real_read(paths)

    monkeypatch.setattr(sidecar_stats, "PROBE", 4)
    monkeypatch.setattr(sidecar_stats, "STAT_CHUNK", 3)
    monkeypatch.setattr(sidecar_stats, "COLD_PROBE_S", -1.0)  # every disk is cold
    monkeypatch.setattr(sidecar_stats, "_stat_chunk", stat_chunk)
    monkeypatch.setattr(sidecar_stats, "_read_chunk", read_chunk)
    index = RunIndex(RepoLayout(tmp_path))
    index._write = lambda: None  # type: ignore[method-assign]
    assert len(index.refresh().newest_first) == 20
    assert masks["stat"] and masks["read"]  # (the pools' threads did run)
    for kind, seen_masks in masks.items():
        for mask in seen_masks:
            assert {signal.SIGTERM, signal.SIGINT} <= mask, (kind, mask)
