"""The run-level frame (`repo.query_runs(q).dataframe(metrics=[...])`, `to_arrow()`,
`to_polars()`, built column-wise from the index records by `sdk.run_frame`) against the per-run
builder it replaced (a read-only Run per run, `dataframes.run_row` plus `frames.summary_columns`,
then the rows turned into a table), cell for cell and dtype for dtype, on random repositories:
resumed, archived and live runs (another process tracking), odd params (tagged values, lists,
deep and empty dicts, params named like props or like summary columns, non-ASCII text, lone
surrogates), metrics in several contexts, int metrics, NaN and inf."""

from __future__ import annotations

import random
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import aim_parquet as aim
from aim_parquet.format.kinds import METRIC_KINDS
from aim_parquet.format.paths import RepoLayout, canonical_context
from aim_parquet.format.values import utf8_safe
from aim_parquet.sdk.collections import QueryRunSequenceCollection
from aim_parquet.sdk.dataframes import run_row
from aim_parquet.sdk.frame_arrays import key_column
from aim_parquet.sdk.frame_tables import plain_text, table_to_pandas
from aim_parquet.sdk.frames import SUMMARY_STATS
from aim_parquet.sdk.run_base import RunBase
from aim_parquet.storage.compaction.compactor import compact_repo
from aim_parquet.storage.index.run_records import RunRecord
from tests.conftest import PYTHON, python_env

pd = pytest.importorskip("pandas")
try:
    import polars as pl
    import polars.testing as pl_testing
except ImportError:  # pragma: no cover
    pl = None  # type: ignore[assignment]

QUIET: dict[str, Any] = {"system_tracking_interval": None, "capture_terminal_logs": False}
CONTEXTS: list[dict[str, Any]] = [
    {}, {"subset": "train"}, {"subset": "val"}, {"k": 1}, {"k": True}, {"k": 1.0},
    {"k": [1, 2]}, {"subset": "välid", "fold": 2},
]  # fmt: skip
QUERIES = ["", "run.hparams.lr > 0.01", "run.archived == True", "run.hparams.seed == 3"]
METRICS: list[list[str] | None] = [None, [], ["loss"], ["loss", "count", "nothing"], ["λ"]]

LIVE_WRITER = """
import sys, time
from pathlib import Path
import aim_parquet as aim
repo, stop = sys.argv[1], Path(sys.argv[2])
run = aim.Run(repo=repo, system_tracking_interval=None, capture_terminal_logs=False)
run["hparams"] = {"lr": 0.5, "seed": 3}
run["live_only"] = "yes"
for i in range(5):
    run.track(float(i) / 3, name="loss", step=i)
    run.track(i, name="count", step=i, context={"subset": "val"})
run._writer.flush()
for i in range(3):  # a sequence in the segments that the sidecar does not list yet: the
    run.track(float(i), name="loss", step=i, context={"late": 1})  # writer between the two
writer = run._writer
with writer._flush_lock:
    for seq in writer._take_work():
        writer.segments.write_batches(seq)
print(run.hash, flush=True)
while not stop.exists():
    time.sleep(0.02)
run.close()
"""


def _params(rng: random.Random, i: int) -> dict[str, Any]:
    params: dict[str, Any] = {"hparams": {"lr": rng.choice([0.1, 0.01, 0.001]), "seed": i % 5}}
    extras: list[tuple[str, Any]] = [
        ("mixed", rng.choice([1, 2.5, "two", True, None, [1, "a"]])),
        ("deep", {"a": {"b": {"c": {"d": i}}}}),
        ("tagged", rng.choice([(1, 2), b"xy", {"x": b"y"}, {"$aim_parquet": 1}, float("nan")])),
        ("name", "a param named like a prop"),
        ("hash", "a param named hash"),
        ("loss", {"last": 5, "min": "text"}),  # flattened like the summary columns
        ("loss.max", 7),
        ("empty", {}),
        ("ünï", "cödé"),
        ("lone\udcff", "value\udcfe"),
        ("big", 2**70),
        ("a.b", 1),
        ("a", {"b": 2}),
    ]
    for key, value in extras:
        if rng.random() < 0.35:
            params[key] = value
    return params


def _track(run: aim.Run, rng: random.Random, steps: range) -> None:
    seqs = [("loss", rng.choice(CONTEXTS)), ("loss", rng.choice(CONTEXTS)), ("count", {})]
    if rng.random() < 0.2:
        seqs.append(("λ", {"ctx": "\u00e9"}))
    for step in steps:
        for name, context in seqs:
            if rng.random() < 0.2:
                continue
            if name == "count":
                value: Any = rng.randrange(-5, 50)
            else:
                value = rng.choice([rng.random(), float("nan"), float("inf"), -float("inf")])
            run.track(value, name=name, step=step, context=context)


def _build(root: Path, seed: int) -> None:
    rng = random.Random(seed)
    hashes = []
    for i in range(20):
        run = aim.Run(repo=root, experiment=f"exp-{i % 3}", **QUIET)
        for key, value in _params(rng, i).items():
            run[key] = value
        if rng.random() < 0.3:
            run.add_tag(rng.choice(["a", "b", "ü"]))
        if rng.random() < 0.9:
            _track(run, rng, range(rng.randrange(1, 7)))
        if i % 6 == 2:
            run.archived = True
        run.close()
        hashes.append(run.hash)
    for run_hash in rng.sample(hashes, 4):  # resumed: steps written again, new params
        run = aim.Run(run_hash=run_hash, repo=root, **QUIET)
        run["resumed"] = True
        _track(run, rng, range(1, 4))
        run.close()


