"""A writer's process start time (`lock_holder.process_start_time`, which tells a live writer
from a reused pid) is read from /proc on Linux, equal to psutil's `create_time`, and a query of a
repository with a live run does not import psutil: a lazy import running in one thread while
another forks left the forked Pool worker waiting forever for it (hx18b)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from aim_parquet.storage.base.lock_holder import process_start_time
from tests.conftest import PYTHON, python_env

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="Linux /proc")

WRITER = """
import sys, time, aim_parquet as aim
run = aim.Run(repo=sys.argv[1], system_tracking_interval=None, capture_terminal_logs=False)
run["lr"] = 0.5
run.track(1.0, name="loss", step=0)
run.flush() if hasattr(run, "flush") else None
print(run.hash, flush=True)
time.sleep(60)
"""

QUERY = """
import sys, aim_parquet as aim
runs = list(aim.Repo(sys.argv[1]).query_runs("run.lr > 0").iter_runs())
metrics = [m.name for m in aim.Repo(sys.argv[1]).query_metrics("metric.name == 'loss'")]
print(len(runs), metrics, "psutil" in sys.modules, [r.run.active for r in runs])
"""


def test_start_times_equal_psutils() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        for pid in (os.getpid(), 1, child.pid):
            mine = process_start_time(pid)
            assert mine is not None
            assert abs(mine - psutil.Process(pid).create_time()) < 0.02
    finally:
        child.kill()
        child.wait()
    assert process_start_time(child.pid) is None  # gone (reaped)


def test_a_query_of_a_live_run_imports_no_psutil(tmp_path: Path) -> None:
    writer = subprocess.Popen(
        [PYTHON, "-c", WRITER, str(tmp_path)], env=python_env(), stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout is not None
        run_hash = writer.stdout.readline().strip()
        assert run_hash
        time.sleep(0.3)
        done = subprocess.run(
            [PYTHON, "-c", QUERY, str(tmp_path)],
            env=python_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.split("\n")[0] == "1 ['loss'] False [True]"
    finally:
        writer.kill()
        writer.wait()
        if writer.stdout is not None:
            writer.stdout.close()
