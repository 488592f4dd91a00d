"""The open format: the exact code blocks FORMAT.md (and README.md) document, run with the real
pandas, polars, duckdb and pyarrow against real compacted files; expectations are computed with
plain pyarrow, never through aim_parquet's readers."""

from __future__ import annotations

import glob
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import PYTHON, ROOT, python_env
from tests.integration.repo_snapshots import write_rich_run

BLOCK_RE = re.compile(r"<!-- open-format: (\w+) -->\s*```python\n(.*?)```", re.DOTALL)
DOCUMENTED = {"pandas", "polars", "duckdb", "pyarrow"}


def documented_blocks() -> list[tuple[str, str, str]]:
    """(document, library, code) of every marked block."""
    out = []
    for doc in ("FORMAT.md", "README.md"):
        path = ROOT / doc
        if path.exists():
            out.extend((doc, lib, code) for lib, code in BLOCK_RE.findall(path.read_text()))
    return out


def aim_parquet_cli(*argv: str, cwd: Path) -> None:
    proc = subprocess.run(
        [PYTHON, "-m", "aim_parquet", *argv], cwd=cwd, env=python_env(), capture_output=True
    )
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("open-format")
    for seed in range(3):
        write_rich_run(root, n=80, seed=seed)
    aim_parquet_cli("compact", cwd=root)
    return root


def stored_metric_rows(root: Path) -> pa.Table:
    """Every metric row the manifests list, read with plain pyarrow."""
    tables = []
    for manifest in sorted(root.glob(".aim/runs/*/compacted/manifest.json")):
        for f in json.loads(manifest.read_text())["files"]:
            if f["kind"] == "metrics":
                tables.append(pq.read_table(manifest.parent.parent / f["path"]))
    return pa.concat_tables(tables)


def visible_points(rows: pa.Table) -> set[tuple[str, str, str, int]]:
    """(run, name, seq_id, step) of every point as queries see it: a step written twice once."""
    return set(
        zip(
            rows.column("run_hash").to_pylist(),
            rows.column("name").to_pylist(),
            rows.column("seq_id").to_pylist(),
            rows.column("step").to_pylist(),
            strict=True,
        )
    )


def test_every_library_is_documented() -> None:
    libs = {lib for doc, lib, _code in documented_blocks() if doc == "FORMAT.md"}
    assert libs == DOCUMENTED


@pytest.mark.parametrize(
    "doc,lib,code", documented_blocks(), ids=lambda v: v if len(v) < 20 else "code"
)
def test_documented_lines_run_with_the_real_library(
    repo: Path, monkeypatch: pytest.MonkeyPatch, doc: str, lib: str, code: str
) -> None:
    points = visible_points(stored_metric_rows(repo))  # no run is archived here
    n_loss = sum(1 for _run, name, _seq, _step in points if name == "loss")
    monkeypatch.chdir(repo)
    namespace: dict[str, Any] = {}
    exec(compile(code, f"{doc}:{lib}", "exec"), namespace)
    loss = namespace["loss"]
    assert len(loss) == n_loss > 0  # pandas/polars/duckdb frames and Arrow tables alike
    if lib == "pandas":
        assert len(namespace["metrics"]) == len(points)
        assert set(loss["params.hparams.lr"]) == {0.001, 0.002, 0.003}
    elif lib == "polars":
        assert loss.columns == ["run_hash", "params.hparams.lr", "context.subset", "step", "value"]
    elif lib == "duckdb":
        assert set(loss["subset"]) == {"train"}
    else:
        assert namespace["metrics"].count_rows() == len(points)


def test_metrics_files_have_the_documented_columns(repo: Path) -> None:
    files = glob.glob(str(repo / ".aim" / "runs" / "*" / "compacted" / "metrics-*.parquet"))
    assert len(files) == 3
    schema = pq.read_schema(files[0])
    assert [(f.name, str(f.type), f.nullable) for f in schema] == [
        ("run_hash", "string", False),
        ("seq_id", "string", False),
        ("name", "string", False),
        ("context", "string", False),
        ("step", "int64", False),
        ("epoch", "int64", True),
        ("timestamp", "double", False),
        ("value", "double", False),
    ]
    md = pq.read_metadata(files[0])
    column = md.row_group(0).column(4)
    assert column.compression == "ZSTD" and "DELTA_BINARY_PACKED" in column.encodings
    assert "BYTE_STREAM_SPLIT" in md.row_group(0).column(7).encodings
    kv = {k.decode(): v.decode() for k, v in md.metadata.items()}
    assert kv["aim_parquet.kind"] == "metrics" and kv["aim_parquet.format_version"] == "1"
    sequences = json.loads(kv["aim_parquet.sequences"])
    assert {s["name"] for s in sequences.values()} == {"loss", "acc"}


