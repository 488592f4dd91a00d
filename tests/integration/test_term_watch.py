"""A SIGTERM that the main thread never gets to handle still closes the runs and ends the process.

Python's C-level handler only sets a flag; the Python handler runs when the main thread returns to
Python or a wait it is in fails with EINTR. A SIGTERM that lands while the main thread is between
two waits inside C is lost that way: CI saw `with Pool(...)` hang forever when a worker, woken from
its task queue's semaphore and beaten to it by the parent, took `Pool.terminate()`'s SIGTERM in
that window and went back to waiting (`test_thread_signals` repeats that trial). These tests
reproduce the lost signal deterministically: the main thread blocks on a semaphore that is never
released, and the C handler's trace (the byte Python writes to its wakeup fd) is written without
the flag being looked at.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import python_env, raw_points, sidecar

PRELUDE = textwrap.dedent(
    """
    import multiprocessing, os, signal, sys, threading
    import aim_parquet as aim
    from aim_parquet.sdk import term_watch

    run = aim.Run(repo=sys.argv[1], system_tracking_interval=None, capture_terminal_logs=False)
    for i in range(5000):
        run.track(float(i), name="loss")
    print(run.hash, flush=True)
    """
)

LOST = PRELUDE + textwrap.dedent(
    """
    # what the C-level handler leaves when the main thread never runs the Python one
    os.write(term_watch._pipe[1], bytes([signal.SIGTERM]))
    lock = multiprocessing.Lock()
    lock.acquire()
    lock.acquire()  # blocks in sem_wait for good
    print("woke up", flush=True)
    """
)

DEAF = PRELUDE + textwrap.dedent(
    """
    term_watch.GIVE_UP_S = 2.0
    # a main thread in C code that never lets the handler run (here: SIGTERM blocked on it, and a
    # read(2) of a pipe nobody writes: the test signals once /proc shows it blocked there, since a
    # SIGTERM taken by a C library's thread before that would still run the handler in between)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    never, _keep = os.pipe()
    print("deaf", flush=True)
    os.read(never, 1)
    """
)


def _start(script: str, root: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(root)],
        env=python_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def _wait_in_read(pid: int) -> None:
    """Until the main thread of `pid` is blocked in read(2) (x86-64 and arm64 syscall numbers)."""
    read_numbers = {"0", "63"}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/task/{pid}/syscall") as f:
            if f.read().split(" ", 1)[0] in read_numbers:
                return
        time.sleep(0.01)
    raise AssertionError("the main thread never blocked in read(2)")


def _check_closed_with_every_point(root: Path, run_hash: str) -> None:
    assert sidecar(root, run_hash)["end_time"] is not None
    steps = [r["step"] for r in raw_points(root, run_hash)[("loss", "{}")]]
    assert steps == list(range(5000))


def test_a_lost_sigterm_is_sent_again_until_the_handler_runs(tmp_path: Path) -> None:
    proc, run_hash = _start(LOST, tmp_path)
    try:
        _out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGTERM, err[-2000:]
    assert "woke up" not in _out
    _check_closed_with_every_point(tmp_path, run_hash)


def test_a_main_thread_that_never_handles_sigterm_still_ends_closed(tmp_path: Path) -> None:
    proc, run_hash = _start(DEAF, tmp_path)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "deaf"
        _wait_in_read(proc.pid)
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "closing the open runs from another thread" in err
    _check_closed_with_every_point(tmp_path, run_hash)


FORKED = PRELUDE + textwrap.dedent(
    """
    pid = os.fork()
    if pid == 0:  # the child opens a run of its own (its own handler and watcher)
        child = aim.Run(repo=sys.argv[1], system_tracking_interval=None, capture_terminal_logs=False)
        child.track(1.0, name="loss")
        print("child", child.hash, flush=True)
        threading.Event().wait()
    print("child pid", pid, flush=True)
    sys.stdin.readline()  # the test SIGTERMs the child meanwhile
    os.waitpid(pid, 0)
    run.track(5000.0, name="loss")
    run.close()
    print("parent done", flush=True)
    """
)


def test_a_forked_childs_sigterm_never_reaches_the_parents_watcher(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", FORKED, str(tmp_path)],
        env=python_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        parent_hash = proc.stdout.readline().strip()
        lines = [proc.stdout.readline().split() for _ in range(2)]
        child_pid = next(int(w[-1]) for w in lines if w[:2] == ["child", "pid"])
        child_hash = next(w[1] for w in lines if w[0] == "child" and w[1] != "pid")
        os.kill(child_pid, signal.SIGTERM)
        time.sleep(2 * 0.5 + 1)  # longer than the watcher's re-send delay
        proc.stdin.write("go\n")
        proc.stdin.flush()
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-2000:]
    assert "parent done" in out
    assert sidecar(tmp_path, child_hash)["end_time"] is not None
    steps = [r["step"] for r in raw_points(tmp_path, parent_hash)[("loss", "{}")]]
    assert steps == list(range(5001))


RACED = textwrap.dedent(
    """
    import asyncio, signal, sys
    import aim_parquet as aim

    real = signal.set_wakeup_fd
    fired = []

    def racing(fd, **kwargs):  # a signal lands while Run() has its own pipe in place of asyncio's
        previous = real(fd, **kwargs)
        if not fired and previous != -1 and kwargs.get("warn_on_full_buffer") is False:
            fired.append(fd)
            signal.raise_signal(signal.SIGUSR1)
        return previous

    signal.set_wakeup_fd = racing
    seen = []

    async def main():
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR1, lambda: seen.append("USR1"))
        run = aim.Run(repo=sys.argv[1], system_tracking_interval=None, capture_terminal_logs=False)
        await asyncio.sleep(0.5)
        run.close()

    asyncio.run(main())
    print("raced" if fired else "no race", seen, flush=True)
    """
)


def test_a_signal_caught_while_run_probes_asyncios_wakeup_fd_still_reaches_asyncio(
    tmp_path: Path,
) -> None:
    """The first `Run()` swaps its pipe in to learn whether someone else set the wakeup fd; a
    signal caught before it swaps theirs back is written to our pipe, and asyncio, which runs its
    `add_signal_handler` callbacks from what it reads on its own fd, would never see it."""
    proc = subprocess.run(
        [sys.executable, "-c", RACED, str(tmp_path)],
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["raced", "['USR1']"], proc.stdout


CHAINED = PRELUDE + textwrap.dedent(
    """
    import time
    previous = signal.getsignal(signal.SIGTERM)
    calls = []

    def user_handler(signum, frame):  # as PyTorch Lightning's: note it, then call the previous one
        calls.append(signum)
        os.write(1, f"user handler call {len(calls)}\\n".encode())
        previous(signum, frame)

    signal.signal(signal.SIGTERM, user_handler)
    lock = multiprocessing.Lock()
    lock.acquire()
    print("chained", flush=True)
    if sys.argv[2] == "lock":
        lock.acquire()  # waits in C for good
    while True:
        time.sleep(60)
    """
)


@pytest.mark.parametrize("waiting_in", ["sleep", "lock"])
def test_a_user_handler_that_chains_to_ours_runs_once_per_sigterm(
    tmp_path: Path, waiting_in: str
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHAINED, str(tmp_path), waiting_in],
        env=python_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    try:
        run_hash = proc.stdout.readline().strip()
        assert proc.stdout.readline().strip() == "chained"
        time.sleep(1.0)  # the main thread is in its wait (outside any lock-holding code) by then
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGTERM, err[-2000:]
    assert out.splitlines() == ["user handler call 1"], out
    _check_closed_with_every_point(tmp_path, run_hash)
