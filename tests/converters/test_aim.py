"""`aim-parquet convert aim` on a repository written by Aim 3.29 itself (in its own virtualenv,
`make test-converters` builds it); every run, param and point is compared with what Aim's SDK
reads back, after Aim's own re-index, from a copy of the same repository."""

from __future__ import annotations

import base64
import json
import math
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.convert_helpers import CLI_TIMEOUT_S, convert_cli, ctx_key, read_converted

AIM_PYTHON_ENV = "AIM_PARQUET_AIM_PYTHON"
AIM_SIDE = Path(__file__).resolve().parent / "aim_side.py"


@pytest.fixture(scope="module")
def aim_python() -> str:
    python = os.environ.get(AIM_PYTHON_ENV)
    if not python:
        pytest.skip(
            f"{AIM_PYTHON_ENV} names no Python with Aim installed (make test-converters sets it)"
        )
    return python


def _aim(python: str, *args: str) -> None:
    result = subprocess.run(
        [python, str(AIM_SIDE), *args], capture_output=True, text=True, timeout=CLI_TIMEOUT_S
    )
    assert result.returncode == 0, result.stderr[-3000:]


def _same(ours: Any, theirs: Any) -> bool:
    if theirs == "nan":
        return isinstance(ours, float) and math.isnan(ours)
    return bool(ours == theirs)


def _check_object(ours: Any, theirs: Any, dtype: str) -> None:
    if isinstance(theirs, list):
        assert isinstance(ours, list) and len(ours) == len(theirs)
        for o, t in zip(ours, theirs, strict=True):
            _check_object(o, t, dtype)
        return
    if "image" in dtype:
        assert ours.to_record().payload == base64.b64decode(theirs["payload"])
        assert [ours.width, ours.height] == theirs["size"] and ours.caption == theirs["caption"]
        assert ours.format == theirs["format"].lower()
    elif "distribution" in dtype:
        assert list(ours.weights) == theirs["weights"] and ours.range == theirs["range"]
    elif "text" in dtype or dtype == "aim.log_line":
        assert str(ours) == theirs["text"]
    elif "audio" in dtype:
        assert ours.to_record().payload == base64.b64decode(theirs["payload"])
        assert ours.caption == theirs["caption"]
    elif dtype == "aim.log_record":
        assert ours.message == theirs["message"] and ours.log_level == theirs["level"]
        assert ours.timestamp == theirs["timestamp"] and ours.extra_args == theirs["extra"]
    else:
        raise AssertionError(dtype)


def test_aim_repository(tmp_path: Path, aim_python: str) -> None:
    source = tmp_path / "aim-project"
    _aim(aim_python, "write", str(source))
    dump = tmp_path / "aim.json"
    _aim(aim_python, "dump", str(source), str(dump))
    expected = json.loads(dump.read_text())
    assert len(expected) == 3
    before = sorted(p.relative_to(source) for p in source.rglob("*") if p.is_file())

    result = convert_cli("aim", str(source), "--repo", str(tmp_path / "d"), python=aim_python)
    assert result.returncode == 0, result.stdout + result.stderr
    after = sorted(p.relative_to(source) for p in source.rglob("*") if p.is_file())
    assert after == before  # the Aim repository was only read (no re-index, no new files)
    runs = read_converted(tmp_path / "d")
    assert sorted(runs) == sorted(r["name"] for r in expected)
    for theirs in expected:
        ours = runs[theirs["name"]]
        assert ours.experiment == theirs["experiment"]
        assert ours.description == theirs["description"]
        assert sorted(ours.tags) == theirs["tags"] and ours.archived == theirs["archived"]
        assert ours.creation_time == theirs["creation_time"]
        params = {k: v for k, v in ours.params.items() if k != "__source"}
        assert params == theirs["params"]
        assert ours.params["__source"]["id"] == theirs["hash"]
        if theirs["end_time"] is not None:
            assert ours.end_time == theirs["end_time"]
        else:  # crashed in Aim: the newest point's time
            assert ours.end_time == max(t for s in theirs["sequences"] for t in s["times"])
        assert len(ours.sequences) == len(theirs["sequences"])
        for seq in theirs["sequences"]:
            dtype, steps, values, epochs, times = ours.sequences[
                (seq["name"], ctx_key(seq["context"]))
            ]
            assert steps == seq["steps"], seq["name"]
            assert epochs == seq["epochs"] and times == seq["times"]
            if seq["dtype"] in ("float", "int", "number"):
                assert dtype == seq["dtype"]
                assert all(_same(o, t) for o, t in zip(values, seq["values"], strict=True))
            else:
                assert dtype == seq["dtype"]
                for o, t in zip(values, seq["values"], strict=True):
                    _check_object(o, t, seq["dtype"])

    again = convert_cli("aim", str(source), "--repo", str(tmp_path / "d"), python=aim_python)
    assert again.returncode == 0 and "source runs: 3 up to date" in again.stdout, again.stdout
