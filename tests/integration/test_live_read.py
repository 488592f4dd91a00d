"""Reading a run while another process writes it: active flag, flushed points, torn tails."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import aim_parquet as aim
from tests.conftest import PYTHON, python_env

WRITER = """
import sys, time
import aim_parquet as aim
run = aim.Run(repo=sys.argv[1], system_tracking_interval=None, capture_terminal_logs=False)
run["hparams"] = {"lr": 0.1}
for step in range(50):
    run.track(float(step), name="loss", step=step, context={"subset": "train"})
run.flush()
print(run.hash, flush=True)
sys.stdin.readline()  # the test reads the first 50 points, then lets us go on
for step in range(50, 150):
    run.track(float(step), name="loss", step=step, context={"subset": "train"})
run.track(1.0, name="late_metric")
print("tracked", flush=True)  # not flushed by us: the background flusher writes it within ~1 s
while True:
    time.sleep(0.05)
"""

DEADLINE_S = 20.0


@pytest.fixture
def writer(repo_root: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = subprocess.Popen(
        [PYTHON, "-c", WRITER, str(repo_root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=python_env(),
    )
    try:
        assert proc.stdout is not None
        run_hash = proc.stdout.readline().strip()
        assert len(run_hash) == 24, f"writer failed to start (got {run_hash!r})"
        yield proc, run_hash
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()


def poll(check: Any) -> Any:
    """Call `check` until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.02)


def test_reader_sees_live_run_and_flushed_points(
    repo_root: Path, writer: tuple[subprocess.Popen[str], str]
) -> None:
    proc, run_hash = writer
    repo = aim.Repo(repo_root)
    colls = list(repo.query_runs("run.active == True and run.hparams.lr == 0.1").iter_runs())
    assert [c.run.hash for c in colls] == [run_hash]
    assert repo.list_active_runs() == [run_hash]
    metric = next(iter(repo.query_metrics("metric.name == 'loss' and run.active")))
    steps, values = metric.values.sparse_numpy()
    assert steps.tolist() == list(range(50)) and values.tolist() == [float(s) for s in range(50)]

    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "tracked"

    def all_points() -> bool:
        live = repo.get_run(run_hash)
        loss = live.get_metric("loss", {"subset": "train"})
        return live.active and loss.values.indices_list() == list(range(150))

    assert poll(all_points)
    assert poll(lambda: [m.name for m in repo.query_metrics("metric.name == 'late_metric'")])
    proc.terminate()
    proc.wait(timeout=10)
    after = repo.get_run(run_hash)
    assert not after.active  # a killed writer leaves no active run behind
    assert after.get_metric("loss", {"subset": "train"}).values.last() == (149, 149.0)


def test_torn_segment_tail_is_skipped(repo_root: Path, make_run: Any) -> None:
    run = make_run()
    for step in range(3):
        run.track(float(step), name="m", step=step)
    run.close()
    seq_dirs = list((repo_root / ".aim" / "runs" / run.hash / "seqs").iterdir())
    segment = sorted(seq_dirs[0].glob("*.arrows"))[-1]
    batch = pa.record_batch(
        [pa.array([3], pa.int64()), pa.array([3.0]), pa.array([None], pa.int64()), pa.array([0.0])],
        names=["step", "value", "epoch", "timestamp"],
    )
    data = batch.serialize().to_pybytes()
    with open(segment, "ab") as f:
        f.write(data[: len(data) // 2])  # a writer killed mid-append
    metric = aim.Repo(repo_root).get_run(run.hash).get_metric("m")
    assert metric.values.sparse_list() == ([0, 1, 2], [0.0, 1.0, 2.0])
