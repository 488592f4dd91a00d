"""Set-up for the converter tests (`make test-converters`): every test here is marked
`converters`; the trackers' own warnings about themselves are ignored in this folder only."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 refuses new file stores

HERE = Path(__file__).resolve().parent
NOT_OURS = r"(?!aim_parquet|tests)"
THIRD_PARTY_WARNINGS = [
    f"ignore::{category}:{NOT_OURS}"
    for category in (
        "DeprecationWarning",
        "PendingDeprecationWarning",
        "FutureWarning",
        "UserWarning",
    )
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.converters)
            for line in THIRD_PARTY_WARNINGS:
                item.add_marker(pytest.mark.filterwarnings(line))


def import_or_skip(name: str) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pytest.importorskip(name)
