"""One writer per run across processes; dead holders are taken over at once."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

import aim_parquet as aim
from tests.conftest import raw_points
from tests.integration.test_crash import close_pipes, read_hash, start_writer


def _hold(repo: Path, run_hash: str) -> subprocess.Popen[str]:
    proc = start_writer(repo, "hold", run_hash)
    assert read_hash(proc) == run_hash
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def _closed_run(repo: Path) -> str:
    with aim.Run(repo=repo, system_tracking_interval=None, capture_terminal_logs=False) as run:
        run.track(1.0, name="m")
    return run.hash


def test_second_writer_is_refused_within_a_second_naming_the_holder(tmp_path: Path) -> None:
    run_hash = _closed_run(tmp_path)
    holder = _hold(tmp_path, run_hash)
    try:
        started = time.monotonic()
        with pytest.raises(aim.RunLockedError, match=rf"process {holder.pid} on host") as info:
            aim.Run(
                run_hash, repo=tmp_path, system_tracking_interval=None, capture_terminal_logs=False
            )
        assert time.monotonic() - started < 1.0
        assert isinstance(info.value, RuntimeError)
        # readers are never blocked
        ro = aim.Run(run_hash, repo=tmp_path, read_only=True)
        assert ro.active is True
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        close_pipes(holder)


def test_dead_holder_is_taken_over_at_once(tmp_path: Path) -> None:
    run_hash = _closed_run(tmp_path)
    holder = _hold(tmp_path, run_hash)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    close_pipes(holder)
    ro = aim.Run(run_hash, repo=tmp_path, read_only=True)
    assert ro.active is False  # a crashed writer's run is not "in progress" forever
    with aim.Run(
        run_hash, repo=tmp_path, system_tracking_interval=None, capture_terminal_logs=False
    ) as run:
        run.track(2.0, name="m")
    assert [p["value"] for p in raw_points(tmp_path, run_hash)[("m", "{}")]] == [1.0, 2.0]


def test_force_resume_overrides_a_live_holder(tmp_path: Path) -> None:
    run_hash = _closed_run(tmp_path)
    holder = _hold(tmp_path, run_hash)
    try:
        with aim.Run(
            run_hash,
            repo=tmp_path,
            force_resume=True,
            system_tracking_interval=None,
            capture_terminal_logs=False,
        ) as run:
            run.track(3.0, name="m")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        close_pipes(holder)
    assert [p["value"] for p in raw_points(tmp_path, run_hash)[("m", "{}")]] == [1.0, 3.0]


def test_parallel_writer_processes_on_distinct_runs(tmp_path: Path) -> None:
    procs = [start_writer(tmp_path, "new", "-", "20000") for _ in range(4)]
    hashes = [read_hash(p) for p in procs]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read() if p.stderr else ""
        close_pipes(p)
    assert len(set(hashes)) == 4
    for h in hashes:
        steps = [p["step"] for p in raw_points(tmp_path, h)[("m", '{"subset":"train"}')]]
        assert steps == list(range(20000))
