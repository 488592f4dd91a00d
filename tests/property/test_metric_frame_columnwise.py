"""The metric frame with the runs the index's columns decide taken without a record per run
(`sdk.query_frame_columns`, what `repo.query_metrics(q).dataframe()` uses) equals the per-run
builder (`sdk.query_frames.build_query_frame` over the matches of `execute_plan`) cell for cell
and type for type, on the random repositories of the run-level frame's test (odd params: deep
nesting, dotted keys, mixed kinds, lists, non-ASCII text, big ints, NaN/inf, rare params; int
metrics, several contexts, resumed and archived runs, damaged index entries), with live runs
and a run whose points cannot be read, for several queries, offsets and `include_*` flags, with
and without `only_last`."""

from __future__ import annotations

import random
import warnings
from pathlib import Path
from typing import Any

import pytest

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.query.executor import execute_plan
from aim_parquet.query.planner import plan_query
from aim_parquet.sdk.query_frame_columns import query_frame_columns
from aim_parquet.sdk.query_frames import build_query_frame
from aim_parquet.storage.index.run_index import RunIndex
from tests.property.test_run_frame_columnwise import QUIET, _build, _build_plain, _damage, _same

QUERIES = [
    "metric.name == 'loss'",
    "",
    "metric.context.s == 'v'",
    "run.hparams.lr < 0.05 and metric.name == 'loss'",
    "metric.name == 'loss' and metric.last < 0.5",
    "metric.name == 'count' or run.archived == True",
    "metric.name == 'loss' and metric.run.hparams.seed > 2",
]
ALL = {
    "include_run": True,
    "include_props": True,
    "include_params": True,
    "include_name": True,
    "include_context": True,
}
FLAGS: list[dict[str, bool]] = [
    ALL,
    {**ALL, "include_props": False},
    {**ALL, "include_params": False},
    {**ALL, "include_props": False, "include_params": False},
    {**ALL, "include_run": False},
    {**ALL, "include_name": False, "include_context": False},
]


def _frames(
    root: Path, query: str, flags: dict[str, bool], offset: str | None, only_last: bool
) -> Any:
    layout = RepoLayout(root)
    index = RunIndex.shared(layout)
    plan = plan_query(query, "metric")
    with warnings.catch_warnings(record=True) as want_warned:
        warnings.simplefilter("always")
        steps = execute_plan(layout, index, plan, offset=offset, with_misses=False, summaries=False)
        want = build_query_frame(
            layout,
            (s.match for s in steps if s.match is not None),
            "metric",
            only_last=only_last,
            flags=flags,
            stat_keys=index.stat_keys,
        )
    with warnings.catch_warnings(record=True) as got_warned:
        warnings.simplefilter("always")
        got = query_frame_columns(
            layout, index, plan, "metric", offset=offset, flags=flags, stat_keys=index.stat_keys,
            only_last=only_last,
        )  # fmt: skip
    # the same runs warned about (damaged, unreadable), each as often
    assert sorted(str(w.message) for w in got_warned) == sorted(
        str(w.message) for w in want_warned
    ), (query, flags, offset, only_last)
    return got, want


def _compare(root: Path, rng: random.Random) -> None:
    hashes = [run.hash for run in aim.Repo(root).iter_runs()]
    for query in QUERIES:
        for flags in FLAGS:
            for offset, only_last in ((None, False), (rng.choice(hashes), False), (None, True)):
                got, want = _frames(root, query, flags, offset, only_last)
                what = f"{query!r} {flags} {offset} {only_last}"
                assert len(got) == len(want), what
                _same(
                    got.to_arrow() if len(got) else None,
                    want.to_arrow() if len(want) else None,
                    what,
                )


def _live(root: Path) -> list[aim.Run]:
    """A live run (writer open, no end time) with a second writer on it that adds a context
    its catalogue does not list yet."""
    runs = []
    run = aim.Run(repo=root, experiment="live", **QUIET)
    run["hparams"] = {"lr": 0.01, "seed": 3}
    for step in range(3):
        run.track(0.25 * step, name="loss", step=step)
        run.track(step, name="count", step=step)
    runs.append(run)
    first = next(iter(aim.Repo(root).iter_runs())).hash
    again = aim.Run(run_hash=first, repo=root, **QUIET)
    again.track(0.125, name="loss", step=11, context={"s": "v"})
    runs.append(again)
    for each in runs:  # (then the flusher has nothing to write while the frames are built)
        each.flush()
    return runs


def _unreadable_points(root: Path, rng: random.Random) -> None:
    """One closed run whose points files are all cut (its sequences are left out, warned)."""
    layout = RepoLayout(root)
    runs = [run.hash for run in aim.Repo(root).iter_runs() if run.end_time is not None]
    victim = layout.run_dir(rng.choice([h for h in runs if (layout.run_dir(h) / "seqs").is_dir()]))
    for path in sorted((victim / "seqs").rglob("*.arrow*")):
        path.write_bytes(path.read_bytes()[:10])
    for cached in root.glob(".aim/index/points*"):  # (else its points come from the cache)
        cached.unlink()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # (damaged runs left out, as both do)
@pytest.mark.parametrize("seed", [11, 12])
def test_column_frame_equals_the_per_run_frame(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    _build(tmp_path, seed)
    RunIndex._shared.clear()
    _compare(tmp_path, rng)
    live = _live(tmp_path)
    try:
        _compare(tmp_path, rng)
        _unreadable_points(tmp_path, rng)
        _compare(tmp_path, rng)
    finally:
        for run in live:
            run.close()
    _damage(tmp_path, random.Random(seed))
    _compare(tmp_path, rng)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # (the cut run, left out by both)
@pytest.mark.parametrize("seed", [21, 22])
def test_runs_all_from_the_columns(tmp_path: Path, seed: int) -> None:
    _build_plain(tmp_path, seed)
    RunIndex._shared.clear()
    rng = random.Random(seed)
    _compare(tmp_path, rng)
    _unreadable_points(tmp_path, rng)  # (a column run left out: its cells are made again)
    _compare(tmp_path, rng)
