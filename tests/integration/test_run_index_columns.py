"""The columnar run index file (`.aim/index/runs.arrow`) on real repositories: a torn,
corrupt or older file is rebuilt and the result is exact and warning-free; its columns agree
with the sidecars; and a fresh process's query makes records only for the runs it looks at."""

from __future__ import annotations

import json
import math
import subprocess
import warnings
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.format.run_fields import DEFAULT_EXPERIMENT
from aim_parquet.storage import load_run_meta
from aim_parquet.storage.index import param_columns
from aim_parquet.storage.index.index_file import INDEX_FORMAT_VERSION
from aim_parquet.storage.index.run_index import RunIndex, index_file_problem
from tests.conftest import (
    PYTHON,
    python_env,
    read_index_table,
    with_index_column,
    write_index_table,
)

QUIET: dict[str, Any] = {"system_tracking_interval": None, "capture_terminal_logs": False}
QUERY = "run.hparams.lr < 0.05 and run.experiment == 'a'"


def _runs(root: Path) -> dict[str, str]:
    """Runs whose params exercise every status of a param column; name by hash."""
    shapes: list[tuple[str, str | None, Any]] = [
        ("plain", "a", {"hparams": {"lr": 0.01, "seed": 1, "opt": "adam", "ok": True}}),
        ("bigger", "a", {"hparams": {"lr": 0.1, "seed": 2, "opt": "sgd", "ok": False}}),
        ("int lr", "a", {"hparams": {"lr": 0, "seed": 3}}),  # another type: OTHER
        ("null lr", "b", {"hparams": {"lr": None}}),  # NONE
        ("no lr", None, {"hparams": {"seed": 5}}),  # MISSING
        ("list lr", "a", {"hparams": {"lr": [0.01]}}),  # OTHER
        ("flat", "a", {"hparams": 3.0}),  # a path through a non-dict: OTHER
        ("bytes", "a", {"hparams": {"lr": b"\x00"}, "blob": b"\xff"}),  # tagged: OTHER
        ("nan", "a", {"hparams": {"lr": math.nan, "seed": -(2**70)}}),  # a huge int: OTHER
    ]
    names = {}
    for name, experiment, params in shapes:
        run = aim.Run(repo=root, experiment=experiment, **QUIET)
        run.name = name
        for key, value in params.items():
            run[key] = value
        if name == "plain":
            run.add_tag("best")
            run.description = "the one"
        if name == "bigger":
            run.archived = True
        run.track(1.0, name="loss", step=0)
        run.close()
        names[run.hash] = name
    return names


def _query(root: Path, text: str = QUERY) -> list[str]:
    repo = aim.Repo(root)
    repo.close()  # forgets the process's in-memory index: the file is read
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a rebuilt index warns nothing
        return sorted(c.run.name for c in repo.query_runs(text).iter_runs())


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    _runs(root)
    assert _query(root) == ["int lr", "plain"]  # builds the index file
    return root


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda raw: raw[: len(raw) // 2], id="torn"),
        pytest.param(lambda raw: raw[:8] + b"\x00" * 64 + raw[72:], id="header"),
        pytest.param(lambda raw: raw[:-40] + b"\xff" * 40, id="footer"),
        pytest.param(lambda raw: b"", id="empty"),
        pytest.param(lambda raw: b'{"format": "aim_parquet.run_index"}\n', id="json"),
    ],
)
def test_a_torn_or_corrupt_index_file_is_rebuilt(repo: Path, damage: Any) -> None:
    path = RepoLayout(repo).index_file
    path.write_bytes(damage(path.read_bytes()))
    assert _query(repo) == ["int lr", "plain"]
    assert index_file_problem(RepoLayout(repo)) is None  # rewritten whole
    assert _query(repo, "run.archived") == ["bigger"]


