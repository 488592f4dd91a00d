"""hx21: a hostile user's pass on compaction's rule by directory entries and the kept mark
(FORMAT.md, "Which runs are rewritten"). Real runs, real subprocesses, real SIGKILLs. Its four
findings are fixed: an undone rewrite killed midway left an empty `compacted/` for good (F1); an
extra rank resuming a closed distributed run never reached the analyst dataset (F2, also in
adccdf5); an empty sequence folder kept a long run as written (F3); a compaction killed after its
commit left the emptied folders, so the run was never settled (F4, also in adccdf5)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage import compact_repo, verify_repo
from tests.conftest import PYTHON, python_env
from tests.integration.repo_snapshots import QUIET, snapshot
from tests.integration.test_analyst_dataset import polars_points, sdk_points

# A `compact_run` killed (SIGKILL) inside its first `write_kind`: before it writes ("before")
# or once it has written the file ("after"), always after it made `compacted/`.
_KILLED_COMPACT = """
import os, signal, sys
from pathlib import Path
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage.compaction import compactor
real = compactor.write_kind
def killing(*args, **kwargs):
    if sys.argv[2] == "after":
        real(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
compactor.write_kind = killing
compactor.compact_run(RepoLayout(Path(sys.argv[1])), sys.argv[3])
"""


def _run(root: Path, points: int, name: str = "m0", run_hash: str | None = None) -> str:
    with aim.Run(run_hash=run_hash, repo=str(root), **QUIET) as run:  # type: ignore[arg-type]
        start = 0 if run_hash is None else 10_000
        for i in range(points):
            run.track(0.5 + i * 1.37, name=name, step=start + i)
        return str(run.hash)


def _statuses(root: Path) -> dict[str, str]:
    return {r.run_hash: r.status for r in compact_repo(RepoLayout(root)).runs}


def _entries(run_dir: Path) -> list[str]:
    return sorted(
        str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.name != "compact.lock"
    )


def _same_for_sdk_and_analysts(root: Path) -> None:
    assert sdk_points(root)[0] == polars_points(root)[0]
    assert verify_repo(RepoLayout(root)).problems == ()


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_killed_undone_rewrite_leaves_no_extra_folder(tmp_path: Path, when: str) -> None:
    run_hash = _run(tmp_path, 40)
    run_dir = tmp_path / ".aim" / "runs" / run_hash
    as_written = _entries(run_dir)
    child = subprocess.run(
        [PYTHON, "-c", _KILLED_COMPACT, str(tmp_path), when, run_hash],
        env=python_env(),
        check=False,
    )
    assert child.returncode == -9
    assert (run_dir / "compacted").is_dir()
    assert _statuses(tmp_path) == {run_hash: "kept"}
    assert _statuses(tmp_path) == {run_hash: "unchanged"}  # settled
    _same_for_sdk_and_analysts(tmp_path)
    assert _entries(run_dir) == as_written


_RANK = """
import sys
import aim_parquet as aim
run = aim.Run(repo=sys.argv[1], system_tracking_interval=None, capture_terminal_logs=False)
for i in range(int(sys.argv[2])):
    run.track(float(i), name="loss", step=int(sys.argv[3]) + i)
print(run.hash)
run.close()
"""


def _rank(root: Path, rank: int, points: int, start: int = 0) -> str:
    env = python_env()
    env.update(
        RANK=str(rank),
        WORLD_SIZE="4",
        LOCAL_RANK=str(rank),
        LOCAL_WORLD_SIZE="4",
        TORCHELASTIC_RUN_ID="job-hx21",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT="29500",
    )
    child = subprocess.run(
        [PYTHON, "-c", _RANK, str(root), str(points), str(start)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    return child.stdout.strip()


def test_a_kept_single_rank_run_is_compacted_once_other_ranks_write(tmp_path: Path) -> None:
    run_hash = _rank(tmp_path, 0, 5)
    assert _statuses(tmp_path) == {run_hash: "kept"}
    assert _statuses(tmp_path) == {run_hash: "unchanged"}
    for rank in (1, 2, 3):
        _rank(tmp_path, rank, 5)
    expected = snapshot(tmp_path)
    assert _statuses(tmp_path) == {run_hash: "compacted"}
    assert snapshot(tmp_path) == expected
    _same_for_sdk_and_analysts(tmp_path)


def test_an_extra_rank_resuming_a_closed_run_reaches_the_analyst_dataset(tmp_path: Path) -> None:
    run_hash = _rank(tmp_path, 0, 5)
    for rank in (1, 2, 3):
        _rank(tmp_path, rank, 5)
    assert _statuses(tmp_path) == {run_hash: "compacted"}
    _same_for_sdk_and_analysts(tmp_path)
    _rank(tmp_path, 1, 3000, 5)
    _rank(tmp_path, 2, 2, 5)
    expected = snapshot(tmp_path)
    assert _statuses(tmp_path) == {run_hash: "compacted"}
    assert snapshot(tmp_path) == expected
    assert sum(len(v) for v in sdk_points(tmp_path)[0].values()) == 20 + 3000 + 2
    _same_for_sdk_and_analysts(tmp_path)


@pytest.mark.parametrize("verb", ["cp", "mv"])
def test_a_kept_run_copied_or_moved_then_written_is_compacted_when_it_grows(
    tmp_path: Path, verb: str
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    run_hash = _run(src, 5)
    _run(dst, 5)
    assert _statuses(src) == {run_hash: "kept"}
    _statuses(dst)
    moved = subprocess.run(
        [PYTHON, "-m", "aim_parquet", "runs", verb, run_hash, "--repo", str(src)]
        + ["--destination", str(dst)],
        env=python_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert moved.returncode == 0, moved.stderr
    assert _statuses(dst)[run_hash] == "unchanged"  # the mark travels with the run
    _same_for_sdk_and_analysts(dst)
    _run(dst, 3000, run_hash=run_hash)  # into its existing sequence
    expected = snapshot(dst)
    assert _statuses(dst)[run_hash] == "compacted"
    assert snapshot(dst) == expected
    assert not (dst / ".aim" / "runs" / run_hash / "seqs").exists()
    _same_for_sdk_and_analysts(dst)


def test_a_long_run_with_an_empty_sequence_folder_is_rewritten(tmp_path: Path) -> None:
    run_hash = _run(tmp_path, 3000)
    _run(tmp_path, 3, name="m1", run_hash=run_hash)
    seqs = tmp_path / ".aim" / "runs" / run_hash / "seqs"
    small = [p for p in seqs.rglob("*.arrows") if p.stat().st_size < 2000]
    assert len(small) == 1
    with open(small[0], "r+b") as torn:
        torn.truncate(100)
    repair = subprocess.run(
        [PYTHON, "-m", "aim_parquet", "verify", "--repair", "--repo", str(tmp_path)],
        env=python_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert repair.returncode == 0, repair.stdout + repair.stderr
    assert [p.name for p in small[0].parent.iterdir()] == []
    expected = snapshot(tmp_path)
    assert _statuses(tmp_path) == {run_hash: "compacted"}
    assert snapshot(tmp_path) == expected
    assert not seqs.exists()
    _same_for_sdk_and_analysts(tmp_path)


# A `compact_run` killed (SIGKILL) right after its manifest commit: the covered segments, the
# sequence folders and `seqs/` are still there.
_KILLED_AFTER_COMMIT = """
import os, signal, sys
from pathlib import Path
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage.compaction import compactor
real = compactor.atomic_write
def killing(*args, **kwargs):
    real(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
compactor.atomic_write = killing
compactor.compact_run(RepoLayout(Path(sys.argv[1])), sys.argv[2])
"""


def test_a_compaction_killed_after_its_commit_is_finished_by_the_next(tmp_path: Path) -> None:
    run_hash = _run(tmp_path, 3000)
    expected = snapshot(tmp_path)
    child = subprocess.run(
        [PYTHON, "-c", _KILLED_AFTER_COMMIT, str(tmp_path), run_hash],
        env=python_env(),
        check=False,
    )
    assert child.returncode == -9
    assert snapshot(tmp_path) == expected
    _statuses(tmp_path)
    assert snapshot(tmp_path) == expected
    _same_for_sdk_and_analysts(tmp_path)
    assert not (tmp_path / ".aim" / "runs" / run_hash / "seqs").exists()
