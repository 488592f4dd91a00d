"""A process forked while another thread is inside a lazily computed run-index property (a
`Pool` or `DataLoader` worker forked while a thread queries) can use the index at once: on
Python 3.11, `functools.cached_property` holds a class-wide lock during any instance's
computation, which the child inherited held by a thread it does not have, and its first query
hung there for ever (hx18a: 17 of 60 forked children of a querying process hung, 2 of 60 before
this session's catalogue columns). `storage.base.cached.cached_property` takes no lock."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage.index import catalogue_columns
from aim_parquet.storage.index.catalogue_columns import CatalogueColumns
from aim_parquet.storage.index.index_table import read_table_file

QUIET: dict[str, Any] = {"system_tracking_interval": None, "capture_terminal_logs": False}

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork")


def test_a_child_forked_mid_computation_reads_the_catalogue_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(3):
        with aim.Run(repo=tmp_path, **QUIET) as run:
            run.track(float(i), name="loss", step=0, context={"subset": "train"})
    assert len(list(aim.Repo(str(tmp_path)).query_metrics("metric.name == 'loss'"))) == 3
    table = read_table_file(RepoLayout(tmp_path)).table
    busy, inside, release = CatalogueColumns(table), threading.Event(), threading.Event()
    real = CatalogueColumns._flat

    def flat(self: CatalogueColumns, name: str) -> list[Any]:
        if self is busy:  # a thread in the middle of computing `key_lists`
            inside.set()
            release.wait(30)
        return real(self, name)

    monkeypatch.setattr(catalogue_columns.CatalogueColumns, "_flat", flat)
    thread = threading.Thread(target=lambda: busy.key_lists)
    thread.start()
    try:
        assert inside.wait(30)
        pid = os.fork()
        if pid == 0:  # the child: another instance's key_lists, at once
            signal.alarm(20)
            try:
                names = CatalogueColumns(table).key_lists[1]
                os._exit(0 if names == ["loss", "loss", "loss"] else 2)
            except BaseException:
                os._exit(3)
    finally:
        release.set()
        thread.join()
    _, status = os.waitpid(pid, 0)
    assert not os.WIFSIGNALED(status), "the forked child hung on the property's lock"
    assert os.WEXITSTATUS(status) == 0
