"""The run-level frame of a repository whose run index entry is damaged where only the frame
reads it (a run that is not plain, so its catalogue is read from the entry's JSON; params the
query did not look at): the run is read again from its sidecar, as matching does, and the frame
equals that of the same repository without an index. Before, `query_runs(q).dataframe(
metrics=[...])` raised CorruptFileError for the whole repository (found through a format 5
index upgraded with a damaged row)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage.index.run_index import RunIndex
from tests.conftest import read_index_table, with_index_column, write_index_table


def _repo(root: Path) -> None:
    for i in range(4):
        run = aim.Run(repo=str(root), system_tracking_interval=None, capture_terminal_logs=False)
        run["hparams"] = {"lr": 0.1 * (i + 1)}
        for step in range(3):  # run 3 tracks ints: its catalogue is not plain (JSON only)
            value = (step + i) if i == 3 else float(step + i)
            run.track(value, name="loss", step=step, context={"subset": "train"} if i % 2 else {})
        run.close()
    assert len(list(aim.Repo(str(root)).query_runs("").iter_runs())) == 4


def _damage(root: Path, column: str) -> str:
    """Cuts the last character of `column` in the row of the run whose catalogue is not plain."""
    table = read_index_table(root)
    row = table.column("seq_plain").to_pylist().index(False)
    values = table.column(column).to_pylist()
    values[row] = values[row][:-1]
    table = with_index_column(table, column, values)
    write_index_table(root, table)  # (as a fresh process)
    return str(table.column("hash")[row])


def _frames(root: Path) -> dict[str, Any]:
    repo = aim.Repo(str(root))
    with_metrics: Any = repo.query_runs("").dataframe(metrics=["loss"])
    polars: Any = repo.query_runs("run.hparams.lr > 0").to_polars(metrics=["loss"])
    plain: Any = repo.query_runs("").dataframe()
    return {
        "pandas": with_metrics.sort_values("hash").to_json(),
        "polars": polars.sort("hash").write_json(),
        "plain": plain.sort_values("hash").to_json(),
    }


@pytest.mark.parametrize("column", ["catalogue_keys", "catalogue_stats", "params"])
def test_a_damaged_entry_is_read_again_from_its_sidecar(tmp_path: Path, column: str) -> None:
    root = tmp_path / "repo"
    _repo(root)
    _damage(root, column)
    reference = tmp_path / "reference"
    shutil.copytree(root, reference)
    shutil.rmtree(RepoLayout(reference).index_dir)
    want = _frames(reference)
    RunIndex._shared.clear()
    assert _frames(root) == want


def test_a_run_whose_sidecar_is_damaged_too_is_left_out_with_a_warning(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    _repo(root)
    run_hash = _damage(root, "catalogue_keys")
    sidecar = RepoLayout(root).sidecar(run_hash)
    st = sidecar.stat()
    with open(sidecar, "r+b") as f:  # damaged in place, same size and mtime: the entry is trusted
        f.write(b"#" * st.st_size)
    os.utime(sidecar, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.warns(RuntimeWarning, match=run_hash):
        frame: Any = aim.Repo(str(root)).query_runs("").dataframe(metrics=["loss"])
    assert run_hash not in set(frame["hash"])
    assert len(frame) == 3
