"""A refresh that writes the run index takes the file it wrote as its entries (its columns, not
the records read from sidecars): the answers stay those of the sidecars, in the same order, and
a damaged run stays reported with its last good copy kept in the file through later writes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa

import aim_parquet as aim
from aim_parquet.format.meta import RunMeta
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage.index.run_index import RunIndex, index_file_problem

QUIET: dict[str, Any] = {"system_tracking_interval": None, "capture_terminal_logs": False}


def _stored(meta: RunMeta) -> str:
    """A RunMeta as the index stores it (no segment reach: a reader takes it from the sidecar)."""
    sequences = tuple(replace(s, reach=None, has_rewrites=False) for s in meta.sequences)
    return repr(replace(meta, sequences=sequences))


def _answer(index: RunIndex) -> tuple[list[str], list[str], list[str]]:
    snapshot = index.refresh()
    return (
        [_stored(r.meta) for r in snapshot.records.values()],
        [r.hash for r in snapshot.newest_first],
        sorted(d.run_hash for d in snapshot.damaged),
    )


def _make(root: Path, n: int) -> None:
    for i in range(n):
        with aim.Run(repo=root, experiment=f"e{i % 2}", **QUIET) as run:
            run["hparams"] = {"lr": i / 10, "seed": i}
            run.track(float(i), name="loss", step=0, context={"subset": "train"})
    # (the rows the writers left are taken instead of their sidecars: not these tests' subject)
    (RepoLayout(root).index_dir / "closed.jsonl").unlink()


def _kept_rows(layout: RepoLayout) -> int:
    with pa.ipc.open_file(str(layout.index_file)) as reader:
        return int(reader.read_all().column("kept").to_numpy().sum())


def test_the_written_file_becomes_the_entries(tmp_path: Path) -> None:
    _make(tmp_path, 12)
    layout = RepoLayout(tmp_path)
    reference = RunIndex(layout)
    reference._write = lambda: None  # type: ignore[method-assign]
    want = _answer(reference)
    index = RunIndex(layout)
    assert _answer(index) == want
    snapshot = index.refresh()
    assert snapshot.sidecars_read == 12
    assert snapshot.extra == [] and len(snapshot.rows) == 12  # the file's columns
    assert _answer(RunIndex(layout)) == want  # a later process, from the file


def test_a_damaged_run_stays_reported_and_its_copy_kept(tmp_path: Path) -> None:
    _make(tmp_path, 6)
    layout = RepoLayout(tmp_path)
    index = RunIndex(layout)
    index.refresh()
    victim = sorted(p.name for p in layout.runs_dir.iterdir())[2]
    Path(layout.sidecar_path(victim)).write_text("{damaged")
    for n in (6, 7):  # a new run each time: the index is written, the second time from the
        _make(tmp_path, 1)  # entries adopted from the first write
        index._quick = None
        runs, _, damaged = _answer(index)
        assert damaged == [victim] and len(runs) == n
        assert _kept_rows(layout) == 1 and index_file_problem(layout) is None
    assert _answer(RunIndex(layout))[2] == [victim]
