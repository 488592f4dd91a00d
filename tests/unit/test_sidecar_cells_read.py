"""The sidecar reading and JSON encoding of `storage.index.sidecar_cells`, which skip the general
paths (`params_file.read_sidecar_object`, `run_records.json_text`) for the usual sidecar: what
they give is what those give, and a link, a FIFO or a params file still goes the general way."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aim_parquet.errors import UnsafeFileError
from aim_parquet.storage.index.run_records import json_text
from aim_parquet.storage.index.sidecar_cells import _json_text, _read_object
from aim_parquet.storage.online.params_file import read_sidecar_object

TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=8)
SCALARS = (
    st.none() | st.booleans() | TEXT | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
)  # fmt: skip
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(VALUES)
def test_parsed_json_text_is_json_text(value: Any) -> None:
    assert _json_text(value) == json_text(value)
    parsed = json.loads(json_text(value))  # (as a sidecar's values are: parsed JSON)
    assert _json_text(parsed) == json_text(parsed)


def _sidecar(tmp_path: Path, data: dict[str, Any]) -> str:
    path = tmp_path / "run.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_a_plain_sidecar_reads_as_read_sidecar_object(tmp_path: Path) -> None:
    path = _sidecar(tmp_path, {"hash": "h", "params": {"lr": 0.1, "s": "\u00e9"}, "x": math.inf})
    assert _read_object(path) == read_sidecar_object(path)


def test_a_params_file_is_read_with_the_sidecar(tmp_path: Path) -> None:
    name = "params-0000000000000001.json"
    (tmp_path / name).write_text(json.dumps({"big": [1, 2, 3]}))
    path = _sidecar(tmp_path, {"hash": "h", "params_file": name})
    assert _read_object(path) == {"hash": "h", "params": {"big": [1, 2, 3]}}


def test_a_link_or_a_fifo_is_refused(tmp_path: Path) -> None:
    target = _sidecar(tmp_path, {"hash": "h"})
    link = tmp_path / "link.json"
    link.symlink_to(target)
    with pytest.raises(OSError):  # (O_NOFOLLOW: never followed)
        _read_object(str(link))
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    with pytest.raises(UnsafeFileError):  # (not a regular file: never read)
        _read_object(str(fifo))
