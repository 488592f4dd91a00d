"""AimQL queries over real repositories, the planner's pruning, and the run index."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import filelock
import pytest

import aim_parquet as aim
from aim_parquet.sdk.collections import QueryReportMode
from aim_parquet.storage.index import run_index
from aim_parquet.storage.online import bulk_read, run_reader

SPECS = [
    ("small", {"lr": 0.0001, "batch_size": 16}, ["v1.0"], "exp-a", False),
    ("mid", {"lr": 0.001, "batch_size": 32}, ["best"], "exp-a", False),
    ("big", {"lr": 0.05}, [], "exp-b", False),
    ("old", {"lr": 0.001, "batch_size": 32}, [], "exp-b", True),
]


def build_runs(root: Path) -> dict[str, Any]:
    """Four finished runs with different params, props and metrics (created in this order)."""
    out = {}
    for name, hparams, tags, experiment, archived in SPECS:
        run = aim.Run(
            repo=root,
            experiment=experiment,
            system_tracking_interval=None,
            capture_terminal_logs=False,
        )
        run.name = name
        run["hparams"] = hparams
        for tag in tags:
            run.add_tag(tag)
        for step in range(10):
            train = 10.0 - step * hparams["lr"] * 100
            run.track(train, name="loss", step=step, context={"subset": "train"})
            run.track(float(step), name="loss", step=step, context={"subset": "val"})
            run.track(step, name="acc", step=step, context={"subset": "val", "is_training": False})
        run.archived = archived
        run.close()
        out[name] = run
    return out


@pytest.fixture
def runs(repo_root: Path) -> dict[str, Any]:
    return build_runs(repo_root)


@pytest.fixture(scope="module")
def shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same four runs, built once for the tests that only read them."""
    root = tmp_path_factory.mktemp("shared")
    build_runs(root)
    return root


def names(repo: aim.Repo, query: str) -> list[str]:
    return [coll.run.name for coll in repo.query_runs(query).iter_runs()]


@pytest.mark.parametrize(
    "query, expected",
    [
        ("", ["big", "mid", "small"]),  # newest first, archived left out
        ("run.hparams.lr > 0.0005", ["big", "mid"]),
        ("run.hparams.lr > 0.0005 and run.hparams.batch_size >= 32", ["mid"]),
        ("1e-5 < run.hparams.lr < 1e-2", ["mid", "small"]),
        ("run.hparams.lr in [0.0001, 0.05]", ["big", "small"]),
        ("run['hparams', 'lr'] == 0.001", ["mid"]),
        ("run['hparams']['batch_size'] == 16", ["small"]),
        ("run.hparams.batch_size == None", ["big"]),
        ("run.hparams.batch_size > 0", ["mid", "small"]),  # missing compares false
        ("run.nonexistent.deep == 1", []),
        ("run.name == 'mid'", ["mid"]),
        ("run.experiment == 'exp-b'", ["big"]),
        ("'v1.0' in run.tags", ["small"]),
        ("run.archived == True", ["old"]),
        ("run.archived == True or run.name == 'big'", ["old", "big"]),
        ("run.active == False and run.duration >= 0", ["big", "mid", "small"]),
        ("run.metrics['loss', {'subset': 'train'}].last < 9", ["big"]),
        (
            "run.metrics['acc', {'subset': 'val', 'is_training': False}].last == 9",
            ["big", "mid", "small"],
        ),
        ("run.metrics['loss'].last == None", ["big", "mid", "small"]),
        ("run.hash.startswith('zz')", []),
        ("SELECT x IF run.name.upper() == 'BIG'", ["big"]),
    ],
)
def test_run_queries(shared_root: Path, query: str, expected: list[str]) -> None:
    assert names(aim.Repo(shared_root), query) == expected


@pytest.mark.parametrize(
    "query, expected",
    [
        ("metric.name == 'loss'", 6),
        ("metric.name == 'loss' and metric.context.subset == 'train'", 3),
        ("metric.context['is_training'] == False", 3),
        ("run.hparams.batch_size == None and metric.context.is_training == False", 1),
        ("metric.name == 'loss' and metric.last >= 9", 5),  # 3 val (9.0) + 2 train
        ("metric.name == 'acc' and run.hparams.lr >= 0.001", 2),
        (
            "((metric.name == 'acc' and metric.context.subset == 'val') or "
            "(metric.name == 'loss' and metric.context.subset == 'train')) "
            "and 1e-5 < run.hparams.lr < 1e-2",
            4,
        ),
        ("metric.min == 0 and metric.max == 9 and metric.first_step == 0", 6),
        ("", 9),
    ],
)
def test_metric_queries(shared_root: Path, query: str, expected: int) -> None:
    assert len(list(aim.Repo(shared_root).query_metrics(query))) == expected


