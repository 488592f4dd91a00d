"""Opening a repository whose run index file is of the previous version (5, written by 4ba8723)
upgrades it, or rebuilds it where it is not a sound one (here: a format 6 file labelled 5, so its
catalogue columns are extra); that is an upgrade, not damage, so the user's first query after
upgrading does not log that the index "is damaged" (hx18b)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import aim_parquet as aim
from aim_parquet.storage.index.index_file import INDEX_FORMAT_VERSION
from tests.conftest import PYTHON, python_env, read_index_table, write_index_table

QUERY = "import sys, aim_parquet as aim; print(len(list(aim.Repo(sys.argv[1]).query_runs('run.lr > 0').iter_runs())))"


def test_an_index_of_the_previous_version_is_not_called_damaged(tmp_path: Path) -> None:
    run = aim.Run(repo=str(tmp_path), system_tracking_interval=None, capture_terminal_logs=False)
    run["lr"] = 0.1
    run.track(1.0, name="loss", step=0)
    run.close()
    assert len(list(aim.Repo(str(tmp_path)).query_runs("").iter_runs())) == 1
    table = read_index_table(tmp_path)
    meta = dict(table.schema.metadata)
    meta[b"format_version"] = str(INDEX_FORMAT_VERSION - 1).encode()
    write_index_table(tmp_path, table.replace_schema_metadata(meta))
    # a fresh process, as the user's first query after upgrading
    done = subprocess.run(
        [PYTHON, "-c", QUERY, str(tmp_path)], env=python_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1"]
    assert "damaged" not in done.stderr
