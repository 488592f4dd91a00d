"""The one naming rule for flattened params and contexts as table columns (FORMAT.md, "Column
names of params and contexts").

A param (or context) at the key path `k1, k2, …, kn` becomes the column
`<prefix>.<k1>.<k2>…<kn>` (`params.hparams.lr`, `context.subset`): nested dicts are flattened
fully, at any depth; a leaf is any value that is not a non-empty dict (an empty dict is a leaf).
Inside a key, a backslash is written `\\\\` and a dot `\\.`, so a dotted key and the equivalent
nested keys never collapse into one column (`{"a.b": 1}` is `params.a\\.b`, `{"a": {"b": 1}}` is
`params.a.b`). The prefix keeps every param apart from the run's own columns, so a param named
`name` or `hash` is `params.name` / `params.hash`, never dropped.

Every table aim_parquet writes or returns with one column per param or context key follows this
rule: the runs table (`index/runs.parquet`, exports, the analyst dataset), the analyst dataset's
context columns, and the SDK frames.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

PARAMS_PREFIX = "params"
CONTEXT_PREFIX = "context"


def escape_key(key: str) -> str:
    """One key of a path as it appears in a column name."""
    return key.replace("\\", "\\\\").replace(".", "\\.")


def column_name(prefix: str, path: tuple[str, ...]) -> str:
    """The column of the leaf at `path` (keys as stored; non-string keys are their `str`)."""
    return ".".join([prefix, *(escape_key(str(k)) for k in path)])


def iter_leaves(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(key path, leaf value) of every leaf of a nested mapping, in key order as stored."""
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            yield from iter_leaves(item, (*path, str(key)))
    else:
        yield path, value


def flat_columns(prefix: str, mapping: Mapping[str, Any]) -> dict[str, Any]:
    """{column name: leaf value} of `mapping` (params or a context) under `prefix`."""
    if not mapping:
        return {}
    return {column_name(prefix, path): leaf for path, leaf in iter_leaves(mapping)}


def split_column(name: str) -> tuple[str, ...]:
    """The inverse of `column_name`: (prefix, k1, …, kn)."""
    parts: list[str] = []
    current: list[str] = []
    chars = iter(name)
    for ch in chars:
        if ch == "\\":
            current.append(next(chars, "\\"))
        elif ch == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return tuple(parts)
