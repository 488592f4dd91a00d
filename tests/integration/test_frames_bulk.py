"""The bulk paths of repo-wide queries (`sdk.query_frames`, `storage.online.bulk_read`, the
prefetch of `query_metrics(...)` iteration) against the straightforward ones, cell for cell and
dtype for dtype, on a random repository: resumed runs (before and after a compaction), several
contexts (values of several types), int and float metrics with NaN and inf, missing epochs,
archived runs and a live run."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.query import executor
from aim_parquet.sdk.frame_tables import _pandas_column, plain_text, table_to_polars
from aim_parquet.sdk.frames import MetricFrame, table_to_pandas
from aim_parquet.storage.compaction import dataset_read
from aim_parquet.storage.compaction.compactor import compact_repo
from aim_parquet.storage.online import bulk_read

pd = pytest.importorskip("pandas")
try:
    import polars as pl
except ImportError:  # pragma: no cover
    pl = None

QUIET: dict[str, Any] = {"system_tracking_interval": None, "capture_terminal_logs": False}
CONTEXTS: list[dict[str, Any]] = [
    {}, {"subset": "train"}, {"subset": "val"}, {"k": 1}, {"k": True}, {"k": 1.0},
    {"k": [1, 2]}, {"subset": "val", "fold": 2},
]  # fmt: skip
QUERIES = [
    "metric.name == 'loss'",
    "",
    "metric.context.subset == 'val'",
    "run.hparams.lr > 0.01 and metric.name in ['loss', 'count']",
    "metric.name == 'loss' or run.hparams.seed == 3",
    "metric.last > 0.5",
    "metric.context.k == 1",
    "run.archived == True or metric.name == 'count'",
]


def _params(rng: random.Random, i: int) -> dict[str, Any]:
    params: dict[str, Any] = {"hparams": {"lr": rng.choice([0.1, 0.01, 0.001]), "seed": i}}
    if rng.random() < 0.5:
        params["mixed"] = rng.choice([1, 2.5, "two", True, None, [1, "a"]])
    if rng.random() < 0.3:
        params["deep"] = {"a": {"b": {"c": {"d": i}}}}
    if rng.random() < 0.3:
        params["only_some"] = f"v{i % 3}"
    return params


def _track(run: aim.Run, rng: random.Random, steps: range) -> None:
    for step in steps:
        for name, context in run._k17f_seqs:  # type: ignore[attr-defined]
            if rng.random() < 0.2:
                continue
            if name == "count":
                value: Any = rng.randrange(-5, 50)
            else:
                value = rng.choice([rng.random(), rng.random(), float("nan"), float("inf")])
            epoch = step // 3 if rng.random() < 0.7 else None
            run.track(value, name=name, step=step, epoch=epoch, context=context)


def _open(root: Path, rng: random.Random, run_hash: str | None = None, **kw: Any) -> aim.Run:
    run = aim.Run(run_hash=run_hash, repo=root, **QUIET, **kw)
    seqs = [("loss", rng.choice(CONTEXTS)), ("loss", rng.choice(CONTEXTS)), ("count", {})]
    run._k17f_seqs = seqs  # type: ignore[attr-defined]
    return run


def _build(root: Path, seed: int) -> tuple[random.Random, list[str]]:
    rng = random.Random(seed)
    hashes = []
    for i in range(24):
        run = _open(root, rng, experiment=f"exp-{i % 3}")
        for key, value in _params(rng, i).items():
            run[key] = value
        _track(run, rng, range(rng.randrange(1, 9)))
        if i % 7 == 3:
            run.archived = True
        run.close()
        hashes.append(run.hash)
    for run_hash in rng.sample(hashes, 5):  # resumed: some steps written again
        run = _open(root, rng, run_hash=run_hash)
        _track(run, rng, range(2, 6))
        run.close()
    return rng, hashes


def _reference(coll: Any, only_last: bool, **flags: bool) -> pa.Table | None:
    """The straightforward frame: each sequence added to a MetricFrame, its points read from
    its own files."""
    frame = MetricFrame(only_last=only_last, **flags)
    for seq in coll:
        frame.add(seq)
    return frame.to_arrow() if len(frame) else None


def _same_table(got: pa.Table | None, want: pa.Table | None) -> None:
    if want is None:
        assert got is None
        return
    assert got is not None
    assert got.schema == want.schema
    for name in want.column_names:
        a, b = got.column(name).combine_chunks(), want.column(name).combine_chunks()
        if pa.types.is_dictionary(b.type):
            assert a.dictionary.equals(b.dictionary), name
            assert a.indices.equals(b.indices), name
        elif pa.types.is_floating(b.type):
            x, y = a.to_numpy(zero_copy_only=False), b.to_numpy(zero_copy_only=False)
            assert np.array_equal(x, y, equal_nan=True), name
            assert a.is_null().equals(b.is_null()), name
        else:
            assert a.equals(b), name
    pd.testing.assert_frame_equal(table_to_pandas(got), table_to_pandas(want), check_exact=True)
    pd.testing.assert_frame_equal(table_to_pandas(got), _plain_pandas(want), check_exact=True)
    if pl is not None:  # (string views over the dictionaries: the frame of plain text)
        assert table_to_polars(got).equals(pl.from_arrow(plain_text(want), rechunk=False))


def _plain_pandas(table: pa.Table) -> Any:
    """pandas of the table's columns as numpy (text as `str` objects), as pandas makes it."""
    return pd.DataFrame(
        {name: _pandas_column(table.column(name)) for name in table.column_names}, copy=False
    )


