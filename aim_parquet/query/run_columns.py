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
_OTHER: Final[Any] = object()  # a value `_stored` leaves to `_one`
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
        return _stored(records, names, path)
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


def _stored(records: Sequence[RunRecord], names: tuple[str, ...], path: Path) -> list[Any]:
    """The values of a param path of str keys, read from the stored params one level at a time
    for every run: a missing key gives SafeNone (as every later step of it does), a plain JSON
    value is itself (decoding leaves those as they are); a run with anything tagged, or a
    non-dict, on the way is computed as the interpreter does (`_one`)."""
    missing, other, tag = _MISSING, _OTHER, TAG
    nodes: list[Any] = [r.raw_params() for r in records]
    for name in names:
        nodes = [
            node.get(name, missing)
            if type(node) is dict and tag not in node
            else (missing if node is missing else other)
            for node in nodes
        ]
    plain = _PLAIN
    for i in [i for i, node in enumerate(nodes) if type(node) not in plain]:
        node = nodes[i]
        nodes[i] = rt.SafeNone if node is missing else _one(records[i], path)
    return nodes
