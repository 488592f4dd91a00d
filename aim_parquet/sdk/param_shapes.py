"""The params of many runs read from the run index's typed param columns
(`storage.index.param_columns`) for the run-level frame (`sdk.run_table`): the runs whose
params texts have one shape (`_SIMPLE`, `_VALUES`) have the same flattened keys in the same
order, found once per shape from one of them; a run's cells then come from the typed columns
where each of its leaves has a value or null there."""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import pyarrow.compute as pc

from aim_parquet.format.json_records import loads_json
from aim_parquet.format.values import TAG, utf8_safe
from aim_parquet.sdk.dataframes import PARAM_DEPTH, PROP_KEYS
from aim_parquet.storage.base.columns import any_numpy, int64_array
from aim_parquet.storage.index.index_entries import IndexSnapshot
from aim_parquet.storage.index.param_columns import NONE, VALUE

__all__ = ["param_groups"]

_SCALARS: Final = frozenset({str, int, float, bool, type(None)})
_STR: Final = r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"'
_NUM: Final = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
_VALUE: Final = rf"(?:{_STR}|{_NUM}|true|false|null)"
_KEY: Final = r'"[^"\\\x00-\x1f:]*"'  # (no quote, backslash or colon: ASCII text)


def _object(inner: str | None, empty: bool) -> str:
    member = rf"{_KEY}:(?:{_VALUE}|{inner})" if inner else rf"{_KEY}:{_VALUE}"
    members = rf"{member}(?:,{member})*"
    return rf"\{{(?:{members})?\}}" if empty else rf"\{{{members}\}}"


# Params texts read from the columns: compact JSON objects of plain values and non-empty
# objects down to PARAM_DEPTH (3) levels, keys without quote, backslash or colon (anything else
# is built per run). In such a text every `:` outside a string ends a key, so replacing each
# value after one (`_VALUES`, a string or a number or literal) by `#` gives its shape: the same
# shape is the same keys in the same order.
_SIMPLE: Final = "^" + _object(_object(_object(None, False), False), True) + "$"
_VALUES: Final = r':(?:"(?:[^"\\]|\\.)*"|[^,}{"]+)'


def param_groups(
    snapshot: IndexSnapshot,
    rows: np.ndarray[Any, Any],
    ok: np.ndarray[Any, Any],
    include_props: bool,
    param_keys: dict[int, tuple[tuple[str, tuple[str, ...]], ...]],
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """(`ok` less the runs whose params the columns cannot tell, the shape of each run);
    `param_keys` gets each usable shape's (column name, param path) pairs."""
    table = snapshot.table
    where = np.flatnonzero(ok)
    texts = table.column("params").take(int64_array(rows[where])).combine_chunks()
    simple = np.asarray(any_numpy(pc.match_substring_regex(texts, _SIMPLE)), dtype=bool)
    ok[where[~simple]] = False
    shapes = pc.dictionary_encode(pc.replace_substring_regex(texts, _VALUES, ":#"))
    codes = any_numpy(shapes.indices).astype(np.intp)
    shape_of = np.zeros(len(rows), dtype=np.intp)
    shape_of[where] = codes
    taken_names = frozenset(("hash", *PROP_KEYS)) if include_props else frozenset(("hash",))
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    for group in np.split(order, bounds) if len(order) else []:
        members = where[group]
        members = members[ok[members]]
        if not len(members):
            continue
        code = int(codes[group[0]])
        found = _shape_keys(
            texts[int(group[np.flatnonzero(ok[where[group]])[0]])].as_py(), taken_names
        )
        if found is not None:
            statuses = [table.param_column(path) for _, path in found]
            if all(s is not None for s in statuses):
                for _, status in statuses:  # type: ignore[misc]
                    at = status[rows[members]]
                    bad = members[(at != VALUE) & (at != NONE)]
                    ok[bad] = False
                param_keys[code] = found
                continue
        ok[members] = False
    return ok, shape_of


def _shape_keys(
    text: str, taken_names: frozenset[str]
) -> tuple[tuple[str, tuple[str, ...]], ...] | None:
    """(column name, path) of each cell of params of this text's shape, as `RunRows._params`
    names them, or None unless the params are plain (`run_rows._flatten_plain`)."""
    try:
        params = loads_json(text.encode("ascii", "surrogatepass"), "params")
    except Exception:
        return None
    if type(params) is not dict:
        return None
    leaves: list[tuple[str, tuple[str, ...]]] = []
    if not _leaves(params, (), "", 1, leaves):
        return None
    flat = dict(leaves)  # (a dotted key and the same nested keys: one cell, the last value)
    out: dict[str, tuple[str, ...]] = {}
    for key, path in flat.items():
        safe = key if key.isascii() else utf8_safe(key)
        if safe not in taken_names:
            out.setdefault(safe, path)
    return tuple(out.items())


def _leaves(
    node: dict[str, Any],
    path: tuple[str, ...],
    prefix: str,
    level: int,
    out: list[tuple[str, tuple[str, ...]]],
) -> bool:
    """`run_rows._flatten_plain`'s walk, giving each leaf's (flat key, path)."""
    if TAG in node:
        return False
    for key, value in node.items():
        flat = f"{prefix}.{key}" if prefix else key
        if type(value) in _SCALARS:
            out.append((flat, (*path, key)))
        elif type(value) is dict and value and level < PARAM_DEPTH:
            if not _leaves(value, (*path, key), flat, level + 1, out):
                return False
        else:
            return False
    return True