def test_an_index_file_of_an_older_version_is_rebuilt(repo: Path) -> None:
    layout = RepoLayout(repo)
    table = read_index_table(repo)
    old = table.replace_schema_metadata(
        {**table.schema.metadata, b"format_version": str(INDEX_FORMAT_VERSION - 1).encode()}
    )
    write_index_table(repo, old)
    layout.old_index_file.write_text('{"format": "aim_parquet.run_index", "format_version": 4}\n')
    reads: list[str] = []
    index = RunIndex(layout)
    real = index._read_sidecar
    index._read_sidecar = lambda h, k: (reads.append(h), real(h, k))[1]  # type: ignore[method-assign]
    direct = index._direct  # (the sidecars decoded straight into cells: read too)
    index._direct = lambda *a: (rows := direct(*a), reads.extend(rows))[0]
    index.refresh()
    assert len(reads) == len(read_index_table(repo))  # every sidecar read again
    assert (
        read_index_table(repo).schema.metadata[b"format_version"]
        == str(INDEX_FORMAT_VERSION).encode()
    )
    assert not layout.old_index_file.exists()  # the index of format 4 is gone
    assert _query(repo) == ["int lr", "plain"]


def test_columns_agree_with_the_sidecars(repo: Path) -> None:
    layout = RepoLayout(repo)
    table = read_index_table(repo)
    rows = table.to_pylist()
    assert {r["hash"] for r in rows} == {p.name for p in layout.runs_dir.iterdir()}
    for row in rows:
        meta = load_run_meta(layout, row["hash"])
        sidecar = json.loads(layout.sidecar(row["hash"]).read_text())
        assert row["experiment"] == (
            None if meta.experiment == DEFAULT_EXPERIMENT else meta.experiment
        )
        assert (row["name"], row["description"]) == (meta.name, meta.description)
        assert row["archived"] == meta.archived and (row["tags"] or []) == list(meta.tags)
        assert row["creation_time"] == meta.creation_time and row["end_time"] == meta.end_time
        assert row["fields"] is None and not row["kept"] and row["parts"] is None
        assert json.loads(row["params"]) == sidecar["params"]
        st = layout.sidecar(row["hash"]).stat()
        assert (row["mtime_ns"], row["size"], row["ino"]) == (st.st_mtime_ns, st.st_size, st.st_ino)
        for name in table.schema.names:
            path = param_columns.parse_column_name(name)
            if path is None:
                continue
            status, value = param_columns.walk(sidecar["params"], path)
            kind = param_columns.python_kind(table.schema.field(name).type)
            if status == param_columns.VALUE and type(value) is not kind:
                status, value = param_columns.OTHER, None
            if status == param_columns.VALUE and kind is int and abs(value) >= 2**63:
                status, value = param_columns.OTHER, None
            _, status_name = param_columns.column_names(path)
            assert row[status_name] == status, (row["name"], path)
            if status == param_columns.VALUE and not (
                isinstance(value, float) and math.isnan(value)
            ):
                assert row[name] == value, (row["name"], path)
    paths = {param_columns.parse_column_name(n) for n in table.schema.names} - {None}
    assert {("hparams", "lr"), ("hparams", "seed"), ("hparams", "opt"), ("hparams", "ok")} <= paths
    assert index_file_problem(layout) is None


def test_a_param_column_that_disagrees_is_damage_for_verify(repo: Path) -> None:
    table = read_index_table(repo)
    column = param_columns.column_names(("hparams", "opt"))[0]
    values = ["x" if v is not None else None for v in table.column(column).to_pylist()]
    assert table.schema.field(column).type == pa.string()
    write_index_table(repo, with_index_column(table, column, values))
    problem = index_file_problem(RepoLayout(repo))
    assert problem is not None and "disagrees" in problem


MAKES = """
import sys
import aim_parquet as aim
from aim_parquet.storage.index import index_table
made = []
real = index_table._make_record
index_table._make_record = lambda row, *a: (made.append(row[0]), real(row, *a))[1]
names = sorted(c.run.name for c in aim.Repo(sys.argv[1]).query_runs(sys.argv[2]).iter_runs())
print(len(made), "pandas" in sys.modules, *names, sep="|")
"""


