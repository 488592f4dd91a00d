"""A shared repository: a run written by another user under `umask 077`, and a healthy segment
another user may not read, must neither break repo-wide commands for other users nor be
"repaired" by them. Permission errors are reported as such, never as damage.

As root the commands run in a forked child that drops to the user `nobody` (a real second user);
as another user (CI without root) the same files are made unreadable to their owner with
`chmod 000`, which the kernel enforces for a non-root owner just the same.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage import verify_repo
from tests.integration.forked_cli import nobody, run_forked, warm_up
from tests.integration.repo_snapshots import QUIET, snapshot


def _run(root: Path, n: int, name: str) -> str:
    run = aim.Run(repo=root, **QUIET)  # type: ignore[arg-type]
    run.name = name
    for i in range(n):
        run.track(float(i), name="loss", step=i)
        if i == n // 2:
            run.flush()  # two batches
    run.close()
    return str(run.hash)


@pytest.fixture
def shared_base() -> Iterator[Path]:
    """A folder every user may enter (pytest's own temp folder is private to its user)."""
    base = Path(tempfile.mkdtemp(prefix="aim-shared-"))
    base.chmod(0o755)
    yield base
    for dirpath, dirs, _names in os.walk(base):
        for name in dirs:
            os.chmod(os.path.join(dirpath, name), 0o755)  # (so it can be removed)
    shutil.rmtree(base)


def test_another_users_private_run_and_unreadable_segment(shared_base: Path) -> None:
    user = nobody()
    root = shared_base / "repo"
    open_run = _run(root, 40, "open")
    shared_run = _run(root, 40, "shared")
    old_umask = os.umask(0o077)
    try:
        private_run = _run(root, 40, "private")  # written under umask 077
    finally:
        os.umask(old_umask)
    before = snapshot(root)
    segment = sorted((root / ".aim" / "runs" / shared_run).glob("seqs/*/*.arrows"))[0]
    out_dir = shared_base / "out"
    out_dir.mkdir()
    for path in (root / ".aim", root / ".aim" / "runs", root / ".aim" / "index", out_dir):
        path.chmod(0o777)  # a shared folder: everyone may create files
    segment.parent.chmod(0o777)  # ... so another user could rename this segment
    private_dir = root / ".aim" / "runs" / private_run
    if user is None:  # not root: make the files unreadable to their owner instead
        segment.chmod(0)
        private_dir.chmod(0)
    else:
        segment.chmod(0o600)
        assert stat.S_IMODE(private_dir.stat().st_mode) == 0o700
    r = ["--repo", str(root)]
    commands = [
        ["runs", "ls", *r],
        ["query", "metric.name == 'loss'", *r],
        ["stats", *r],
        ["export", "--output", str(out_dir / "export"), *r],
        ["verify", *r],
        ["verify", "--repair", "--json", *r],
        ["gc", "--grace-s", "0", *r],
        ["compact", *r],
    ]
    if user is not None:
        warm_up(root, commands, shared_base)
    ls, query, stats, export, verify, repair, gc, compact = run_forked(commands, user=user)
    for result in (ls, query, stats, export, verify, repair, gc, compact):
        assert result.code == 0, (result.out, result.err)  # nothing failed for the whole repo
        assert "Traceback" not in result.err
    assert open_run in ls.out and shared_run in ls.out and private_run not in ls.out
    assert f"cannot read run {private_run}: permission denied" in ls.err
    assert "skipping damaged run" not in ls.err
    assert open_run in query.out and "(40 rows)" in query.out
    assert f"cannot read run {shared_run}: permission denied" in query.err
    assert "1 not readable by you: permission denied" in stats.out and "0 damaged" in stats.out
    assert f"leaves out run {shared_run}" in export.err and "exported 1 run(s)" in export.out
    assert "permission-denied" in verify.out and "no damage found" in verify.out
    assert "unreadable-segment" not in verify.out and "garbage" not in verify.out
    report = json.loads(repair.out)
    assert report["healthy"] and report["damaged_runs"] == []
    assert {p["kind"] for p in report["problems"]} == {"permission-denied"}
    assert not any(p["repaired"] for p in report["problems"])
    assert segment.exists() and not (root / ".aim" / "quarantine").exists()  # never "repaired"
    # the owner still reads every point and finds nothing damaged
    segment.chmod(0o644)
    private_dir.chmod(0o700)
    assert snapshot(root) == before
    assert verify_repo(RepoLayout(root)).problems == ()


# what the test plants for tools/fault_report.py: a private run and an unreadable segment
PLANTED = {"test_another_users_private_run_and_unreadable_segment": 2}
