"""No thread aim_parquet starts can take a signal sent to the process.

The kernel hands a process-directed signal to any one thread that does not block it. Python runs
handlers only on the main thread; a signal that lands on another thread only sets a flag, and a
main thread blocked in C is never woken to run the handler. Seen in CI: `with Pool(2) as pool`
in a training script hung forever (about 1 trial in 30) because `Pool.terminate()`'s SIGTERM
reached a worker's flush thread while the worker's main thread waited for the task queue's lock,
so the worker never ran its SIGTERM handler and `Pool.__exit__` joined it forever.

The tests read each thread's blocked-signal mask from /proc (Linux), for every kind of thread we
start: the run's flusher, the system-metrics sampler, the terminal capture, the parallel segment
fsync, a close job, the SIGTERM closer and the compactor's pool.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

import aim_parquet as aim
from aim_parquet.sdk.close_job import CloseJob
from aim_parquet.system.threads import start_thread
from tests.conftest import python_env
from tests.integration.test_child_runs import run_trial

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads /proc (Linux)")

MUST_BLOCK = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1)


def _blocked(native_id: int) -> set[int]:
    """The signals thread `native_id` of this process blocks, from /proc."""
    for line in Path(f"/proc/self/task/{native_id}/status").read_text().splitlines():
        if line.startswith("SigBlk:"):
            mask = int(line.split()[1], 16)
            return {sig for sig in range(1, 65) if mask & (1 << (sig - 1))}
    raise AssertionError("no SigBlk line")


def _own_mask() -> set[int]:
    return {int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, [])}


def test_every_thread_of_a_run_blocks_process_signals(tmp_path: Path) -> None:
    # by object, not ident: a stale `_DummyThread` entry keeps a dead thread's ident, which the
    # kernel hands to the next new thread
    before = set(threading.enumerate())
    run = aim.Run(repo=str(tmp_path), system_tracking_interval=1, capture_terminal_logs=True)
    try:
        for i in range(100):
            run.track(float(i), name="loss")
        print("a line for the terminal capture")
        # ours only: another test's leftover threads may start or end meanwhile
        started = [
            t for t in threading.enumerate() if t not in before and t.name.startswith("aim_parquet")
        ]
        names = sorted(t.name for t in started)
        assert any("flush" in n for n in names), names
        assert len(started) >= 3, names  # flusher, sampler, terminal capture
        for thread in started:
            assert thread.native_id is not None
            missing = set(MUST_BLOCK) - _blocked(thread.native_id)
            assert not missing, f"thread {thread.name} can take {sorted(missing)}"
        assert not set(MUST_BLOCK) & _own_mask(), "the main thread's mask must come back"
    finally:
        run.close()


def test_close_jobs_and_helper_threads_block_process_signals() -> None:
    seen: list[set[int]] = []
    job = CloseJob(lambda: seen.append(_own_mask()), "a test close")
    job.start()
    assert job.wait(timeout_s=30)
    assert set(MUST_BLOCK) <= seen[0]

    thread = threading.Thread(target=lambda: seen.append(_own_mask()))
    start_thread(thread)
    thread.join()
    assert set(MUST_BLOCK) <= seen[1]
    assert not set(MUST_BLOCK) & _own_mask()


COMPACT_SCRIPT = textwrap.dedent(
    """
    import signal, sys
    from pathlib import Path
    import aim_parquet as aim
    from aim_parquet.format.paths import RepoLayout
    from aim_parquet.storage.compaction import compactor

    repo = sys.argv[1]
    for k in range(3):
        with aim.Run(repo=repo, system_tracking_interval=None, capture_terminal_logs=False) as run:
            for i in range(50):
                run.track(float(i), name="loss")
    masks = []
    real = compactor._compact_one
    def spy(*args):
        masks.append(set(signal.pthread_sigmask(signal.SIG_BLOCK, [])))
        return real(*args)
    compactor._compact_one = spy
    compactor.compact_repo(RepoLayout(Path(repo)), workers=2)
    print(all(signal.SIGTERM in m and signal.SIGINT in m for m in masks), len(masks))
    """
)


def test_a_sigterm_to_pool_workers_never_hangs_the_pool(tmp_path: Path) -> None:
    # the CI hang's own scenario: `with Pool(...)` whose workers opened runs, ended by terminate()
    for trial in range(5):
        run_trial(tmp_path / str(trial), "pool", "fork")


def test_compaction_threads_leave_signals_to_the_main_thread(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", COMPACT_SCRIPT, str(tmp_path)],
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    ok, count = proc.stdout.split()
    assert int(count) == 3 and ok == "True", proc.stdout
