"""hy31 (hostile user): an epoch past 2**53 read from the analyst dataset's shared files.

Aim epochs are ints; the run's own files (written and compacted) keep them exactly, and
`query_metrics(...)` iteration gives them as int64. After `compact`, a query over enough runs
takes its points from `.aim/dataset/` (`dataset_read._bucket_points`/`_copied`), which turn the
epoch column into float64 (NaN for a missing epoch) and back: 2**53 + 1 came back as 2**53.
They now give each sequence's epochs as the run's own files do (int64, or float64 with NaN when
one of its points has none), on the sliced path and on the copied one (`other` points of another
metric make `loss` less than COPY_BELOW of a bucket)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage.compaction.compactor import compact_repo

QUIET: dict[str, Any] = {"system_tracking_interval": None, "capture_terminal_logs": False}
BIG = 2**53 + 1


def _epochs(root: Path) -> dict[str, list[Any]]:
    return {  # (NaN, a missing epoch, as None: NaN != NaN)
        metric.run.hash: [None if e != e else e for e in metric.epochs.values_numpy().tolist()]
        for metric in aim.Repo(root).query_metrics("metric.name == 'loss'")
    }


@pytest.mark.parametrize("other", [0, 6], ids=["sliced", "copied"])
def test_an_epoch_past_2_53_survives_the_shared_dataset_read(tmp_path: Path, other: int) -> None:
    written, compacted = tmp_path / "written", tmp_path / "compacted"
    for i in range(70):  # (past MIN_SHARED_READ_RUNS)
        run = aim.Run(repo=written, **QUIET)
        run.track(0.5, name="loss", step=0, epoch=BIG if i % 2 else None)
        run.track(1.5, name="loss", step=1, epoch=i)
        for step in range(other):
            run.track(2.5, name="acc", step=step, epoch=BIG)
        run.close()
    shutil.copytree(written, compacted, symlinks=True)
    compact_repo(RepoLayout(compacted))
    want = _epochs(written)
    assert any(BIG in epochs for epochs in want.values())  # (the written files keep it)
    assert _epochs(compacted) == want
    frame, frame_want = (
        aim.Repo(root).query_metrics("metric.name == 'loss'").to_arrow()
        for root in (compacted, written)
    )
    assert frame is not None and frame_want is not None
    assert np.array_equal(frame["epoch"].to_numpy(), frame_want["epoch"].to_numpy(), equal_nan=True)
