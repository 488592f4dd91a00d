"""Compaction never grows a run (issue #17): a run's segments are rewritten into Parquet only when
that leaves it no more files and folders and fewer bytes; otherwise they stay as written, the run is marked
kept, compacting again passes it by, and every reader (SDK, analyst dataset) answers the same."""

from __future__ import annotations

import subprocess
from pathlib import Path

import filelock
import pytest

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage import compact_repo, compact_run, verify_repo
from aim_parquet.storage.base.files import folder_usage
from aim_parquet.storage.compaction import compactor
from aim_parquet.storage.compaction import rewrite_rule as compaction_rule
from tests.conftest import PYTHON, python_env
from tests.integration.repo_snapshots import QUIET, run_files, snapshot
from tests.integration.test_analyst_dataset import polars_points, sdk_points


def _small_run(root: Path, points: int = 5, metrics: int = 1) -> str:
    with aim.Run(repo=root, **QUIET) as run:  # type: ignore[arg-type]
        for m in range(metrics):
            for i in range(points):
                run.track(0.5 + i * 0.1 + m, name=f"m{m}", step=i)
        return str(run.hash)


def _cli(root: Path, *args: str) -> str:
    """`python -m aim_parquet ARGS --repo ROOT`'s stdout (it must succeed)."""
    done = subprocess.run(
        [PYTHON, "-m", "aim_parquet", *args, "--repo", str(root)],
        capture_output=True,
        text=True,
        env=python_env(),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _usage(root: Path, run_hash: str) -> tuple[int, int]:
    return folder_usage(root / ".aim" / "runs" / run_hash)


def test_a_five_point_run_keeps_its_files_and_bytes(tmp_path: Path) -> None:
    run_hash = _small_run(tmp_path)
    files_before = run_files(tmp_path, run_hash)
    usage_before = _usage(tmp_path, run_hash)
    before = snapshot(tmp_path)
    entry = compact_run(RepoLayout(tmp_path), run_hash)
    assert entry.status == "kept" and "left as written" in entry.note
    assert (entry.files_before, entry.bytes_before) == usage_before
    assert (entry.files_after, entry.bytes_after) == usage_before
    assert run_files(tmp_path, run_hash) == files_before
    assert not (tmp_path / ".aim" / "runs" / run_hash / "compacted").exists()
    assert _usage(tmp_path, run_hash) == usage_before
    assert snapshot(tmp_path) == before
    assert verify_repo(RepoLayout(tmp_path)).problems == ()


def test_many_small_segments_are_merged_when_that_is_smaller(tmp_path: Path) -> None:
    run_hash = _small_run(tmp_path, points=20, metrics=12)  # one segment per sequence
    files0, bytes0 = _usage(tmp_path, run_hash)
    before = snapshot(tmp_path)
    entry = compact_run(RepoLayout(tmp_path), run_hash)
    assert entry.status == "compacted" and entry.segments == 12
    files1, bytes1 = _usage(tmp_path, run_hash)
    assert files1 < files0 and bytes1 < bytes0
    assert (entry.files_before, entry.files_after) == (files0, files1)
    assert not (tmp_path / ".aim" / "runs" / run_hash / "seqs").exists()
    assert snapshot(tmp_path) == before


def test_compact_again_is_a_no_op_until_the_run_is_written(tmp_path: Path) -> None:
    hashes = [_small_run(tmp_path), _small_run(tmp_path, points=20, metrics=12)]
    layout = RepoLayout(tmp_path)
    first = compact_repo(layout)
    assert {r.run_hash: r.status for r in first.runs} == {hashes[0]: "kept", hashes[1]: "compacted"}
    assert first.files_after <= first.files_before and first.bytes_after <= first.bytes_before
    # another compactor holds the kept run's lock: it is not waited for, nor even looked at
    with filelock.FileLock(str(layout.run_dir(hashes[0]) / "compact.lock"), timeout=0):
        again = compact_repo(layout)
    assert {(r.status, r.note) for r in again.runs} == {("unchanged", compactor.SETTLED_NOTE)}
    # a writer that resumes the kept run rewrites run.json: the next compaction looks again
    with aim.Run(run_hash=hashes[0], repo=str(tmp_path), **QUIET) as run:  # type: ignore[arg-type]
        run.track(9.0, name="m0", step=2)
        run.track(7.0, name="m0", step=5)
    expected = snapshot(tmp_path)
    third = {r.run_hash: r for r in compact_repo(layout).runs}
    assert third[hashes[0]].status in ("kept", "compacted")
    assert third[hashes[0]].files_after <= third[hashes[0]].files_before
    assert third[hashes[0]].bytes_after <= third[hashes[0]].bytes_before
    assert third[hashes[1]].note == compactor.SETTLED_NOTE
    assert snapshot(tmp_path) == expected
    assert {r.status for r in compact_repo(layout).runs} == {"unchanged"}


def test_a_rewrite_that_is_not_smaller_in_bytes_is_undone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the file count the bytes decide, once written: the new files are removed."""
    run_hash = _small_run(tmp_path)
    usage = _usage(tmp_path, run_hash)
    before = snapshot(tmp_path)
    least = compaction_rule.Usage(0, 0)
    monkeypatch.setattr(compactor, "least_after", lambda *_: least)  # (the estimate passes)
    entry = compact_run(RepoLayout(tmp_path), run_hash)
    assert entry.status == "kept" and "bytes" in entry.note
    assert _usage(tmp_path, run_hash) == usage
    assert not (tmp_path / ".aim" / "runs" / run_hash / "compacted").exists()  # made, removed
    assert snapshot(tmp_path) == before


def test_usage_rule_needs_no_more_entries_and_fewer_bytes() -> None:
    small = compaction_rule.Usage(2, 100)
    assert small.is_smaller_than(compaction_rule.Usage(3, 101))
    assert small.is_smaller_than(compaction_rule.Usage(2, 101))  # as many entries: enough
    assert not small.is_smaller_than(compaction_rule.Usage(1, 1000))
    assert not small.is_smaller_than(compaction_rule.Usage(9, 100))


def test_sdk_and_dataset_answer_the_same_after_compacting_a_mix(tmp_path: Path) -> None:
    small = [_small_run(tmp_path, points=p) for p in (1, 5)]
    big = _small_run(tmp_path, points=300, metrics=6)
    two = _small_run(tmp_path, points=5, metrics=2)
    expected = sdk_points(tmp_path)
    report = compact_repo(RepoLayout(tmp_path))
    status = {r.run_hash: r.status for r in report.runs}
    assert status == {small[0]: "kept", small[1]: "kept", big: "compacted", two: "kept"}
    assert sdk_points(tmp_path) == expected
    assert polars_points(tmp_path)[0] == expected[0]  # the analyst dataset holds the kept runs


def test_cli_says_the_rule_and_rewrite_all_rewrites(tmp_path: Path) -> None:
    run_hash = _small_run(tmp_path)

    def cli(*args: str) -> str:
        return _cli(tmp_path, *args)

    assert "fewer bytes" in " ".join(cli("compact", "--help").split())
    out = cli("compact")
    assert "1 kept as written" in out and run_hash not in out  # no per-run line for it
    files = run_files(tmp_path, run_hash)
    assert not any(f.startswith("compacted/") for f in files)
    cli("compact", "--rewrite-all")
    files = run_files(tmp_path, run_hash)
    assert "compacted/manifest.json" in files and not any(f.startswith("seqs/") for f in files)


def test_kept_runs_through_archive_copy_move_verify_and_gc(tmp_path: Path) -> None:
    src, dst = tmp_path / "a", tmp_path / "b"
    hashes = [_small_run(src) for _ in range(3)]
    expected = snapshot(src)

    assert "3 kept as written" in _cli(src, "compact")
    _cli(src, "runs", "archive", hashes[0])  # rewrites run.json: looked at again, kept again
    assert "1 kept as written, 2 unchanged" in _cli(src, "compact")
    _cli(src, "runs", "cp", hashes[0], "--destination", str(dst))
    _cli(src, "runs", "mv", hashes[1], "--destination", str(dst))
    for root in (src, dst):
        assert "no damage found" in _cli(root, "verify")
        _cli(root, "gc", "--grace", "0")
        _cli(root, "compact")
        assert "0 kept as written" in _cli(root, "compact")
    got = {**snapshot(src), **snapshot(dst)}
    assert got == expected
    assert verify_repo(RepoLayout(dst)).problems == ()
