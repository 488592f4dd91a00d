"""`CloseJob`: a close runs once on its own thread, and an interrupt on the waiting thread is
deferred until it is done, wherever in the wait it lands."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from aim_parquet.sdk.close_job import CloseJob

TRIALS = 300
TIMEOUT_S = 60


def test_an_interrupt_at_the_very_end_of_the_work_never_hangs_the_waiter() -> None:
    """The work sends SIGINT to the process as its last act, so the KeyboardInterrupt lands on
    the waiting main thread anywhere around the moment the work is done (before, inside or just
    after the waiter's lock acquire). Every wait must end, re-raising the interrupt once."""
    script = textwrap.dedent(
        f"""
        import os, signal
        from aim_parquet.sdk.close_job import CloseJob

        signal.signal(signal.SIGINT, signal.default_int_handler)  # (even if inherited ignored)

        def work():
            for _ in range(os.getpid() % 7 * 50):  # vary where the signal lands
                pass
            os.kill(os.getpid(), signal.SIGINT)

        interrupted = 0
        for i in range({TRIALS}):
            job = CloseJob(work, "trial")
            job.start()
            try:
                job.wait()
            except KeyboardInterrupt:
                interrupted += 1
            assert job.is_done
        print("ok", interrupted)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=TIMEOUT_S
    )
    assert result.returncode == 0, result.stderr
    word, count = result.stdout.split()
    assert word == "ok" and int(count) == TRIALS  # each interrupt re-raised, none lost


def test_several_waiters_and_a_timeout() -> None:
    release = threading.Event()
    job = CloseJob(lambda: release.wait(TIMEOUT_S), "trial")
    job.start()
    assert job.wait(timeout_s=0.01) is False  # not done yet
    results: list[bool] = []
    waiters = [threading.Thread(target=lambda: results.append(job.wait())) for _ in range(4)]
    for t in waiters:
        t.start()
    release.set()
    for t in waiters:
        t.join(TIMEOUT_S)
    assert results == [True] * 4 and job.is_done
    assert job.wait() is True and job.wait(timeout_s=0) is True  # after the end: at once


def test_the_work_waiting_on_itself_returns() -> None:
    seen: list[bool] = []
    holder: list[CloseJob] = []
    job = CloseJob(lambda: seen.append(holder[0].wait()), "trial")
    holder.append(job)
    job.start()
    assert job.wait() is True and seen == [True]


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_sigterm_during_a_sigterm_close_still_exits(tmp_path: Path) -> None:
    """A process SIGTERMed twice while its runs close exits by SIGTERM once they are closed."""
    script = textwrap.dedent(
        """
        import os, signal, sys, time
        import aim_parquet as aim
        run = aim.Run(repo=sys.argv[1], system_tracking_interval=None,
                      capture_terminal_logs=False)
        for i in range(50_000):
            run.track(float(i), name=f"m{i % 500}")
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(600):
            time.sleep(0.1)
        sys.exit(3)  # never reached: SIGTERM ends the process
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert result.returncode == -signal.SIGTERM, result.stderr


def test_run_to_end_puts_the_sigint_handler_back(python_sigint: None) -> None:
    """`run_to_end` counts interrupts with its own SIGINT handler only while it runs: Python's
    default is back afterwards, and a program's own handler (or its choice to ignore SIGINT) is
    never replaced."""
    seen: list[object] = []
    job = CloseJob(lambda: seen.append(signal.getsignal(signal.SIGINT)), "trial")
    job.run_to_end()
    assert seen[0] is not signal.default_int_handler  # ours counted while it ran
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        job = CloseJob(lambda: seen.append(signal.getsignal(signal.SIGINT)), "trial")
        job.run_to_end()
        assert seen[1] is signal.SIG_IGN and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    calls: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: calls.append(signum))
    try:
        job = CloseJob(lambda: seen.append(signal.getsignal(signal.SIGINT)), "trial")
        job.run_to_end()
        assert seen[2] is signal.getsignal(signal.SIGINT) and calls == []
    finally:
        signal.signal(signal.SIGINT, previous)
