"""The meta.yaml subset MLflow writes, and how a source path or URI is recognised."""

from __future__ import annotations

from pathlib import Path

import pytest

from aim_parquet.convert.mlflow import resolve_store
from aim_parquet.convert.mlflow_files import parse_flat_yaml
from aim_parquet.errors import SourceError

META = """artifact_uri: file:///tmp/mlruns/0/abc/artifacts
end_time: 1700000001234
entry_point_name: ''
experiment_id: '0'
lifecycle_stage: active
run_id: abc
run_name: a rather long run name that PyYAML folds onto a second line because it is
  longer than eighty characters
source_type: 4
status: 3
tags: []
user_id: "r\\u00f6ot"
ratio: 0.5
flag: true
missing: null
"""


def test_parse_flat_yaml() -> None:
    meta = parse_flat_yaml(META)
    assert meta["artifact_uri"] == "file:///tmp/mlruns/0/abc/artifacts"
    assert meta["end_time"] == 1700000001234
    assert meta["entry_point_name"] == ""
    assert meta["experiment_id"] == "0"
    assert meta["run_name"].endswith("because it is longer than eighty characters")
    assert meta["status"] == 3 and meta["tags"] == [] and meta["user_id"] == "röot"
    assert meta["ratio"] == 0.5 and meta["flag"] is True and meta["missing"] is None


def test_parse_flat_yaml_refuses_other_text() -> None:
    with pytest.raises(ValueError):
        parse_flat_yaml("just a sentence\n")


def test_resolve_store(tmp_path: Path) -> None:
    mlruns = tmp_path / "mlruns"
    (mlruns / "0").mkdir(parents=True)
    (mlruns / "0" / "meta.yaml").write_text("name: Default\n")
    assert resolve_store(str(mlruns)) == ("files", mlruns)
    assert resolve_store(str(tmp_path)) == ("files", mlruns)  # the project folder holding it
    assert resolve_store(f"file://{mlruns}") == ("files", mlruns)
    db = tmp_path / "mlflow.db"
    db.write_bytes(b"SQLite format 3\x00" + bytes(100))
    assert resolve_store(str(db)) == ("sqlite", db)
    assert resolve_store(f"sqlite:///{db}") == ("sqlite", db)
    with pytest.raises(SourceError, match="does not exist"):
        resolve_store(str(tmp_path / "nope"))
    with pytest.raises(SourceError, match="offline"):
        resolve_store("http://localhost:5000")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(SourceError, match="not a SQLite database"):
        resolve_store(str(tmp_path / "notes.txt"))
    with pytest.raises(SourceError, match="not an MLflow file store"):
        resolve_store(str(mlruns / "0"))
