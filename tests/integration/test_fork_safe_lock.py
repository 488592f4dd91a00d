"""A process forked while another thread holds the run index's process-wide lock
(`RunIndex._shared_lock`, taken by every `Repo(path)`) can still query in the child: the lock is
made anew there (`storage.base.fork_safe`); a plain `threading.Lock` stayed held for ever in the
child and its first query hung (hx18a)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

import aim_parquet as aim
from aim_parquet.storage.base.fork_safe import ForkSafeLock
from aim_parquet.storage.index.run_index import RunIndex

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")


def _child_status(body: Callable[[], object]) -> int:
    """Runs `body` in a forked child: its wait status (exit 0 when the body returns, 1 when it
    raises; a hang ends as SIGALRM)."""
    pid = os.fork()
    if pid == 0:
        signal.alarm(20)
        try:
            body()
        except BaseException:
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    return status


@contextlib.contextmanager
def _held_by_another_thread(lock: AbstractContextManager[object]) -> Iterator[None]:
    """`lock` held by another thread while the block runs."""
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            taken.set()
            release.wait(30)

    thread = threading.Thread(target=hold)
    thread.start()
    taken.wait(10)
    try:
        yield
    finally:
        release.set()
        thread.join()


def test_a_lock_held_by_another_thread_at_fork_is_free_in_the_child() -> None:
    lock = ForkSafeLock()
    with _held_by_another_thread(lock):
        assert lock.locked()

        def body() -> None:
            with lock:
                pass

        assert _child_status(body) == 0


def test_a_query_in_a_child_forked_while_the_shared_lock_is_held(tmp_path: Path) -> None:
    run = aim.Run(repo=str(tmp_path), system_tracking_interval=None, capture_terminal_logs=False)
    run["lr"] = 0.5
    run.track(1.0, name="loss", step=0)
    run.close()
    with _held_by_another_thread(RunIndex._shared_lock):

        def body() -> None:
            runs = list(aim.Repo(str(tmp_path)).query_runs("run.lr > 0").iter_runs())
            assert len(runs) == 1

        assert _child_status(body) == 0


def test_a_reentrant_lock_held_by_another_thread_at_fork_is_free_in_the_child() -> None:
    lock = ForkSafeLock(reentrant=True)
    with _held_by_another_thread(lock):
        assert lock.locked()

        def body() -> None:
            with lock, lock:  # (reentrant in the child too)
                pass

        assert _child_status(body) == 0
    assert not lock.locked()


def test_a_query_in_a_child_forked_during_another_threads_index_refresh(tmp_path: Path) -> None:
    """The index's refreshes take turns under a per-index lock (hx20b): a child forked while a
    thread of the parent holds it (a refresh under way) still queries."""
    run = aim.Run(repo=str(tmp_path), system_tracking_interval=None, capture_terminal_logs=False)
    run["lr"] = 0.5
    run.close()
    index = RunIndex.shared(aim.Repo(str(tmp_path)).layout)
    with _held_by_another_thread(index._state_lock):

        def body() -> None:
            runs = list(aim.Repo(str(tmp_path)).query_runs("run.lr > 0").iter_runs())
            assert len(runs) == 1

        assert _child_status(body) == 0
