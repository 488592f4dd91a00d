"""The run-level columns of a bulk metric frame (`sdk.query_frames`): the cells, and the order of
the columns, of `sdk.dataframes.run_row` of each run transposed, without a dict per run: a run's
props are one tuple, and its flattened params are taken as they are when their keys need no
change (ASCII, none named `hash` or, with the props, like a prop) and their text values are
ASCII (most runs; the keys are checked once per distinct tuple of keys)."""

from __future__ import annotations

from typing import Any

import numpy as np

from aim_parquet.format.values import TAG, utf8_safe
from aim_parquet.sdk.dataframes import (
    PARAM_DEPTH,
    PROP_KEYS,
    RowSource,
    _tags_text,
    flatten_params,
    text_value,
)
from aim_parquet.storage.index.run_records import RunRecord

_SCALARS = frozenset({str, int, float, bool, type(None)})


class RunRows:
    """The run-level cells of the runs added, one entry per run in the order added."""

    def __init__(self, *, include_props: bool, include_params: bool) -> None:
        self.include_props = include_props
        self.include_params = include_params
        self.props: list[tuple[Any, ...]] = []
        self.params: list[dict[str, Any]] = []
        # a param named `hash` (or like a prop, with the props) is dropped, as by `run_row`
        self._taken = frozenset(("hash", *PROP_KEYS)) if include_props else frozenset(("hash",))
        self._plain: dict[tuple[str, ...], bool] = {}

    def add(self, run: RowSource) -> None:
        """Add one run's cells (nothing is added when reading its fields raises)."""
        props: tuple[Any, ...] = ()
        if self.include_props:
            meta = run.props
            props = (
                text_value(meta.display_name),
                text_value(meta.experiment),
                text_value(meta.description),
                meta.archived,
                meta.creation_time,
                meta.end_time,
                run.active,
                _tags_text(tuple(meta.tags)),
            )
        params: dict[str, Any] = {}
        if self.include_params:
            params = self._params(run.props)
        if self.include_props:
            self.props.append(props)
        if self.include_params:
            self.params.append(params)

    def _params(self, meta: Any) -> dict[str, Any]:
        """The params' cells as `run_row` makes them (`flatten_params`, text made valid)."""
        flat: dict[str, Any] = {}
        if not isinstance(meta, RunRecord) or not _flatten_plain(meta.raw_params(), "", 1, flat):
            flat = flatten_params(meta.params)
        keys = tuple(flat)
        plain = self._plain.get(keys)
        if plain is None:
            plain = all(k.isascii() for k in keys) and self._taken.isdisjoint(keys)
            self._plain[keys] = plain
        if plain and not any(isinstance(v, str) and not v.isascii() for v in flat.values()):
            return flat
        row: dict[str, Any] = {}
        for key, value in flat.items():
            safe_key = key if key.isascii() else utf8_safe(key)
            if safe_key in self._taken:
                continue
            if isinstance(value, str) and not value.isascii():
                value = utf8_safe(value)
            row.setdefault(safe_key, value)
        return row

    def columns(self, runs: list[int]) -> dict[str, list[Any]]:
        """The columns of the runs at positions `runs` (props first, then params in the order
        the runs first name them; None where a run lacks a param)."""
        out: dict[str, list[Any]] = {}
        if self.include_props and runs:
            cells = zip(*(self.props[r] for r in runs), strict=True)
            out.update(zip(PROP_KEYS, map(list, cells), strict=True))
        if self.include_params:
            out.update(row_columns([self.params[r] for r in runs]))
        return out


def row_columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The rows' columns, one value per row (None where a row lacks the column), in the order
    the rows first name them: rows with the same keys in the same order (most runs' rows) are
    turned into columns together."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(tuple(row), []).append(i)
    names: dict[str, None] = {}
    for key in groups:
        names.update(dict.fromkeys(key))
    if len(groups) == 1:
        ((key, _),) = groups.items()
        cells = zip(*(row.values() for row in rows), strict=True)
        return dict(zip(key, map(list, cells), strict=True))
    out = {name: np.full(len(rows), None, dtype=object) for name in names}
    for key, where in groups.items():
        if not key:
            continue
        cells = zip(*(rows[i].values() for i in where), strict=True)
        places = np.asarray(where, dtype=np.int64)
        for name, values in zip(key, cells, strict=True):
            column = np.empty(len(values), dtype=object)
            column[:] = values
            out[name][places] = column
    return {name: column.tolist() for name, column in out.items()}


def _flatten_plain(node: dict[str, Any], prefix: str, level: int, out: dict[str, Any]) -> bool:
    """`flatten_params` of params as stored, in one pass, when they are dicts of plain values
    down to `PARAM_DEPTH` levels (which decode as they are: nothing tagged); False, with `out`
    partly filled, at anything else (a tagged value, a list, a deeper or empty dict)."""
    if TAG in node:
        return False
    for key, value in node.items():
        path = f"{prefix}.{key}" if prefix else key
        if type(value) in _SCALARS:
            out[path] = value
        elif type(value) is dict and value and level < PARAM_DEPTH:
            if not _flatten_plain(value, path, level + 1, out):
                return False
        else:
            return False
    return True
