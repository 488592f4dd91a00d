"""Long commands read like a tool: without a terminal, `compact`, `verify` and `gc` print no line
per run (plain progress lines go to stderr) and a summary; `--verbose` adds one line per run; on a
terminal (a pty) stderr shows one progress bar redrawn in place."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from pathlib import Path

import pytest

import aim_parquet as aim
from tests.conftest import PYTHON, python_env

N_RUNS = 50


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("progress")
    hashes = []
    for i in range(N_RUNS):
        run = aim.Run(repo=str(root), system_tracking_interval=None, capture_terminal_logs=False)
        run.track(float(i), name="loss", step=0)
        run.close()
        hashes.append(run.hash)
    return root, hashes


def cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "aim_parquet", *args, "--repo", str(root)],
        capture_output=True,
        text=True,
        env=python_env(),
        timeout=300,
    )


@pytest.mark.parametrize(
    ("command", "summary"),
    [
        (("verify",), "checked 50 run(s)"),
        (("compact",), "compacted"),
        (("gc",), "freed "),
        (("export", "--output", "{tmp}"), "read it with"),
    ],
)
def test_no_line_per_run_without_a_terminal(
    repo: tuple[Path, list[str]], command: tuple[str, ...], summary: str, tmp_path: Path
) -> None:
    root, hashes = repo
    quiet = cli(root, *(c.format(tmp=tmp_path / "export") for c in command))
    assert quiet.returncode == 0, quiet.stderr
    assert not any(h in quiet.stdout for h in hashes)  # no line per run
    assert summary in quiet.stdout.splitlines()[-1]
    assert "\r" not in quiet.stderr  # plain progress lines, no bar
    assert f"{N_RUNS}/{N_RUNS} runs" in quiet.stderr
    assert len(quiet.stderr.splitlines()) <= 11  # every tenth (or 5 s) at most


@pytest.mark.parametrize("command", ["verify", "compact", "export"])
def test_verbose_prints_a_line_per_run(
    repo: tuple[Path, list[str]], command: str, tmp_path: Path
) -> None:
    root, hashes = repo
    extra = ["--output", str(tmp_path / "export")] if command == "export" else []
    loud = cli(root, command, *extra, "--verbose")
    assert loud.returncode == 0, loud.stderr
    assert all(h in loud.stdout for h in hashes)


def test_a_terminal_gets_one_redrawn_bar(repo: tuple[Path, list[str]]) -> None:
    root, _hashes = repo
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [PYTHON, "-m", "aim_parquet", "verify", "--repo", str(root)],
        stdin=follower,
        stdout=subprocess.PIPE,
        stderr=follower,
        env=python_env(),
    )
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    proc.stdout.close()
    os.close(leader)
    assert proc.wait(timeout=60) == 0
    text = seen.decode()
    assert "\rverifying [" in text and f"{N_RUNS}/{N_RUNS} runs" in text and "ETA" in text
    assert text.count("\n") <= 2  # one line, redrawn, ended once
    assert "checked 50 run(s)" in out
