"""A process forked while another thread imports a module used to hang the first time it
imported that module (hx19b: fork `Pool` workers hung in `np.unique`, which imports `numpy.ma`
on first use, while the parent's threads built frames). `import aim_parquet` makes a fork wait
for the imports other threads have in progress (`system.fork_imports`)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import os, sys, threading, time
    sys.path.insert(0, sys.argv[1])
    if sys.argv[2] == "aim":
        import aim_parquet  # noqa: F401
    threading.Thread(target=lambda: __import__(sys.argv[3]), daemon=True).start()
    time.sleep(0.3)  # the thread is inside the module's code now
    pid = os.fork()
    if pid == 0:
        if sys.argv[3] == "slow_module":
            import slow_module
            os._exit(0 if slow_module.VALUE == 1 else 3)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    print("child", os.waitstatus_to_exitcode(status), flush=True)
    """
)


def _fork_while_importing(
    tmp_path: Path, mode: str, module: str
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "slow_module.py").write_text("import time\ntime.sleep(1.5)\nVALUE = 1\n")
    (tmp_path / "endless_module.py").write_text("import threading\nthreading.Event().wait()\n")
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), mode, module],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_child_forked_during_another_threads_import_can_import_it(tmp_path: Path) -> None:
    done = _fork_while_importing(tmp_path, "aim", "slow_module")
    assert done.stdout.strip() == "child 0", done.stderr


def test_without_aim_parquet_the_same_fork_hangs(tmp_path: Path) -> None:
    """The hazard is real: the same script without `import aim_parquet` hangs in the child."""
    try:
        _fork_while_importing_short(tmp_path)
    except subprocess.TimeoutExpired:
        return
    raise AssertionError("the child did not hang: the test above proves nothing")


def _fork_while_importing_short(tmp_path: Path) -> None:
    (tmp_path / "slow_module.py").write_text("import time\ntime.sleep(1.5)\nVALUE = 1\n")
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(tmp_path), "plain", "slow_module"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # (the hung child is killed with its parent's group)
    )
    try:
        proc.wait(timeout=8)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_an_import_that_never_ends_delays_the_fork_only(tmp_path: Path) -> None:
    """A thread stuck in an import forever: the fork still happens (after the bounded wait)."""
    done = _fork_while_importing(tmp_path, "aim", "endless_module")
    assert done.stdout.strip() == "child 0", done.stderr
