"""`aim-parquet convert mlflow` on a file store and a SQLite database written by the real
`mlflow` client; every run, param, tag and metric point is compared with what MlflowClient
reads back from the same store."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.convert_helpers import ConvertedRun, convert_cli, ctx_key, read_converted


def _log(tracking_uri: str) -> None:
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri)
    mlflow.set_experiment("vision")
    with mlflow.start_run(run_name="resnet"):
        mlflow.log_params({"lr": 0.01, "optimizer": "adam", "layers": 50})
        mlflow.set_tags({"team": "cv", "mlflow.note.content": "baseline\nsecond line"})
        for step in range(30):
            mlflow.log_metric("train/loss", 1.0 / (step + 1), step=step)
            if step % 10 == 0:
                mlflow.log_metric("val/acc", step / 30, step=step)
        mlflow.log_metric("weird", float("nan"), step=0)
        mlflow.log_metric("weird", float("inf"), step=1)
        mlflow.log_metric("weird", -float("inf"), step=2)
        for _ in range(3):  # no step: every point at step 0
            mlflow.log_metric("throughput", 100.0 + _)
        for step in (-2, -1, 0):  # MLflow takes negative steps
            mlflow.log_metric("warmup", step / 10, step=step)
        with mlflow.start_run(run_name="child", nested=True):
            mlflow.log_metric("x", 2.0, step=5)
    doomed = client.create_run(client.get_experiment_by_name("vision").experiment_id)
    client.log_metric(doomed.info.run_id, "m", 1.0)
    client.delete_run(doomed.info.run_id)
    mlflow.set_experiment("nlp")
    with mlflow.start_run(run_name="bert"):
        mlflow.log_param("model", "bert-base")
        mlflow.log_metric("f1", 0.5, step=3)
    failed = client.create_run(
        client.get_experiment_by_name("nlp").experiment_id, run_name="crashed"
    )
    client.log_metric(failed.info.run_id, "loss", 3.0, step=0)
    client.set_terminated(failed.info.run_id, status="FAILED")


def _compare(tracking_uri: str, runs: dict[str, ConvertedRun]) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    expected_names = set()
    for exp in client.search_experiments():
        for source in client.search_runs([exp.experiment_id]):
            name = source.info.run_name
            expected_names.add(name)
            run = runs[name]
            assert run.experiment == exp.name
            assert run.params["mlflow"]["run_id"] == source.info.run_id
            assert run.params["mlflow"]["status"] == source.info.status
            assert run.params.get("params", {}) == source.data.params
            user = {k: v for k, v in source.data.tags.items() if not k.startswith("mlflow.")}
            system = {k: v for k, v in source.data.tags.items() if k.startswith("mlflow.")}
            assert run.params.get("tags", {}) == user
            assert run.params["mlflow"].get("tags", {}) == system
            assert run.description == source.data.tags.get("mlflow.note.content")
            assert run.creation_time == source.info.start_time / 1000
            if source.info.end_time is not None:
                assert run.end_time == source.info.end_time / 1000
            renumbered = run.params["mlflow"].get("renumbered_metrics", [])
            metric_keys = set(source.data.metrics)
            assert {name for name, _ in run.sequences} == metric_keys
            for key in metric_keys:
                history = sorted(
                    client.get_metric_history(source.info.run_id, key),
                    key=lambda m: (m.step, m.timestamp),
                )
                _, steps, values, epochs, times = run.sequences[(key, ctx_key({}))]
                if key in renumbered:
                    assert steps == list(range(len(history)))
                    assert epochs == [m.step for m in history]
                else:
                    assert steps == [m.step for m in history]
                assert times == [m.timestamp / 1000 for m in history]
                for ours, theirs in zip(values, history, strict=True):
                    assert (math.isnan(ours) and math.isnan(theirs.value)) or ours == theirs.value
    assert set(runs) == expected_names


@pytest.mark.parametrize("store", ["files", "sqlite"])
def test_mlflow_store(tmp_path: Path, store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    if store == "files":
        uri = (tmp_path / "mlruns").as_uri()
        source = str(tmp_path / "mlruns")
    else:
        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        source = uri
    _log(uri)
    result = convert_cli("mlflow", source, "--repo", str(tmp_path / "d"))
    assert result.returncode == 0, result.stdout + result.stderr
    runs = read_converted(tmp_path / "d")
    assert sorted(runs) == ["bert", "child", "crashed", "resnet"]
    _compare(uri, runs)
    resnet = runs["resnet"]
    assert resnet.params["mlflow"]["renumbered_metrics"] == ["throughput", "warmup"]
    assert resnet.sequences[("throughput", ctx_key({}))][2] == [100.0, 101.0, 102.0]
    assert resnet.sequences[("warmup", ctx_key({}))][1:4] == (
        [0, 1, 2],
        [-0.2, -0.1, 0.0],
        [-2, -1, 0],
    )
    assert runs["crashed"].params["mlflow"]["status"] == "FAILED"
    again = convert_cli("mlflow", source, "--repo", str(tmp_path / "d"))
    assert again.returncode == 0 and "source runs: 4 up to date" in again.stdout, again.stdout
    only = convert_cli("mlflow", source, "--repo", str(tmp_path / "n"), "--experiment", "nlp")
    assert only.returncode == 0
    assert sorted(read_converted(tmp_path / "n")) == ["bert", "crashed"]
