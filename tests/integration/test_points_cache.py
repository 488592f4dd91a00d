"""The points cache (`storage.index.points_cache`, FORMAT.md "The points cache"): metric frames and
`sparse_numpy()` iteration that take points from `.aim/index/points.arrow` equal the answer without
the cache (values, dtypes, row order) on random repositories with resumed, archived, live (a
subprocess writing), crashed (a SIGKILLed writer), compacted and int-metric runs; runs changed
after they were cached (resumed, deleted and made again under the same hash) are read from their
files; a damaged cache file is ignored without a warning and replaced; concurrent writers and a
reader always see a whole, valid file."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage.compaction import dataset_read
from aim_parquet.storage.compaction.compactor import compact_repo
from aim_parquet.storage.index import points_cache
from aim_parquet.storage.index.points_cache import PointsCache
from tests.conftest import PYTHON, python_env
from tests.integration.test_frames_bulk import QUIET, _build, _open, _reference, _same_table, _track

QUERIES = ["metric.name == 'loss'", "", "metric.name == 'count'", "run.hparams.seed > 3"]

LIVE_WRITER = """
import sys, time
import aim_parquet as aim
run = aim.Run(repo=sys.argv[1], system_tracking_interval=None, capture_terminal_logs=False)
run["hparams"] = {"lr": 0.1, "seed": 50}
for step in range(6):
    run.track(float(step) / 7, name="loss", step=step, epoch=step)
    run.track(step * 3, name="count", step=step)
run.flush()
print(run.hash, flush=True)
if sys.argv[2] == "crash":
    import os, signal
    os.kill(os.getpid(), signal.SIGKILL)
sys.stdin.read()  # until the parent closes the pipe
run.close()
"""


@contextlib.contextmanager
def _writer(root: Path, mode: str) -> Iterator[str]:
    """A run written by a subprocess: `live` keeps it open while the block runs, `crash` is
    SIGKILLed after its points reached the files (its run has no end_time)."""
    proc = subprocess.Popen(
        [PYTHON, "-c", LIVE_WRITER, str(root), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=python_env(),
    )
    assert proc.stdout is not None and proc.stdin is not None
    run_hash = proc.stdout.readline().strip()
    try:
        if mode == "crash":
            proc.wait(timeout=60)
        yield run_hash
    finally:
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
        proc.wait(timeout=60)
        proc.stdout.close()


@pytest.fixture
def small_thresholds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Test repositories are small: any query reads and writes the cache."""
    monkeypatch.setattr(points_cache, "MIN_READ_RUNS", 1)
    monkeypatch.setattr(points_cache, "MIN_WRITE_RUNS", 1)


@contextlib.contextmanager
def _no_cache() -> Iterator[None]:
    """Reads without the cache (neither read nor written)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(PointsCache, "load", lambda self, wanted_runs=None: False)
        mp.setattr(PointsCache, "save", lambda self, keys, min_runs=None: False)
        yield


class _Hits:
    """Counts the sequences taken from the cache, by run."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.runs: list[str] = []
        take = PointsCache.take

        def counted(cache: PointsCache, run_hash: str, seq_id: str, key: str | None) -> Any:
            points = take(cache, run_hash, seq_id, key)
            if points is not None:
                self.runs.append(run_hash)
            return points

        monkeypatch.setattr(PointsCache, "take", counted)


def _cached_runs(root: Path) -> set[str]:
    with pa.ipc.open_file(root / ".aim" / "index" / "points.arrow") as reader:
        return set(reader.read_all().column("run_hash").to_pylist())


def _sparse(root: Path, query: str) -> list[tuple[Any, ...]]:
    return [
        (m.run.hash, m.name, m.context.idx, *m.values.sparse_numpy(), m.epochs.values_numpy())
        for m in aim.Repo(root).query_metrics(query)
    ]


def _metrics_of(root: Path, run_hash: str) -> list[tuple[str, dict[str, Any]]]:
    """(name, context) of every metric of a run: a change of all of them leaves no cached
    sequence of the run as it was."""
    run = aim.Run(run_hash, repo=root, read_only=True)
    return [(m.name, m.context.to_dict()) for m in run.metrics()]


