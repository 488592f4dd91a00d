"""Columns of run values for the vectorised run filter (`query.prefilter`): the value a query's
`run.<path>` gives for every run of a snapshot, in one list, computed as the interpreter does.

A path is the chain of attribute and item steps after `run` with constant keys
(`run.hparams.lr` is `(("attr", "hparams"), ("attr", "lr"))`). Its value for a run is exactly
what `RunView` and `runtime.get_attr`/`get_item` give it, or `UNKNOWN` when computing it raises
(the interpreter then decides that run). A param path of str keys is read straight from the
stored (tagged JSON) params when nothing on the way is tagged, which decodes nothing; any other
path goes through a `RunView` of the run, as the interpreter's does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

from aim_parquet.format.values import TAG
from aim_parquet.query import runtime as rt
from aim_parquet.query.views import RUN_PROPERTIES, RunView
from aim_parquet.storage.index.run_records import RunRecord

__all__ = ["UNKNOWN", "Path", "Step", "path_column", "unsupported_first_step"]

Step = tuple[str, Any]  # ("attr", name) or ("item", constant key)
Path = tuple[Step, ...]


class _Unknown:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final[Any] = _Unknown()
"""A run whose value the column cannot tell (computing it raises): the interpreter decides it."""

_MISSING: Final[Any] = object()
_PLAIN: Final = frozenset({str, int, float, bool, type(None)})

# run properties a column reads straight from the record (RunView gives the same values)
_DIRECT: Final[dict[str, Callable[[RunRecord], Any]]] = {
    "hash": lambda r: r.hash,
    "name": lambda r: r.display_name,
    "description": lambda r: r.description,
    "experiment": lambda r: r.experiment,
    "archived": lambda r: r.archived,
    "creation_time": lambda r: r.creation_time,
    "end_time": lambda r: r.end_time,
}
# run properties a column never reads: `active` checks the run's lock (file I/O), `metrics`
# reads the catalogue; a query using them is filtered by the interpreter alone
_REFUSED: Final = frozenset({"active", "metrics"})


def unsupported_first_step(step: Step) -> bool:
    """Whether a column cannot start with `step` (the filter then leaves the node to the
    interpreter)."""
    kind, key = step
    return kind == "attr" and key in _REFUSED


def path_column(records: Sequence[RunRecord], path: Path) -> list[Any]:
    """The value of `run<path>` for each record (UNKNOWN where computing it raises)."""
    (kind, key), rest = path[0], path[1:]
    if kind == "attr" and key in _DIRECT and not rest:
        getter = _DIRECT[key]
        try:
            return [getter(r) for r in records]
        except Exception:  # a damaged record: each one on its own
            return [_one(r, path) for r in records]
    is_param = (kind == "attr" and key not in RUN_PROPERTIES) or (
        kind == "item" and type(key) is str
    )
    if is_param and all(type(k) is str for _, k in rest):
        names = (key, *(k for _, k in rest))
        return [_stored(r, names, path) for r in records]
    return [_one(r, path) for r in records]


def _one(record: RunRecord, path: Path) -> Any:
    """The interpreter's value of `run<path>`, through a RunView."""
    budget = rt.BUDGET
    saved = budget.left
    budget.left = rt.MAX_EVAL_SIZE
    try:
        view = RunView(record)
        (kind, key), rest = path[0], path[1:]
        value = view.query_attr(key) if kind == "attr" else view.query_item(key)
        for kind, key in rest:
            value = rt.get_attr(value, key) if kind == "attr" else rt.get_item(value, key)
        return value
    except Exception:
        return UNKNOWN
    finally:
        budget.left = saved


def _stored(record: RunRecord, names: tuple[str, ...], path: Path) -> Any:
    """The value of a param path of str keys read from the stored params: a missing key gives
    SafeNone, a plain JSON value itself (decoding leaves those as they are); anything tagged,
    or a non-dict on the way, is computed as the interpreter does (`_one`)."""
    node = record.raw_params()
    if type(node) is not dict or TAG in node:
        return _one(record, path)
    last = len(names) - 1
    for i, name in enumerate(names):
        node = node.get(name, _MISSING)
        if node is _MISSING:
            return rt.SafeNone
        kind = type(node)
        if kind is dict:
            if TAG in node or i == last:
                return _one(record, path)
            continue
        if i != last or kind not in _PLAIN:
            return _one(record, path)
    return node
