"""Hostile use of the columnar run index (hx17b): odd entries under `.aim/runs/` and a damaged
`runs.arrow`, on real repositories and in fresh processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import aim_parquet as aim

QUIET: dict[str, Any] = {"system_tracking_interval": None, "capture_terminal_logs": False}


def _make_runs(root: Path, count: int) -> list[str]:
    hashes = []
    for i in range(count):
        run = aim.Run(repo=root, **QUIET)
        run["x"] = i
        run.track(float(i), name="loss", step=0)
        run.close()
        hashes.append(run.hash)
    return hashes


def _query_in_fresh_process(root: Path, query: str) -> list[str]:
    script = (
        "import sys, aim_parquet as aim\n"
        "repo = aim.Repo(sys.argv[1])\n"
        "print(sorted(c.run.hash for c in repo.query_runs(sys.argv[2]).iter_runs()))\n"
        "print(sorted(r.hash for r in repo.iter_runs()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(root), query],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.splitlines()


def test_a_file_named_like_a_run_is_not_a_run(repo_root: Path) -> None:
    """A regular file in `.aim/runs/` with a run hash's name (a sync tool's leftover, a stray
    `touch`) is not a run, as a link named like one is not: queries, `iter_runs` and `runs ls`
    list the real runs instead of failing with NotADirectoryError (as 7db2c30 did too)."""
    hashes = _make_runs(repo_root, 3)
    (repo_root / ".aim" / "runs" / ("c" * 24)).write_bytes(b"")
    query_lines = _query_in_fresh_process(repo_root, "run.x >= 1")
    matched = sorted(h for h in hashes if h != hashes[0])
    assert query_lines == [str(matched), str(sorted(hashes))]
    listed = subprocess.run(
        [sys.executable, "-m", "aim_parquet", "runs", "ls", "--repo", str(repo_root)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert all(h in listed.stdout for h in hashes)
    assert "c" * 24 not in listed.stdout
    for extra in ([], ["--repair"]):  # (verify failed with NotADirectoryError too)
        checked = subprocess.run(
            [sys.executable, "-m", "aim_parquet", "verify", *extra, "--repo", str(repo_root)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert checked.returncode == 0, checked.stderr[-2000:]
        assert "checked 3 run(s)" in checked.stdout + checked.stderr


@pytest.mark.parametrize("damage", ["truncated", "zero", "fifo", "folder", "symlink"])
def test_damaged_index_file_gives_the_sidecars_answer(repo_root: Path, damage: str) -> None:
    hashes = _make_runs(repo_root, 4)
    expected = _query_in_fresh_process(repo_root, "run.x == 2 or run.x == 0")
    index = repo_root / ".aim" / "index" / "runs.arrow"
    if damage == "truncated":
        os.truncate(index, index.stat().st_size // 2)
    elif damage == "zero":
        os.truncate(index, 0)
    elif damage == "fifo":
        index.unlink()
        os.mkfifo(index)
    elif damage == "folder":
        index.unlink()
        index.mkdir()
    else:
        index.rename(index.with_name("elsewhere.arrow"))
        index.symlink_to("elsewhere.arrow")
    assert _query_in_fresh_process(repo_root, "run.x == 2 or run.x == 0") == expected
    assert expected[0] == str(sorted([hashes[0], hashes[2]]))


_KEPT_OPEN = """
import os, sys, time, warnings
warnings.simplefilter("ignore")
import aim_parquet as aim
root = sys.argv[1]
repo = aim.Repo(root)
queries = ("run.x == 1", "run.blob != 'b'", "run.hparams.lr > 0.5 or run.x == 1")
before = [len(list(repo.query_runs(q).iter_runs())) for q in queries]
index = os.path.join(root, ".aim", "index", "runs.arrow")
assert os.path.getsize(index) > (1 << 20), os.path.getsize(index)
os.truncate(index, 0)  # in place, same inode: `: > runs.arrow`, rsync --inplace, a sync client
time.sleep(5.5)  # past the index's FULL_CHECK_S: the next query checks the disk again
after = [len(list(repo.query_runs(q).iter_runs())) for q in queries]
assert after == before == [1, 3, 1], (before, after)
print("ok")
"""


def test_index_truncated_in_place_under_a_kept_open_repo(repo_root: Path) -> None:
    """A process holding a Repo (the UI server, a notebook) survives another tool truncating
    `runs.arrow` in place (the index is a cache: it is rebuilt from the sidecars)."""
    run = aim.Run(repo=repo_root, **QUIET)
    run["x"] = 0
    run["blob"] = "a" * (1 << 20)  # an index file above the 1 MiB read-or-map bound
    run.close()
    _make_runs(repo_root, 2)
    _query_in_fresh_process(repo_root, "run.x >= 0")  # writes the index file the next one maps
    every = subprocess.run(
        [sys.executable, "-c", _KEPT_OPEN, str(repo_root)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert every.returncode == 0, (every.returncode, every.stderr[-2000:])
    assert every.stdout.strip() == "ok"
