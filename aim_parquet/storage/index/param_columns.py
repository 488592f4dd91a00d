"""Typed columns of the run index's params (`storage.index.index_file`): for each path of str
keys that leads, in some run, to a plain JSON value (str, int, float, bool), the value of that
path in every run, so a run predicate (`query.run_columns`) reads a param of 100,000 runs as one
array instead of decoding 100,000 params objects.

A path's value in one run is found as `query.run_columns` walks the stored (tagged JSON) params:
one key at a time through dicts with nothing tagged. It has a status per run:

- `VALUE` (0): a plain value of the column's type, in the value column;
- `NONE` (1): JSON null;
- `MISSING` (2): a key on the way is missing (the query language's SafeNone);
- `OTHER` (3): anything else (a list, a dict, a tagged value, a value of another type than the
  column's, a path through a non-dict): the reader decides that run from its params.

Column names: `param <path as a JSON list>` (the values) and `status <path as a JSON list>`.
At most `MAX_COLUMNS` paths, of at most `MAX_DEPTH` keys, each found in at least `MIN_SHARE` of
the runs (counted among the runs being written: a param first seen in a few runs added to a large
index gets no column); a path without column is read from the params of every run.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any, Final

import numpy as np
import pyarrow as pa

from aim_parquet.format.values import TAG
from aim_parquet.storage.base.columns import int8_array, nullable_scalars, nullable_strings

__all__ = [
    "MAX_COLUMNS",
    "MISSING",
    "NONE",
    "OTHER",
    "VALUE",
    "column_names",
    "leaf_paths",
    "param_arrays",
    "parse_column_name",
    "walk",
]

VALUE: Final = 0
NONE: Final = 1
MISSING: Final = 2
OTHER: Final = 3
MAX_COLUMNS: Final = 256
MIN_SHARE: Final = 0.01  # a path gets a column when at least this share of the runs have it
MAX_DEPTH: Final = 8
VALUE_PREFIX: Final = "param "
STATUS_PREFIX: Final = "status "
_TYPES: Final[dict[type, pa.DataType]] = {
    float: pa.float64(),
    int: pa.int64(),
    bool: pa.bool_(),
    str: pa.string(),
}
_INT64: Final = (-(1 << 63), (1 << 63) - 1)
_ABSENT: Final[Any] = object()

Path = tuple[str, ...]


def column_names(path: Path) -> tuple[str, str]:
    """(value column, status column) of a path."""
    text = json.dumps(list(path), ensure_ascii=True)
    return VALUE_PREFIX + text, STATUS_PREFIX + text


def parse_column_name(name: str) -> Path | None:
    """The path of a value column's name, None for another column."""
    if not name.startswith(VALUE_PREFIX):
        return None
    try:
        path = json.loads(name[len(VALUE_PREFIX) :])
    except ValueError:
        return None
    if not isinstance(path, list) or not path or not all(type(k) is str for k in path):
        return None
    return tuple(path)


def leaf_paths(params: Any, into: dict[Path, None], limit: int = MAX_COLUMNS) -> None:
    """Add to `into` (in order, up to `limit` paths) the paths of `params` that lead to a plain
    value through dicts with nothing tagged."""
    stack: list[tuple[Path, Any]] = [((), params)]
    while stack:
        prefix, node = stack.pop()
        if type(node) is not dict or TAG in node or len(prefix) >= MAX_DEPTH:
            continue
        for key, value in node.items():
            if type(key) is not str:
                continue
            path = (*prefix, key)
            if type(value) is dict:
                stack.append((path, value))
            elif type(value) in _TYPES and path not in into:
                if len(into) >= limit:
                    return
                into[path] = None


def walk(params: Any, path: Path) -> tuple[int, Any]:
    """(status, value) of `path` in one run's stored params (module doc)."""
    node = params
    for name in path:
        if type(node) is not dict or TAG in node:
            return OTHER, None
        node = node.get(name, _ABSENT)
        if node is _ABSENT:
            return MISSING, None
    if node is None:
        return NONE, None
    if type(node) in _TYPES:
        return VALUE, node
    return OTHER, None


def is_utf8(text: str) -> bool:
    """Whether an Arrow string can hold `text` (not with a lone surrogate)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _fits(kind: type, value: Any) -> bool:
    if kind is int:
        return bool(_INT64[0] <= value <= _INT64[1])
    return kind is not str or is_utf8(value)


def param_arrays(
    params: Sequence[Any], path: Path, kind: type | None = None
) -> tuple[pa.Array, pa.Array]:
    """The (value, status) arrays of `path` over `params` (one stored params object per run);
    `kind` the column's Python type, else that of the first value found."""
    statuses = np.empty(len(params), dtype=np.int8)
    values: list[Any] = []
    for i, raw in enumerate(params):
        status, value = walk(raw, path)
        if status == VALUE:
            if kind is None:
                kind = type(value)
            if type(value) is not kind or not _fits(kind, value):
                status, value = OTHER, None
        else:
            value = None
        statuses[i] = status
        values.append(value)
    arrow_type = _TYPES[kind if kind is not None else float]
    array = nullable_strings(values) if kind is str else nullable_scalars(values, arrow_type)
    return array, int8_array(statuses)


def python_kind(arrow_type: pa.DataType) -> type | None:
    """The Python type of a value column's Arrow type (None: not a param column type)."""
    for kind, known in _TYPES.items():
        if known == arrow_type:
            return kind
    return None


def union_paths(known: Iterable[Path], params: Sequence[Any], runs: int) -> dict[Path, None]:
    """`known` paths, then the paths of `params` found in at least `MIN_SHARE` of the index's
    `runs` (first found first; up to `MAX_COLUMNS` in all). A column holds a value for every
    run, so a param only a few runs have would cost as much as one they all have: its runs'
    params are read instead, when a query names it."""
    paths: dict[Path, None] = dict.fromkeys(known)
    counts: dict[Path, int] = {}
    for raw in params:
        found: dict[Path, None] = {}
        leaf_paths(raw, found, limit=1 << 30)
        for path in found:
            counts[path] = counts.get(path, 0) + 1
    least = max(1, math.ceil(runs * MIN_SHARE))
    for path, count in counts.items():
        if len(paths) >= MAX_COLUMNS:
            break
        if count >= least:
            paths[path] = None
    return paths
