"""Upgrading a repository whose run index `runs.arrow` is of format 5 (no catalogue columns),
written by 4ba8723's own code: its rows are taken with their catalogue columns computed from
their catalogue JSON, checked against each sidecar's stat key as always, so the answers equal a
rebuild from the sidecars with sidecars changed, added, removed and damaged since, and the file
written equals a rebuild's for the unchanged runs; a damaged or truncated format 5 file gives
the rebuild's answer too."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage.index.index_file import decode_table
from aim_parquet.storage.index.index_table import upgrade_format5
from aim_parquet.storage.index.run_index import RunIndex, index_file_problem
from tests.conftest import PYTHON, python_env, read_index_table, repo_by_old_code, write_index_table
from tests.integration.test_legacy_index import (
    MAKE_OLD_REPO,
    _change_runs,
    _counted,
    _replace_sidecar,
    _stored,
)

OLD_REV = "4ba8723"  # the last commit whose run index was of format 5


@pytest.fixture(scope="module")
def old_repo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository written and queried by 4ba8723 (so its index is runs.arrow, format 5)."""
    root, printed = repo_by_old_code(OLD_REV, MAKE_OLD_REPO, tmp_path_factory, "old_repo5", "all")
    assert printed.split()[-1] == "12"  # (the archived run is not shown)
    table = read_index_table(root)
    assert table.schema.metadata[b"format_version"] == b"5" and table.num_rows == 13
    return root


@pytest.fixture
def old_repo(old_repo_template: Path, tmp_path: Path) -> Path:
    """A copy of the template whose format 5 file has the copy's stat keys (new inodes), as if
    4ba8723 had written it for this copy."""
    root = tmp_path / "repo"
    shutil.copytree(old_repo_template, root)
    layout = RepoLayout(root)
    table = read_index_table(root)
    stats = [os.stat(layout.sidecar_path(h)) for h in table.column("hash").to_pylist()]
    for name, typ, values in (
        ("mtime_ns", pa.int64(), [st.st_mtime_ns for st in stats]),
        ("size", pa.int64(), [st.st_size for st in stats]),
        ("ino", pa.uint64(), [st.st_ino for st in stats]),
    ):
        at = table.schema.get_field_index(name)
        table = table.set_column(at, pa.field(name, typ), pa.array(values, typ))
    write_index_table(root, table)
    return root


def _answer(index: RunIndex) -> tuple[list[str], list[str], list[Any]]:
    """Every run (sorted: the snapshot's own order is that of the file's rows), the runs
    newest first (the order queries give), the damaged runs."""
    snapshot = index.refresh()
    runs = sorted(_stored(r.meta) for r in snapshot.records.values())
    newest = [r.hash for r in snapshot.newest_first]
    return runs, newest, sorted((d.run_hash, d.reason) for d in snapshot.damaged)


def _reference(root: Path) -> tuple[list[str], list[str], list[Any]]:
    """The answer of an index built from the sidecars alone (nothing read nor written)."""
    index = RunIndex(RepoLayout(root))
    path = index.path
    aside = path.with_suffix(".aside")
    path.rename(aside)
    try:
        index._write = lambda: None  # type: ignore[method-assign]
        return _answer(index)
    finally:
        aside.rename(path)


def _rows(table: pa.Table) -> dict[str, str]:
    """Each run's row, every column by name (repr: a NaN equals itself), kept copies aside."""
    names = sorted(table.schema.names)
    rows = table.select(names).to_pylist()
    return {r["hash"]: repr(sorted(r.items())) for r in rows if not r["kept"]}


def test_a_format5_index_is_upgraded_where_the_sidecars_are_unchanged(old_repo: Path) -> None:
    layout = RepoLayout(old_repo)
    hashes = sorted(read_index_table(old_repo).column("hash").to_pylist())
    upgraded = upgrade_format5(read_index_table(old_repo))
    assert upgraded.schema.metadata[b"format_version"] == b"6"
    assert upgraded.column("seq_plain").to_pylist().count(True) == 13
    added = _change_runs(old_repo, hashes, {"lr": 9.0, "extra": "new path"})  # (after 4ba8723)
    want = _reference(old_repo)
    index, reads = _counted(layout)
    assert _answer(index) == want
    assert sorted(reads) == sorted([hashes[0], hashes[1], hashes[2], added])
    written = decode_table(layout.index_file.read_bytes())  # (format 6)
    assert index_file_problem(layout) is None
    again, reads = _counted(layout)  # from the new file
    assert _answer(again) == want
    assert reads == [hashes[2]]  # (the damaged one: its sidecar is read every time)
    # the file written equals, column for column, the one a rebuild writes
    layout.index_file.unlink()
    rebuilt, reads = _counted(layout)
    assert _answer(rebuilt) == want and len(reads) == 13
    rebuild = decode_table(layout.index_file.read_bytes())
    assert sorted(written.schema.names) == sorted(rebuild.schema.names)
    assert _rows(written) == _rows(rebuild)
    assert written.column("kept").to_pylist().count(True) == 1  # (the damaged run's copy)


