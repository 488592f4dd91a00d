"""The repo-wide metric frame of a run whose writer has a sequence its sidecar does not list yet
(a live writer's new metric before its next sidecar write): the
query matches that sequence as its `SequenceInfo` (`query.executor.match_run`), and the frame
reads its points from its files like any other."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import aim_parquet as aim

WRITER = textwrap.dedent(
    """
    import os, signal, sys
    import aim_parquet as aim

    run = aim.Run(repo=sys.argv[1], system_tracking_interval=None, capture_terminal_logs=False)
    for step in range(3):
        run.track(step * 0.5, name="loss", step=step)
        run.track(float(step), name="acc", step=step)
    run.flush()
    print(run.hash, flush=True)
    sys.stdin.read()  # live (its lock held) until the test is done
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


@pytest.mark.parametrize("only_last", [False, True])
def test_a_sequence_the_sidecar_does_not_list_yet_is_in_the_frame(
    tmp_path: Path, only_last: bool
) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        _check_frames(tmp_path, proc.stdout.readline().strip() if proc.stdout else "", only_last)
    finally:
        proc.kill()
        proc.communicate(timeout=60)


def _check_frames(tmp_path: Path, run_hash: str, only_last: bool) -> None:
    assert len(run_hash) == 24
    sidecar = tmp_path / ".aim" / "runs" / run_hash / "run.json"
    meta = json.loads(sidecar.read_text())
    listed = [s["name"] for s in meta["sequences"]]
    assert sorted(listed) == ["acc", "loss"]
    # the sidecar one flush behind: 'loss' not listed yet, its points in its files
    meta["sequences"] = [s for s in meta["sequences"] if s["name"] != "loss"]
    sidecar.write_text(json.dumps(meta))
    repo = aim.Repo(str(tmp_path))
    df = repo.query_metrics("metric.name == 'loss'").dataframe(only_last=only_last)
    assert df is not None
    steps, values = (df["step"].tolist(), df["value"].tolist())
    assert (steps, values) == (([2], [1.0]) if only_last else ([0, 1, 2], [0.0, 0.5, 1.0]))
    polars = repo.query_metrics("").to_polars()
    assert polars is not None
    assert sorted(polars["metric.name"].unique().to_list()) == ["acc", "loss"]
