"""An int param beyond 2**53 (a seed, an id) present in some runs only: `dataframe()` gives its
column as pandas gives an int column with missing cells (float64, NaN where missing, rounded
beyond 2**53), where the float cast of the Arrow column refused it (ArrowInvalid: 'Integer
value 1152921504606846976 not in range') and with it the whole frame, on main too."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import aim_parquet as aim

pd = pytest.importorskip("pandas")
QUIET: dict[str, Any] = {"system_tracking_interval": None, "capture_terminal_logs": False}


@pytest.mark.parametrize("seed", [2**53 + 1, 2**60, 2**63 - 1, -(2**62)])
def test_a_big_int_param_missing_in_some_runs(tmp_path: Path, seed: int) -> None:
    for hp in ({"seed": seed}, {"lr": 0.1}):
        with aim.Run(repo=tmp_path, **QUIET) as run:
            run["hp"] = hp
            run.track(1.0, name="loss", step=0)
    repo = aim.Repo(tmp_path)
    want = pd.DataFrame([{"seed": seed}, {}])["seed"].tolist()  # pandas' own conversion
    for frame, column in (
        (repo.query_metrics("True").dataframe(), "run.hp.seed"),
        (repo.query_runs("True").dataframe(), "hp.seed"),
    ):
        assert frame is not None and frame[column].dtype == "float64"
        got = sorted(frame[column].tolist(), key=lambda v: v != v)  # (NaN last)
        assert got[0] == want[0] and got[1] != got[1]
    arrow = repo.query_metrics("True").to_arrow()
    assert sorted(arrow.column("run.hp.seed").to_pylist(), key=lambda v: v is None)[0] == seed
