"""Runs opened inside multiprocessing workers (Pool, ProcessPoolExecutor, DataLoader workers).

A worker started by fork or forkserver ends with `os._exit` after its task loop, so `atexit`
never runs there: without a hook in multiprocessing's own exit path, a run a worker opened was
never closed, and every point it tracked in its last second (all of them, for a short task) was
lost, with the run left without `end_time`. Each trial runs `child_runs_proc.py` under a time
limit and checks, with plain pyarrow, that every point each worker tracked is in its run exactly
once, that every worker run that tracked anything was closed, and that no process still holds a
run's lock.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import python_env, raw_points, sidecar

PROC = Path(__file__).with_name("child_runs_proc.py")
TIMEOUT_S = 120


def _is_lock_free(root: Path, run_hash: str) -> bool:
    path = root / ".aim" / "runs" / run_hash / "lock"
    if not path.exists():  # a worker terminated between publishing its run and locking it
        return True
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def run_trial(root: Path, kind: str, start: str) -> None:
    """Run one training script whose workers open runs; assert nothing of theirs was lost."""
    proc = subprocess.run(
        [sys.executable, str(PROC), str(root), kind, start],
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "done 40" in proc.stdout
    runs = sorted(p.name for p in (root / ".aim" / "runs").iterdir() if not p.name.startswith("."))
    workers = 0
    for run_hash in runs:
        meta = sidecar(root, run_hash)
        points = raw_points(root, run_hash)
        assert _is_lock_free(root, run_hash), f"{run_hash}: a process still holds its lock"
        if meta["experiment"] == "main":
            assert [r["step"] for r in points[("loss", "{}")]] == list(range(40))
            assert meta["end_time"] is not None
            continue
        tracked_file = root / f"tracked-{run_hash}"
        tracked = int(tracked_file.read_text()) if tracked_file.exists() else 0
        rows = points.get(("w", "{}"), [])
        steps = [r["step"] for r in rows]
        assert len(rows) == tracked, f"worker run {run_hash}: tracked {tracked}, wrote {len(rows)}"
        assert steps == list(range(tracked)), f"worker run {run_hash}: steps {steps}"
        if tracked:
            assert meta["end_time"] is not None, f"worker run {run_hash} was never closed"
            workers += 1
    assert workers >= 2  # two epochs, each with at least one worker that worked


@pytest.mark.parametrize(
    ("kind", "start"),
    [("poolclose", "fork"), ("executor", "fork"), ("pool", "fork"), ("poolclose", "forkserver")],
)
def test_worker_runs_keep_every_point(tmp_path: Path, kind: str, start: str) -> None:
    run_trial(tmp_path, kind, start)


@pytest.mark.slow
@pytest.mark.parametrize("start", ["fork", "forkserver", "spawn"])
@pytest.mark.parametrize("kind", ["pool", "poolclose", "executor"])
@pytest.mark.parametrize("trial", range(3))
def test_worker_runs_keep_every_point_matrix(
    tmp_path: Path, kind: str, start: str, trial: int
) -> None:
    run_trial(tmp_path, kind, start)
