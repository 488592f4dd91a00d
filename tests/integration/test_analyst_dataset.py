"""The analyst dataset (FORMAT.md, "Reading the dataset without aim_parquet"): read through the
documented recipes with polars, DuckDB and pandas, it gives exactly the SDK's answers on random
repositories with resumes before and after compaction, archived, copied, deleted and live runs;
it stays readable while compaction and refreshes run in a loop in another process; a refresh
killed (SIGKILL) at every step leaves it exact."""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

import aim_parquet
from aim_parquet import Repo, Run
from aim_parquet.format.dataset import dataset_dir
from aim_parquet.format.paths import RepoLayout, canonical_context
from aim_parquet.storage.compaction.compactor import compact_repo
from aim_parquet.storage.compaction.dataset import load_dataset_manifest, refresh_dataset
from aim_parquet.storage.maintenance.gc import gc_repo
from tests.conftest import PYTHON, python_env

Points = dict[tuple[str, str, str], list[tuple[int, float]]]


def _value(v: float) -> Any:
    return "nan" if math.isnan(v) else v


def sdk_points(root: Path) -> tuple[Points, dict[str, bool]]:
    """{(run, name, context): [(step, value)]} of every metric, and each run's archived flag,
    through the SDK (a fresh Repo)."""
    repo = Repo(str(root))
    points: Points = {}
    archived = {}
    for run in repo.iter_runs():
        archived[run.hash] = run.archived
        for metric in run.metrics():
            steps, values = metric.values.sparse_numpy()
            if len(steps):
                key = (run.hash, metric.name, canonical_context(metric.context.to_dict()))
                points[key] = [
                    (int(s), _value(float(v))) for s, v in zip(steps, values, strict=True)
                ]
    return points, archived


def _group(rows: list[dict[str, Any]]) -> tuple[Points, dict[str, bool]]:
    points: Points = {}
    archived = {}
    for row in rows:
        key = (row["run_hash"], row["name"], row["context"])
        points.setdefault(key, []).append((int(row["step"]), _value(float(row["value"]))))
        archived[row["run_hash"]] = bool(row["archived"])
    return {k: sorted(v) for k, v in points.items()}, archived


def _files(root: Path) -> tuple[list[str], str]:
    current = json.loads((root / ".aim/dataset/current.json").read_text())
    folder = root / ".aim" / "dataset"
    return [str(folder / f) for f in current["metrics"]], str(folder / current["runs"])


def polars_points(root: Path) -> tuple[Points, dict[str, bool]]:
    import polars as pl

    files, runs = _files(root)
    frame = pl.scan_parquet(files).collect()
    assert pl.read_parquet(runs).height >= frame["run_hash"].n_unique()
    return _group(frame.to_dicts())


def duckdb_points(root: Path) -> tuple[Points, dict[str, bool]]:
    import duckdb

    files, _runs = _files(root)
    with duckdb.connect() as con:
        rel = con.sql(
            f"select run_hash, name, context, step, value, archived from read_parquet({files})"
        )
        cols = rel.columns
        return _group([dict(zip(cols, r, strict=True)) for r in rel.fetchall()])


def pandas_points(root: Path) -> tuple[Points, dict[str, bool]]:
    import pandas as pd

    files, _runs = _files(root)
    return _group(pd.read_parquet(files).to_dict("records"))


READERS = {"polars": polars_points, "duckdb": duckdb_points, "pandas": pandas_points}


def _track_run(root: Path, rng: random.Random, i: int) -> str:
    run = Run(repo=str(root), experiment="sweep")
    run["hparams"] = {"lr": 0.01 * (i + 1), "name": f"net{i}"}
    for step in range(rng.randint(3, 25)):
        run.track(rng.random(), name="loss", step=step, context={"subset": "train"})
        if step % 3 == 0:
            ctx = {"subset": "val", "fold": i % 2}
            run.track(rng.choice([rng.random(), math.inf]), name="loss", step=step, context=ctx)
    run.close()
    return run.hash


def _resume(root: Path, run_hash: str, rng: random.Random) -> None:
    run = Run(run_hash=run_hash, repo=str(root))
    for step in (1, 2, 40):  # two overwrites of earlier steps and one new step
        run.track(10 + rng.random(), name="loss", step=step, context={"subset": "train"})
    run.close()


def build_repo(root: Path, seed: int) -> Run:
    """A random repository as the module doc says; returns the live run (still open)."""
    rng = random.Random(seed)
    hashes = [_track_run(root, rng, i) for i in range(6)]
    _resume(root, hashes[0], rng)  # resumed before compaction
    compact_repo(RepoLayout(root))  # (creates the dataset)
    _resume(root, hashes[1], rng)  # resumed after compaction: committed by the next refresh
    archived = Run(run_hash=hashes[2], repo=str(root))
    archived.archived = True
    archived.close()
    other = root / "other"
    copied = _track_run(other, rng, 9)
    Repo(str(other)).copy_runs([copied], Repo(str(root)))
    Repo(str(root)).delete_run(hashes[4])  # (refreshes: commits the resume and the archive)
    live = Run(repo=str(root), system_tracking_interval=None)
    for step in range(5):
        live.track(float(step), name="loss", step=step, context={"subset": "train"})
    live.flush()
    return live


