"""`compact.lock` exists only while held: compaction leaves no lock file per run, and takers
racing holders that remove it as they let go never both hold it."""

from __future__ import annotations

import fcntl
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage import compact_repo, gc_repo
from aim_parquet.storage.base import lock as lock_module
from tests.conftest import PYTHON, python_env

QUIET = {"system_tracking_interval": None, "capture_terminal_logs": False}


def _files(run_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file())


def test_compaction_leaves_no_lock_file_and_recompaction_adds_none(tmp_path: Path) -> None:
    run = aim.Run(repo=str(tmp_path), **QUIET)
    for step in range(5):
        run.track(float(step), name="loss", step=step)
    run.close()
    layout = RepoLayout(tmp_path)
    run_dir = layout.run_dir(run.hash)
    compact_repo(layout, rewrite_all=True)
    after = _files(run_dir)
    assert "compact.lock" not in after
    assert len(after) == 4  # run.json, lock, compacted/metrics-1.parquet, compacted/manifest.json
    resumed = aim.Run(run_hash=run.hash, repo=str(tmp_path), **QUIET)
    resumed.track(9.0, name="loss", step=5)
    resumed.close()
    compact_repo(layout, rewrite_all=True)
    again = _files(run_dir)
    assert len(again) == len(after) and "compact.lock" not in again
    assert [
        m.values.sparse_numpy()[1].tolist() for m in aim.Repo(str(tmp_path)).query_metrics()
    ] == [[0.0, 1.0, 2.0, 3.0, 4.0, 9.0]]


def test_a_leftover_lock_file_is_accepted_and_removed(tmp_path: Path) -> None:
    """The layout of earlier versions (a `compact.lock` kept per run) still compacts; the next
    holder removes the file, and `gc` removes that of a settled run, which compact passes by."""
    hashes = []
    for i in range(2):
        run = aim.Run(repo=str(tmp_path), **QUIET)
        run.track(float(i), name="loss", step=0)
        run.close()
        hashes.append(run.hash)
    layout = RepoLayout(tmp_path)
    layout.compact_lock(hashes[0]).touch()
    compact_repo(layout, rewrite_all=True)
    assert not layout.compact_lock(hashes[0]).exists()
    layout.compact_lock(hashes[1]).touch()  # a settled run: compact never takes its lock
    compact_repo(layout, rewrite_all=True)
    assert layout.compact_lock(hashes[1]).exists()
    gc_repo(layout)
    assert not layout.compact_lock(hashes[1]).exists()


_TAKER = r"""
import os, sys, time
from pathlib import Path
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage.base.lock import compaction_lock

layout, run_hash, wanted = RepoLayout(Path(sys.argv[1])), sys.argv[2], int(sys.argv[3])
inside = Path(sys.argv[1]) / "inside"
held = 0
deadline = time.monotonic() + 120  # takes are non-blocking: a loaded machine may starve one
while held < wanted and time.monotonic() < deadline:
    with compaction_lock(layout, run_hash) as busy:
        if busy is not None:
            continue
        os.mkdir(inside)  # FileExistsError: another process holds it too
        held += 1
        os.rmdir(inside)
print(held)
"""


def test_takers_racing_removing_holders_never_both_hold_it(tmp_path: Path) -> None:
    """Four processes take and let go of one run's compaction lock until each has held it 100
    times (each holder removes the file as it lets go): no two ever hold it at once, and it
    ends removed."""
    run = aim.Run(repo=str(tmp_path), **QUIET)
    run.close()
    procs = [
        subprocess.Popen(
            [PYTHON, "-c", _TAKER, str(tmp_path), run.hash, "100"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=python_env(),
        )
        for _ in range(4)
    ]
    results = [p.communicate(timeout=300) for p in procs]
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err
        assert int(out) == 100  # each took it 100 times, so they raced
    assert not os.path.exists(RepoLayout(tmp_path).compact_lock(run.hash))


def test_a_taker_that_locked_a_removed_file_does_not_hold_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race the removal opens, made deterministic: a taker opened `compact.lock` just
    before its holder removed it and let go, and another process took the new file; the
    taker's flock of the removed file then succeeds, but it must see that the file at the path
    is another one and report the run busy."""
    run = aim.Run(repo=str(tmp_path), **QUIET)
    run.close()
    layout = RepoLayout(tmp_path)
    path = layout.compact_lock(run.hash)
    path.touch()
    stale = os.open(path, os.O_RDWR)  # opened before the holder removed the file
    with lock_module.compaction_lock(layout, run.hash) as busy:
        assert busy is None
    assert not path.exists()
    real = lock_module.try_flock
    calls = []

    def first_the_stale_file(p: Any, what: str = "lock file", **kw: Any) -> int | None:
        calls.append(p)
        if len(calls) == 1:
            fcntl.flock(stale, fcntl.LOCK_EX | fcntl.LOCK_NB)  # nobody holds the removed one
            return stale
        return real(p, what, **kw)

    with lock_module.compaction_lock(layout, run.hash) as busy:  # another holder, new file
        assert busy is None
        monkeypatch.setattr(lock_module, "try_flock", first_the_stale_file)
        with lock_module.compaction_lock(layout, run.hash) as second:
            assert second is not None and "in progress" in second
        monkeypatch.setattr(lock_module, "try_flock", real)
    assert len(calls) == 2  # the stale file, then the file at the path (busy)