def test_dataset_files_have_the_documented_encodings(repo: Path) -> None:
    """The analyst dataset's metrics files encode a point's columns as the per-run files do
    (FORMAT.md), and polars and DuckDB read them back as pyarrow does."""
    import duckdb
    import polars as pl

    folder = repo / ".aim" / "dataset"
    files = [folder / f for f in json.loads((folder / "current.json").read_text())["metrics"]]
    want = {
        "step": "DELTA_BINARY_PACKED",
        "epoch": "DELTA_BINARY_PACKED",
        "timestamp": "BYTE_STREAM_SPLIT",
        "value": "BYTE_STREAM_SPLIT",
        "run_hash": "RLE_DICTIONARY",
        "name": "RLE_DICTIONARY",
    }
    rows = 0
    for path in files:
        md = pq.read_metadata(path)
        for g in range(md.num_row_groups):
            group = md.row_group(g)
            if not group.num_rows:  # (a bucket without a run)
                continue
            chunks = {c.path_in_schema: c for c in map(group.column, range(group.num_columns))}
            for name, encoding in want.items():
                assert encoding in chunks[name].encodings, (path.name, name)
                assert chunks[name].compression == "ZSTD"
        rows += md.num_rows
    assert rows > 0
    plain = pa.concat_tables([pq.read_table(f) for f in files])
    columns = ["run_hash", "seq_id", "step", "epoch", "timestamp", "value"]
    by_polars = pl.read_parquet([str(f) for f in files], columns=columns).rows()
    with duckdb.connect() as con:
        listed = ", ".join(f"'{f}'" for f in files)
        by_duckdb = con.sql(f"select {', '.join(columns)} from read_parquet([{listed}])").fetchall()
    want = sorted(map(repr, zip(*(plain[c].to_pylist() for c in columns), strict=True)))
    assert sorted(map(repr, by_polars)) == want  # (repr: NaN equals NaN)
    assert sorted(map(repr, by_duckdb)) == want


def test_runs_table_joins_in_one_line(repo: Path) -> None:
    import duckdb

    runs = pq.read_table(repo / ".aim" / "index" / "runs.parquet")
    assert runs.column_names[:9] == [
        "hash", "experiment", "name", "description", "tags", "archived",
        "creation_time", "end_time", "active",
    ]  # fmt: skip
    assert "params.hparams.lr" in runs.column_names
    with duckdb.connect() as con:
        n = con.sql(
            f"select count(*) from read_parquet('{repo}/.aim/runs/*/compacted/metrics-*.parquet') m "
            f"join read_parquet('{repo}/.aim/index/runs.parquet') r on r.hash = m.run_hash"
        ).fetchall()
    assert n == [(stored_metric_rows(repo).num_rows,)]


def test_object_files_hold_the_payloads(repo: Path) -> None:
    import duckdb

    pattern = f"{repo}/.aim/runs/*/compacted/objects-aim.image-*.parquet"
    with duckdb.connect() as con:
        rows = con.sql(f"select name, payload from read_parquet('{pattern}')").fetchall()
    assert len(rows) == 3 and all(bytes(p).startswith(b"\x89PNG") for _n, p in rows)


def test_export_dataset_reads_with_the_same_lines(repo: Path, tmp_path: Path) -> None:
    import duckdb
    import polars as pl

    out = tmp_path / "dataset"
    aim_parquet_cli("export", "--output", str(out), "--objects", cwd=repo)
    frame = pl.scan_parquet(f"{out}/metrics/*.parquet").collect()
    stored = stored_metric_rows(repo)
    steps = set(
        zip(
            stored.column("run_hash").to_pylist(),
            stored.column("seq_id").to_pylist(),
            stored.column("step").to_pylist(),
            strict=True,
        )
    )
    assert frame.height == len(steps)  # one row per step: duplicates resolved as queries do
    with duckdb.connect() as con:
        joined = con.sql(
            f"select count(*) from read_parquet('{out}/metrics/*.parquet') m "
            f"join read_parquet('{out}/runs.parquet') r on r.hash = m.run_hash"
        ).fetchall()
    assert joined == [(len(steps),)]
    assert len(list(out.glob("objects/*/*.parquet"))) == 3 * 3
