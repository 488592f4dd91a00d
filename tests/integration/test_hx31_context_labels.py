"""hx31: a metric frame labels each row with its own sequence's context. Contexts equal to
`==` but stored as two sequences by the writer ({"x": 0.0} and {"x": -0.0}) were taken for one
by the frames' `sequence_key`: every row of either run (or both sequences of one run) showed
the text and the `metric.context.x` value of one of them, and the run-level frame lost one
summary. Contexts in another key order ({"b": 1, "a": 2} and {"a": 2, "b": 1}) are one sequence
and one frame column, labelled by the sorted context (`canonical_context`) in every run."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import pytest

import aim_parquet as aim

QUIET: dict[str, Any] = {
    "system_tracking_interval": None,
    "capture_terminal_logs": False,
    "log_system_params": False,
}
TWINS = [({"x": 0.0}, {"x": -0.0}), ({"b": 1, "a": 2}, {"a": 2, "b": 1})]


def _texts(context: dict[str, Any]) -> tuple[str, tuple[float, ...]]:
    """What tells the twins apart: `str()` (key order, `-0.0`) and the signs of the floats."""
    return str(context), tuple(math.copysign(1.0, v) for v in context.values() if type(v) is float)


def _repo(root: Path, twins: tuple[dict[str, Any], ...], ints: bool) -> dict[str, dict[str, Any]]:
    own = {}
    for context in twins:
        with aim.Run(repo=str(root), **QUIET) as run:
            run.track(0.5, name="loss", step=0, context=context)
            if ints:  # (an int metric: the run is matched record by record, not by the columns)
                run.track(1, name="epoch", step=0)
            own[run.hash] = context
    return own


@pytest.mark.parametrize("ints", [False, True], ids=["columns", "per-run"])
@pytest.mark.parametrize("twins", TWINS, ids=["minus zero", "key order"])
def test_each_row_shows_its_own_context(
    tmp_path: Path, twins: tuple[dict[str, Any], ...], ints: bool
) -> None:
    own = _repo(tmp_path, twins, ints)
    repo = aim.Repo(str(tmp_path))
    query = "metric.name == 'loss'"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        iterated = {m.run.hash: dict(m.context) for m in repo.query_metrics(query)}
        frames = {
            "dataframe": repo.query_metrics(query).dataframe(),
            "only_last": repo.query_metrics(query).dataframe(only_last=True),
        }
        polars = repo.query_metrics(query).to_polars()
    assert {h: _texts(c) for h, c in iterated.items()} == {h: _texts(c) for h, c in own.items()}
    shown = {
        name: {(h, _texts(json.loads(c))) for h, c in df[["run.hash", "metric.context"]].values}
        for name, df in frames.items()
    }
    shown["to_polars"] = {
        (h, _texts(json.loads(c))) for h, c in polars.select("run.hash", "metric.context").rows()
    }
    if twins is TWINS[1]:  # (one column, labelled by the sorted context)
        own = {h: dict(sorted(c.items())) for h, c in own.items()}
    expected = {(h, _texts(c)) for h, c in own.items()}
    assert shown == {name: expected for name in shown}


@pytest.mark.parametrize("ints", [False, True], ids=["columns", "per-run"])
def test_two_sequences_of_one_run_keep_their_own_labels(tmp_path: Path, ints: bool) -> None:
    with aim.Run(repo=str(tmp_path), **QUIET) as run:
        for context, value in [({"x": 0.0}, 1.0), ({"x": -0.0}, 2.0)]:
            run.track(value, name="loss", step=0, context=context)
        if ints:
            run.track(1, name="epoch", step=0)
    repo = aim.Repo(str(tmp_path))
    query = "metric.name == 'loss'"
    expected = {(1.0, _texts({"x": 0.0})), (2.0, _texts({"x": -0.0}))}
    iterated = {(m.values.tolist()[-1], _texts(dict(m.context))) for m in repo.query_metrics(query)}
    assert iterated == expected  # (the writer keeps them apart, and so does iteration)
    frames = [repo.query_metrics(query).dataframe(), repo.query_metrics(query).dataframe(True)]
    shown = [
        {(v, _texts(json.loads(c))) for v, c in df[["value", "metric.context"]].values}
        for df in frames
    ]
    polars = repo.query_metrics(query).to_polars().select("value", "metric.context").rows()
    shown.append({(v, _texts(json.loads(c))) for v, c in polars})
    assert shown == [expected] * 3


def test_run_frame_keeps_both_summaries(tmp_path: Path) -> None:
    for ints in (False, True):  # (the index's columns, then the per-run catalogue)
        with aim.Run(repo=str(tmp_path), **QUIET) as run:
            for context, value in [({"x": 0.0}, 1.0), ({"x": -0.0}, 2.0)]:
                run.track(value, name="loss", step=0, context=context)
            if ints:
                run.track(1, name="epoch", step=0)
    frame = aim.Repo(str(tmp_path)).query_runs("run.hash != ''").dataframe(metrics=["loss"])
    lasts = frame[['loss{"x":0.0}.last', 'loss{"x":-0.0}.last']].values.tolist()
    assert lasts == [[1.0, 2.0], [1.0, 2.0]]
