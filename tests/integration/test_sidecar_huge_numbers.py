"""A sidecar edited by hand with a number no float holds (an int of 400 digits where a time is
expected) is one damaged run, like any other wrong field: `RunMeta` raises CorruptFileError
(not OverflowError), and a query skips that run with a warning instead of failing."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest

import aim_parquet as aim
from aim_parquet.errors import CorruptFileError
from aim_parquet.format.meta import Manifest, RunMeta

QUIET: dict[str, Any] = {"system_tracking_interval": None, "capture_terminal_logs": False}
HUGE = 10**400  # float(HUGE) raises OverflowError


def _sidecar() -> dict[str, Any]:
    return {
        "format_version": 2,
        "hash": "0123456789abcdef01234567",
        "creation_time": 1.0,
        "params": {},
        "sequences": [
            {"seq_id": "f38e4a26684ef2f31db0", "name": "loss", "kind": "float", "count": 1}
        ],
    }


@pytest.mark.parametrize(
    "where", ["creation_time", "end_time", "updated_at", "sequences.min", "sequences.max"]
)
def test_a_number_no_float_holds_is_a_corrupt_field(where: str) -> None:
    data = _sidecar()
    if where.startswith("sequences."):
        data["sequences"][0][where.split(".")[1]] = HUGE
    else:
        data[where] = HUGE
    with pytest.raises(CorruptFileError, match="invalid field"):
        RunMeta.loads(json.dumps(data).encode(), "sidecar X")


def test_a_manifest_with_a_time_no_float_holds_is_corrupt() -> None:
    data = {"format_version": 1, "generation": 1, "files": [], "segments": [], "created_at": HUGE}
    with pytest.raises(CorruptFileError, match="invalid field"):
        Manifest.from_json(data)


@pytest.mark.parametrize("field", ["creation_time", "end_time", "updated_at"])
def test_a_query_skips_a_sidecar_edited_with_a_huge_int(tmp_path: Path, field: str) -> None:
    hashes = []
    for _ in range(2):
        with aim.Run(repo=tmp_path, **QUIET) as run:
            run.track(1.0, name="loss")
        hashes.append(run.hash)
    sidecar = tmp_path / ".aim" / "runs" / hashes[0] / "run.json"
    data = json.loads(sidecar.read_text())
    data[field] = HUGE
    sidecar.write_text(json.dumps(data))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = [t.run.hash for t in aim.Repo(tmp_path).query_runs("True").iter_runs()]
    assert found == [hashes[1]]
    assert any(hashes[0] in str(w.message) for w in caught)
