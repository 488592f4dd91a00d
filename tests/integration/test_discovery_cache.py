"""The catalogue of a run whose writer died is scanned from its segments once per Run, not on
every lookup, and again when its files change; a live writer's run is never cached."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import aim_parquet as aim
from aim_parquet.format.meta import FORMAT_VERSION
from aim_parquet.format.paths import segment_name, sequence_id
from aim_parquet.format.schema import METRIC_SCHEMA, segment_schema
from aim_parquet.storage.online import catalogue_files
from aim_parquet.storage.online.segments import SegmentFile
from tests.conftest import sidecar

N_SEQS = 200
QUIET: dict[str, Any] = {"system_tracking_interval": None, "capture_terminal_logs": False}


def crashed_run(root: Path) -> str:
    """A run whose sidecar lost its catalogue and end_time (as after a kill before it caught up)."""
    with aim.Run(repo=root, **QUIET) as run:
        for k in range(N_SEQS):
            for step in range(3):
                run.track(float(step), name=f"s{k}", step=step)
    data = sidecar(root, run.hash)
    data["sequences"], data["end_time"] = [], None
    (root / ".aim" / "runs" / run.hash / "run.json").write_text(json.dumps(data))
    return run.hash


def batch(*steps: int) -> pa.RecordBatch:
    n = len(steps)
    return pa.record_batch(
        [
            pa.array(steps, pa.int64()),
            pa.array([float(s) for s in steps]),
            pa.array([None] * n, pa.int64()),
            pa.array([0.0] * n),
        ],
        schema=METRIC_SCHEMA,
    )


def counts(run: Any) -> dict[str, int]:
    infos = run.collect_sequence_info("metric")["metric"]
    return {i["name"]: i["values"]["count"] for i in infos}


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The sequence folders the catalogue scan identified (one per uncatalogued sequence)."""
    seen: list[str] = []
    real = catalogue_files._identify

    def counting(files: Any, seq_id: str) -> Any:
        seen.append(seq_id)
        return real(files, seq_id)

    monkeypatch.setattr(catalogue_files, "_identify", counting)
    return seen


def test_a_dead_runs_catalogue_is_scanned_once(repo_root: Path, scans: list[str]) -> None:
    run_hash = crashed_run(repo_root)
    run = aim.Run(run_hash, repo=repo_root, read_only=True)
    assert run.get_metric("s0") is not None
    assert len(scans) == N_SEQS  # the first lookup scans every sequence once
    for k in (1, 2, N_SEQS - 1):
        metric = run.get_metric(f"s{k}")
        assert metric is not None and metric.values.sparse_numpy()[0].tolist() == [0, 1, 2]
    assert counts(run)["s7"] == 3
    assert len(scans) == N_SEQS  # later lookups scan nothing


def test_a_changed_sequence_folder_is_scanned_again(repo_root: Path, scans: list[str]) -> None:
    run_hash = crashed_run(repo_root)
    run = aim.Run(run_hash, repo=repo_root, read_only=True)
    assert counts(run)["s5"] == 3
    seq_dir = repo_root / ".aim" / "runs" / run_hash / "seqs" / sequence_id("s5", {})
    first = next(seq_dir.iterdir())
    data = first.read_bytes() + batch(3).serialize().to_pybytes()
    os.unlink(first)  # a repair-like rewrite: the folder changes
    first.write_bytes(data)
    assert counts(run)["s5"] == 4 and len(scans) == 2 * N_SEQS


def test_a_live_writers_run_is_read_every_time(repo_root: Path) -> None:
    """While a writer lives it may append to a sequence its sidecar does not list yet."""
    with aim.Run(repo=repo_root, **QUIET) as writer:
        seq_dir = repo_root / ".aim" / "runs" / writer.hash / "seqs" / sequence_id("ghost", {})
        seq_dir.mkdir(parents=True)
        schema = segment_schema(writer.hash, "ghost", "{}", "float", FORMAT_VERSION)
        segment = SegmentFile(seq_dir / segment_name(1, 1), schema)
        segment.append(batch(0, 1))
        reader = aim.Run(writer.hash, repo=repo_root, read_only=True)
        assert counts(reader) == {"ghost": 2}
        segment.append(batch(2))  # appending does not change the folder
        assert counts(reader) == {"ghost": 3}
        segment.close(sync=False)
