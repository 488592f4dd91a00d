"""The run index's threaded sidecar stats and read-ahead (a cold disk, forced): a query made
while the interpreter shuts down (a thread still working after the main thread returned, or an
`atexit` hook), which concurrent.futures refuses new work ("cannot schedule new futures after
interpreter shutdown"), falls back to the one-by-one stats and reads; and the threads block
the asynchronous signals, as every thread aim_parquet starts does (hx18b)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage.index.run_index import RunIndex
from tests.conftest import PYTHON, python_env
from tests.integration.test_sidecar_stats_threads import ColdDisk

COLD = """
import sys, threading, atexit, time
import aim_parquet as aim
import aim_parquet.storage.index.sidecar_stats as ss
ss.PROBE = 2  # a few runs are 'many'
ss.COLD_PROBE_S = -1.0  # every disk is cold: stats and read-ahead go to threads
repo = sys.argv[1]
def query(who):
    print(who, aim.Repo(repo).query_runs("run.i >= 0").to_arrow().num_rows, flush=True)
if sys.argv[2] == "thread":
    threading.Thread(target=lambda: (time.sleep(0.3), query("thread"))).start()
else:
    atexit.register(query, "atexit")
"""


def _repo(root: Path) -> None:
    for i in range(9):
        with aim.Run(
            repo=str(root), system_tracking_interval=None, capture_terminal_logs=False
        ) as run:
            run["i"] = i
            run.track(float(i), name="loss", step=0)


def test_a_cold_query_during_shutdown_reads_one_by_one(tmp_path: Path) -> None:
    _repo(tmp_path)
    for where in ("thread", "atexit"):
        RepoLayout(tmp_path).index_file.unlink(missing_ok=True)  # every sidecar read again
        done = subprocess.run(
            [PYTHON, "-c", COLD, str(tmp_path), where],
            env=python_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == [where, "9"], done.stderr
        assert done.stderr == ""


def test_the_stat_and_read_ahead_threads_leave_signals_to_the_main_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # README: every thread aim_parquet starts blocks SIGTERM, SIGINT (a signal landing on one
    # is not handled until the main thread wakes)
    _repo(tmp_path)
    cold = ColdDisk(monkeypatch, probe=2)
    RepoLayout(tmp_path).index_file.unlink(missing_ok=True)
    (RepoLayout(tmp_path).index_dir / "closed.jsonl").unlink(missing_ok=True)  # (all read)
    RunIndex(RepoLayout(tmp_path)).refresh()
    cold.assert_signals_left_to_the_main_thread()
