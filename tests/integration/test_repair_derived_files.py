"""`verify --repair` rebuilds the run index from the sidecars alone: the writers' journal and the
points cache go with the old index file (hx19a: a sidecar edited in place with its stat kept was
shown from the journal's stale row after the repair)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage.index import points_cache
from aim_parquet.storage.maintenance.verify import verify_repo


def _runs(repo: str, n: int) -> list[str]:
    hashes = []
    for i in range(n):
        run = aim.Run(repo=repo, system_tracking_interval=None, capture_terminal_logs=False)
        run["hparams"] = {"seed": 0, "i": i}
        for step in range(5):
            run.track(float(step), name="loss", step=step)
        run.close()
        hashes.append(run.hash)
    return hashes


def _seeds(repo: str) -> dict[str, int]:
    frame = aim.Repo(repo).query_runs("").dataframe()
    return dict(zip(frame["hash"], frame["hparams.seed"], strict=True))


def test_repair_rebuilds_from_the_sidecars_not_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(points_cache, "MIN_READ_RUNS", 1)
    monkeypatch.setattr(points_cache, "MIN_WRITE_RUNS", 1)
    repo = str(tmp_path)
    hashes = _runs(repo, 20)
    layout = RepoLayout(tmp_path)
    aim.Repo(repo).query_metrics(
        "metric.name == 'loss'"
    ).dataframe()  # builds runs.arrow, points.arrow
    index = tmp_path / ".aim" / "index"
    journal = index / "closed.jsonl"
    assert (index / "points.arrow").is_file() and not journal.exists()
    aim.Run(run_hash=hashes[0], repo=repo, system_tracking_interval=None).close()  # a journal line
    assert journal.is_file()
    sidecar = layout.sidecar(hashes[0])
    before = os.stat(sidecar)
    data = sidecar.read_bytes()
    edited = data.replace(b'"seed": 0', b'"seed": 7', 1).replace(b'"seed":0', b'"seed":7', 1)
    assert edited != data and len(edited) == len(data)
    with open(sidecar, "r+b") as f:  # edited in place, its stat kept
        f.write(edited)
    os.utime(sidecar, ns=(before.st_atime_ns, before.st_mtime_ns))
    (index / "runs.arrow").write_bytes(b"not an index")  # damage that --repair rebuilds
    report = verify_repo(layout, repair=True)
    assert any(p.kind == "damaged-index" and p.repaired for p in report.problems)
    assert not journal.exists() and not (index / "points.arrow").exists()
    assert _seeds(repo)[hashes[0]] == 7
