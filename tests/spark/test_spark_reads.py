"""Spark (local mode) reads the compacted dataset through the paths README.md documents and gets
exactly the points the SDK returns, cell by cell; the README's Spark blocks are the code run here
(`make test-spark`: pyspark from requirements-spark.txt, Java 17 on the path)."""

from __future__ import annotations

import math
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import aim_parquet as aim
from aim_parquet.format.paths import canonical_context
from tests.conftest import PYTHON, ROOT, python_env
from tests.integration.repo_snapshots import QUIET, write_rich_run

pytestmark = pytest.mark.spark

BLOCK_RE = re.compile(r"<!-- outgrowing: ([\w-]+) -->\s*```python\n(.*?)```", re.DOTALL)


def readme_block(name: str) -> str:
    blocks = dict(BLOCK_RE.findall((ROOT / "README.md").read_text()))
    return blocks[name]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three compacted runs (duplicate and out-of-order steps, NaN/inf, epochs, images) with
    nested params (dotted columns) and run names (a `name` column on both sides of the join)."""
    root = tmp_path_factory.mktemp("spark-repo")
    for seed in range(3):
        run_hash = write_rich_run(root, n=120, seed=seed)
        run = aim.Run(run_hash, repo=root, **QUIET)  # type: ignore[arg-type]
        run["optimizer"] = {"beta1": 0.9 + seed / 100}  # a nested param: a dotted column
        run.name = f"net-{seed}"
        run.close()
    proc = subprocess.run(
        [PYTHON, "-m", "aim_parquet", "compact", "--rewrite-all"],  # every run in the glob
        cwd=root,
        env=python_env(),
        capture_output=True,
    )
    assert proc.returncode == 0, proc.stderr
    return root


@pytest.fixture(scope="module")
def spark(repo: Path) -> Iterator[Any]:
    """One local[2] session for the module; its JVM starts in the repository root, so the
    README's relative paths resolve there (Hadoop resolves against the JVM's working folder)."""
    from pyspark.sql import SparkSession

    here = os.getcwd()
    os.chdir(repo)
    try:
        session = (
            SparkSession.builder.master("local[2]")
            .appName("aim_parquet-tests")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", "2")
            .config("spark.driver.memory", "1g")
            .getOrCreate()
        )
    finally:
        os.chdir(here)
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def sdk_points(root: Path) -> dict[tuple[str, str, str, int], tuple[Any, float, float]]:
    """{(run hash, name, context JSON, step): (epoch, timestamp, value)} as the SDK returns it."""
    out = {}
    repo = aim.Repo(root)
    for seq in repo.query_metrics("", report_mode=0).iter():
        steps, values = seq.values.sparse_numpy()
        epochs = seq.epochs.values_list()
        stamps = seq.timestamps.values_numpy()
        context = canonical_context(seq.context.to_dict())
        for i, step in enumerate(steps.tolist()):
            key = (seq.run.hash, seq.name, context, step)
            out[key] = (epochs[i], float(stamps[i]), float(values[i]))
    return out


def same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def run_block(name: str, spark: Any, repo: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.chdir(repo)
    namespace: dict[str, Any] = {}
    exec(compile(readme_block(name), f"README.md:{name}", "exec"), namespace)
    assert namespace["spark"] is spark  # getOrCreate() hands the README the running session
    return namespace


def test_readme_spark_block_returns_exactly_the_sdk_points(
    spark: Any, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    namespace = run_block("spark", spark, repo, monkeypatch)
    rows = namespace["loss"].collect()
    expected = {k: v for k, v in sdk_points(repo).items() if k[1] == "loss"}
    assert len(rows) == len(expected) == 3 * 120
    lrs = {}
    for row in rows:
        key = (row["run_hash"], "loss", row["context"], row["step"])
        epoch, timestamp, value = expected[key]
        assert (row["epoch"], row["timestamp"]) == (epoch, timestamp)
        assert same(row["value"], value), key
        lrs[row["run_hash"]] = (row["run_name"], row["lr"], row["beta"])
    assert sorted(lrs.values()) == [  # the run's name, not the metric's: both are `name`
        ("net-0", 0.001, 0.9),
        ("net-1", 0.002, 0.91),
        ("net-2", 0.003, 0.92),
    ]
    assert any(math.isnan(v[2]) for v in expected.values())  # the duplicate step 5 was NaN


def test_readme_spark_sql_block_joins_params(
    spark: Any, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    namespace = run_block("spark-sql", spark, repo, monkeypatch)
    rows = namespace["loss"].collect()
    expected = {k: v for k, v in sdk_points(repo).items() if k[1] == "loss"}
    assert len(rows) == len(expected)
    by_run = {r["run_hash"]: (r["run_name"], r["lr"]) for r in rows}
    assert sorted(by_run.values()) == [("net-0", 0.001), ("net-1", 0.002), ("net-2", 0.003)]
    for row in rows:
        key = (row["run_hash"], "loss", row["context"], row["step"])
        assert same(row["value"], expected[key][2]), key


def test_every_metric_point_matches_the_sdk_cell_by_cell(
    spark: Any, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    namespace = run_block("spark", spark, repo, monkeypatch)
    got = {
        (r["run_hash"], r["name"], r["context"], r["step"]): (
            r["epoch"],
            r["timestamp"],
            r["value"],
        )
        for r in namespace["metrics"].collect()
    }
    expected = sdk_points(repo)
    assert got.keys() == expected.keys()
    for key, (epoch, timestamp, value) in expected.items():
        assert got[key][:2] == (epoch, timestamp), key
        assert same(got[key][2], value), key


def test_images_read_by_spark_are_the_sdk_payloads(
    spark: Any, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    namespace = run_block("spark-objects", spark, repo, monkeypatch)
    got = {
        (r["run_hash"], r["name"], r["step"]): bytes(r["payload"])
        for r in namespace["images"].collect()
    }
    expected = {}
    for seq in aim.Repo(repo).query_images("", report_mode=0).iter():
        steps, values = seq.values.sparse_list()
        for step, image in zip(steps, values, strict=True):
            expected[(seq.run.hash, seq.name, step)] = image.data
    assert got == expected and len(got) == 3
    assert all(p.startswith(b"\x89PNG") for p in got.values())


def test_runs_table_and_export_read_the_same(spark: Any, repo: Path, tmp_path: Path) -> None:
    """`aim-parquet export` writes the same encodings; Spark reads it with the same lines."""
    out = tmp_path / "dataset"
    proc = subprocess.run(
        [PYTHON, "-m", "aim_parquet", "export", "--output", str(out), "--objects"],
        cwd=repo,
        env=python_env(),
        capture_output=True,
    )
    assert proc.returncode == 0, proc.stderr
    metrics = spark.read.parquet(f"{out}/metrics/*.parquet")
    assert metrics.count() == len(sdk_points(repo))
    runs = spark.read.parquet(f"{out}/runs.parquet")
    assert runs.select("hash").count() == 3
    values = np.array([r["value"] for r in metrics.where("name = 'acc'").collect()])
    assert np.isfinite(values).all()


def test_the_older_spark_setting_reads_the_same(spark: Any, repo: Path) -> None:
    """Spark 3.3-3.5 need the row-based Parquet reader (README); it gives the same rows."""
    path = f"{repo}/.aim/runs/*/compacted/metrics-*.parquet"
    vectorized = spark.read.parquet(path).orderBy("run_hash", "seq_id", "step", "timestamp")
    expected = vectorized.collect()
    spark.conf.set("spark.sql.parquet.enableVectorizedReader", "false")
    try:
        rows = spark.read.parquet(path).orderBy("run_hash", "seq_id", "step", "timestamp").collect()
    finally:
        spark.conf.unset("spark.sql.parquet.enableVectorizedReader")
    assert len(rows) == len(expected) > 0
    assert [r.asDict() for r in rows if r["value"] == r["value"]] == [
        r.asDict() for r in expected if r["value"] == r["value"]
    ]  # NaN != NaN: compared apart
    assert sum(r["value"] != r["value"] for r in rows) == sum(
        r["value"] != r["value"] for r in expected
    )