# -- the per-run builder the run-level frame replaced (its reference) -----------------------
def summary_columns(
    run: RunBase, names: frozenset[str], record: RunRecord | None = None
) -> dict[str, Any]:
    """`<name>[<context JSON>].<stat>` of each catalogued metric of `run` named in `names`: the
    run index's copy of the catalogue for a closed run, the run's own catalogue for a live one."""
    out: dict[str, Any] = {}
    if isinstance(record, RunRecord) and (record.has_end_time or record.is_rebuilt):
        infos: Iterable[Any] = (
            e.info for e in record.catalogue() if e.name in names and e.is_metric
        )
    else:
        infos = run._catalogue()[1]
    for info in infos:
        if info.name not in names or info.kind not in METRIC_KINDS:
            continue
        label = info.name if not info.context else f"{info.name}{canonical_context(info.context)}"
        label = utf8_safe(label)
        for stat in SUMMARY_STATS:
            value = getattr(info, stat)
            out[f"{label}.{stat}"] = float("nan") if value is None else value
    return out


def rows_to_arrow(rows: list[dict[str, Any]]) -> pa.Table:
    """Run rows (dicts, keys may differ between runs) as an Arrow table, typed as `key_column`."""
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    return pa.table({name: key_column([row.get(name) for row in rows]) for name in names})


def rows_to_pandas(rows: list[dict[str, Any]]) -> Any:
    return table_to_pandas(rows_to_arrow(rows))


def runs_to_polars(rows: list[dict[str, Any]]) -> Any:
    """`to_arrow()`'s table in polars (a column mixing kinds is JSON text there too)."""
    return pl.from_arrow(plain_text(rows_to_arrow(rows)), rechunk=False)


def _reference_rows(
    coll: QueryRunSequenceCollection, metrics: list[str] | None, **flags: bool
) -> list[dict[str, Any]]:
    """The per-run builder the run-level frame replaced."""
    rows = []
    wanted = frozenset(metrics or ())
    for one, _progress in coll._collections():
        if one is None:
            continue
        record = one.run._meta_source
        row = run_row(one.run, **flags)
        if wanted:
            row.update(summary_columns(one.run, wanted, record))
        rows.append(row)
    return rows


def _same_arrow(got: pa.Table, want: pa.Table) -> None:
    assert got.schema == want.schema
    for name in want.column_names:
        a, b = got.column(name).combine_chunks(), want.column(name).combine_chunks()
        if pa.types.is_floating(b.type):
            x, y = a.to_numpy(zero_copy_only=False), b.to_numpy(zero_copy_only=False)
            assert np.array_equal(x, y, equal_nan=True), name
            assert a.is_null().equals(b.is_null()), name
        else:
            assert a.equals(b), name


def _same_polars(
    coll: QueryRunSequenceCollection,
    rows: list[dict[str, Any]],
    metrics: list[str] | None,
    flags: dict[str, bool],
) -> None:
    """The same polars frame as the reference's Arrow table."""
    want = runs_to_polars(rows)
    got = coll.to_polars(metrics=metrics, **flags)
    assert got is not None
    pl_testing.assert_frame_equal(got, want, check_exact=True)


def _check(root: Path) -> int:
    repo = aim.Repo(root)
    compared = 0
    for query in QUERIES:
        coll = repo.query_runs(query)
        for metrics in METRICS:
            for flags in ({}, {"include_props": False}, {"include_params": False}):
                full = {"include_props": True, "include_params": True, **flags}
                rows = _reference_rows(coll, metrics, **full)
                table = coll.to_arrow(metrics=metrics, **flags)
                frame = coll.dataframe(metrics=metrics, **flags)
                if not rows:
                    assert table is None and frame is None
                    continue
                assert table is not None and frame is not None
                _same_arrow(table, rows_to_arrow(rows))
                pd.testing.assert_frame_equal(frame, rows_to_pandas(rows), check_exact=True)
                if pl is not None:
                    _same_polars(coll, rows, metrics, flags)
                compared += 1
    return compared


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_run_frame_matches_the_per_run_builder(tmp_path: Path, seed: int) -> None:
    _build(tmp_path, seed)
    stop = tmp_path / "stop"
    proc = subprocess.Popen(
        [PYTHON, "-c", LIVE_WRITER, str(tmp_path), str(stop)],
        stdout=subprocess.PIPE,
        text=True,
        env=python_env(),
    )
    try:
        assert proc.stdout is not None
        live_hash = proc.stdout.readline().strip()
        assert live_hash
        assert _check(tmp_path) > 0
        df = aim.Repo(tmp_path).query_runs("").dataframe(metrics=["loss"])
        assert df is not None
        live = df[df["hash"] == live_hash]
        assert bool(live["active"].iloc[0]) and live["live_only"].iloc[0] == "yes"
        assert live["loss.last_step"].iloc[0] == 4
        assert live['loss{"late":1}.last'].iloc[0] == 2.0  # from its own catalogue
        compact_repo(
            RepoLayout(tmp_path)
        )  # the closed runs' summaries as the compacted index holds them
        assert _check(tmp_path) > 0
    finally:
        stop.touch()
        proc.wait(timeout=60)
        if proc.stdout is not None:
            proc.stdout.close()
    assert _check(tmp_path) > 0  # the live run closed
    hidden = aim.Repo(tmp_path).query_runs("").dataframe(metrics=["loss"])
    assert hidden is not None and len(hidden) < 21  # archived runs hidden by default
