"""The bulk reader (`storage.online.bulk_read`) while the files of a run change under it: a
segment removed between the listing of its folder and its read, and a compaction committed while
a run's segments are read, leave that run to its own read (never part of its points), and the
frame and the iteration give exactly the points of each run's own read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage import compact_run, load_run_meta
from aim_parquet.storage.online import bulk_read
from aim_parquet.storage.online.run_reader import read_metric_columns

QUIET: dict[str, Any] = {"system_tracking_interval": None, "capture_terminal_logs": False}


def _repo(root: Path) -> list[str]:
    """Three closed runs with a `loss`; the second resumed (two segments, a step written
    again), in result order of `read_metrics_bulk`'s input."""
    hashes = []
    for k in range(3):
        run = aim.Run(repo=root, **QUIET)
        for step in range(6):
            run.track(float(k * 10 + step), name="loss", step=step, epoch=step // 2)
        run.close()
        hashes.append(run.hash)
    run = aim.Run(hashes[1], repo=root, **QUIET)
    run.track(-1.0, name="loss", step=3, epoch=9)
    run.track(7.5, name="loss", step=8, epoch=9)
    run.close()
    return hashes


def _wanted(layout: RepoLayout, hashes: list[str]) -> list[tuple[str, Any]]:
    return [
        (h, next(s for s in load_run_meta(layout, h).sequences if s.name == "loss")) for h in hashes
    ]


def _own(layout: RepoLayout, run_hash: str, info: Any) -> tuple[Any, ...]:
    steps, arrays = read_metric_columns(layout, run_hash, info, ["value", "epoch", "timestamp"])
    return steps, arrays["value"], arrays["epoch"], arrays["timestamp"]


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> None:
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)


def test_a_segment_removed_after_the_listing_leaves_its_run_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashes = _repo(tmp_path)
    layout = RepoLayout(tmp_path)
    wanted = _wanted(layout, hashes)
    real = bulk_read._read_small
    removed: list[str] = []

    def remove_the_second_segment(path: str) -> bytes:
        if f"/{hashes[1]}/" in path and not removed:
            removed.append(path)  # the first of its two is read, the second is gone
            data = real(path)
            (later,) = [p for p in Path(path).parent.iterdir() if str(p) != path]
            later.unlink()
            return data
        return real(path)

    monkeypatch.setattr(bulk_read, "_read_small", remove_the_second_segment)
    found = bulk_read.read_metrics_bulk(layout, wanted)
    assert removed and sorted(found) == [0, 2]  # the run is left to its own read, not half read
    for position in (0, 2):
        _same(found[position], _own(layout, *wanted[position]))


def test_a_compaction_committed_while_a_run_is_read_leaves_it_to_its_own_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashes = _repo(tmp_path)
    layout = RepoLayout(tmp_path)
    query = "metric.name == 'loss'"
    expected = aim.Repo(tmp_path).query_metrics(query).dataframe()
    expected_points = {
        m.run.hash: m.values.sparse_numpy() for m in aim.Repo(tmp_path).query_metrics(query)
    }
    real = bulk_read._read_small
    compacted: list[str] = []

    def compact_while_read(path: str) -> bytes:
        data = real(path)
        if f"/{hashes[1]}/" in path and not compacted:
            compacted.append(path)
            compact_run(
                layout, hashes[1], rewrite_all=True
            )  # commits its manifest, removes its segments
        return data

    monkeypatch.setattr(bulk_read, "_read_small", compact_while_read)
    wanted = _wanted(layout, hashes)
    own = {h: _own(layout, h, info) for h, info in wanted}
    found = bulk_read.read_metrics_bulk(layout, wanted)
    assert compacted and sorted(found) == [0, 2]
    for position in (0, 2):
        _same(found[position], own[hashes[position]])
    # the frame and the iteration read the compacted run from its compacted files
    compacted.clear()
    for h in hashes:
        if h != hashes[1]:
            compact_run(layout, h, rewrite_all=True)  # (nothing left to race: each run's own files)
    frame = aim.Repo(tmp_path).query_metrics(query).dataframe()
    key = ["run.hash", "step"]
    got = frame.sort_values(key).reset_index(drop=True)
    want = expected.sort_values(key).reset_index(drop=True)
    assert list(got.columns) == list(want.columns)
    assert got[["run.hash", "step", "value", "epoch", "timestamp"]].equals(
        want[["run.hash", "step", "value", "epoch", "timestamp"]]
    )
    for metric in aim.Repo(tmp_path).query_metrics(query):
        steps, values = metric.values.sparse_numpy()
        want_steps, want_values = expected_points[metric.run.hash]
        np.testing.assert_array_equal(steps, want_steps)
        np.testing.assert_array_equal(values, want_values)
