"""Compaction never grows a run, and still shrinks long ones (hx20a's findings on cg20, fixed).

A run has one open segment per sequence until 64 MiB, so a long run of one or two metrics is one
or two segments. A rule counting files only ("Parquet plus the manifest is at least 2 files") kept
such a run as written whatever its size (one metric of 200,000 steps: 6.1 MiB kept, 146.6 KiB
rewritten); the rule counts directory entries (a rewrite empties the sequence folders and
`seqs/`). And the kept mark must add no entry to the run (an empty `compacted/` folder did: an
inode and a 4 KiB block on ext4); it is `seqs/`'s mtime, and a mtime that equals `run.json`'s by
nature (both stamped within one clock tick) is no mark.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage import compact_repo
from aim_parquet.storage.base.files import folder_usage
from tests.integration.repo_snapshots import QUIET, snapshot


def _long_run(root: Path, steps: int, metrics: int) -> str:
    with aim.Run(repo=root, **QUIET) as run:  # type: ignore[arg-type]
        for m in range(metrics):
            for i in range(steps):
                run.track(i / 7.0 + m, name=f"m{m}", step=i)
        return str(run.hash)


@pytest.mark.parametrize("metrics", [1, 2])
def test_a_long_run_of_few_metrics_shrinks(tmp_path: Path, metrics: int) -> None:
    run_hash = _long_run(tmp_path, steps=5_000, metrics=metrics)
    run_dir = tmp_path / ".aim" / "runs" / run_hash
    files0, bytes0 = folder_usage(run_dir)
    before = snapshot(tmp_path)
    report = compact_repo(RepoLayout(tmp_path))
    assert snapshot(tmp_path) == before
    files1, bytes1 = folder_usage(run_dir)
    assert files1 <= files0 + 1  # never much more files
    assert bytes1 * 10 < bytes0, (report.runs, (files0, bytes0), (files1, bytes1))


def _entries_and_blocks(run_dir: Path) -> tuple[int, int]:
    """Inodes (files and folders, the run folder included) and allocated bytes, as `du` counts."""
    entries, allocated = 1, os.lstat(run_dir).st_blocks * 512
    for folder, dirs, files in os.walk(run_dir):
        for name in dirs + files:
            entries += 1
            allocated += os.lstat(os.path.join(folder, name)).st_blocks * 512
    return entries, allocated


def test_a_kept_run_gains_no_inode(tmp_path: Path) -> None:
    run_hash = _long_run(tmp_path, steps=5, metrics=1)
    run_dir = tmp_path / ".aim" / "runs" / run_hash
    entries0, allocated0 = _entries_and_blocks(run_dir)
    report = compact_repo(RepoLayout(tmp_path))
    assert [r.status for r in report.runs] == ["kept"]
    entries1, allocated1 = _entries_and_blocks(run_dir)
    assert entries1 <= entries0, ((entries0, allocated0), (entries1, allocated1))
    assert allocated1 <= allocated0


def test_a_seqs_folder_stamped_with_the_sidecars_mtime_is_not_taken_as_kept(tmp_path: Path) -> None:
    """Files made within one kernel clock tick share a mtime: such a run was never looked at."""
    run_hash = _long_run(tmp_path, steps=5_000, metrics=1)
    run_dir = tmp_path / ".aim" / "runs" / run_hash
    st = os.lstat(run_dir / "run.json")
    os.utime(run_dir / "seqs", ns=(st.st_atime_ns, st.st_mtime_ns))
    report = compact_repo(RepoLayout(tmp_path))
    assert [r.status for r in report.runs] == ["compacted"]
    assert not (run_dir / "seqs").exists()
