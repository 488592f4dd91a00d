"""Run `aim-parquet` commands in a forked child process, optionally as another user, with a
deadline: a command that hangs (a FIFO read without O_NONBLOCK) is killed and fails the test
instead of blocking the suite.

The child is forked, not started fresh: it already has every module imported, so after dropping
to the user `nobody` (who may not read this interpreter's files) it still runs. `warm_up` runs the
same commands once in this process on a scratch copy of the repository, so that the modules the
commands import lazily are imported before the fork.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pwd
import select
import shutil
import signal
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

from aim_parquet.cli.main import main


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str
    pid: int = 0  # the child process that ran the command


def nobody() -> tuple[int, int] | None:
    """(uid, gid) of a second, unprivileged user this process may switch to, or None (not root,
    or no such user)."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def _run_all(commands: list[list[str]]) -> list[list[object]]:
    results: list[list[object]] = []
    for argv in commands:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
        results.append([code, out.getvalue(), err.getvalue()])
    return results


def warm_up(root: Path, commands: list[list[str]], scratch: Path) -> None:
    """Run `commands` here on a copy of the repository at `root` (results ignored)."""
    copy = scratch / "warm-up-copy"
    shutil.copytree(root, copy, symlinks=True, ignore_dangling_symlinks=True)
    swapped = [[str(copy) if a == str(root) else a for a in argv] for argv in commands]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _run_all(swapped)
    shutil.rmtree(copy, ignore_errors=True)


def run_forked(
    commands: list[list[str]], *, user: tuple[int, int] | None = None, timeout_s: float = 60.0
) -> list[Result]:
    """Run each `aim-parquet` argv in one forked child (as `user` = (uid, gid) when given)."""
    read_fd, write_fd = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        status = 0
        try:
            os.close(read_fd)
            if user is not None:
                os.setgroups([])
                os.setgid(user[1])
                os.setuid(user[0])
            payload = json.dumps(_run_all(commands)).encode()
        except BaseException:
            payload = json.dumps({"error": traceback.format_exc()}).encode()
            status = 1
        with contextlib.suppress(OSError):
            view = memoryview(payload)
            while view:
                view = view[os.write(write_fd, view) :]
        os._exit(status)
    os.close(write_fd)
    chunks = []
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                raise TimeoutError(f"aim-parquet {commands} did not finish in {timeout_s} s")
            ready, _, _ = select.select([read_fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(read_fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_fd)
        os.waitpid(pid, 0)
    data = json.loads(b"".join(chunks) or b'{"error": "no output"}')
    if isinstance(data, dict):
        raise AssertionError(f"the forked aim-parquet failed:\n{data['error']}")
    return [Result(int(code), str(out), str(err), pid) for code, out, err in data]
