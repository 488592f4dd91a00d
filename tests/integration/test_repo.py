"""Repo over real repositories: lookup, read-only runs, sequence views, delete/copy/move,
damaged runs, DataFrames."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import aim_parquet as aim
from aim_parquet.errors import CorruptFileError, RepoNotFoundError, RunLockedError
from aim_parquet.objects import LogLine, LogRecord
from aim_parquet.sdk.run import Run
from aim_parquet.storage import load_run_meta


def finished_run(make_run: Any, **params: Any) -> Any:
    run = make_run()
    for key, value in params.items():
        run[key] = value
    for step in range(5):
        run.track(step * 0.5, name="loss", step=step, epoch=step // 2, context={"subset": "train"})
    run.close()
    return run


# -- construction ----------------------------------------------------------------------------
def test_missing_repo_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RepoNotFoundError, match="Cannot find"):
        aim.Repo(tmp_path / "nowhere")
    with pytest.raises(RuntimeError):
        aim.Repo.from_path(tmp_path / "nowhere")
    assert not aim.Repo.exists(tmp_path / "nowhere")


def test_init_from_path_and_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = aim.Repo(tmp_path / "r", init=True)
    assert aim.Repo.exists(tmp_path / "r") and aim.Repo.exists(tmp_path / "r" / ".aim")
    assert repo.path == str(tmp_path / "r" / ".aim") and repo.root_path == str(tmp_path / "r")
    assert aim.Repo.from_path(tmp_path / "r") is aim.Repo.from_path(str(tmp_path / "r" / ".aim"))
    (tmp_path / "r" / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "r" / "sub")
    assert aim.Repo.default_repo() == repo
    assert repo.list_all_runs() == [] and repo.total_runs_count() == 0


# -- lookup ----------------------------------------------------------------------------------
def test_run_lookup(repo_root: Path, make_run: Any) -> None:
    done = finished_run(make_run, hparams={"lr": 0.1})
    live = make_run()
    live.track(1.0, name="loss")
    repo = aim.Repo(repo_root)
    assert sorted(repo.list_all_runs()) == sorted([done.hash, live.hash])
    assert repo.total_runs_count() == 2
    assert repo.list_active_runs() == [live.hash]
    assert repo.run_exists(done.hash) and not repo.run_exists("0" * 24)
    assert repo.get_run("0" * 24) is None and repo.get_run("not-a-hash") is None
    run = repo.get_run(done.hash)
    assert run.read_only and run["hparams"] == {"lr": 0.1} and not run.active
    assert repo.get_run(live.hash).active
    assert [r.hash for r in repo.iter_runs()] == [live.hash, done.hash]  # newest first


def test_read_only_run_from_query_equals_opened_run(repo_root: Path, make_run: Any) -> None:
    done = finished_run(make_run, hparams={"lr": 0.1})
    layout = aim.Repo(repo_root).layout
    fast = Run.open_read_only(layout, load_run_meta(layout, done.hash))
    slow = aim.Run(done.hash, repo=repo_root, read_only=True)
    assert vars(fast).keys() == vars(slow).keys()
    assert fast[...] == slow[...] and fast.props == slow.props and repr(fast) == repr(slow)


# -- read-only run API -----------------------------------------------------------------------
def test_run_sequence_access(repo_root: Path, make_run: Any) -> None:
    run = make_run()
    run["hparams"] = {"lr": 0.01, "opt": {"name": "adam", "betas": [0.9, 0.99]}}
    run.add_tag("best")
    for step in range(3):
        run.track(step, name="acc", step=step)
        run.track(float(step), name="loss", step=step, context={"subset": "val"})
    run.track(aim.Text("hi"), name="notes", step=0)
    run.track(LogLine("terminal line"), name="logs", step=0)
    run.track(LogRecord("careful", 30, 1.0), name="__log_records", step=0)
    run.close()
    ro = aim.Repo(repo_root).get_run(run.hash)
    assert sorted(m.name for m in ro.metrics()) == ["acc", "loss"]
    assert ro.get_metric("loss") is None
    loss = ro.get_metric("loss", {"subset": "val"})
    assert loss is not None and loss.values.values_list() == [0.0, 1.0, 2.0]
    assert ro.get_metric("loss", loss.context) is not None  # a Context works
    assert ro.get_text_sequence("notes").values.values_list()[0].data == "hi"
    assert ro.get_image_sequence("notes") is None
    assert ro.get_terminal_logs().values.last_value().data == "terminal line"
    assert ro.get_log_records().values.last_value().message == "careful"
    assert sorted(n for n, _, _ in ro.iter_metrics_info()) == ["acc", "loss"]
    assert [(n, c.to_dict()) for n, c, _ in ro.iter_sequence_info_by_type("aim.text")] == [
        ("notes", {})
    ]
    info = ro.collect_sequence_info(["metric", "texts"])
    assert {i["name"] for i in info["metric"]} == {"acc", "loss"}
    acc = next(i for i in info["metric"] if i["name"] == "acc")
    assert acc["values"]["last"] == 2 and acc["values"]["last_step"] == 2
    assert "values" not in ro.collect_sequence_info("texts", skip_last_value=True)["texts"][0]
    df = ro.dataframe()
    assert df.shape[0] == 1 and df.loc[0, "hash"] == run.hash
    assert df.loc[0, "hparams.lr"] == 0.01 and df.loc[0, "hparams.opt.name"] == "adam"
    assert (
        json.loads(df.loc[0, "tags"]) == ["best"]
        and df.loc[0, "hparams.opt.betas"] == "[0.9, 0.99]"
    )


def test_writable_run_reads_its_own_points(make_run: Any) -> None:
    run = make_run()
    run.track(1.5, name="x")
    assert run.get_metric("x").values.values_list() == [1.5]


# -- sequence views over real files ----------------------------------------------------------
def test_sparse_numpy_uses_real_steps(repo_root: Path, make_run: Any) -> None:
    run = make_run()
    for step, value in [(10, 1.0), (3, 2.0), (7, 3.0), (3, 4.0), (1_000_000_007, 5.0), (0, 6.0)]:
        run.track(value, name="m", step=step, epoch=1)
        run.flush()  # each point in its own batch: duplicates across batches
    run.close()
    metric = next(iter(aim.Repo(repo_root).query_metrics("metric.name == 'm'")))
    steps, values = metric.values.sparse_numpy()
    assert steps.tolist() == [0, 3, 7, 10, 1_000_000_007]
    assert values.tolist() == [6.0, 4.0, 3.0, 1.0, 5.0]  # step 3 tracked twice: last write wins
    assert metric.values[3] == 4.0 and len(metric.values) == 5
    assert metric.epochs.values_list() == [1] * 5
    assert metric.first_step() == 0 and metric.last_step() == 1_000_000_007
    values[0] = 0.0  # writable, as in Aim: the caller's own copy
    assert metric.values.values_numpy()[0] == 6.0
    steps2, (vals, epochs, times) = metric.data.numpy()
    assert steps2.tolist() == steps.tolist() and vals.tolist() == [6.0, *values.tolist()[1:]]
    assert epochs.dtype == np.float64 and times.dtype == np.float64 and len(times) == 5
    s, cols = metric.data.items_list()
    assert s == steps.tolist() and cols[1] == [1.0] * 5


def test_int_metric_and_timestamps(repo_root: Path, make_run: Any) -> None:
    run = make_run()
    for i in range(4):
        run.track(i * 3, name="count")
    run.close()
    metric = aim.Repo(repo_root).get_run(run.hash).get_metric("count")
    values = metric.values.values_numpy()
    assert values.dtype == np.int64 and values.tolist() == [0, 3, 6, 9]
    stamps = metric.timestamps.values_numpy()
    assert stamps.dtype == np.float64 and np.all(np.diff(stamps) >= 0)
    assert metric.epochs.values_list() == [None] * 4
    assert np.isnan(metric.epochs.values_numpy()).all()


def test_object_sequences_decode_lazily(repo_root: Path, make_run: Any) -> None:
    run = make_run()
    pixels = np.zeros((4, 4, 3), dtype=np.uint8)
    for step in (2, 0):
        run.track(
            [aim.Image(pixels, caption=f"s{step}-{i}") for i in range(3)], name="imgs", step=step
        )
    run.track(aim.Distribution([1, 2, 3]), name="dist", step=5)
    run.close()
    repo = aim.Repo(repo_root)
    imgs = next(iter(repo.query_images("images.name == 'imgs'")))
    assert type(imgs) is aim.Images and imgs.dtype == "list(aim.image)"
    steps, values = imgs.values.sparse_numpy()
    assert steps.tolist() == [0, 2] and [v.caption for v in values[1]] == ["s2-0", "s2-1", "s2-2"]
    assert imgs.epochs.values_list() == [None, None] and len(imgs.epochs) == 2
    assert imgs.values.last_value()[0].to_pil_image().size == (4, 4)
    dists = list(repo.query_distributions())
    assert [d.name for d in dists] == ["dist"] and dists[0].values.first()[0] == 5
    assert list(repo.query_texts()) == [] and list(repo.query_audios()) == []
    assert list(repo.query_figure_objects()) == []


def test_sequence_dataframes(repo_root: Path, make_run: Any) -> None:
    run = finished_run(make_run, hparams={"lr": 0.1})
    metric = aim.Repo(repo_root).get_run(run.hash).get_metric("loss", {"subset": "train"})
    df = metric.dataframe()
    assert list(df.columns) == ["idx", "step", "value", "epoch", "time", "timestamp"]
    assert df["step"].tolist() == [0, 1, 2, 3, 4] and df["epoch"].tolist() == [0, 0, 1, 1, 2]
    full = metric.dataframe(include_name=True, include_context=True, include_run=True)
    assert full["metric.context.subset"].unique().tolist() == ["train"]
    assert full["run.hparams.lr"].unique().tolist() == [0.1]
    pl_df = metric.to_polars(include_name=True)
    assert pl_df.columns[:6] == ["idx", "step", "value", "epoch", "time", "metric.name"]
    assert pl_df.height == 5


# -- deletion and transfer -------------------------------------------------------------------
def test_delete_run(repo_root: Path, make_run: Any) -> None:
    done = finished_run(make_run)
    live = make_run()
    repo = aim.Repo(repo_root)
    assert len(list(repo.query_runs().iter_runs())) == 2
    with pytest.raises(RunLockedError, match="still being written"):
        repo.delete_run(live.hash)
    assert repo.delete_run(done.hash) is True
    assert repo.delete_run(done.hash) is False
    assert not repo.run_exists(done.hash)
    assert [c.run.hash for c in repo.query_runs().iter_runs()] == [live.hash]
    assert os.listdir(repo.layout.trash_dir) == []


def test_delete_runs_reports_remaining(repo_root: Path, make_run: Any) -> None:
    a, b = finished_run(make_run), finished_run(make_run)
    live = make_run()
    ok, remaining = aim.Repo(repo_root).delete_runs([a.hash, live.hash, b.hash, "f" * 24])
    assert not ok and remaining == [live.hash, "f" * 24]
    assert aim.Repo(repo_root).list_all_runs() == [live.hash]


def test_copy_and_move_runs(tmp_path: Path, repo_root: Path, make_run: Any) -> None:
    a = finished_run(make_run, hparams={"lr": 1})
    b = finished_run(make_run, hparams={"lr": 2})
    live = make_run()
    src = aim.Repo(repo_root)
    dest = aim.Repo(tmp_path / "dest", init=True)
    ok, remaining = src.copy_runs([a.hash, live.hash], dest)
    assert not ok and remaining == [live.hash]
    assert dest.list_all_runs() == [a.hash] and src.run_exists(a.hash)
    copied = dest.get_run(a.hash)
    assert copied["hparams"] == {"lr": 1}
    assert copied.get_metric("loss", {"subset": "train"}).values.values_list() == [
        0,
        0.5,
        1,
        1.5,
        2,
    ]
    assert not (dest.layout.run_dir(a.hash) / "lock").exists()
    assert src.copy_runs([a.hash], dest) == (False, [a.hash])  # already there
    ok, remaining = src.move_runs([b.hash], tmp_path / "dest")
    assert ok and remaining == []
    assert not src.run_exists(b.hash) and sorted(dest.list_all_runs()) == sorted([a.hash, b.hash])
    assert [m.run.hash for m in dest.query_metrics("run.hparams.lr == 2")] == [b.hash]


def test_read_only_repo_refuses_changes(repo_root: Path, make_run: Any) -> None:
    done = finished_run(make_run)
    with pytest.raises(PermissionError):
        aim.Repo(repo_root, read_only=True).delete_run(done.hash)


# -- catalogue -------------------------------------------------------------------------------
def test_collect_info(repo_root: Path, make_run: Any) -> None:
    finished_run(make_run, hparams={"lr": 0.1, "nested": {"depth": 1}})
    run = make_run()
    run["hparams"] = {"lr": 1, "extra": "x"}
    run.track(1.0, name="loss", context={"subset": "val"})
    run.track(aim.Text("t"), name="txt")
    run.close()
    repo = aim.Repo(repo_root)
    info = repo.collect_sequence_info(["metric", "texts"])
    assert sorted(info["metric"]["loss"], key=str) == [{"subset": "train"}, {"subset": "val"}]
    assert info["texts"] == {"txt": [{}]}
    params = repo.collect_params_info()
    assert params["hparams"]["lr"] == {"__example_type__": "<class 'int'>"} or params["hparams"][
        "lr"
    ] == {"__example_type__": "<class 'float'>"}
    assert params["hparams"]["nested"]["depth"] == {"__example_type__": "<class 'int'>"}
    assert params["hparams"]["extra"] == {"__example_type__": "<class 'str'>"}
    with pytest.raises(ValueError, match="unknown sequence type"):
        repo.collect_sequence_info("bogus")


# -- damaged runs ----------------------------------------------------------------------------
def test_damaged_sidecar_is_skipped_with_a_warning(repo_root: Path, make_run: Any) -> None:
    good = finished_run(make_run)
    bad = finished_run(make_run)
    sidecar = repo_root / ".aim" / "runs" / bad.hash / "run.json"
    sidecar.write_text("{not json")
    repo = aim.Repo(repo_root)
    with pytest.warns(RuntimeWarning, match=str(sidecar).replace(".", r"\.")):
        hashes = [c.run.hash for c in repo.query_runs().iter_runs()]
    assert hashes == [good.hash]
    with pytest.warns(RuntimeWarning, match=bad.hash):
        assert [m.run.hash for m in repo.query_metrics()] == [good.hash]
    assert repo.list_corrupted_runs() == [bad.hash]
    with pytest.raises(CorruptFileError, match="run.json"):
        repo.get_run(bad.hash)


def test_run_folder_without_sidecar(repo_root: Path, make_run: Any) -> None:
    good = finished_run(make_run)
    young = repo_root / ".aim" / "runs" / ("c" * 24)
    young.mkdir()
    repo = aim.Repo(repo_root)
    assert [r.hash for r in repo.iter_runs()] == [good.hash]  # being created: no warning
    assert repo.get_run("c" * 24) is None
    old = repo_root / ".aim" / "runs" / ("d" * 24)
    old.mkdir()
    os.utime(old, (1_000_000, 1_000_000))
    with pytest.warns(RuntimeWarning, match="sidecar is missing"):
        assert [r.hash for r in repo.iter_runs()] == [good.hash]
    with pytest.raises(CorruptFileError, match="no sidecar"):
        repo.get_run("d" * 24)
