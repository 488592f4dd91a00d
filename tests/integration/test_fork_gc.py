"""A process forked while another thread builds a frame (which pauses the cyclic garbage
collector process-wide) keeps the collector: the block that would switch it back on runs only
in the parent (hx18b: before, such a `Pool`/`DataLoader` worker never collected a cycle)."""

from __future__ import annotations

import gc
import os
import threading
from pathlib import Path

import pytest

import aim_parquet as aim
from aim_parquet.system.gc_pause import gc_paused

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def _child_has_gc() -> bool:
    """Fork; the child reports whether its collector is on."""
    pid = os.fork()
    if pid == 0:
        os._exit(0 if gc.isenabled() else 1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def test_a_child_forked_while_another_thread_pauses_gc_has_it_back() -> None:
    assert gc.isenabled()
    inside, release = threading.Event(), threading.Event()

    def paused() -> None:
        with gc_paused():
            inside.set()
            release.wait(30)

    thread = threading.Thread(target=paused)
    thread.start()
    try:
        assert inside.wait(30)
        assert not gc.isenabled()  # the parent: held off by the other thread's block
        assert _child_has_gc()
    finally:
        release.set()
        thread.join()
    assert gc.isenabled()


def test_a_child_forked_while_gc_was_off_by_the_user_keeps_it_off() -> None:
    gc.disable()
    try:
        with gc_paused():
            assert not _child_has_gc()
    finally:
        gc.enable()


def test_children_forked_while_frames_are_built_have_gc(tmp_path: Path) -> None:
    for i in range(3):
        with aim.Run(
            repo=str(tmp_path), system_tracking_interval=None, capture_terminal_logs=False
        ) as run:
            run["lr"] = [1, "a", True][i]
            for step in range(50):
                run.track(step * 0.5, name="loss", step=step, context={"subset": "train"})
    stop = threading.Event()

    def frames() -> None:
        while not stop.is_set():
            aim.Repo(str(tmp_path)).query_metrics("metric.name == 'loss'").to_arrow()
            aim.Repo(str(tmp_path)).query_runs("").to_arrow(metrics=["loss"])

    aim.Repo(str(tmp_path)).query_metrics("").to_arrow()  # imports done before any fork
    thread = threading.Thread(target=frames)
    thread.start()
    try:
        results = [_child_has_gc() for _ in range(20)]
    finally:
        stop.set()
        thread.join()
    assert all(results)