def _check_frames(root: Path) -> None:
    repo = aim.Repo(root)
    flag_sets: list[dict[str, bool]] = [
        {},
        {"include_props": False},
        {"include_params": False, "include_context": False},
        {"include_run": False, "include_name": False},
    ]
    for query in QUERIES:
        coll = repo.query_metrics(query)
        for flags in flag_sets:
            full = {
                "include_run": True, "include_name": True, "include_context": True,
                "include_props": True, "include_params": True, **flags,
            }  # fmt: skip
            _same_table(coll.to_arrow(**flags), _reference(coll, False, **full))
        _same_table(coll.to_arrow(only_last=True), _reference(coll, True))


def _check_matching(root: Path) -> None:
    """The sequence part's verdicts kept by sequence key (`QueryPlan.matching_sequences` with a
    memo) are the verdicts of each sequence evaluated on its own."""
    repo = aim.Repo(root)
    for query in QUERIES:
        coll = repo.query_metrics(query)
        got = {(m.run.hash, m.info.seq_id) for m in coll}
        want = set()
        for record in coll._index.refresh().newest_first:
            match = executor.match_run(repo.layout, coll.plan, record, memo=None)
            if match is not None:
                want.update((record.hash, info.seq_id) for info in match.sequences)
        assert got == want, query


def _check_sparse(root: Path) -> None:
    """Iteration with the prefetch gives each metric's arrays as a lone read does."""
    for query in QUERIES[:3]:
        got = [
            (m.run.hash, m.name, m.context.idx, m.values.sparse_numpy(), m.epochs.values_numpy())
            for m in aim.Repo(root).query_metrics(query)
        ]
        for run_hash, name, ctx, (steps, values), epochs in got:
            run = aim.Run(run_hash, repo=root, read_only=True)
            lone = next(
                m for m in run.metrics() if m.name == name and m.context.idx == ctx
            )  # a fresh object: no prefetch
            s2, v2 = lone.values.sparse_numpy()
            e2 = lone.epochs.values_numpy()
            assert steps.dtype == s2.dtype and np.array_equal(steps, s2)
            assert values.dtype == v2.dtype and np.array_equal(values, v2, equal_nan=True)
            assert epochs.dtype == e2.dtype and np.array_equal(epochs, e2, equal_nan=True)


