"""Maintenance commands against repositories whose folders under `.aim/` are links out of them,
and copies or moves aimed back into the repository itself.

Found by a hostile pass over issue #22 (each test failed before its fix): a linked `.aim/index`
had its targets `runs.jsonl` and `runs.parquet` overwritten; a linked `.aim/runs` let `runs rm`
delete, and `runs archive` or a resume write, run folders outside the repository; a linked
`compacted/` folder let `verify --repair` move a file out of the folder it points to; and
`runs mv --destination` a folder inside the run (or `trash/`) deleted the copy with its source.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import aim_parquet as aim
from aim_parquet.errors import UnsafeFileError
from tests.integration.forked_cli import run_forked
from tests.integration.repo_snapshots import QUIET
from tests.integration.test_hostile_repo import run_dir, small_run, tree_digest


def _stamped(folder: Path) -> dict[str, tuple[str, int]]:
    """tree_digest plus each entry's mtime (a touch through a link changes only that)."""
    digest = tree_digest(folder)
    return {rel: (d, os.lstat(folder / rel).st_mtime_ns) for rel, d in digest.items()}


def _outside(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in ("runs.arrow", "runs.parquet", "changed", "manifest.json", "keep.txt"):
        (outside / name).write_text(f"precious {name}")
        os.utime(outside / name, (1_000_000_000, 1_000_000_000))
    return outside


def test_linked_index_folder_is_never_read_or_written(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    first, second = small_run(root), small_run(root)
    outside = _outside(tmp_path)
    shutil.rmtree(root / ".aim" / "index")
    (root / ".aim" / "index").symlink_to(outside)
    before = _stamped(outside)
    r = ["--repo", str(root)]
    ls, compact, gc, repair, export, rm, after = run_forked(
        [
            ["runs", "ls", *r],
            ["compact", "--rewrite-all", *r],
            ["gc", "--grace-s", "0", *r],
            ["verify", "--repair", *r],
            ["export", "--output", str(tmp_path / "export"), *r],
            ["runs", "rm", second, "-y", *r],
            ["runs", "ls", *r],
        ]
    )
    third = small_run(root)  # a new run notes the change (the marker is behind the link)
    assert _stamped(outside) == before  # nothing outside was read into or written
    assert ls.code == 0 and first in ls.out and second in ls.out, ls.err
    assert compact.code == 0 and "could not refresh the runs table" in compact.out
    assert "symbolic link" in compact.out
    assert gc.code == 0
    assert repair.code == 1 and "symlink: repository" in repair.out
    assert export.code == 0 and "exported 2 run(s)" in export.out
    assert "could not refresh the runs table" in export.out
    assert rm.code == 0
    assert after.code == 0 and first in after.out and second not in after.out
    fresh = aim.Repo(str(root))
    assert {r.hash for r in fresh.iter_runs()} == {first, third}


def test_linked_runs_folder_is_never_written_or_deleted_through(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    victim, other = small_run(root), small_run(root)
    outside = tmp_path / "outside"
    shutil.move(root / ".aim" / "runs", outside)
    (root / ".aim" / "runs").symlink_to(outside)
    before = tree_digest(outside)
    r = ["--repo", str(root)]
    results = run_forked(
        [
            ["runs", "rm", victim, "-y", *r],
            ["runs", "mv", other, "--destination", str(tmp_path / "dest"), *r],
            ["runs", "archive", victim, *r],
            ["runs", "close", victim, *r],
            ["compact", "--rewrite-all", *r],
            ["gc", "--grace-s", "0", *r],
            ["verify", "--repair", *r],
            ["runs", "ls", *r],
        ]
    )
    with pytest.raises(UnsafeFileError, match="symbolic link"):
        aim.Run(victim, repo=root, **QUIET)  # type: ignore[arg-type]
    assert tree_digest(outside) == before  # no run outside deleted, locked or rewritten
    rm, mv, archive, close, compact, gc, repair, ls = results
    for refused in (rm, mv, archive, close):
        assert refused.code == 1 and "symbolic link" in refused.err, refused
        assert len(refused.err.splitlines()) == 1 and refused.err.count("cannot") == 1
    assert not (tmp_path / "dest" / ".aim" / "runs" / other).exists()
    assert compact.code == 1 and "symbolic link" in compact.out
    assert gc.code == 0 and "skipped" in gc.out
    assert repair.code == 1 and "symlink: repository" in repair.out
    assert ls.code == 0 and victim in ls.out and other in ls.out  # still listed (read only)


def test_repair_never_moves_a_file_out_of_a_linked_compacted_folder(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    victim, healthy = small_run(root), small_run(root)
    outside = _outside(tmp_path)
    (outside / "manifest.json").write_text("{not json")  # damaged, seen through the link
    (run_dir(root, victim) / "compacted").symlink_to(outside)
    before = tree_digest(outside)
    r = ["--repo", str(root)]
    verify, repair, compact = run_forked(
        [["verify", *r], ["verify", "--repair", *r], ["compact", "--rewrite-all", "--verbose", *r]]
    )
    assert tree_digest(outside) == before
    assert not (root / ".aim" / "quarantine").exists()
    assert verify.code == 1 and repair.code == 1 and "symbolic link" in repair.out
    assert compact.code == 1 and f"{healthy}  compacted" in compact.out


@pytest.mark.parametrize("inside", ["run", "trash", "runs", "quarantine"])
def test_copy_or_move_into_the_repository_itself_is_refused(tmp_path: Path, inside: str) -> None:
    root = tmp_path / "repo"
    run_hash = small_run(root)
    aim_dir = root / ".aim"
    destination = {
        "run": run_dir(root, run_hash),
        "trash": aim_dir / "trash",
        "runs": aim_dir / "runs",
        "quarantine": aim_dir / "quarantine" / "x",
    }[inside]
    before = tree_digest(aim_dir / "runs")
    r = ["--repo", str(root)]
    cp, mv, ls = run_forked(
        [
            ["runs", "cp", run_hash, "--destination", str(destination), *r],
            ["runs", "mv", run_hash, "--destination", str(destination), *r],
            ["runs", "ls", *r],
        ]
    )
    for refused in (cp, mv):
        assert refused.code == 1 and "inside this repository" in refused.err, refused
    assert tree_digest(aim_dir / "runs") == before  # nothing created, nothing deleted
    assert not (destination / ".aim").exists()
    assert not (aim_dir / "trash").exists() or not any((aim_dir / "trash").iterdir())
    assert ls.code == 0 and run_hash in ls.out and "50" in ls.out


# hostile links or destinations each test plants (tools/fault_report.py adds them up)
PLANTED = {
    "test_linked_index_folder_is_never_read_or_written": 1,
    "test_linked_runs_folder_is_never_written_or_deleted_through": 1,
    "test_repair_never_moves_a_file_out_of_a_linked_compacted_folder": 2,
    **{
        f"test_copy_or_move_into_the_repository_itself_is_refused[{inside}]": 1
        for inside in ("run", "trash", "runs", "quarantine")
    },
}


def test_planted_counts_name_every_test() -> None:
    tests = {
        name
        for name in globals()
        if name.startswith("test_") and name != "test_planted_counts_name_every_test"
    }
    assert {name.split("[")[0] for name in PLANTED} == tests
