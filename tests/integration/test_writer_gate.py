"""`runs rm|cp|mv` exclude every writer of a run with several writers, race-free.

The tools take the run's `lock` (rank 0's); a rank r >= 1 takes only `writers/<r>.lock`. The tools
used to *check* the extra writers' locks after taking `lock`, so a rank attaching just after the
check wrote into a run being moved to the trash. Here the window is widened (the tool pauses
where it works on the run; the rank pauses while it takes its lock) and a real process attaches
in it: the attacher or the tool is refused, never neither.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

import aim_parquet as aim
from aim_parquet.errors import RunLockedError
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage.base.lock import run_lock_holder
from aim_parquet.storage.maintenance import run_ops
from aim_parquet.storage.maintenance.verify import verify_repo
from tests.conftest import PYTHON, python_env

TIMEOUT_S = 60.0

# One rank: opens the job's run, tracks one point, prints `open <hash>`, waits for a line on
# stdin unless argv[2] is "close", closes and prints `closed`; a refused open prints `refused`.
# With argv[3] == "slow-attach" it pauses (prints `gate`, reads a line) while holding the attach
# gate, just before taking its own lock.
RANK = """
import contextlib, sys
import aim_parquet as aim
from aim_parquet.errors import RunLockedError
import aim_parquet.storage.online.extra_writer as extra

if len(sys.argv) > 3 and sys.argv[3] == "slow-attach":
    attaching = extra.attaching

    @contextlib.contextmanager
    def slow(*args):
        with attaching(*args):
            print("gate", flush=True)
            sys.stdin.readline()
            yield

    extra.attaching = slow
try:
    run = aim.Run(repo=sys.argv[1], system_tracking_interval=None, capture_terminal_logs=False)
except RunLockedError as exc:
    print("refused", str(exc).replace("\\n", " "), flush=True)
    sys.exit(0)
run.track(1.0, name="loss")
run.flush()
print("open", run.hash, flush=True)
if sys.argv[2] != "close":
    sys.stdin.readline()
