"""Facts that have one home (issue 16): sequence kinds in `format/kinds.py`, on-disk names in
`format/paths.py`, every lock in `storage/base/lock.py`. Sources are read with `ast`."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import aim_parquet
from aim_parquet.format import paths
from aim_parquet.format.kinds import (
    METRIC_KINDS,
    SEQUENCE_KINDS,
    element_kind,
    is_list_kind,
    is_metric_kind,
    list_kind,
    metric_value,
    metric_values,
)
from aim_parquet.objects import Audio, Distribution, Figure, Image, LogLine, LogRecord, Text
from aim_parquet.objects.base import CustomObject
from aim_parquet.sdk.sequence import SEQUENCE_CLASSES

PACKAGE = Path(aim_parquet.__file__).parent
# the layers above `format/` that must ask it for every file or folder name
ASKING = ("storage", "query", "sdk", "cli", "ui")
NAMES = {
    paths.REPO_DIRNAME,
    paths.MARKER_FILENAME,
    paths.SIDECAR_FILENAME,
    paths.COMPACT_LOCK_FILENAME,
    paths.SEQS_DIRNAME,
    paths.MANIFEST_FILENAME,
    paths.ATTACH_GATE_FILENAME,
    paths.INDEX_FILENAME,
    paths.INDEX_LOCK_FILENAME,
    paths.RUNS_TABLE_FILENAME,
    paths.QUARANTINE_DIRNAME,
    paths.TRASH_DIRNAME,
    paths.EXPORT_POINTER_FILENAME,
}


def _sources(*packages: str) -> list[Path]:
    return sorted(p for pkg in packages for p in (PACKAGE / pkg).rglob("*.py"))


def _string_constants(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def test_no_on_disk_name_is_spelled_outside_format() -> None:
    found = [
        f"{path.relative_to(PACKAGE)}:{line}: {value!r}"
        for path in _sources(*ASKING)
        for line, value in _string_constants(path)
        if value in NAMES
    ]
    assert found == []


def test_no_flock_is_taken_outside_the_lock_module() -> None:
    lock_module = PACKAGE / "storage" / "base" / "lock.py"
    found = [
        str(path.relative_to(PACKAGE))
        for path in _sources("storage", "query", "sdk", "cli", "ui", "convert")
        if path != lock_module and "fcntl.flock(" in path.read_text(encoding="utf-8")
    ]
    assert found == []


def test_every_query_variable_is_one_sequence_class() -> None:
    assert {cls.SEQUENCE_NAME: cls.KINDS for cls in SEQUENCE_CLASSES} == SEQUENCE_KINDS


@pytest.mark.parametrize("cls", [Image, Text, Distribution, Audio, Figure, LogLine, LogRecord])
def test_every_object_kind_belongs_to_one_query_variable(cls: type[CustomObject]) -> None:
    kind = cls.AIM_NAME
    owners = [var for var, kinds in SEQUENCE_KINDS.items() if kind in kinds]
    assert len(owners) == 1
    assert not is_metric_kind(kind)


def test_list_kinds_unwrap_to_their_element() -> None:
    assert list_kind("aim.image") == "list(aim.image)"
    assert is_list_kind("list(aim.image)") and not is_list_kind("aim.image")
    assert element_kind("list(aim.image)") == "aim.image"
    assert element_kind("aim.text") == "aim.text"
    assert element_kind("list") == "list"  # an empty list tracked: no element kind yet
    assert SEQUENCE_KINDS["images"] == {"aim.image", "list(aim.image)"}
    assert {"int", "float", "number"} == METRIC_KINDS


def test_int_metrics_read_back_as_int() -> None:
    assert metric_value(3.0, "int") == 3 and type(metric_value(3.0, "int")) is int
    assert type(metric_value(3.0, "float")) is float
    assert type(metric_value(3.5, "int")) is float
    assert type(metric_value(float("inf"), "int")) is float
    assert metric_values(np.array([1.0, 2.0]), "int").dtype == np.int64
    assert metric_values(np.array([1.0, 2.5]), "int").dtype == np.float64
    assert metric_values(np.array([2.0**60]), "int").dtype == np.float64  # not exact in float64
