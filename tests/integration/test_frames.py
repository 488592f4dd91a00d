"""Frames built in Arrow (`sdk.frames`): the same cells as the points read one by one, text
dictionary-encoded in `to_arrow()`, `only_last` from the summaries, and the run-level frame."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage.compaction import dataset_read
from aim_parquet.storage.compaction.compactor import compact_repo
from aim_parquet.storage.online import run_reader

pd = pytest.importorskip("pandas")
pl = pytest.importorskip("polars")

QUIET: dict[str, Any] = {"system_tracking_interval": None, "capture_terminal_logs": False}


@pytest.fixture()
def repo_root(tmp_path: Path) -> Path:
    for r in range(3):
        run = aim.Run(repo=tmp_path, experiment=f"exp-{r % 2}", **QUIET)
        run["hparams"] = {"lr": 0.1 * (r + 1), "seed": r}
        if r == 1:
            run["only_here"] = "yes"
        run["mixed"] = r if r != 2 else "two"
        for step in range(5 + r):
            run.track(1.0 / (step + 1 + r), name="loss", step=step, epoch=step // 2,
                      context={"subset": "train"})  # fmt: skip
            if step % 2 == 0:
                run.track(step + r, name="loss", step=step, context={"subset": "val"})
        run.close()
    return tmp_path


def _expected(repo: aim.Repo) -> dict[tuple[str, str], tuple[list[int], list[float]]]:
    out = {}
    for metric in repo.query_metrics("metric.name == 'loss'"):
        steps, values = metric.values.sparse_numpy()
        out[metric.run.hash, metric.context.idx] = (steps.tolist(), values.astype(float).tolist())
    return out


def test_frame_cells_match_the_points(repo_root: Path) -> None:
    repo = aim.Repo(repo_root)
    expected = _expected(repo)
    df = repo.query_metrics("metric.name == 'loss'").dataframe()
    assert len(df) == sum(len(s) for s, _ in expected.values())
    for (run_hash, ctx), group in df.groupby(["run.hash", "metric.context"], sort=False):
        steps, values = expected[run_hash, ctx]
        assert group["step"].tolist() == steps
        assert group["value"].tolist() == values
        assert group["idx"].tolist() == list(range(len(steps)))
    assert df["value"].dtype == np.float64 and df["epoch"].dtype == np.float64
    val = df[df["metric.context.subset"] == "val"]
    assert val["epoch"].isna().all()  # tracked without an epoch
    assert df["run.hash"].map(type).eq(str).all()  # text as str objects, not categories
    assert str(df["time"].dtype).startswith("datetime64")
    only = df[df["run.only_here"].notna()]
    assert set(only["run.only_here"]) == {"yes"}
    assert df["run.only_here"].isna().sum() == len(df) - len(only)  # missing: None, not dropped
    assert set(df["run.mixed"]) == {"0", "1", '"two"'}  # one kind per column: JSON text


def test_to_arrow_and_polars_hold_the_same_table(repo_root: Path) -> None:
    coll = aim.Repo(repo_root).query_metrics("metric.name == 'loss'")
    table = coll.to_arrow()
    assert isinstance(table, pa.Table)
    assert pa.types.is_dictionary(table.schema.field("run.hash").type)
    assert len(table.column("run.hash").chunk(0).dictionary) == 3  # each hash stored once
    frame = coll.to_polars()
    assert frame.columns == table.column_names == list(coll.dataframe().columns)
    assert frame["run.hash"].dtype == pl.String
    assert frame["value"].to_list() == table.column("value").to_pylist()
    assert aim.Repo(repo_root).query_metrics("metric.name == 'none'").to_arrow() is None


def test_only_last_reads_no_point(repo_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = aim.Repo(repo_root)
    expected = _expected(repo)

    def no_reads(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("only_last read points")

    monkeypatch.setattr(run_reader, "_read_pieces", no_reads)
    last = repo.query_metrics("metric.name == 'loss'").dataframe(only_last=True)
    assert len(last) == len(expected)
    for row in last.to_dict("records"):
        steps, values = expected[row["run.hash"], row["metric.context"]]
        assert (row["step"], row["value"]) == (steps[-1], values[-1])
    assert last["epoch"].isna().all()


def test_run_level_frame_from_summaries(repo_root: Path) -> None:
    repo = aim.Repo(repo_root)
    expected = _expected(repo)
    df = repo.query_runs("").dataframe(metrics=["loss", "nothing"])
    assert len(df) == 3 and "hparams.lr" in df.columns
    train, val = '{"subset":"train"}', '{"subset":"val"}'
    for row in df.to_dict("records"):
        for ctx in (train, val):
            steps, values = expected[row["hash"], ctx]
            assert row[f"loss{ctx}.last"] == values[-1]
            assert row[f"loss{ctx}.last_step"] == steps[-1]
            assert row[f"loss{ctx}.min"] == min(values)
            assert row[f"loss{ctx}.max"] == max(values)
    assert not any(c.startswith("nothing") for c in df.columns)
    table = repo.query_runs("").to_arrow(metrics=["loss"])
    assert table is not None and table.num_rows == 3
    assert not math.isnan(table.column(f"loss{train}.last").to_pylist()[0])


def _frames_per_run(repo_root: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The frame of every metric read from each run's own files (no dataset)."""
    with monkeypatch.context() as patch:
        patch.setattr(dataset_read, "committed_metric_points", lambda *_a, **_kw: {})
        return aim.Repo(repo_root).query_metrics("").dataframe()


def test_frame_reads_current_runs_from_the_dataset(
    repo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a refresh the frame takes the points of unchanged closed runs from the dataset's
    shared files (no run file opened), and the frame is cell for cell the per-run one: resumed
    steps overwritten, NaN and inf values, an int metric, missing epochs."""
    resumed = aim.Run(run_hash=aim.Repo(repo_root).list_all_runs()[0], repo=repo_root, **QUIET)
    resumed.track(float("nan"), name="loss", step=1, context={"subset": "train"})
    resumed.track(float("inf"), name="loss", step=2, epoch=7, context={"subset": "train"})
    resumed.track(3, name="count", step=0)
    resumed.close()
    compact_repo(RepoLayout(repo_root))  # (refreshes the dataset)
    expected = _frames_per_run(repo_root, monkeypatch)
    monkeypatch.setattr(dataset_read, "MIN_SHARED_READ_RUNS", 1)  # (3 runs here)
    opened: list[str] = []
    real = run_reader._read_pieces

    def spy(layout: Any, run_hash: str, info: Any, wanted: list[str]) -> Any:
        opened.append(run_hash)
        return real(layout, run_hash, info, wanted)

    monkeypatch.setattr(run_reader, "_read_pieces", spy)
    got = aim.Repo(repo_root).query_metrics("").dataframe()
    assert opened == []
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    # a run resumed after the refresh is stale in the dataset: read from its own files
    again = aim.Run(run_hash=resumed.hash, repo=repo_root, **QUIET)
    again.track(-1.0, name="loss", step=0, context={"subset": "train"})
    again.close()
    got = aim.Repo(repo_root).query_metrics("").dataframe()
    assert set(opened) == {resumed.hash}
    monkeypatch.undo()
    pd.testing.assert_frame_equal(got, _frames_per_run(repo_root, monkeypatch), check_exact=True)
    row = got[(got["run.hash"] == resumed.hash) & (got["metric.context.subset"] == "train")]
    assert row["value"].tolist()[:3][0] == -1.0 and math.isnan(row["value"].tolist()[1])