run.close()
print("closed", flush=True)
"""


def rank_env(rank: int) -> dict[str, str]:
    env = python_env()
    env.update(
        RANK=str(rank),
        WORLD_SIZE="2",
        LOCAL_RANK=str(rank),
        LOCAL_WORLD_SIZE="2",
        TORCHELASTIC_RUN_ID="gate-job",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT="29500",
    )
    return env


def start(repo: Path, rank: int, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PYTHON, "-c", RANK, str(repo), *args],
        env=rank_env(rank),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    text = proc.stdout.readline()
    assert text, f"rank exited early with {proc.wait(TIMEOUT_S)}"
    return text.strip()


def go(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()


def reap(*procs: subprocess.Popen[str]) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()
        for pipe in (p.stdin, p.stdout):
            if pipe is not None:
                pipe.close()


def closed_job_run(repo: Path) -> str:
    """A run both ranks wrote and closed: format version 2, `writers/1.*` present."""
    procs = [start(repo, r, "close") for r in range(2)]
    try:
        hashes = {line(p).split()[1] for p in procs}
        assert [line(p) for p in procs] == ["closed", "closed"]
        assert [p.wait(TIMEOUT_S) for p in procs] == [0, 0]
    finally:
        reap(*procs)
    (run_hash,) = hashes
    assert (repo / ".aim" / "runs" / run_hash / "writers" / "1.lock").exists()
    return run_hash


def attach_rank_1(repo: Path) -> str:
    """Start rank 1 of the job while the test is paused inside a tool: what it printed."""
    proc = start(repo, 1, "close")
    try:
        first = line(proc)
        if first.startswith("open"):
            line(proc)  # closed
        proc.wait(TIMEOUT_S)
        return first
    finally:
        reap(proc)


def test_rm_holds_every_writer_so_a_rank_attaching_in_its_window_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "exp"
    run_hash = closed_job_run(repo)
    layout = RepoLayout(repo)
    seen: list[str] = []
    move_to_trash = run_ops._move_to_trash

    def widened(layout: RepoLayout, h: str) -> Any:  # after the locks, before the rename
        seen.append(attach_rank_1(repo))
        return move_to_trash(layout, h)

    monkeypatch.setattr(run_ops, "_move_to_trash", widened)
    run_ops.delete_run_folder(layout, run_hash)
    assert len(seen) == 1 and seen[0].startswith("refused"), seen
    assert "deleting, copying or moving" in seen[0]
    assert not (repo / ".aim" / "runs" / run_hash).exists()
    assert list(aim.Repo(str(repo)).iter_runs()) == []


def test_cp_holds_every_writer_and_copies_no_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, dest = tmp_path / "exp", tmp_path / "dest"
    run_hash = closed_job_run(repo)
    seen: list[str] = []
    copy_into = run_ops._copy_into

    def widened(*args: Any) -> None:  # under the source's locks, before the first file
        seen.append(attach_rank_1(repo))
        copy_into(*args)

    monkeypatch.setattr(run_ops, "_copy_into", widened)
    run_ops.copy_run_folder(RepoLayout(repo), RepoLayout(dest), run_hash)
    assert len(seen) == 1 and seen[0].startswith("refused"), seen
    writers = dest / ".aim" / "runs" / run_hash / "writers"
    assert sorted(os.listdir(writers)) == ["1.json"]  # parts, never a lock naming the tool
    assert run_lock_holder(RepoLayout(dest), run_hash) is None
    copied = aim.Repo(str(dest)).get_run(run_hash)
    assert copied is not None
    assert sorted(m.context.to_dict().get("rank", 0) for m in copied.metrics()) == [0, 1]
    monkeypatch.undo()  # after the copy, the gate is open again: rank 1 attaches to the source
    assert attach_rank_1(repo).startswith("open")


def test_mv_refuses_a_rank_that_is_attaching_and_one_that_writes(tmp_path: Path) -> None:
    """The other order: a rank holding the gate (between gate and its own lock) makes the tool
    refuse; once it holds its lock, the tool refuses naming it; once it closed, the move runs."""
    repo, dest = tmp_path / "exp", tmp_path / "dest"
    run_hash = closed_job_run(repo)
    src_layout, dest_layout = RepoLayout(repo), RepoLayout(dest)
    proc = start(repo, 1, "hold", "slow-attach")
    try:
        assert line(proc) == "gate"
        with pytest.raises(RunLockedError, match="attaching"):
            run_ops.move_run_folder(src_layout, dest_layout, run_hash)
        with pytest.raises(RunLockedError, match="attaching"):
            run_ops.delete_run_folder(src_layout, run_hash)
        go(proc)
        assert line(proc).startswith("open")
        for tool in (
            lambda: run_ops.move_run_folder(src_layout, dest_layout, run_hash),
            lambda: run_ops.delete_run_folder(src_layout, run_hash),
        ):
            with pytest.raises(RunLockedError, match="rank 1 is still writing"):
                tool()
        go(proc)
        assert line(proc) == "closed"
        assert proc.wait(TIMEOUT_S) == 0
    finally:
        reap(proc)
    run_ops.move_run_folder(src_layout, dest_layout, run_hash)
    assert not (repo / ".aim" / "runs" / run_hash).exists()
    assert (dest / ".aim" / "runs" / run_hash / "writers" / "1.json").is_file()


def test_single_writer_run_gets_no_writers_folder(tmp_path: Path) -> None:
    """The gate lives in `writers/`: a version 1 run copied or deleted gains no such folder."""
    repo, dest = tmp_path / "exp", tmp_path / "dest"
    run = aim.Run(repo=str(repo), system_tracking_interval=None, capture_terminal_logs=False)
    run.track(1.0, name="loss")
    run_hash = run.hash
    run.close()
    run_ops.copy_run_folder(RepoLayout(repo), RepoLayout(dest), run_hash)
    for root in (repo, dest):
        assert not (root / ".aim" / "runs" / run_hash / "writers").exists()


def test_verify_finds_nothing_wrong_with_the_gate(tmp_path: Path) -> None:
    repo, dest = tmp_path / "exp", tmp_path / "dest"
    run_hash = closed_job_run(repo)
    run_ops.copy_run_folder(RepoLayout(repo), RepoLayout(dest), run_hash)
    assert (repo / ".aim" / "runs" / run_hash / "writers" / "attach.lock").is_file()
    problems = verify_repo(RepoLayout(repo)).problems
    assert [p for p in problems if p.kind != "temp-file"] == []
