"""The run index file (`.aim/index/runs.jsonl`) and the change marker, on real repositories:
what it stores equals the sidecars, it decodes only what a query reads, and a warm Repo sees
changes made by other processes without stat-ing every sidecar."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage import load_run_meta
from aim_parquet.storage.index import run_index
from aim_parquet.storage.index.run_index import index_file_problem

QUIET: dict[str, Any] = {"system_tracking_interval": None, "capture_terminal_logs": False}


def index_path(root: Path) -> Path:
    return RepoLayout(root).index_file


def make_rich_runs(root: Path) -> list[str]:
    """Runs whose sidecars hold every kind of value the index must keep exactly."""
    hashes = []
    first = aim.Run(repo=root, experiment="exp-ü", **QUIET)
    first.name = "naïve \u2603 run"
    first.description = "a description"
    first.add_tag("best")
    first["hparams"] = {"lr": 1e-3, "nan": math.nan, "inf": -math.inf, "blob": b"\x00\xff"}
    first["$aim_parquet"] = {"looks": "like the tag"}
    for step in range(5):
        first.track(1.0 / (step + 1), name="loss", step=step, epoch=step // 2)
        first.track(step, name="count", step=step, context={"subset": "val"})
    first.track(math.nan, name="odd", step=0)
    first.track(math.inf, name="odd", step=1)
    first.track(aim.Text("hello"), name="notes", step=0)
    first.close()
    hashes.append(first.hash)
    second = aim.Run(repo=root, **QUIET)  # defaults everywhere, no sequences
    second.archived = True
    second.close()
    hashes.append(second.hash)
    return hashes


def every_run(repo: Any) -> list[Any]:
    """Iterate a query over every run (archived too): what refreshes, and writes, the index."""
    return [c.run for c in repo.query_runs("run.archived in (True, False)").iter_runs()]


def index_records(root: Path) -> dict[str, Any]:
    entries = run_index.read_index_file(index_path(root).read_bytes())
    return {h: e.record for h, e in entries.items()}


def test_index_file_holds_exactly_the_sidecars(repo_root: Path) -> None:
    hashes = make_rich_runs(repo_root)
    every_run(aim.Repo(repo_root))  # builds the index from the sidecars
    layout = RepoLayout(repo_root)
    for _ in range(2):  # as first written, then as rewritten from index-sourced records
        records = index_records(repo_root)
        assert sorted(records) == sorted(hashes)
        for run_hash in hashes:
            expected = load_run_meta(layout, run_hash).to_json()
            for entry in expected["sequences"]:
                del entry["reach"]  # the writer's bookkeeping (catalogue_scan), not cached
            assert records[run_hash].meta.to_json() == expected
            assert records[run_hash].params.keys() == load_run_meta(layout, run_hash).params.keys()
        repo = aim.Repo(repo_root)
        repo.query_metrics("metric.name == 'loss'").dataframe()  # decodes from the index file
        extra = aim.Run(repo=repo_root, **QUIET)
        extra.close()
        repo.delete_run(extra.hash)  # a change that rewrites the index from those records
        every_run(repo)
    table = pa.ipc.open_file(pa.BufferReader(index_path(repo_root).read_bytes())).read_all()
    assert table.schema.names[0] == "hash" and table.num_rows == len(hashes)
    assert table.schema.metadata[b"format_version"] == b"6"


def test_sequence_query_decodes_stats_of_matching_sequences_only(repo_root: Path) -> None:
    make_rich_runs(repo_root)
    every_run(aim.Repo(repo_root))
    repo = aim.Repo(repo_root)
    repo.close()  # forgets the process's in-memory index: records come from the index file
    metrics = list(repo.query_metrics("metric.name == 'loss'"))
    assert [m.name for m in metrics] == ["loss"]
    record = repo._index.refresh().records[metrics[0].run.hash]
    names = [key[1] for key in record.sequence_keys()]
    assert len(names) == 4 and sorted(record._infos) == [names.index("loss")]
    steps, values = metrics[0].values.sparse_numpy()
    assert steps.tolist() == [0, 1, 2, 3, 4] and values[0] == 1.0


def test_run_predicate_parses_no_catalogue(
    repo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_rich_runs(repo_root)
    every_run(aim.Repo(repo_root))
    parsed: list[str] = []
    real = run_index.RunRecord.sequence_keys

    def spy(record: Any) -> Any:
        parsed.append(record.hash)
        return real(record)

    monkeypatch.setattr(run_index.RunRecord, "sequence_keys", spy)
    repo = aim.Repo(repo_root)
    found = [c.run.name for c in repo.query_runs("run.hparams.lr < 0.01").iter_runs()]
    assert found == ["naïve \u2603 run"] and parsed == []


def test_damaged_catalogue_line_heals_from_the_sidecar(repo_root: Path) -> None:
    """The index is a cache: an entry that fails to decode is read again from its sidecar and
    the query answers as if nothing happened; `verify --repair` rebuilds the whole file."""
    make_rich_runs(repo_root)
    every_run(aim.Repo(repo_root))
    path = index_path(repo_root)
    header, rest = path.read_bytes().split(b"\n", 1)
    path.write_bytes(header + b"\n" + b"x" * len(rest))  # same lengths, garbage content
    repo = aim.Repo(repo_root)
    assert len(list(repo.query_runs("run.hparams.lr > 0").iter_runs())) == 1  # no catalogue
    assert [m.name for m in repo.query_metrics("metric.name == 'loss'")] == ["loss"]
    result = subprocess.run(
        [sys.executable, "-m", "aim_parquet", "verify", "--repair", "--repo", str(repo_root)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert index_file_problem(RepoLayout(repo_root)) is None


def _run_script(root: Path, body: str) -> None:
    script = f"import aim_parquet as aim\nrepo = {str(root)!r}\n{body}"
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)


def test_warm_repo_sees_other_processes_at_once(repo_root: Path) -> None:
    run = aim.Run(repo=repo_root, **QUIET)
    run["hparams"] = {"lr": 0.1}
    run.close()
    repo = aim.Repo(repo_root)
    query = "run.hparams.lr > 0.05"
    assert len(list(repo.query_runs(query).iter_runs())) == 1  # warm from here on
    quiet = "system_tracking_interval=None, capture_terminal_logs=False"
    _run_script(
        repo_root,
        f"r = aim.Run({run.hash!r}, repo=repo, {quiet})\nr['hparams'] = {{'lr': 0.01}}\nr.close()",
    )
    assert list(repo.query_runs(query).iter_runs()) == []  # a changed sidecar
    _run_script(repo_root, f"r = aim.Run(repo=repo, {quiet})\nr['hparams'] = {{'lr': 0.5}}")
    assert len(list(repo.query_runs(query).iter_runs())) == 1  # a new run
    _run_script(repo_root, f"aim.Repo(repo).delete_run({run.hash!r})")
    assert run.hash not in [r.hash for r in every_run(repo)]  # a deleted run


def test_warm_refresh_skips_sidecar_stats_until_something_changes(
    repo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_rich_runs(repo_root)
    repo = aim.Repo(repo_root)
    every_run(repo)
    old = time.time() - 10  # make runs/ look settled (its mtime is not trusted for RACY_S)
    os.utime(repo_root / ".aim" / "runs", (old, old))
    every_run(repo)  # a full pass that records the settled state
    passes: list[int] = []
    real = run_index.RunIndex._full_refresh

    def spy(self: Any) -> Any:
        passes.append(1)
        return real(self)

    monkeypatch.setattr(run_index.RunIndex, "_full_refresh", spy)
    for _ in range(3):
        assert len(every_run(repo)) == 2
    assert passes == []
    sidecar = next((repo_root / ".aim" / "runs").glob("*/run.json"))
    data = json.loads(sidecar.read_text())
    data["name"] = "edited by hand"  # a tool that does not touch the change marker
    sidecar.write_text(json.dumps(data))
    monkeypatch.setattr(run_index, "FULL_CHECK_S", 0.0)  # as when that much time has passed
    assert "edited by hand" in {run.name for run in every_run(repo)} and passes == [1]


def test_repo_made_again_starts_from_the_processes_index(repo_root: Path) -> None:
    """`Repo(path)` made again in the same process reuses the in-memory index (no sidecar is
    read, the index file is not decoded again), and still sees a run written meanwhile."""
    make_rich_runs(repo_root)
    first = aim.Repo(repo_root)
    every_run(first)
    again = aim.Repo(repo_root)
    assert again._index is first._index
    snapshot = again._index.refresh()
    assert snapshot is first._index.refresh()
    extra = aim.Run(repo=str(repo_root), **QUIET)
    extra.close()
    assert extra.hash in {r.hash for r in aim.Repo(repo_root).iter_runs()}
    again.close()  # forgets it: the next Repo decodes the index file again
    assert aim.Repo(repo_root)._index.refresh() is not snapshot


def test_gc_paused_leaves_the_collector_as_it_found_it() -> None:
    """The index's decoding holds the cyclic collector off and turns it back on only if it
    was on: a caller that disabled it keeps it disabled."""
    import gc

    from aim_parquet.system.gc_pause import gc_paused

    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
