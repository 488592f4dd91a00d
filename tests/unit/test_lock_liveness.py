"""Lock liveness rules: same host by process check, other hosts by heartbeat age."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from aim_parquet.storage.base.lock import STALE_AFTER_S, LockHolder, is_holder_alive, is_run_locked


def _holder(host: str, pid: int, heartbeat_at: float) -> LockHolder:
    return LockHolder(host, pid, None, acquired_at=0.0, heartbeat_at=heartbeat_at)


def test_other_host_is_alive_while_its_heartbeat_is_fresh() -> None:
    now = time.time()
    assert is_holder_alive(_holder("elsewhere", 1, now - 5), now=now)
    assert not is_holder_alive(_holder("elsewhere", 1, now - STALE_AFTER_S - 1), now=now)


def test_same_host_is_decided_by_the_process_not_the_heartbeat() -> None:
    me = socket.gethostname()
    assert is_holder_alive(_holder(me, os.getpid(), 0.0))  # old heartbeat, live process
    dead_pid = 2**22 + 12345  # above the default pid_max
    assert not is_holder_alive(_holder(me, dead_pid, time.time()))


def test_reused_pid_with_another_start_time_is_dead() -> None:
    me = socket.gethostname()
    holder = LockHolder(me, os.getpid(), pid_start_time=1.0, acquired_at=0.0, heartbeat_at=0.0)
    assert not is_holder_alive(holder)


def test_stale_foreign_lock_file_is_not_a_live_holder(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    path.write_text(json.dumps({"host": "elsewhere", "pid": 7, "acquired_at": 0.0}))
    assert is_run_locked(path) is not None  # fresh mtime: another host still beats
    old = time.time() - STALE_AFTER_S - 5
    os.utime(path, (old, old))
    assert is_run_locked(path) is None
    path.write_text("")  # released locks are truncated
    assert is_run_locked(path) is None