@pytest.mark.parametrize("seed", [1, 2])
def test_recipes_give_the_sdk_answers(tmp_path: Path, seed: int) -> None:
    live = build_repo(tmp_path, seed)
    try:
        expected, archived = sdk_points(tmp_path)
        committed = {k: v for k, v in expected.items() if k[0] != live.hash}
        assert any(archived.values())
        for name, read in READERS.items():
            got, flags = read(tmp_path)
            got = {k: v for k, v in got.items() if k[0] != live.hash}  # (as of the last refresh)
            assert got == committed, name
            assert {h: f for h, f in flags.items() if h != live.hash} == {
                h: a for h, a in archived.items() if h != live.hash
            }
        tables = aim_parquet.read_dataset(str(tmp_path))
        got, _flags = _group(tables.metrics.to_pylist())
        assert got == expected  # live runs too
        assert live.hash in tables.fresh_runs
        active = dict(
            zip(tables.runs["hash"].to_pylist(), tables.runs["active"].to_pylist(), strict=True)
        )
        assert active[live.hash] is True
    finally:
        live.close()
    expected = sdk_points(tmp_path)[0]
    got, _flags = polars_points(tmp_path)  # closed, not yet committed: close never refreshes
    assert live.hash not in {k[0] for k in got}
    got, _flags = _group(aim_parquet.read_dataset(str(tmp_path)).metrics.to_pylist())
    assert got == expected
    _cli("compact", "--repo", str(tmp_path))  # commits it
    got, _flags = polars_points(tmp_path)
    assert got == expected


