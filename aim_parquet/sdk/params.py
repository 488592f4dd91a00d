"""Nested param access: Aim's `run[key]`, `run["a", "b"]` and `run[...]` on a plain dict tree."""

from __future__ import annotations

import copy
from typing import Any

from aim_parquet.errors import UnsupportedValueError

ParamKey = Any  # str, tuple of str, or Ellipsis


def key_path(key: ParamKey) -> tuple[str, ...]:
    """`"a"` -> ("a",), `("a", "b")` -> ("a", "b"), `...` -> () (the whole tree)."""
    if key is Ellipsis:
        return ()
    if isinstance(key, str):
        return (key,)
    if isinstance(key, tuple) and key and all(isinstance(k, str) for k in key):
        return key
    raise UnsupportedValueError(
        f"Param key {key!r} must be a str, a tuple of str (run['a', 'b']) or ... (all params)."
    )


def get_path(params: dict[str, Any], path: tuple[str, ...]) -> Any:
    """The value at `path` (a deep copy); KeyError naming the path when missing."""
    node: Any = params
    for i, part in enumerate(path):
        if not isinstance(node, dict) or part not in node:
            shown = ".".join(path[: i + 1])
            raise KeyError(f"No param {shown!r}")
        node = node[part]
    return copy.deepcopy(node)


def set_path(params: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """A new params tree with `value` at `path` (replacing the subtree; parents created)."""
    if not path:
        if not isinstance(value, dict):
            raise UnsupportedValueError("run[...] = value needs a dict of params.")
        return copy.deepcopy(value)
    out = copy.deepcopy(params)
    node = out
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = copy.deepcopy(value)
    return out


def del_path(params: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    """A new params tree without `path`; KeyError when missing."""
    if not path:
        return {}
    get_path(params, path)  # raises KeyError when missing
    out = copy.deepcopy(params)
    node = out
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]
    return out
