"""Upgrading a repository whose run index is 4ba8723's `runs.arrow` of format 5 (the index of
the release before format 6; 4ba8723 itself deleted any format 4 `runs.jsonl`): the answers
equal a rebuild from the sidecars, and the upgrade is not reported as damage (hx18a)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage.index.run_index import RunIndex
from tests.conftest import repo_by_old_code

REF_REV = "4ba8723"  # the last commit whose run index was runs.arrow of format 5

MAKE_REPO = """
import sys
import aim_parquet as aim
root = sys.argv[1]
quiet = dict(system_tracking_interval=None, capture_terminal_logs=False)
for i in range(6):
    with aim.Run(repo=root, experiment="e", **quiet) as run:
        run["hparams"] = {"lr": 0.1 * i}
        run.track(float(i), name="loss", step=0, context={"subset": "train"})
print(len(list(aim.Repo(root).query_metrics("metric.name == 'loss'"))))
"""


@pytest.fixture
def ref_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository written and queried by 4ba8723's code (its index: runs.arrow, format 5)."""
    root, printed = repo_by_old_code(REF_REV, MAKE_REPO, tmp_path_factory, "ref_repo")
    assert printed.split()[-1] == "6"
    with pa.ipc.open_file(RepoLayout(root).index_file) as reader:
        assert (reader.schema.metadata or {})[b"format_version"] == b"5"
    return root


def _answer(root: Path) -> list[Any]:
    repo = aim.Repo(str(root))
    return [
        (m.run.hash, m.name, m.context.to_dict(), m.values.sparse_numpy()[1].tolist())
        for m in repo.query_metrics("metric.name == 'loss' and run.hparams.lr > 0.1")
    ]


def test_a_format_5_index_upgrade_is_not_reported_as_damage(
    ref_repo: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """4ba8723's own index is an older format, not damage: no WARNING "is damaged" (the
    answer equals the one from the sidecars alone)."""
    with caplog.at_level(logging.WARNING, logger="aim_parquet"):
        got = _answer(ref_repo)
    assert len(got) == 4
    damaged = [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()]
    assert damaged == []


def test_a_format_5_index_seeds_the_upgrade(ref_repo: Path) -> None:
    """The format 5 file's entries are taken where the sidecar is unchanged, as runs.jsonl's."""
    layout = RepoLayout(ref_repo)
    reads: list[str] = []
    index = RunIndex(layout)
    real = index._read_sidecar

    def counted(run_hash: str, key: str) -> Any:
        reads.append(run_hash)
        return real(run_hash, key)

    index._read_sidecar = counted  # type: ignore[method-assign]
    index._write = lambda: None  # type: ignore[method-assign]
    snapshot = index.refresh()
    assert len(snapshot.newest_first) == 6
    assert reads == []
