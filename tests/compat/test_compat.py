"""Issue #20's migration scripts (`compat_script.py`) against aim_parquet, the recorded output of
Aim 3.29.1 (`aim_3.29.1.json`), and, where `AIM_PARQUET_AIM_PYTHON` names a Python with Aim
(`make test-converters` builds one), Aim itself.

Every check either gives Aim's answer or is listed in `DIFFERENCES` with its reason; the README
section "Differences from Aim" says the same.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PYTHON, python_env

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "compat_script.py"
_AIM_PYTHON = os.environ.get("AIM_PARQUET_AIM_PYTHON")
# a path relative to where pytest started (the Makefile passes `.venv-convert-aim/bin/python`):
# the script runs inside its repository folder, so make it absolute first
AIM_PYTHON = os.path.abspath(_AIM_PYTHON) if _AIM_PYTHON and os.sep in _AIM_PYTHON else _AIM_PYTHON

DIFFERENCES = {
    "data_api": "Aim 3.29.1 raises SystemError iterating a metric's data; we give its points",
    "record_length": "Aim 3.29.1 raises TypeError; we give the longest list (None: no lists)",
    "run_equality": "Aim's sequences hash (name, context, run) but never compare equal; ours do",
    "seq_info_by_type": "Aim writes a point tracked after close(); we drop it with one warning",
    "writable_arrays": "Aim's sparse_numpy() is in hashed-key order; ours in real step order",
    "df_columns": "recorded without pandas in Aim's virtualenv (Aim needs it for dataframes)",
    "df_describe": "recorded without pandas in Aim's virtualenv (Aim needs it for dataframes)",
    "df_param_dtypes": "recorded without pandas in Aim's virtualenv (Aim needs it for dataframes)",
}
NEEDS_PANDAS = {"df_columns", "df_describe", "df_param_dtypes"}


def run_script(python: str, module: str, repo: Path) -> dict[str, object]:
    repo.mkdir()
    for phase in ("track", "read"):
        out = subprocess.run(
            [python, str(SCRIPT), module, str(repo), phase],
            capture_output=True,
            text=True,
            env=python_env(),
            cwd=repo,
            timeout=600,
        )
        assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    pytest.importorskip("pandas")
    return run_script(PYTHON, "aim_parquet", tmp_path_factory.mktemp("ours") / "repo")


def test_scripts_give_the_recorded_answers(ours: dict[str, object]) -> None:
    expected = json.loads((HERE / "expected.json").read_text())
    assert ours == expected


def test_every_answer_is_aims_or_a_listed_difference(ours: dict[str, object]) -> None:
    recorded = json.loads((HERE / "aim_3.29.1.json").read_text())
    assert set(recorded) == set(ours)
    differing = {name for name in ours if ours[name] != recorded[name]}
    assert differing == set(DIFFERENCES)


def test_readme_lists_the_differences() -> None:
    readme = (HERE.parent.parent / "README.md").read_text()
    section = readme.split("## Differences from Aim", 1)[1].split("\n## ", 1)[0]
    for phrase in ("after close()", "real step", "record_length", "SystemError", "equal"):
        assert phrase in section


@pytest.mark.converters
@pytest.mark.skipif(not AIM_PYTHON, reason="AIM_PARQUET_AIM_PYTHON names no Python with Aim")
def test_against_real_aim(ours: dict[str, object], tmp_path: Path) -> None:
    assert AIM_PYTHON is not None
    aim = run_script(AIM_PYTHON, "aim", tmp_path / "aim-repo")
    for name, value in aim.items():
        if name in NEEDS_PANDAS:  # Aim's dataframes need pandas, which its recipe lacks
            assert value == "error: ModuleNotFoundError" or not str(value).startswith("error")
            continue
        assert (value == ours[name]) != (name in DIFFERENCES), name
