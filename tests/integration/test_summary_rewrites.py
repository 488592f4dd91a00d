"""Stored summaries follow last write wins: a step written again (an explicit re-track, a run
resumed from a checkpoint after a crash) replaces its point, and `count`, `min` and `max` describe
the visible points only, wherever they are read: `Sequence.info`, `metric.min`/`max`/`count` in
queries (run index), the run-level frame, the sidecar after close, and all of them again after
compaction. The reference is computed here from the points as written (a dict, step -> value).
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage import compact_run
from tests.conftest import PYTHON, python_env
from tests.summary_reference import reference, stats

QUIET: dict[str, Any] = {"system_tracking_interval": None, "capture_terminal_logs": False}


def check_readers(repo: Path, run_hash: str, name: str, want: dict[str, Any]) -> None:
    """Every reader of the summary agrees with `want` (a fresh Repo each time: no cache)."""
    r = aim.Repo(str(repo))
    (seq,) = [s for s in r.get_run(run_hash).metrics() if s.name == name]
    assert stats(seq.info) == want
    lo, hi, n = want["min"], want["max"], want["count"]
    q = f"metric.name == '{name}'"
    assert [s.name for s in r.query_metrics(f"{q} and metric.count == {n}")] == [name]
    assert [s.name for s in r.query_metrics(f"{q} and metric.min == {lo!r}")] == [name]
    assert [s.name for s in r.query_metrics(f"{q} and metric.max == {hi!r}")] == [name]
    assert list(r.query_metrics(f"{q} and (metric.max > {hi!r} or metric.min < {lo!r})")) == []
    frame = r.query_runs("").dataframe(metrics=[name], include_params=False)
    assert frame is not None
    row = frame.set_index("hash").loc[run_hash]
    assert (row[f"{name}.min"], row[f"{name}.max"]) == (lo, hi)
    assert (row[f"{name}.last"], row[f"{name}.last_step"]) == (want["last"], want["last_step"])


def sidecar_entry(repo: Path, run_hash: str, name: str) -> dict[str, Any]:
    data = json.loads((repo / ".aim" / "runs" / run_hash / "run.json").read_text())
    (entry,) = [e for e in data["sequences"] if e["name"] == name]
    return dict(entry)


def test_an_explicit_retrack_replaces_the_point_in_every_summary(tmp_path: Path) -> None:
    run = aim.Run(repo=str(tmp_path), **QUIET)
    visible: dict[int, float] = {}

    def track(value: float, step: int) -> None:
        run.track(value, name="loss", step=step)
        visible[step] = value

    for step in range(20):
        track(float(step), step)
    track(1000.0, 3)  # a spike, in its own flush ...
    run.flush()
    track(-50.0, 25)
    run.flush()
    track(3.0, 3)  # ... then replaced: flushes apart, so no batch sees both
    track(7.5, 25)
    run.flush()
    assert sidecar_entry(tmp_path, run.hash, "loss").get("rewritten") is True
    want = reference(visible)
    assert (want["count"], want["min"], want["max"]) == (21, 0.0, 19.0)
    check_readers(tmp_path, run.hash, "loss", want)  # live: readers recount the marked entry
    run.close()
    entry = sidecar_entry(tmp_path, run.hash, "loss")
    assert "rewritten" not in entry  # close() recounted it
    assert (entry["count"], entry["min"], entry["max"]) == (21, 0.0, 19.0)
    check_readers(tmp_path, run.hash, "loss", want)
    assert compact_run(RepoLayout(tmp_path), run.hash, rewrite_all=True).status == "compacted"
    check_readers(tmp_path, run.hash, "loss", want)


def test_steps_that_only_grow_stay_incremental_and_exact(tmp_path: Path) -> None:
    """The normal case: no mark, no recount; duplicate steps inside one batch are folded by last
    write wins without a recount."""
    run = aim.Run(repo=str(tmp_path), **QUIET)
    for step in range(10):
        run.track(float(step), name="acc", step=step)
    run.track(99.0, name="acc", step=9)  # same flush: replaced inside the batch
    run.track(9.0, name="acc", step=9)
    run.flush()
    entry = sidecar_entry(tmp_path, run.hash, "acc")
    assert "rewritten" not in entry and (entry["count"], entry["max"]) == (10, 9.0)
    run.close()


WRITER = """
import os, sys, time
import aim_parquet as aim
repo, run_hash, first, last, scale = sys.argv[1:6]
run = aim.Run(None if run_hash == "-" else run_hash, repo=repo, system_tracking_interval=None,
              capture_terminal_logs=False)
