"""Hostile-user checks of "compaction never grows a run" (cg20) on long runs (hx20a).

FORMAT.md ("Which runs are rewritten") says long runs shrink many times and are rewritten. A run
has one open segment per sequence until 64 MiB, so a long run of one or two metrics is one or two
segments: the "fewer files" half of the rule (Parquet plus the manifest is at least 2 files)
keeps it as written whatever its size. Before cg20 `compact` shrank such a run 30-44 times
(one metric of 20,000 steps: 628.9 KiB -> 20.2 KiB; of 200,000 steps: 6.1 MiB -> 146.6 KiB).
And the kept mark is a new empty `compacted/` folder: a kept run gains an inode (and a 4 KiB block
on ext4), while a rewrite removes `seqs/` and its folders (a one-segment run's rewrite leaves as
many inodes as before). With the reference rule these tests pass (checked with
`compact_repo(..., rewrite_all=True)`).
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


@pytest.mark.xfail(
    strict=True,
    reason="hx20a finding: a long run of one or two metrics (one segment per sequence) is kept "
    "as written by the file-count rule, however much Parquet would save",
)
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


@pytest.mark.xfail(
    strict=True,
    reason="hx20a finding: the kept mark is a new empty compacted/ folder: a kept run gains an "
    "inode (and a 4 KiB block on ext4), where the reference's rewrite left both unchanged",
)
def test_a_kept_run_gains_no_inode(tmp_path: Path) -> None:
    run_hash = _long_run(tmp_path, steps=5, metrics=1)
    run_dir = tmp_path / ".aim" / "runs" / run_hash
    entries0, allocated0 = _entries_and_blocks(run_dir)
    report = compact_repo(RepoLayout(tmp_path))
    assert [r.status for r in report.runs] == ["kept"]
    entries1, allocated1 = _entries_and_blocks(run_dir)
    assert entries1 <= entries0, ((entries0, allocated0), (entries1, allocated1))
    assert allocated1 <= allocated0
