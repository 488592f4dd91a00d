"""The two ways a metric is read back agree: `read_metric_columns` (numpy straight from record
batches, what `Metric.values` uses) and `read_sequence` (an Arrow table, what exports use), on
runs with duplicate steps, missing epochs, several sessions and compacted parts; and a query
lists a run's folders for uncatalogued sequences only when the run has no end_time."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.query import executor
from aim_parquet.storage import compact_run, load_run_meta, read_metric_columns, read_sequence
from aim_parquet.storage.base.columns import to_numpy, validity

QUIET: dict[str, Any] = {"system_tracking_interval": None, "capture_terminal_logs": False}


def table_column(table: Any, name: str) -> np.ndarray[Any, Any]:
    column = table.column(name)
    array = to_numpy(column).astype(np.float64)
    if column.null_count:
        array[~np.concatenate([validity(c) for c in column.chunks])] = math.nan
    return array


def write_sessions(root: Path, *, compact_after: int | None) -> str:
    """Three sessions of one run: overlapping steps (later values win), some without epoch,
    out-of-order steps; compacted after session `compact_after` when given."""
    run = aim.Run(repo=root, **QUIET)
    run_hash = run.hash
    for session in range(3):
        if session:
            run = aim.Run(run_hash, repo=root, **QUIET)
        for step in (5, 3, 9, 3, 0) if session == 1 else range(session * 4, session * 4 + 6):
            epoch = None if step % 3 == 0 else step // 2
            run.track(session * 100.0 + step, name="loss", step=step, epoch=epoch)
            run.track(step, name="count", step=step)
        run.close()
        if compact_after == session:
            compact_run(RepoLayout(root), run_hash)
    return run_hash


@pytest.mark.parametrize("compact_after", [None, 0, 1, 2])
def test_metric_columns_match_the_table_read(tmp_path: Path, compact_after: int | None) -> None:
    run_hash = write_sessions(tmp_path, compact_after=compact_after)
    layout = RepoLayout(tmp_path)
    for info in load_run_meta(layout, run_hash).sequences:
        table = read_sequence(layout, run_hash, info)
        steps, arrays = read_metric_columns(layout, run_hash, info, ["value", "epoch", "timestamp"])
        assert steps.tolist() == to_numpy(table.column("step")).tolist()
        assert steps.tolist() == sorted(set(steps.tolist()))
        for name in ("value", "epoch", "timestamp"):
            np.testing.assert_array_equal(arrays[name], table_column(table, name))
    loss = aim.Repo(tmp_path).get_run(run_hash).get_metric("loss")
    steps, values = loss.values.sparse_numpy()
    last = {}
    for session in range(3):
        for step in (5, 3, 9, 3, 0) if session == 1 else range(session * 4, session * 4 + 6):
            last[step] = session * 100.0 + step
    assert steps.tolist() == sorted(last) and values.tolist() == [last[s] for s in sorted(last)]
    epochs = loss.epochs.values_list()
    assert [e is None for e in epochs] == [s % 3 == 0 for s in sorted(last)]


def test_query_lists_sequence_folders_of_unfinished_runs_only(
    repo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    done = aim.Run(repo=repo_root, **QUIET)
    done.track(1.0, name="loss", step=0)
    done.close()
    live = aim.Run(repo=repo_root, **QUIET)
    live.track(2.0, name="loss", step=0)
    live.flush()
    listed: list[str] = []
    real = executor.uncatalogued_sequences

    def spy(layout: Any, run_hash: str, known: Any) -> Any:
        listed.append(run_hash)
        return real(layout, run_hash, known)

    monkeypatch.setattr(executor, "uncatalogued_sequences", spy)
    try:
        metrics = list(aim.Repo(repo_root).query_metrics("metric.name == 'loss'"))
        assert sorted(m.values.values_list()[0] for m in metrics) == [1.0, 2.0]
        assert listed == [live.hash]
    finally:
        live.close()
