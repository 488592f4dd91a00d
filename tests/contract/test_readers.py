"""Compaction is invisible to queries: the same repository read as written (segments) and after
compaction (Parquet, plus segments written after it) gives identical results."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage import compact_run, list_run_hashes

QUIET: dict[str, Any] = {"system_tracking_interval": None, "capture_terminal_logs": False}
PIXELS = np.zeros((3, 3, 3), dtype=np.uint8)

# The model: what each sequence must read back as, (steps, values), whatever the storage state.
LOSS_A = {s: float(s) for s in range(20)} | {5: 500.0, 30: 30.0, 25: 25.0, 2: -2.0, 100: 100.0}
EXPECTED_METRICS = {
    ("a", "loss", '{"subset":"train"}'): sorted(LOSS_A.items()),
    ("a", "acc", "{}"): [(s, s * 2) for s in range(10)],
    ("b", "loss", '{"subset":"val"}'): [(s, 1.0 / (s + 1)) for s in range(15)],
}


def build_base(root: Path) -> dict[str, str]:
    """Runs a, b (finished) and c (archived); several flushes so there are several segments."""
    hashes = {}
    a = aim.Run(repo=root, experiment="contract", **QUIET)
    a.name, a["hparams"] = "a", {"lr": 0.01}
    for s in range(20):
        a.track(float(s), name="loss", step=s, context={"subset": "train"})
        if s % 7 == 6:
            a.flush()
    a.track(30.0, name="loss", step=30, context={"subset": "train"})
    a.track(25.0, name="loss", step=25, context={"subset": "train"})
    a.flush()
    a.track(500.0, name="loss", step=5, context={"subset": "train"})  # overwrites, later batch
    for s in range(10):
        a.track(s * 2, name="acc", step=s, epoch=s // 5)
    for s in range(3):
        a.track([aim.Image(PIXELS, caption=f"{s}-{i}") for i in range(2)], name="imgs", step=s)
        a.track(aim.Text(f"text {s}"), name="notes", step=s)
    a.close()
    b = aim.Run(repo=root, experiment="contract", **QUIET)
    b.name, b["hparams"] = "b", {"lr": 0.1}
    for s in range(15):
        b.track(1.0 / (s + 1), name="loss", step=s, context={"subset": "val"})
    b.close()
    c = aim.Run(repo=root, **QUIET)
    c.name = "c"
    c.track(1.0, name="loss")
    c.archived = True
    c.close()
    hashes.update(a=a.hash, b=b.hash, c=c.hash)
    return hashes


def resume_a(root: Path, run_hash: str) -> None:
    """Points written after compaction: an overwrite of a compacted step and a new step."""
    a = aim.Run(run_hash, repo=root, **QUIET)
    a.track(-2.0, name="loss", step=2, context={"subset": "train"})
    a.track(100.0, name="loss", step=100, context={"subset": "train"})
    a.close()


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("base")
    return root, build_base(root)


@pytest.fixture(scope="module")
def segments_repo(
    base: tuple[Path, dict[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("segments") / "repo"
    shutil.copytree(base[0], root)
    resume_a(root, base[1]["a"])
    return root, base[1]


@pytest.fixture(scope="module")
def compacted_repo(
    base: tuple[Path, dict[str, str]], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("compacted") / "repo"
    shutil.copytree(base[0], root)
    layout = RepoLayout(root)
    for run_hash in list_run_hashes(layout):
        report = compact_run(layout, run_hash, rewrite_all=True)
        assert report.status == "compacted", report
        assert layout.manifest(run_hash).is_file()
    resume_a(root, base[1]["a"])
    return root, base[1]


@pytest.fixture(params=["segments", "compacted"])
def repo(request: pytest.FixtureRequest) -> tuple[aim.Repo, dict[str, str]]:
    root, hashes = request.getfixturevalue(f"{request.param}_repo")
    return aim.Repo(root), hashes


class TestReaders:
    """Every reader-facing result, checked against the model for both storage states."""

    def test_run_queries(self, repo: tuple[aim.Repo, dict[str, str]]) -> None:
        r, _ = repo
        assert [c.run.name for c in r.query_runs().iter_runs()] == ["b", "a"]
        assert [c.run.name for c in r.query_runs("run.hparams.lr < 0.05").iter_runs()] == ["a"]
        assert [c.run.name for c in r.query_runs("run.archived").iter_runs()] == ["c"]
        names = [
            c.run.name
            for c in r.query_runs(
                "run.metrics['loss', {'subset': 'train'}].last == 100"
            ).iter_runs()
        ]
        assert names == ["a"]

    def test_metric_values(self, repo: tuple[aim.Repo, dict[str, str]]) -> None:
        r, hashes = repo
        by_hash = {h: k for k, h in hashes.items()}
        got = {}
        for metric in r.query_metrics():
            key = (by_hash[metric.run.hash], metric.name, metric.context.idx)
            steps, values = metric.values.sparse_numpy()
            got[key] = list(zip(steps.tolist(), values.tolist(), strict=True))
        assert got == EXPECTED_METRICS

    def test_metric_columns(self, repo: tuple[aim.Repo, dict[str, str]]) -> None:
        r, hashes = repo
        acc = r.get_run(hashes["a"]).get_metric("acc")
        assert acc.values.values_numpy().dtype == np.int64
        assert acc.epochs.values_list() == [s // 5 for s in range(10)]
        steps, (values, epochs, times) = acc.data.numpy()
        assert steps.tolist() == list(range(10)) and epochs.tolist() == [s // 5 for s in range(10)]
        assert np.all(np.diff(times) >= 0)
        loss = r.get_run(hashes["a"]).get_metric("loss", {"subset": "train"})
        assert (
            loss.values[5] == 500.0
            and loss.values[2] == -2.0
            and loss.values.last() == (100, 100.0)
        )

    def test_sequence_queries(self, repo: tuple[aim.Repo, dict[str, str]]) -> None:
        r, _ = repo
        assert (
            len(list(r.query_metrics("metric.name == 'loss' and metric.context.subset == 'val'")))
            == 1
        )
        assert [m.name for m in r.query_metrics("metric.last_step == 100")] == ["loss"]
        assert [m.name for m in r.query_metrics("metric.max == 18")] == ["acc"]

    def test_objects(self, repo: tuple[aim.Repo, dict[str, str]]) -> None:
        r, _ = repo
        (imgs,) = list(r.query_images("images.name == 'imgs'"))
        steps, values = imgs.values.sparse_numpy()
        assert steps.tolist() == [0, 1, 2]
        assert [[img.caption for img in step] for step in values] == [
            [f"{s}-{i}" for i in range(2)] for s in range(3)
        ]
        assert imgs.values.first_value()[0].size == (3, 3)
        (notes,) = list(r.query_texts())
        assert [t.data for t in notes.values.values_list()] == [f"text {s}" for s in range(3)]


def test_dataframes_identical(
    segments_repo: tuple[Path, dict[str, str]], compacted_repo: tuple[Path, dict[str, str]]
) -> None:
    import pandas.testing

    seg = aim.Repo(segments_repo[0]).query_metrics().dataframe()
    comp = aim.Repo(compacted_repo[0]).query_metrics().dataframe()
    times = ["timestamp", "time"]
    pandas.testing.assert_frame_equal(seg.drop(columns=times), comp.drop(columns=times))
    # the points of resume_a were written at different times in the two repos; all others match
    resumed = (seg["metric.context.subset"] == "train") & seg["step"].isin([2, 100])
    assert resumed.sum() == 2
    pandas.testing.assert_frame_equal(seg[~resumed], comp[~resumed])
    seg_img = aim.Repo(segments_repo[0]).get_run(segments_repo[1]["a"]).get_image_sequence("imgs")
    comp_img = (
        aim.Repo(compacted_repo[0]).get_run(compacted_repo[1]["a"]).get_image_sequence("imgs")
    )
    assert seg_img.timestamps.values_list() == comp_img.timestamps.values_list()
    assert [[i.data for i in s] for s in seg_img.values] == [
        [i.data for i in s] for s in comp_img.values
    ]