def _truncate(raw: bytes) -> bytes:
    return raw[: len(raw) * 2 // 3]


def _table_change(change: Callable[[pa.Table], pa.Table]) -> Callable[[bytes], bytes]:
    def damage(raw: bytes) -> bytes:
        sink = pa.BufferOutputStream()
        table = change(pa.ipc.open_file(pa.BufferReader(raw)).read_all())
        with pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        return bytes(sink.getvalue())

    damage.__name__ = change.__name__
    return damage


def _version(version: bytes) -> Callable[[pa.Table], pa.Table]:
    def change(table: pa.Table) -> pa.Table:
        return table.replace_schema_metadata({**table.schema.metadata, b"format_version": version})

    change.__name__ = f"version_{version.decode()}"
    return change


def _null_params(table: pa.Table) -> pa.Table:
    at = table.schema.get_field_index("params")
    return table.set_column(at, "params", pa.nulls(table.num_rows, pa.string()))


def _no_catalogue_stats(table: pa.Table) -> pa.Table:
    return table.remove_column(table.schema.get_field_index("catalogue_stats"))


def _with_catalogue_columns(table: pa.Table) -> pa.Table:
    """A format 6 table labelled 5."""
    return _version(b"5")(upgrade_format5(table))


def _bad_catalogue_text(table: pa.Table) -> pa.Table:
    at = table.schema.get_field_index("catalogue_keys")
    texts = table.column("catalogue_keys").to_pylist()
    texts[0] = texts[0][:-1]
    return table.set_column(at, "catalogue_keys", pa.array(texts, pa.string()))


def _bad_fields(table: pa.Table) -> pa.Table:
    at = table.schema.get_field_index("fields")
    return table.set_column(at, "fields", pa.array(["[1]"] * table.num_rows, pa.string()))


def _unpaired_params(table: pa.Table) -> pa.Table:
    return table.remove_column(table.num_columns - 1)


@pytest.mark.parametrize(
    "damage",
    [
        _truncate,
        _table_change(_version(b"4")),
        _table_change(_null_params),
        _table_change(_no_catalogue_stats),
        _table_change(_with_catalogue_columns),
        _table_change(_bad_fields),
        _table_change(_unpaired_params),
    ],
)
def test_a_damaged_format5_index_gives_the_sidecars_answer(
    old_repo: Path, damage: Callable[[bytes], bytes]
) -> None:
    layout = RepoLayout(old_repo)
    path = layout.index_file
    path.write_bytes(damage(path.read_bytes()))
    want = _reference(old_repo)
    index, reads = _counted(layout)
    assert _answer(index) == want
    assert len(reads) == 13  # every sidecar read
    assert index_file_problem(layout) is None


QUERY_SCRIPT = """
import json, sys
import aim_parquet as aim
repo = aim.Repo(sys.argv[1])
q = "run.archived or not run.archived"
runs = [(c.run.hash, c.run.name, c.run.experiment, c.run.archived, repr(c.run.get("hparams")))
        for c in repo.query_runs(q).iter_runs()]
metrics = []
for m in repo.query_metrics("metric.name == 'loss'"):
    steps, values = m.values.sparse_numpy()
    metrics.append((m.run.hash, m.context.idx, steps.tolist(), values.astype(float).tolist()))
summaries = [c.run.hash for c in repo.query_runs("run.metrics['acc'].last >= 5").iter_runs()]
sought = [m.run.hash for m in repo.query_metrics("metric.last < 0.2 and metric.count > 2")]
frame = repo.query_runs(q).to_polars(metrics=["loss", "acc"])
metric_frame = repo.query_metrics("metric.name == 'acc'").to_polars()
print(json.dumps([runs, sorted(metrics), summaries, sought,
                  frame.write_json(), metric_frame.drop("time").write_json()]))
"""


def _query(script_dir: Path, root: Path) -> str:
    script = script_dir / "query.py"
    script.write_text(QUERY_SCRIPT)
    done = subprocess.run(
        [PYTHON, str(script), str(root)], env=python_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _without_index(root: Path, tmp_path: Path) -> Path:
    reference = tmp_path / "reference"
    shutil.copytree(root, reference)
    shutil.rmtree(RepoLayout(reference).index_dir)
    return reference


def test_queries_after_the_upgrade_equal_those_without_index(
    old_repo: Path, tmp_path: Path
) -> None:
    layout = RepoLayout(old_repo)
    hashes = sorted(p.name for p in layout.runs_dir.iterdir())
    _replace_sidecar(layout, hashes[0], lambda d: {**d, "archived": True})
    want = _query(tmp_path, _without_index(old_repo, tmp_path))
    assert _query(tmp_path, old_repo) == want
    assert all(json.loads(want)[:4])
    table = read_index_table(old_repo)
    assert table.schema.metadata[b"format_version"] == b"6"
    assert _query(tmp_path, old_repo) == want


def test_a_format5_row_whose_catalogue_text_is_damaged_is_read_again(
    old_repo: Path, tmp_path: Path
) -> None:
    """A row whose catalogue JSON does not decode is not plain; its entry fails to decode when
    a query reads it and the run is read from its sidecar, as from a file of format 6."""
    layout = RepoLayout(old_repo)
    path = layout.index_file
    path.write_bytes(_table_change(_bad_catalogue_text)(path.read_bytes()))
    want = _query(tmp_path, _without_index(old_repo, tmp_path))
    assert _query(tmp_path, old_repo) == want
    assert read_index_table(old_repo).schema.metadata[b"format_version"] == b"6"