def _cli(*args: str) -> None:
    proc = subprocess.run(
        [PYTHON, "-m", "aim_parquet", *args], env=python_env(), capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


CLOSE = textwrap.dedent(
    """
    import sys
    import aim_parquet
    run = aim_parquet.Run(run_hash=sys.argv[2] or None, repo=sys.argv[1],
                          system_tracking_interval=None)
    for step in range(3):
        run.track(100.0 + step, name="loss", step=step, context={"subset": "train"})
    run.close()
    print(run.hash, "aim_parquet.storage.compaction.dataset" in sys.modules)
    """
)


@pytest.mark.parametrize("resumed", [False, True])
def test_close_leaves_the_dataset_alone(tmp_path: Path, resumed: bool) -> None:
    """A training script's close costs O(its run): it neither refreshes the dataset nor
    fingerprints the repository's runs (it never imports the dataset code at all), even when
    the dataset is damaged; `read_dataset` is current at once, `compact` commits the run."""
    rng = random.Random(7)
    hashes = [_track_run(tmp_path, rng, i) for i in range(3)]
    layout = RepoLayout(tmp_path)
    refresh_dataset(layout)
    manifest = dataset_dir(layout) / "current.json"
    before = manifest.read_bytes()
    (dataset_dir(layout) / "lock").unlink()  # a close that refreshed would recreate it
    proc = subprocess.run(
        [PYTHON, "-c", CLOSE, str(tmp_path), hashes[0] if resumed else ""],
        env=python_env(),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    run_hash, is_loaded = proc.stdout.split()
    assert is_loaded == "False"  # the dataset code was not even imported
    assert manifest.read_bytes() == before
    assert not (dataset_dir(layout) / "lock").exists()
    assert "dataset" not in proc.stderr
    expected = sdk_points(tmp_path)[0]
    tables = aim_parquet.read_dataset(str(tmp_path))
    assert run_hash in tables.fresh_runs
    assert _group(tables.metrics.to_pylist())[0] == expected
    _cli("compact", "--repo", str(tmp_path))
    assert polars_points(tmp_path)[0] == expected


def test_runs_table_follows_archive_and_new_runs(tmp_path: Path) -> None:
    import polars as pl

    rng = random.Random(3)
    first = _track_run(tmp_path, rng, 0)
    compact_repo(RepoLayout(tmp_path))
    second = _track_run(tmp_path, rng, 1)  # a new run, after compaction: in at the next refresh
    proc = subprocess.run(
        [PYTHON, "-m", "aim_parquet", "runs", "archive", first, "--repo", str(tmp_path)],
        env=python_env(),
        capture_output=True,
    )
    assert proc.returncode == 0, proc.stderr
    table = pl.read_parquet(tmp_path / ".aim/index/runs.parquet")
    flags = dict(zip(table["hash"].to_list(), table["archived"].to_list(), strict=True))
    assert flags == {first: True, second: False}
    assert table["params.hparams.name"].to_list() == ["net0", "net1"]  # a param named `name`


def test_superseded_files_stay_until_gc(tmp_path: Path) -> None:
    rng = random.Random(4)
    hashes = [_track_run(tmp_path, rng, i) for i in range(3)]
    layout = RepoLayout(tmp_path)
    refresh_dataset(layout)
    before = load_dataset_manifest(layout)
    assert before is not None
    _resume(tmp_path, hashes[0], rng)
    refresh_dataset(layout)
    after = load_dataset_manifest(layout)
    assert after is not None and after.generation > before.generation
    old_files = set(before.metrics) - set(after.metrics)
    assert old_files and all((dataset_dir(layout) / f).exists() for f in old_files)
    gc_repo(layout)  # within the grace period: kept
    assert all((dataset_dir(layout) / f).exists() for f in old_files)
    gc_repo(layout, grace_s=0)
    assert not any((dataset_dir(layout) / f).exists() for f in old_files)
    assert all((dataset_dir(layout) / f).exists() for f in after.metrics)


LOOP = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from aim_parquet.format.paths import RepoLayout
    from aim_parquet.storage.compaction.compactor import compact_repo
    from aim_parquet.storage.compaction.dataset import refresh_dataset
    from aim_parquet.storage.maintenance.gc import gc_repo
    layout = RepoLayout(Path(sys.argv[1]))
    for _ in range(int(sys.argv[2])):
        compact_repo(layout)
        refresh_dataset(layout, rebuild=True)
        gc_repo(layout, grace_s=30)
    """
)


@pytest.mark.slow
def test_reads_during_compaction_and_refresh_loop(tmp_path: Path) -> None:
    rng = random.Random(5)
    for i in range(8):
        _track_run(tmp_path, rng, i)
    refresh_dataset(RepoLayout(tmp_path))
    expected = sdk_points(tmp_path)[0]
    proc = subprocess.Popen([PYTHON, "-c", LOOP, str(tmp_path), "15"], env=python_env())
    reads = 0
    try:
        while proc.poll() is None or reads < 3:
            for name, read in READERS.items():
                assert read(tmp_path)[0] == expected, name
                reads += 1
    finally:
        proc.wait(timeout=300)
    assert proc.returncode == 0
    assert reads >= 3


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from aim_parquet.format.paths import RepoLayout
    from aim_parquet.storage.compaction import dataset
    target, calls = int(sys.argv[2]), [0]
    def step(real):
        def wrapped(*args, **kwargs):
            calls[0] += 1
            if calls[0] == target:
                os.kill(os.getpid(), signal.SIGKILL)
            out = real(*args, **kwargs)
            calls[0] += 1
            if calls[0] == target:
                os.kill(os.getpid(), signal.SIGKILL)
            return out
        return wrapped
    dataset._write_parquet = step(dataset._write_parquet)
    dataset.atomic_write = step(dataset.atomic_write)
    dataset.refresh_dataset(RepoLayout(Path(sys.argv[1])), rebuild=True)
    print("finished", calls[0])
    """
)


@pytest.mark.slow
@pytest.mark.crash
def test_refresh_killed_at_every_step_leaves_the_dataset_exact(tmp_path: Path) -> None:
    rng = random.Random(6)
    for i in range(3):
        _track_run(tmp_path, rng, i)
    refresh_dataset(RepoLayout(tmp_path))
    expected = sdk_points(tmp_path)[0]
    target = 1
    while True:
        proc = subprocess.run(
            [PYTHON, "-c", KILLER, str(tmp_path), str(target)],
            env=python_env(),
            capture_output=True,
            text=True,
        )
        assert polars_points(tmp_path)[0] == expected, target
        if proc.returncode == 0:
            assert "finished" in proc.stdout
            break
        assert proc.returncode == -signal.SIGKILL, proc.stderr
        target += 1
    assert target > 30  # 16 buckets + runs table + commit, before and after each
    refresh_dataset(RepoLayout(tmp_path))
    assert duckdb_points(tmp_path)[0] == expected
    leftovers = [n for n in os.listdir(dataset_dir(RepoLayout(tmp_path))) if n.startswith(".tmp-")]
    assert leftovers == []  # (every kill fell between two whole writes)


def test_refresh_with_nothing_to_do_decodes_no_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refresh after which nothing changed compares fingerprints with the run index's stat
    keys and commits nothing, without decoding a run; a change (an archive) is still seen."""
    for i in range(3):
        run = Run(repo=str(tmp_path), system_tracking_interval=None, capture_terminal_logs=False)
        run.track(float(i), name="loss", step=0)
        run.close()
    layout = RepoLayout(tmp_path)
    first = refresh_dataset(layout)
    from aim_parquet.storage.index.run_index import RunIndex

    real = RunIndex.metas
    calls: list[int] = []

    def counted(self: RunIndex) -> Any:
        calls.append(1)
        return real(self)

    monkeypatch.setattr(RunIndex, "metas", counted)
    again = refresh_dataset(layout)
    assert calls == [] and again.generation == first.generation
    repo = Repo(str(tmp_path))
    repo.get_run(run.hash).archived = True
    refresh_dataset(layout)
    assert calls and load_dataset_manifest(layout).generation > first.generation