for step in range(int(first), int(last)):
    value = -7.0 if scale == "1" and step == 60 else step / float(scale)
    run.track(value, name="loss", step=step)
    if step % 10 == 9:
        run.flush()
run.flush()
print(run.hash, flush=True)
if sys.argv[6] == "hang":
    time.sleep(600)
run.close()
"""


def writer(repo: Path, run_hash: str, first: int, last: int, scale: int, end: str) -> str:
    proc = subprocess.Popen(
        [PYTHON, "-c", WRITER, str(repo), run_hash, str(first), str(last), str(scale), end],
        stdout=subprocess.PIPE,
        text=True,
        env=python_env(),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if end == "hang":
        proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=120) in (0, -signal.SIGKILL)
    proc.stdout.close()
    assert len(line) == 24, line
    return line


@pytest.mark.parametrize("compact_between", [False, True])
def test_a_run_resumed_after_sigkill_overwrites_steps(
    tmp_path: Path, compact_between: bool
) -> None:
    # session 1: steps 0..99, value = step (a spike of -7 at step 60), then SIGKILL
    run_hash = writer(tmp_path, "-", 0, 100, 1, "hang")
    visible = {s: (-7.0 if s == 60 else float(s)) for s in range(100)}
    check_readers(tmp_path, run_hash, "loss", reference(visible))  # the dead writer: scanned
    if compact_between:
        assert compact_run(RepoLayout(tmp_path), run_hash, rewrite_all=True).status == "compacted"
    # session 2 resumes from the checkpoint at step 50: steps 50..99 again, value = step / 10
    writer(tmp_path, run_hash, 50, 100, 10, "hang")
    visible.update({s: s / 10 for s in range(50, 100)})
    want = reference(visible)
    assert (want["count"], want["min"], want["max"]) == (100, 0.0, 49.0)
    check_readers(tmp_path, run_hash, "loss", want)  # killed again: scanned, recounted
    # session 3 resumes and closes cleanly, writing nothing new
    writer(tmp_path, run_hash, 0, 0, 1, "close")
    entry = sidecar_entry(tmp_path, run_hash, "loss")
    assert "rewritten" not in entry
    assert (entry["count"], entry["min"], entry["max"]) == (100, 0.0, 49.0)
    check_readers(tmp_path, run_hash, "loss", want)
    assert compact_run(RepoLayout(tmp_path), run_hash, rewrite_all=True).status == "compacted"
    check_readers(tmp_path, run_hash, "loss", want)


def test_a_live_resumed_writer_that_rewrites_is_read_exactly(tmp_path: Path) -> None:
    run_hash = writer(tmp_path, "-", 0, 40, 1, "close")
    run = aim.Run(run_hash, repo=str(tmp_path), **QUIET)
    for step in range(20, 40):
        run.track(-1.0, name="loss", step=step)
    run.flush()
    visible = {s: float(s) for s in range(20)} | {s: -1.0 for s in range(20, 40)}
    want = reference(visible)
    assert sidecar_entry(tmp_path, run_hash, "loss").get("rewritten") is True
    check_readers(tmp_path, run_hash, "loss", want)  # the writer is alive and holds the lock
    run.close()
    assert "rewritten" not in sidecar_entry(tmp_path, run_hash, "loss")
    check_readers(tmp_path, run_hash, "loss", want)