def test_syntax_error(runs: dict[str, Any], repo_root: Path) -> None:
    repo = aim.Repo(repo_root)
    with pytest.raises(SyntaxError):
        list(repo.query_runs("run.hparams.lr >").iter_runs())
    with pytest.raises(SyntaxError):
        list(repo.query_metrics("metric.name == 'loss' and"))
    with pytest.raises(aim.QueryError):
        repo.query_metrics("run.__dict__")


def test_sdk_basics_query_snippet_verbatim(
    runs: dict[str, Any], repo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "aim", aim)
    from aim import Repo

    my_repo = Repo(str(repo_root))
    seen = []
    # --- verbatim from sdk-basics.md ---
    query = "metric.name == 'loss'"  # Example query

    # Get collection of metrics
    for run_metrics_collection in my_repo.query_metrics(query).iter_runs():
        for metric in run_metrics_collection:
            # Get run params
            params = metric.run[...]
            # Get metric values
            steps, metric_values = metric.values.sparse_numpy()
            # --- end of snippet ---
            seen.append((params["hparams"]["lr"], steps.tolist(), len(metric_values)))
    assert len(seen) == 6
    assert all(steps == list(range(10)) and n == 10 for _, steps, n in seen)


def test_offset_and_progress_tuple(runs: dict[str, Any], repo_root: Path) -> None:
    repo = aim.Repo(repo_root)
    assert [c.run.name for c in repo.query_runs(offset=runs["big"].hash).iter_runs()] == [
        "mid",
        "small",
    ]
    steps = list(
        repo.query_runs("run.name == 'mid'", report_mode=QueryReportMode.PROGRESS_TUPLE).iter_runs()
    )
    assert [p for _, p in steps] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert [c.run.name if c else None for c, _ in steps] == [None, None, "mid", None]
    assert [c.run.name for c in repo.query_runs(report_mode=0).iter_runs()] == [
        "big",
        "mid",
        "small",
    ]


def test_query_results_iterate_and_dataframes(runs: dict[str, Any], repo_root: Path) -> None:
    repo = aim.Repo(repo_root)
    result = repo.query_runs("run.experiment == 'exp-a'")
    assert sorted(s.name for s in result) == ["acc", "acc", "loss", "loss", "loss", "loss"]
    run_df = result.dataframe()
    assert run_df["name"].tolist() == ["mid", "small"] and "hparams.lr" in run_df.columns
    assert result.to_polars()["hash"].to_list() == [runs["mid"].hash, runs["small"].hash]
    metrics = repo.query_metrics("metric.name == 'loss' and metric.context.subset == 'val'")
    df = metrics.dataframe()
    assert len(df) == 30 and set(df["run.hash"]) == {runs[n].hash for n in ("big", "mid", "small")}
    assert set(df["metric.context.subset"]) == {"val"}
    assert {"metric.name", "metric.context", "step", "epoch", "timestamp", "time", "value"} <= set(
        df.columns
    )
    assert set(df["run.hparams.lr"]) == {0.0001, 0.001, 0.05}
    last = metrics.dataframe(only_last=True, include_params=False)
    assert last["step"].tolist() == [9, 9, 9] and "run.hparams.lr" not in last.columns
    pl_df = metrics.to_polars()
    assert pl_df.height == 30 and pl_df["value"].dtype.is_float()
    assert repo.query_metrics("metric.name == 'nothing'").dataframe() is None
    per_run = list(metrics.iter_runs())
    assert [len(c) for c in per_run] == [1, 1, 1] and list(per_run[0].iter_runs()) == []


def test_single_run_collection_query(runs: dict[str, Any], repo_root: Path) -> None:
    from aim_parquet.sdk.collections import SingleRunSequenceCollection
    from aim_parquet.sdk.sequence import Metric

    run = aim.Repo(repo_root).get_run(runs["mid"].hash)
    coll = SingleRunSequenceCollection(run, Metric, "metric.context.subset == 'train'")
    assert [(m.name, m.context.to_dict()) for m in coll] == [("loss", {"subset": "train"})]


