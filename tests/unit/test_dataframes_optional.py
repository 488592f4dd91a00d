"""DataFrames without pandas or polars installed: the error tree promises
`OptionalDependencyError` (also an `ImportError`) naming the `pip install` command."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import aim_parquet as aim
from aim_parquet.errors import OptionalDependencyError


@pytest.mark.parametrize(
    ("module", "convert"),
    [
        ("pandas", lambda metrics: metrics.dataframe()),
        ("polars", lambda metrics: metrics.to_polars()),
    ],
)
def test_a_missing_dataframe_library_raises_optional_dependency_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str, convert: object
) -> None:
    run = aim.Run(repo=str(tmp_path), system_tracking_interval=None, capture_terminal_logs=False)
    run.track(1.0, name="loss", step=0)
    run.close()
    metrics = aim.Repo(str(tmp_path)).query_metrics("metric.name == 'loss'")
    # pyarrow looks pandas up once per process, on its first numpy conversion; let it do so
    # before `pandas` is hidden (it copes with a pandas that is not installed, not with a
    # sys.modules entry of None), so that only our own import meets the missing module
    pa.array(np.zeros(1))
    monkeypatch.setitem(sys.modules, module, None)  # `import <module>` raises ImportError
    with pytest.raises(OptionalDependencyError, match=f"pip install {module}"):
        convert(metrics)  # type: ignore[operator]
