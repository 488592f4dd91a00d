"""Hypothesis: the stored summary of a metric (and the count of an object sequence) equals a
brute-force last-write-wins reference, whatever the order of steps, the rewrites and where the
flushes fall: the writer's incremental fold, a reader's recount of a live run, the sidecar after
close and a full scan after compaction all agree with it."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage import compact_run, load_run_meta
from aim_parquet.storage.online import catalogue_scan
from aim_parquet.storage.online.seq_buffer import visible_rows
from tests.summary_reference import reference, stats

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
VALUES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.integers(-5, 5).map(float),
)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("track"), st.integers(0, 30), VALUES),
        st.tuples(st.just("flush"), st.just(0), st.just(0.0)),
    ),
    min_size=1,
    max_size=60,
)


def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    def eq(x: Any, y: Any) -> bool:
        both_nan = isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y)
        return both_nan or x == y

    return a.keys() == b.keys() and all(eq(a[k], b[k]) for k in a)


@SETTINGS
@given(OPS)
def test_summary_equals_last_write_wins(ops: list[tuple[str, int, float]]) -> None:
    visible: dict[int, float] = {}
    texts: set[int] = set()
    with tempfile.TemporaryDirectory() as root:
        run = aim.Run(repo=root, system_tracking_interval=None, capture_terminal_logs=False)
        for op, step, value in ops:
            if op == "flush":
                run.flush()
                continue
            run.track(value, name="m", step=step)
            visible[step] = value
            run.track(aim.Text(str(value)), name="t", step=step // 2)
            texts.add(step // 2)
        if not visible:
            run.close()
            return
        want = reference(visible)
        run.flush()
        live = {s.name: s for s in aim.Repo(root).get_run(run.hash).metrics()}
        assert same(stats(live["m"].info), want)
        run.close()
        layout = RepoLayout(Path(root))
        meta = load_run_meta(layout, run.hash)
        by_name = {i.name: i for i in meta.sequences}
        assert same(stats(by_name["m"]), want) and not by_name["m"].has_rewrites
        assert by_name["t"].count == len(texts) and not by_name["t"].has_rewrites
        compact_run(layout, run.hash)
        scanned = {
            i.name: i for i in catalogue_scan.scan_catalogue(layout, run.hash, meta, full=True)
        }
        assert same(stats(scanned["m"]), want)
        assert scanned["t"].count == len(texts)


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 3)), min_size=1, max_size=40))
def test_visible_rows_keeps_the_last_row_of_each_key(keys: list[tuple[int, int]]) -> None:
    import numpy as np

    steps = np.array([k[0] for k in keys], dtype=np.int64)
    index = np.array([k[1] for k in keys], dtype=np.int32)
    last = {k: i for i, k in enumerate(keys)}
    want = [last[k] for k in sorted(last)]
    rows = visible_rows(steps, index)
    assert (list(range(len(keys))) if rows is None else rows.tolist()) == want
    last_step = {s: i for i, s in enumerate(steps.tolist())}
    rows = visible_rows(steps)
    assert (list(range(len(keys))) if rows is None else rows.tolist()) == [
        last_step[s] for s in sorted(last_step)
    ]
