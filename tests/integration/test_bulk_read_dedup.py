"""The bulk segment reader (`storage.online.bulk_read`) finds the sequences whose steps were
written again in one pass over all of them: each sequence's points are the ones its own read
(`read_metric_columns`) gives, whatever the neighbours (empty sequences, a sequence starting
below where the previous one ended, a step written again first, last or several times, a
missing epoch rewritten)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import aim_parquet as aim
from aim_parquet.storage.online import batch_columns, bulk_read
from aim_parquet.storage.online.run_reader import read_metric_columns

QUIET: dict[str, Any] = {"system_tracking_interval": None, "capture_terminal_logs": False}


def _steps(rng: random.Random) -> list[int]:
    pattern = rng.choice(["none", "rising", "falling", "again", "first", "last", "one"])
    if pattern == "none":
        return []
    if pattern == "one":
        return [rng.randrange(5)]
    steps = list(range(rng.randrange(1, 6)))
    if pattern == "falling":
        return steps[::-1]
    if pattern == "again":
        return steps + [rng.choice(steps) for _ in range(rng.randrange(1, 4))]
    if pattern == "first":
        return [steps[0], *steps]
    if pattern == "last":
        return [*steps, steps[-1]]
    return steps


@pytest.mark.parametrize(("seed", "missing"), [(3, 0.3), (4, 0.3), (5, 0.0), (6, 0.0)])
def test_bulk_points_are_each_sequences_own(
    tmp_path: Path, seed: int, missing: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain batch (no missing epoch) has its columns taken from the files' bytes, gathered
    with the other small ones of its layout or copied alone when large (`batch_columns`); the
    others go through the IPC reader: alone or mixed, each sequence gets its own points (NaN and
    inf values, int metrics, steps written again)."""
    rng = random.Random(seed)
    for i in range(30):
        run = aim.Run(repo=tmp_path, experiment="dedup", **QUIET)
        for name in ("a", "b", "c"):
            for step in _steps(rng):
                epoch = None if rng.random() < missing else step
                value = rng.choice([rng.random() + i, float("nan"), float("-inf")])
                run.track(i if name == "c" else value, name=name, step=step, epoch=epoch)
            if rng.random() < 0.3:
                run.flush()  # (more than one batch in a segment)
        run.close()
    run = aim.Run(repo=tmp_path, experiment="dedup", **QUIET)  # batches of many points
    for step in [*range(300), *range(250, 260), *range(600, 900)]:
        epoch = None if rng.random() < missing else step
        run.track(rng.random(), name="long", step=step, epoch=epoch)
        if step in (259, 700):
            run.flush()
    run.close()
    columns, decoded = bulk_read.batch_columns, batch_columns.decoded_points
    batches: list[int] = []

    def spy_columns(found: Any) -> Any:
        batches.append(len(found))
        return columns(found)

    def spy_decoded(found: Any, rows: int) -> Any:
        batches.append(-len(found))
        return decoded(found, rows)

    monkeypatch.setattr(bulk_read, "batch_columns", spy_columns)
    monkeypatch.setattr(batch_columns, "decoded_points", spy_decoded)
    repo = aim.Repo(tmp_path)
    wanted = [(m.run.hash, m.info) for m in repo.query_metrics("run.experiment == 'dedup'")]
    rng.shuffle(wanted)
    wanted.sort(key=lambda w: w[0])  # (a run's sequences next to each other)
    got = bulk_read.read_metrics_bulk(repo.layout, wanted)
    if missing:  # some batches plain, the others (a missing epoch) through the IPC reader
        assert len(batches) == 2 and 0 < -batches[1] < batches[0]
    else:
        assert len(batches) == 1
    assert sorted(got) == list(range(len(wanted)))
    for i, (run_hash, info) in enumerate(wanted):
        steps, arrays = read_metric_columns(
            repo.layout, run_hash, info, ["value", "epoch", "timestamp"]
        )
        want = (steps, arrays["value"], arrays["epoch"], arrays["timestamp"])
        for a, b in zip(got[i], want, strict=True):
            assert a.dtype == b.dtype, (run_hash, info.name)
            assert np.array_equal(a, b, equal_nan=True), (run_hash, info.name)
