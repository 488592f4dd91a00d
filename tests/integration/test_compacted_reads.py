"""Reads of the analyst dataset's shared files (`storage.compaction.dataset_read`): after a
compaction, repo-wide frames and `query_metrics(...)` iteration give what the same repository
as written gives, cell for cell and dtype for dtype, on random sweeps: several metrics and
contexts, resumed runs (steps written again), archived runs, NaN and inf values, missing epochs,
sequences with no point, and bucket files of many row groups (a sequence across two of them,
row groups of runs not wanted left unread)."""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage.compaction import dataset, dataset_read
from aim_parquet.storage.compaction.compactor import compact_repo

QUIET: dict[str, Any] = {"system_tracking_interval": None, "capture_terminal_logs": False}
SEQS: list[tuple[str, dict[str, Any]]] = [
    ("loss", {"subset": "train"}), ("loss", {"subset": "val"}), ("acc", {"subset": "train"}),
    ("acc", {"subset": "val"}), ("loss", {"subset": "val", "fold": 2}), ("loss", {}),
]  # fmt: skip
QUERIES = [
    "metric.name == 'loss'",
    "",
    "metric.context.subset == 'val'",
    "run.hparams.lr == 0.01",
    "run.hparams.seed < 4 and metric.name == 'acc'",
    "run.archived == True or metric.name == 'acc'",
]


def _track(run: aim.Run, rng: random.Random, seqs: list[Any], steps: range) -> None:
    for step in steps:
        for name, context in seqs:
            if rng.random() < 0.15:
                continue
            value = rng.choice([rng.random(), rng.random(), rng.random(), float("nan"), -np.inf])
            epoch = step // 4 if rng.random() < 0.8 else None
            run.track(value, name=name, step=step, epoch=epoch, context=context)


def _sweep(root: Path, seed: int) -> None:
    rng = random.Random(seed)
    runs = []
    for i in range(40):
        run = aim.Run(repo=root, experiment=f"sweep-{i % 2}", **QUIET)
        run["hparams"] = {"lr": rng.choice([0.1, 0.01, 0.001]), "seed": i}
        seqs = rng.sample(SEQS, rng.randrange(1, 5))
        _track(run, rng, seqs, range(rng.randrange(0, 40)))  # (0 steps: no point at all)
        if i % 9 == 4:
            run.archived = True
        run.close()
        runs.append((run.hash, seqs))
    for run_hash, seqs in rng.sample(runs, 8):  # resumed: some steps written again
        run = aim.Run(run_hash=run_hash, repo=root, **QUIET)
        _track(run, rng, seqs, range(rng.randrange(0, 10), rng.randrange(10, 50)))
        run.close()


def _same_tables(got: pa.Table | None, want: pa.Table | None, label: str) -> None:
    if want is None:
        assert got is None, label
        return
    assert got is not None, label
    assert got.schema == want.schema, label
    for name in want.column_names:
        a, b = got.column(name).combine_chunks(), want.column(name).combine_chunks()
        if pa.types.is_floating(b.type):
            x, y = a.to_numpy(zero_copy_only=False), b.to_numpy(zero_copy_only=False)
            assert np.array_equal(x, y, equal_nan=True), (label, name)
            assert a.is_null().equals(b.is_null()), (label, name)
        else:
            assert a.to_pylist() == b.to_pylist(), (label, name)


def _iterated(root: Path, query: str) -> dict[tuple[str, str, int], tuple[Any, ...]]:
    out = {}
    for metric in aim.Repo(root).query_metrics(query):
        steps, values = metric.values.sparse_numpy()
        out[metric.run.hash, metric.name, metric.context.idx] = (
            steps,
            values,
            metric.epochs.values_numpy(),
            metric.timestamps.values_numpy(),
        )
    return out


@pytest.mark.parametrize("seed", [3, 4])
def test_compacted_frames_and_iteration_equal_the_repository_as_written(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    written, compacted = tmp_path / "written", tmp_path / "compacted"
    _sweep(written, seed)
    shutil.copytree(written, compacted, symlinks=True)
    monkeypatch.setattr(dataset, "ROW_GROUP_ROWS", 40)  # (a run's rows in several row groups)
    compact_repo(RepoLayout(compacted))  # (refreshes the analyst dataset)
    files = sorted((compacted / ".aim" / "dataset").glob("metrics-*.parquet"))
    assert max(pq.ParquetFile(f).metadata.num_row_groups for f in files) > 2
    monkeypatch.setattr(dataset_read, "MIN_SHARED_READ_RUNS", 1)
    taken: list[int] = []
    committed = dataset_read.committed_metric_points

    def counted(*args: Any, **kwargs: Any) -> Any:
        points = committed(*args, **kwargs)
        taken.append(len(points))
        return points

    monkeypatch.setattr(dataset_read, "committed_metric_points", counted)
    for query in QUERIES:
        want_coll = aim.Repo(written).query_metrics(query)
        got_coll = aim.Repo(compacted).query_metrics(query)
        _same_tables(got_coll.to_arrow(), want_coll.to_arrow(), query)
        for flags in ({"include_props": False}, {"include_params": False}):
            _same_tables(got_coll.to_arrow(**flags), want_coll.to_arrow(**flags), query)
        got, want = _iterated(compacted, query), _iterated(written, query)
        assert sorted(got) == sorted(want), query
        for key, arrays in want.items():
            for a, b in zip(got[key], arrays, strict=True):
                assert a.dtype == b.dtype, (query, key)
                assert np.array_equal(a, b, equal_nan=True), (query, key)
    assert sum(taken) > 0  # (the frames and batches did read the dataset's files)


def test_a_frame_of_some_of_a_bucket_equals_the_repository_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A frame wanting part of each bucket file copies those rows out of the file's table
    (`dataset_read._copied`): points with no epoch at all in a file, some without one, and
    a sequence across row groups give what the repository as written gives."""
    written, compacted = tmp_path / "written", tmp_path / "compacted"
    for i in range(3):
        run = aim.Run(repo=written, **QUIET)
        for step in range(30):
            run.track(float(step) * (i + 1), name="loss", step=step)  # (no epoch)
            epoch = step // 5 if i == 2 and step % 3 else None
            run.track(1.0 / (step + 1), name="acc", step=step, epoch=epoch)
        run.close()
    shutil.copytree(written, compacted, symlinks=True)
    monkeypatch.setattr(dataset, "ROW_GROUP_ROWS", 25)
    compact_repo(RepoLayout(compacted))
    monkeypatch.setattr(dataset_read, "MIN_SHARED_READ_RUNS", 1)
    copies: list[int] = []
    copied = dataset_read._copied

    def counted(table: pa.Table, kept: list[Any]) -> Any:
        copies.append(len(kept))
        return copied(table, kept)

    monkeypatch.setattr(dataset_read, "_copied", counted)
    for query in ("metric.name == 'loss'", "metric.name == 'acc'"):
        want = aim.Repo(written).query_metrics(query).to_arrow()
        _same_tables(aim.Repo(compacted).query_metrics(query).to_arrow(), want, query)
    assert len(copies) >= 2  # (each query copied rows out of its buckets)