@pytest.mark.parametrize("seed", [1, 2])
def test_bulk_frames_match_the_straightforward_ones(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng, hashes = _build(tmp_path, seed)
    live = _open(tmp_path, rng)
    live["hparams"] = {"lr": 0.1, "seed": 99}
    _track(live, rng, range(4))
    live.flush()  # (its points reach the files)
    try:
        _check_matching(tmp_path)
        _check_frames(tmp_path)  # as written
        _check_sparse(tmp_path)
        compact_repo(RepoLayout(tmp_path))  # (refreshes the analyst dataset)
        monkeypatch.setattr(dataset_read, "MIN_SHARED_READ_RUNS", 1)
        _check_frames(tmp_path)  # from the dataset's shared files
        _check_sparse(tmp_path)
        for run_hash in rng.sample(hashes, 4):  # resumed after the compaction
            run = _open(tmp_path, rng, run_hash=run_hash)
            _track(run, rng, range(0, 10, 2))
            run.close()
        _track(live, rng, range(4, 7))
        live.flush()
        _check_frames(tmp_path)  # compacted files, new segments, stale dataset rows
        _check_sparse(tmp_path)
    finally:
        live.close()


def test_bulk_segment_reader_leaves_odd_files_to_the_per_sequence_reader(
    tmp_path: Path,
) -> None:
    """A torn segment tail is skipped as `read_segment` skips it; a segment that is not a
    metric stream makes the per-sequence reader say what is wrong."""
    hashes = []
    for i in range(3):
        run = aim.Run(repo=tmp_path, **QUIET)
        for step in range(4):
            run.track(float(step + i), name="loss", step=step)
        run.close()
        hashes.append(run.hash)
    segs = sorted((tmp_path / ".aim" / "runs" / hashes[0]).rglob("*.arrows"))
    with open(segs[-1], "ab") as f:
        f.write(b"\xff\xff\xff\xff\x40\x00\x00\x00partial")  # a torn next message
    repo = aim.Repo(tmp_path)
    coll = repo.query_metrics("metric.name == 'loss'")
    wanted = [(m.run.hash, m.info) for m in coll]
    got = bulk_read.read_metrics_bulk(repo.layout, wanted)
    assert sorted(got) == [0, 1, 2]
    for i, (run_hash, _info) in enumerate(wanted):
        assert got[i][1].tolist() == [float(s + hashes.index(run_hash)) for s in range(4)]
    _same_table(coll.to_arrow(), _reference(coll, False, **_all_flags()))
    segs = sorted((tmp_path / ".aim" / "runs" / hashes[1]).rglob("*.arrows"))
    segs[-1].write_bytes(b"not an arrow stream at all")
    coll = aim.Repo(tmp_path).query_metrics("metric.name == 'loss'")
    wanted = [(m.run.hash, m.info) for m in coll]
    got = bulk_read.read_metrics_bulk(repo.layout, wanted)
    assert wanted[[h for h, _ in wanted].index(hashes[1])] and len(got) == 2
    with pytest.warns(RuntimeWarning, match=hashes[1]):
        table = coll.to_arrow()
    assert table is not None
    assert set(table.column("run.hash").to_pylist()) == {hashes[0], hashes[2]}


def _all_flags() -> dict[str, bool]:
    return dict.fromkeys(
        ("include_run", "include_name", "include_context", "include_props", "include_params"),
        True,
    )


def test_a_missing_epoch_overwritten_leaves_epochs_int_on_every_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step first tracked without an epoch and then again with one has an epoch: the epochs a
    lone read, the iteration's batch from the segments and the one from the analyst dataset give
    are the same int64 array (the superseded point's missing epoch is no point's)."""
    hashes = []
    for _ in range(3):
        run = aim.Run(repo=tmp_path, experiment="ep", **QUIET)
        run.track(1.0, name="loss", step=0)
        run.track(2.0, name="loss", step=0, epoch=1)
        run.track(3.0, name="loss", step=1, epoch=1)
        run.close()
        hashes.append(run.hash)

    def check() -> None:
        seen = 0
        for metric in aim.Repo(tmp_path).query_metrics("run.experiment == 'ep'"):
            lone = aim.Run(metric.run.hash, repo=tmp_path, read_only=True).get_metric("loss", {})
            assert lone is not None
            for epochs in (metric.epochs.values_numpy(), lone.epochs.values_numpy()):
                assert epochs.dtype == np.int64 and epochs.tolist() == [1, 1]
            seen += 1
        assert seen == len(hashes)

    check()  # segments
    compact_repo(RepoLayout(tmp_path))
    check()  # compacted files
    monkeypatch.setattr(dataset_read, "MIN_SHARED_READ_RUNS", 1)
    check()  # the analyst dataset's shared files


def test_a_run_resumed_by_another_process_is_current_in_a_warm_repo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dataset's rows of a closed run are taken when its sidecar's stat key, as the run
    index's last refresh saw it, is the one the dataset committed: a run resumed by another
    process after the repo's first frame (the index warm in this process) is read from its own
    files by the next frame and iteration of the same `Repo`, not from its stale rows."""
    rng, hashes = _build(tmp_path, 7)
    compact_repo(RepoLayout(tmp_path))  # (refreshes the analyst dataset)
    monkeypatch.setattr(dataset_read, "MIN_SHARED_READ_RUNS", 1)
    repo = aim.Repo(tmp_path)
    coll = repo.query_metrics("metric.name == 'loss'")
    before = coll.to_arrow()
    _same_table(before, _reference(coll, False))
    resumed = hashes[rng.randrange(len(hashes))]
    code = (
        "import aim_parquet as aim\n"
        f"run = aim.Run(run_hash={resumed!r}, repo={str(tmp_path)!r},"
        " system_tracking_interval=None, capture_terminal_logs=False)\n"
        "for step in range(12):\n"
        "    run.track(100.0 + step, name='loss', step=step, epoch=step)\n"
        "run.close()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    after = coll.to_arrow()
    assert after is not None and before is not None and not after.equals(before)
    _same_table(after, _reference(coll, False))
    values = [m.values.sparse_numpy()[1].tolist() for m in coll if m.run.hash == resumed]
    assert [100.0 + step for step in range(12)] in [v[:12] for v in values]
