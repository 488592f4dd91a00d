"""One writer per run across processes; dead holders are taken over at once."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

import aim_parquet as aim
from aim_parquet.storage.base import lock as lock_module
from aim_parquet.storage.base.lock import RunLock, read_holder
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


def test_force_resume_refuses_a_writer_alive_on_this_host(tmp_path: Path) -> None:
    run_hash = _closed_run(tmp_path)
    holder = _hold(tmp_path, run_hash)
    try:
        with pytest.raises(aim.RunLockedError, match=rf"kill {holder.pid}") as info:
            aim.Run(
                run_hash,
                repo=tmp_path,
                force_resume=True,
                system_tracking_interval=None,
                capture_terminal_logs=False,
            )
        assert "force_resume=True does not take a run from a live writer" in str(info.value)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        close_pipes(holder)
    with aim.Run(  # once it is dead, force_resume (or a plain resume) takes it
        run_hash,
        repo=tmp_path,
        force_resume=True,
        system_tracking_interval=None,
        capture_terminal_logs=False,
    ) as run:
        run.track(3.0, name="m")
    assert [p["value"] for p in raw_points(tmp_path, run_hash)[("m", "{}")]] == [1.0, 3.0]


def _identity(host: str, pid: int) -> bytes:
    """What a writer writes into the lock file (start time: only for a live local process)."""
    import psutil

    try:
        start: float | None = psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        start = None
    return json.dumps(
        {"host": host, "pid": pid, "pid_start_time": start, "acquired_at": time.time()}
    ).encode()


DEAD_PID = 2**22 + 4321  # above the default pid_max: no such process


def test_busy_lock_naming_a_dead_process_is_never_unlinked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A descriptor inherited by another process keeps the flock after the named writer died:
    the taker waits SETTLE_S for an identity, then says so, and leaves the file alone."""
    monkeypatch.setattr(lock_module, "SETTLE_S", 0.2)
    path = tmp_path / "lock"
    path.write_bytes(_identity(socket.gethostname(), DEAD_PID))
    inode = path.stat().st_ino
    inherited = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(inherited, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(aim.RunLockedError, match=r"a process other than the writer it names"):
            RunLock(path, "r" * 24).acquire(force=True)
        assert path.stat().st_ino == inode and b'"pid"' in path.read_bytes()
    finally:
        os.close(inherited)
    taker = RunLock(path, "r" * 24)
    taker.acquire()  # the flock is free now: the dead identity is stale
    assert path.stat().st_ino == inode
    holder = read_holder(path)
    assert holder is not None and holder.pid == os.getpid()
    taker.release()
    assert read_holder(path) is None and path.stat().st_ino == inode


def test_taker_waits_for_the_winners_identity(tmp_path: Path) -> None:
    """Between a winner's flock and its identity the file names nobody: the loser polls."""
    path = tmp_path / "lock"
    winner = os.open(path, os.O_RDWR | os.O_CREAT)
    fcntl.flock(winner, fcntl.LOCK_EX | fcntl.LOCK_NB)
    parent = os.getppid()  # a live process on this host that is not us

    def write_identity() -> None:
        time.sleep(0.1)  # the winner is slow to write its identity
        os.pwrite(winner, _identity(socket.gethostname(), parent), 0)

    writer = threading.Thread(target=write_identity)
    writer.start()
    try:
        with pytest.raises(aim.RunLockedError, match=rf"process {parent} on host"):
            RunLock(path, "r" * 24).acquire()
    finally:
        writer.join()
        os.close(winner)


def test_fresh_foreign_holder_is_taken_only_with_force(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Where flock is not coherent across hosts, another host's fresh heartbeat decides."""
    path = tmp_path / "lock"
    path.write_bytes(_identity("another-host", 7))
    with pytest.raises(aim.RunLockedError, match=r"pass force_resume=True if that host is gone"):
        RunLock(path, "r" * 24).acquire()
    taker = RunLock(path, "r" * 24)
    with caplog.at_level(logging.WARNING, logger="aim_parquet"):
        taker.acquire(force=True)
    assert "force_resume: taking over" in caplog.text
    holder = read_holder(path)
    assert holder is not None and holder.pid == os.getpid()
    taker.release()


def test_live_local_holder_is_refused_even_with_force(tmp_path: Path) -> None:
    """A writer alive on this host whose flock was lost (e.g. unlocked by old code in a forked
    child) still writes: nobody takes the run from it."""
    path = tmp_path / "lock"
    path.write_bytes(_identity(socket.gethostname(), os.getppid()))
    with pytest.raises(aim.RunLockedError, match=r"alive on this host"):
        RunLock(path, "r" * 24).acquire(force=True)


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