def _same_sparse(got: list[tuple[Any, ...]], want: list[tuple[Any, ...]]) -> None:
    assert [g[:3] for g in got] == [w[:3] for w in want]
    for g, w in zip(got, want, strict=True):
        for a, b in zip(g[3:], w[3:], strict=True):
            assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True), g[:3]


def _check(root: Path) -> None:
    """Frames and iteration with the cache equal those without it."""
    for query in QUERIES:
        with _no_cache():
            coll = aim.Repo(root).query_metrics(query)
            want = _reference(coll, False)
            want_sparse = _sparse(root, query)
        _same_table(aim.Repo(root).query_metrics(query).to_arrow(), want)
        _same_sparse(_sparse(root, query), want_sparse)


def test_cached_points_equal_the_answer_without_the_cache(
    tmp_path: Path, small_thresholds: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng, hashes = _build(tmp_path, 3)  # (resumed, archived, int `count` metric, NaN, inf)
    with _writer(tmp_path, "crash") as crashed, _writer(tmp_path, "live") as live:
        hits = _Hits(monkeypatch)
        frame = aim.Repo(tmp_path).query_metrics("").to_arrow()  # writes the cache
        assert frame is not None
        shown = set(frame.column("run.hash").to_pylist())  # (archived runs left out)
        assert {live, crashed} < shown
        assert _cached_runs(tmp_path) == shown - {live, crashed}  # closed runs only
        _check(tmp_path)
        assert set(hits.runs) == shown - {live, crashed}
        compact_repo(RepoLayout(tmp_path))  # cached runs compacted (the live one is not)
        monkeypatch.setattr(dataset_read, "MIN_SHARED_READ_RUNS", 1)  # (and the dataset read)
        hits.runs.clear()
        _check(tmp_path)
        assert hits.runs
        resumed = rng.sample(hashes, 3)
        for run_hash in resumed:  # resumed after being cached and compacted
            run = _open(tmp_path, rng, run_hash=run_hash)
            _track(run, rng, range(0, 12, 3))
            run.close()
        hits.runs.clear()
        _check(tmp_path)
        assert hits.runs and not set(hits.runs) & {*resumed, live, crashed}


def test_a_run_resumed_after_being_cached_is_read_from_its_files(
    tmp_path: Path, small_thresholds: None
) -> None:
    """Resumed by another process while a Repo is kept open, and in a new Repo: the new
    points, never the cached ones."""
    _rng, hashes = _build(tmp_path, 4)
    repo = aim.Repo(tmp_path)
    coll = repo.query_metrics("metric.name == 'loss'")
    before = coll.to_arrow()  # (writes the cache)
    assert before is not None
    assert _cached_runs(tmp_path) == set(before.column("run.hash").to_pylist())
    resumed = hashes[5]
    seqs = _metrics_of(tmp_path, resumed)
    code = (
        "import json\n"
        "import aim_parquet as aim\n"
        f"run = aim.Run(run_hash={resumed!r}, repo={str(tmp_path)!r},"
        " system_tracking_interval=None, capture_terminal_logs=False)\n"
        f"for name, context in json.loads({json.dumps(seqs)!r}):\n"
        "    for step in range(12):\n"
        "        value = 100.0 + step if name == 'loss' else 100 + step\n"
        "        run.track(value, name=name, step=step, epoch=step, context=context)\n"
        "run.close()\n"
    )
    subprocess.run([PYTHON, "-c", code], check=True, timeout=120, env=python_env())
    after = coll.to_arrow()  # the same Repo: its index refreshed, the run's key changed
    assert after is not None and before is not None and not after.equals(before)
    with _no_cache():
        want = _reference(coll, False)
    _same_table(after, want)
    values = [m.values.sparse_numpy()[1].tolist() for m in coll if m.run.hash == resumed]
    assert [100.0 + step for step in range(12)] in [v[:12] for v in values]
    _check(tmp_path)


def test_a_run_deleted_and_made_again_under_its_hash_is_read_from_its_files(
    tmp_path: Path, small_thresholds: None
) -> None:
    """`runs rm` of a cached run, then a run of the same hash with other points copied in."""
    root, other = tmp_path / "repo", tmp_path / "other"
    _rng, hashes = _build(root, 5)
    victim = hashes[2]
    repo = aim.Repo(root)
    assert repo.copy_runs([victim], other)[0]
    with aim.Run(run_hash=victim, repo=other, **QUIET) as run:  # other points, same hash
        for name, context in _metrics_of(other, victim):
            for step in range(30):
                value = -1.0 - step if name == "loss" else -1 - step
                run.track(value, name=name, step=step, context=context)
    aim.Repo(root).query_metrics("run.archived == False").to_arrow()  # (writes the cache)
    assert victim in _cached_runs(root)
    assert aim.Repo(root).delete_run(victim)
    assert aim.Repo(other).copy_runs([victim], root)[0]
    _check(root)
    got = [
        m.values.sparse_numpy()[1]
        for m in aim.Repo(root).query_metrics("metric.name == 'loss'")
        if m.run.hash == victim
    ]
    assert any(v[:30].tolist() == [-1.0 - s for s in range(30)] for v in got), got


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        path.write_bytes(os.urandom(len(data)))
    elif how == "schema":  # a sound Arrow IPC file of another schema
        table = pa.table({"run_hash": ["x"], "seq_id": ["y"], "points": [1.5]})
        with pa.ipc.new_file(path, table.schema) as writer:
            writer.write_table(table)
    elif how == "value":  # one stored value changed: the checksum no longer matches
        with pa.ipc.open_file(path) as reader:
            table = reader.read_all()
        values = [p["value"] for row in table.column("points").to_pylist() for p in row]
        first = next(v for v in values if np.isfinite(v) and v not in (0.0, 1.0))
        at = data.find(np.float64(first).tobytes())
        assert at > 0
        path.write_bytes(data[:at] + np.float64(12345.5).tobytes() + data[at + 8 :])
    else:
        path.write_bytes(b"")


@pytest.mark.parametrize("how", ["truncated", "garbage", "schema", "value", "empty"])
def test_a_damaged_cache_file_is_ignored_without_a_warning_and_replaced(
    tmp_path: Path, small_thresholds: None, how: str
) -> None:
    _build(tmp_path, 6)
    aim.Repo(tmp_path).query_metrics("").to_arrow()  # (writes the cache)
    path = tmp_path / ".aim" / "index" / "points.arrow"
    _damage(path, how)
    damaged = path.read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _check(tmp_path)  # (its first frame writes the cache again)
    assert path.read_bytes() != damaged
    assert PointsCache(RepoLayout(tmp_path)).load() and _cached_runs(tmp_path)


def test_long_sequences_are_not_cached(
    tmp_path: Path, small_thresholds: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(points_cache, "MAX_SEQ_POINTS", 3)
    _build(tmp_path, 8)
    aim.Repo(tmp_path).query_metrics("").to_arrow()
    with pa.ipc.open_file(tmp_path / ".aim" / "index" / "points.arrow") as reader:
        table = reader.read_all()
    lengths = [len(p) for p in table.column("points").to_pylist()]
    assert lengths and max(lengths) <= 3
    _check(tmp_path)


CONCURRENT = """
import sys, time
import numpy as np
import pyarrow as pa
import aim_parquet as aim
from aim_parquet.storage.index import points_cache
root, role, want_path = sys.argv[1], sys.argv[2], sys.argv[3]
points_cache.MIN_WRITE_RUNS = 1
points_cache.MIN_READ_RUNS = 10**9 if role == "writer" else 1  # writers never hit: always write
with pa.ipc.open_file(want_path) as reader:
    want = reader.read_all()
deadline = time.monotonic() + float(sys.argv[4])
n = 0
while time.monotonic() < deadline or n < 3:
    got = aim.Repo(root).query_metrics("").to_arrow()
    assert got.schema.equals(want.schema, check_metadata=True), (role, n)
    for name in want.column_names:
        a, b = got.column(name).combine_chunks(), want.column(name).combine_chunks()
        if pa.types.is_floating(b.type):  # (NaN equals NaN here)
            x, y = a.to_numpy(zero_copy_only=False), b.to_numpy(zero_copy_only=False)
            assert np.array_equal(x, y, equal_nan=True), (role, n, name)
            assert a.is_null().equals(b.is_null()), (role, n, name)
        else:
            assert a.equals(b), (role, n, name)
    n += 1
print(role, n, flush=True)
"""


def test_concurrent_writers_and_a_reader(tmp_path: Path, small_thresholds: None) -> None:
    """Two processes rewrite the cache over and over while a third reads frames through it:
    every frame is the answer without the cache, and the file left is whole."""
    root = tmp_path / "repo"
    _build(root, 9)
    with _no_cache():
        want = aim.Repo(root).query_metrics("").to_arrow()
    want_path = tmp_path / "want.arrow"
    with pa.ipc.new_file(want_path, want.schema) as writer:
        writer.write_table(want)
    aim.Repo(root).query_metrics("").to_arrow()  # (a cache to start from)
    procs = [
        subprocess.Popen(
            [PYTHON, "-c", CONCURRENT, str(root), role, str(want_path), "4"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=python_env(),
        )
        for role in ("writer", "writer", "reader")
    ]
    errors = [(proc.communicate(timeout=300)[1], proc.returncode) for proc in procs]
    assert all(code == 0 for _err, code in errors), errors
    assert PointsCache(RepoLayout(root)).load() and _cached_runs(root)
    _check(root)


LEAN = """
import sys
import aim_parquet as aim
from aim_parquet.storage.index import points_cache
points_cache.MIN_READ_RUNS = points_cache.MIN_WRITE_RUNS = 1
repo = sys.argv[1]
for i in range(3):
    with aim.Run(repo=repo, system_tracking_interval=None, capture_terminal_logs=False) as run:
        for step in range(5):
            run.track(float(i + step), name="loss", step=step)
for _ in range(2):  # writes the cache, then reads it
    got = sorted(m.values.sparse_numpy()[1].tolist() for m in aim.Repo(repo).query_metrics(""))
    assert got == [[float(i + s) for s in range(5)] for i in range(3)], got
assert "pandas" not in sys.modules, "the points cache imported pandas"
print("ok")
"""


def test_iteration_through_the_cache_does_not_import_pandas(tmp_path: Path) -> None:
    out = subprocess.run(
        [PYTHON, "-c", LEAN, str(tmp_path)], capture_output=True, text=True, env=python_env()
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    assert (tmp_path / ".aim" / "index" / "points.arrow").exists()


def test_a_cache_too_large_for_the_query_is_neither_read_nor_written(
    tmp_path: Path, small_thresholds: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A query for a few runs of a repository whose cache is large reads their own files and
    leaves the file alone (rewriting it would be its cost again at every such query)."""
    _build(tmp_path, 10)
    aim.Repo(tmp_path).query_metrics("").to_arrow()
    path = tmp_path / ".aim" / "index" / "points.arrow"
    before = path.stat()
    monkeypatch.setattr(points_cache, "READ_BYTES_PER_RUN", 1)
    hits = _Hits(monkeypatch)
    _check(tmp_path)
    assert not hits.runs
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_an_iteration_listed_before_its_values_are_read_writes_the_cache_once(
    tmp_path: Path, small_thresholds: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    _build(tmp_path, 11)
    saves: list[bool] = []
    save = PointsCache.save

    def counted(cache: PointsCache, keys: dict[str, str], *, min_runs: int | None = None) -> bool:
        wrote = save(cache, keys, min_runs=min_runs)
        saves.append(wrote)
        return wrote

    monkeypatch.setattr(PointsCache, "save", counted)
    metrics = list(aim.Repo(tmp_path).query_metrics(""))  # (every batch still to be read)
    assert not saves
    for metric in metrics:
        metric.values.sparse_numpy()
    assert saves == [True]
    assert _cached_runs(tmp_path) == {m.run.hash for m in metrics}
