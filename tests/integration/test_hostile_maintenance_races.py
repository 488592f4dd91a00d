"""Maintenance commands racing each other where a clock cannot be relied on (found by a hostile
pass over issue #22; each test failed before its fix)."""

from __future__ import annotations

from pathlib import Path

import pytest

import aim_parquet as aim
from tests.integration.test_hostile_repo import small_run


def test_gc_and_repair_leave_a_long_copy_in_progress_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy keeps the copied files' old mtimes, so its temp folder looked like an hour-old
    leftover to `gc` and `verify --repair` (here the copy is held mid-way while their clock runs
    an hour ahead): they removed it under the copy, which failed (or, between the copy's last
    file and its rename, published a half-removed run). The copy now holds the folder's flock."""
    import threading
    import time as real_time
    from types import SimpleNamespace

    from aim_parquet.format.paths import RepoLayout
    from aim_parquet.storage.base.safe_fs import copy_regular
    from aim_parquet.storage.maintenance import gc, run_ops
    from aim_parquet.storage.maintenance import verify as maintenance
    from aim_parquet.storage.maintenance.run_ops import copy_run_folder

    src, dest = tmp_path / "src", tmp_path / "dest"
    run_hash = small_run(src, n=500)
    src_layout, dest_layout = RepoLayout(src), RepoLayout(dest)
    (dest / ".aim" / "runs").mkdir(parents=True)
    started, go_on = threading.Event(), threading.Event()

    def slow_copy(a: str, b: str) -> str:
        started.set()
        assert go_on.wait(30)
        return copy_regular(a, b)

    monkeypatch.setattr(run_ops, "copy_regular", slow_copy)
    errors: list[BaseException] = []

    def copy() -> None:
        try:
            copy_run_folder(src_layout, dest_layout, run_hash)
        except BaseException as exc:  # noqa: BLE001 (reported by the assertion below)
            errors.append(exc)

    thread = threading.Thread(target=copy)
    thread.start()
    try:
        assert started.wait(30)
        later = SimpleNamespace(time=lambda: real_time.time() + 3600)
        monkeypatch.setattr(gc, "time", later)
        monkeypatch.setattr(maintenance, "time", later)
        report = gc.gc_repo(dest_layout, grace_s=0)
        maintenance.verify_repo(dest_layout, repair=True)
        assert [r for r in report.removed if r.kind == "temp-file"] == []
        assert any("copy into it is in progress" in note for note in report.notes)
    finally:
        go_on.set()
        thread.join(60)
    assert errors == []
    copied = aim.Repo(str(dest)).get_run(run_hash)
    assert copied is not None
    assert len(copied.get_metric("loss", {}).values.values_numpy()) == 500


def test_a_run_moved_away_while_it_is_resumed_is_a_missing_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`runs mv` (or `rm`) taking the run away between the resume's "is the folder there" and
    its lock: the resuming script got a raw FileNotFoundError (seen in the randomized race of
    tests/integration/test_maintenance_races.py), not the MissingRunError it handles to retry
    in the run's new repository."""
    import shutil

    from aim_parquet.errors import MissingRunError
    from aim_parquet.sdk import run_open
    from aim_parquet.storage.base.lock import RunLock

    root = tmp_path / "repo"
    run_hash = small_run(root)
    run_dir = root / ".aim" / "runs" / run_hash
    moved = tmp_path / "elsewhere"

    class MovedMeanwhile(RunLock):
        def acquire(self, *, force: bool = False) -> None:
            shutil.move(run_dir, moved)  # what a `runs mv` in another process does right now
            super().acquire(force=force)

    monkeypatch.setattr(run_open, "RunLock", MovedMeanwhile)
    with pytest.raises(MissingRunError, match="moved or deleted"):
        aim.Run(run_hash, repo=str(root), system_tracking_interval=None)
    assert not run_dir.exists()  # nothing re-created
