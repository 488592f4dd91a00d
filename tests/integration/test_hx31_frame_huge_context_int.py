"""hx31: a context key whose values are an int past float range in one run and a float in
another (both accepted by `track`, both queried fine by iteration) makes every metric frame of a
query over both raise OverflowError (`sdk.frame_arrays.key_column`: ints and floats become one
float64 column)."""

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


@pytest.mark.xfail(
    strict=True,
    raises=OverflowError,
    reason="hx31: runs with loss at {'x': 10**400} and {'x': 0.5}: "
    "query_metrics(...).dataframe()/only_last/to_polars()/to_arrow() raise OverflowError",
)
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
    assert len(result) == 2
