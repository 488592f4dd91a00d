"""A Ctrl-C while the runs a script left open are closed at exit (`lifecycle.close_all`, the
atexit hook): the close under way finishes (the interrupt is deferred, as the warning says),
and so do the other open runs' closes; none of their tracked points is lost."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import aim_parquet as aim

RUNS = 3
POINTS = 20_000


def test_a_sigint_during_the_close_at_exit_loses_no_other_run(tmp_path: Path) -> None:
    """The child tracks into three runs and ends without closing them; a watcher thread sends
    one real SIGINT as soon as the first close at exit is under way."""
    script = textwrap.dedent(
        f"""
        import os, signal, sys, threading, time
        import aim_parquet as aim
        from aim_parquet.sdk import close_job

        signal.signal(signal.SIGINT, signal.default_int_handler)  # (even if inherited ignored)
        quiet = dict(system_tracking_interval=None, capture_terminal_logs=False)
        runs = [aim.Run(repo=sys.argv[1], **quiet) for _ in range({RUNS})]
        for i in range({POINTS}):
            for run in runs:
                run.track(i * 0.5, name="loss", step=i)
        print(" ".join(run.hash for run in runs), flush=True)

        def watch():
            while not close_job.JOBS:
                time.sleep(0.0005)
            os.kill(os.getpid(), signal.SIGINT)

        threading.Thread(target=watch, daemon=True).start()
        """
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    hashes = proc.stdout.split()
    assert len(hashes) == RUNS, proc.stderr
    assert "KeyboardInterrupt" in proc.stderr  # the interrupt was not swallowed
    repo = aim.Repo(str(tmp_path))
    for run_hash in hashes:
        run = repo.get_run(run_hash)
        assert run is not None
        assert run.end_time is not None, (run_hash, proc.stderr)
        lengths = [len(metric.values.sparse_numpy()[0]) for metric in run.metrics()]
        assert lengths == [POINTS], (run_hash, proc.stderr)