# -- planner: pruning before any file is opened ----------------------------------------------
def test_run_predicate_opens_no_file_of_other_runs(
    runs: dict[str, Any], repo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[Path] = []
    discovered: list[str] = []
    real_read_segment = run_reader.read_segment
    real_catalogue = run_index.RunRecord.catalogue

    def spy_read_segment(path: Path, **kw: Any) -> Any:
        opened.append(Path(path))
        return real_read_segment(path, **kw)

    def spy_catalogue(record: Any) -> Any:
        discovered.append(record.hash)
        return real_catalogue(record)

    real_read_small = bulk_read._read_small

    def spy_read_small(path: str) -> bytes:  # (segments read in bulk: sdk.prefetch)
        opened.append(Path(path))
        return real_read_small(path)

    monkeypatch.setattr(run_reader, "read_segment", spy_read_segment)
    monkeypatch.setattr(bulk_read, "_read_small", spy_read_small)
    monkeypatch.setattr(run_index.RunRecord, "catalogue", spy_catalogue)
    repo = aim.Repo(repo_root)
    result = repo.query_metrics("run.name == 'mid' and metric.name == 'loss'")
    assert opened == [] and discovered == []  # planning reads nothing
    metrics = list(result)
    assert opened == [] and discovered == [runs["mid"].hash]  # matching: catalogue only
    for metric in metrics:
        metric.values.values_numpy()
    mid_dir = repo.layout.run_dir(runs["mid"].hash)
    assert opened and all(mid_dir in p.parents for p in opened)
    assert all(b"loss" in real_read_segment(p).schema.metadata[b"aim_parquet.name"] for p in opened)


def index_runs(path: Path) -> dict[str, Any]:
    """The run index file's records by run hash."""
    return {h: e.record for h, e in run_index.read_index_file(path.read_bytes()).items()}


def test_fresh_index_reads_no_sidecar(
    runs: dict[str, Any], repo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert names(aim.Repo(repo_root), "run.hparams.lr > 0.01") == ["big"]  # builds the index
    index_file = repo_root / ".aim" / "index" / "runs.arrow"
    assert set(index_runs(index_file)) == {r.hash for r in runs.values()}
    reads: list[str] = []
    real = run_index.RunIndex._read_sidecar

    def spy(self: Any, run_hash: str, key: Any) -> Any:
        reads.append(run_hash)
        return real(self, run_hash, key)

    monkeypatch.setattr(run_index.RunIndex, "_read_sidecar", spy)
    fresh = aim.Repo(repo_root)
    fresh.close()  # forgets the process's in-memory index: the index file is used
    assert names(fresh, "run.hparams.lr > 0.01") == ["big"]
    assert reads == []
    resumed = aim.Run(
        runs["small"].hash,
        repo=repo_root,
        system_tracking_interval=None,
        capture_terminal_logs=False,
    )
    resumed["hparams", "lr"] = 0.5
    resumed.close()
    assert names(fresh, "run.hparams.lr > 0.01") == ["big", "small"]
    assert reads == [runs["small"].hash]  # only the changed sidecar
    again = aim.Repo(repo_root)
    again.close()
    assert names(again, "run.hparams.lr > 0.01") == ["big", "small"]
    assert reads == [runs["small"].hash]  # the rewritten index already has it


def test_new_and_deleted_runs_need_no_reindex(
    runs: dict[str, Any], repo_root: Path, make_run: Any
) -> None:
    repo = aim.Repo(repo_root)
    assert len(names(repo, "")) == 3
    live = make_run()
    live.name = "live"
    assert names(repo, "")[0] == "live"  # visible before it is closed
    repo.delete_run(runs["big"].hash)
    assert names(repo, "") == ["live", "mid", "small"]


def test_damaged_index_is_rebuilt(runs: dict[str, Any], repo_root: Path) -> None:
    index_file = repo_root / ".aim" / "index" / "runs.arrow"
    first = aim.Repo(repo_root)
    names(first, "")  # builds the index file
    first.close()  # and forgets it in memory: the next Repo reads the file
    index_file.write_text('{"format": "aim_parquet.run_index", "format_version": 1, "runs": [')
    assert names(aim.Repo(repo_root), "") == ["big", "mid", "small"]
    assert len(index_runs(index_file)) == 4


def test_busy_index_lock_falls_back_to_sidecars(runs: dict[str, Any], repo_root: Path) -> None:
    index_file = repo_root / ".aim" / "index" / "runs.arrow"
    index_file.parent.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(index_file.parent / "runs.lock"):
        assert names(aim.Repo(repo_root), "run.hparams.lr < 0.01") == ["mid", "small"]
        assert not index_file.exists()  # the holder blocks writing, not reading
    assert names(aim.Repo(repo_root), "run.hparams.lr < 0.01") == ["mid", "small"]
    assert index_file.exists()


def test_index_keeps_last_good_copy_of_a_damaged_sidecar(
    runs: dict[str, Any], repo_root: Path
) -> None:
    index_file = repo_root / ".aim" / "index" / "runs.arrow"
    names(aim.Repo(repo_root), "")
    bad = runs["mid"].hash
    (repo_root / ".aim" / "runs" / bad / "run.json").write_text("garbage")
    aim.Repo(repo_root).delete_run(runs["big"].hash)  # a change that rewrites the index
    with pytest.warns(RuntimeWarning, match=bad):
        assert names(aim.Repo(repo_root), "") == ["small"]
    kept = index_runs(index_file)
    assert kept[bad].name == "mid" and runs["big"].hash not in kept
