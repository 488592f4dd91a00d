"""hx31: a context key (or a param) whose values are an int past float range in one run and a
float in another (both accepted by `track` and `run[...] =`, both queried fine by iteration)
made every frame of a query over both raise OverflowError (`sdk.frame_arrays.key_column` made
ints and floats one float64 column). Such a column now holds each value's JSON text, as any
column that mixes kinds does (tests/integration/test_frames_big_ints.py covers ints within
int64)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import aim_parquet as aim

QUIET: dict[str, Any] = {
    "system_tracking_interval": None,
    "capture_terminal_logs": False,
    "log_system_params": False,
}


@pytest.mark.parametrize("frame", ["dataframe", "only_last", "to_polars", "to_arrow"])
def test_a_huge_int_context_beside_a_float_one(tmp_path: Path, frame: str) -> None:
    for x in (10**400, 0.5):
        with aim.Run(repo=str(tmp_path), **QUIET) as run:
            run.track(1.0, name="loss", step=0, context={"x": x})
    query = aim.Repo(str(tmp_path)).query_metrics("metric.name == 'loss'")
    assert sorted(str(m.context["x"])[:4] for m in query) == ["0.5", "1000"]
    if frame == "dataframe":
        result: Any = query.dataframe()
    elif frame == "only_last":
        result = query.dataframe(only_last=True)
    else:
        result = getattr(query, frame)()
    column = result["metric.context.x"]
    texts = {"to_arrow": lambda c: c.to_pylist(), "to_polars": lambda c: c.to_list()}.get(
        frame, list
    )(column)
    assert sorted(texts) == ["0.5", str(10**400)]


@pytest.mark.parametrize("frame", ["metric dataframe", "metric to_arrow", "run dataframe"])
def test_a_huge_int_param_beside_a_float_one(tmp_path: Path, frame: str) -> None:
    for p in (10**400, 0.5):
        with aim.Run(repo=str(tmp_path), **QUIET) as run:
            run["p"] = p
            run.track(1.0, name="loss", step=0)
    repo = aim.Repo(str(tmp_path))
    if frame == "run dataframe":
        result: Any = repo.query_runs("run.hash != ''").dataframe()
    elif frame == "metric to_arrow":
        result = repo.query_metrics("metric.name == 'loss'").to_arrow()
    else:
        result = repo.query_metrics("metric.name == 'loss'").dataframe()
    name = "p" if frame == "run dataframe" else "run.p"
    column = result[name]
    texts = column.to_pylist() if frame == "metric to_arrow" else list(column)
    assert sorted(texts) == ["0.5", str(10**400)]