def test_a_fresh_process_makes_records_only_for_runs_the_columns_keep(repo: Path) -> None:
    done = subprocess.run(
        [PYTHON, "-c", MAKES, str(repo), "run.hparams.opt == 'adam'"],
        capture_output=True,
        text=True,
        env=python_env(),
        check=True,
    )
    made, pandas, *names = done.stdout.strip().split("|")
    assert names == ["plain"]
    # the matching run, and "flat" (its hparams is no dict: the column leaves it to the
    # interpreter); none of the 7 runs the column rules out
    assert made == "2" and pandas == "False"


def test_fields_utf8_cannot_hold_are_kept_in_fields(tmp_path: Path) -> None:
    """A name or tag with a lone surrogate (the SDK refuses one, a sidecar written by another
    tool may hold it; an Arrow string cannot) is stored in `fields`, and queries and records
    read it exactly."""
    root = tmp_path / "repo"
    odd = "odd \udc80 name"
    run = aim.Run(repo=root, **QUIET)
    run["hparams"] = {"opt": odd, "lr": 0.5}
    run.close()
    plain = aim.Run(repo=root, experiment="e", **QUIET)
    plain["hparams"] = {"opt": "adam", "lr": 0.5}
    plain.close()
    sidecar = RepoLayout(root).sidecar(run.hash)
    data = json.loads(sidecar.read_text())
    data.update(name=odd, tags=[odd, "t"])
    sidecar.write_text(json.dumps(data))  # (ASCII: the surrogate as an escape)
    assert _query(root) == []  # builds the index
    row = next(r for r in read_index_table(root).to_pylist() if r["hash"] == run.hash)
    assert row["name"] is None and row["tags"] is None and row["fields"] is not None
    for text in [f"run.name == {odd!r}", f"run.hparams.opt == {odd!r}", f"{odd!r} in run.tags"]:
        assert _query(root, text) == [odd], text
    record = RunIndex(RepoLayout(root)).refresh().records[run.hash]
    assert record.meta.to_json() == load_run_meta(RepoLayout(root), run.hash).to_json()
    assert index_file_problem(RepoLayout(root)) is None


def test_a_param_few_runs_have_gets_no_column_and_still_answers(tmp_path: Path) -> None:
    """A column holds a cell for every run: a param found in under 1% of the runs gets none
    (its runs' params are read when a query names it), whether the index is built from the
    sidecars or a run that has it is added to an index that exists (a repo where one run in a
    hundred has a key of its own made an index of 256 dense columns, ten times the size)."""
    for i in range(150):
        run = aim.Run(repo=tmp_path, **QUIET)
        run["hparams"] = {"lr": i / 1000}
        if i == 7:
            run["only_me"] = {"x": 1.5}
        run.close()
    assert len(_query(tmp_path, "run.hparams.lr >= 0")) == 150  # (builds the index)
    paths = {param_columns.parse_column_name(n) for n in read_index_table(tmp_path).schema.names}
    assert ("hparams", "lr") in paths
    assert ("only_me", "x") not in paths  # 1 run of 150
    late = aim.Run(repo=tmp_path, **QUIET)
    late["hparams"] = {"lr": 1.0}
    late["late_key"] = "rare"
    late.close()
    assert len(_query(tmp_path, "run.only_me.x == 1.5")) == 1
    assert len(_query(tmp_path, "run.late_key == 'rare'")) == 1
    paths = {param_columns.parse_column_name(n) for n in read_index_table(tmp_path).schema.names}
    assert ("late_key",) not in paths  # added to an index of 151 runs by a batch of one
    assert ("hparams", "lr") in paths
    (tmp_path / ".aim" / "index" / "runs.arrow").unlink()
    assert len(_query(tmp_path, "run.late_key == 'rare'")) == 1
    rebuilt = {param_columns.parse_column_name(n) for n in read_index_table(tmp_path).schema.names}
    assert rebuilt == paths
