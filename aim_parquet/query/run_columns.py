"""Columns of run values for the vectorised run filter (`query.prefilter`): the value a query's
`run.<path>` gives for every run of a snapshot (`Encoded`: its distinct values and, per run, the
slot of its value), computed as the interpreter does.

A path is the chain of attribute and item steps after `run` with constant keys
(`run.hparams.lr` is `(("attr", "hparams"), ("attr", "lr"))`). Its value for a run is exactly
what `RunView` and `runtime.get_attr`/`get_item` give it, or `UNKNOWN` when computing it raises
(the interpreter then decides that run). Run properties (`hash`, `name`, `experiment`, ...) are
read from the index's columns, dictionary-encoded by Arrow; a param path of str keys from its
typed column (`storage.index.param_columns`), or, without one, straight from the stored (tagged
JSON) params when nothing on the way is tagged; the runs the columns cannot tell (a run read from
its sidecar, a value of another type, a run with other fields) and any other path go through the
run's record and a `RunView`, as the interpreter's does, making records only for those runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final, NamedTuple

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from aim_parquet.format.run_fields import DEFAULT_EXPERIMENT, experiment_or_default
from aim_parquet.format.values import TAG
from aim_parquet.query import runtime as rt
from aim_parquet.query.views import RUN_PROPERTIES, RunView
from aim_parquet.storage.base.columns import positions_numpy
from aim_parquet.storage.index.index_entries import IndexSnapshot
from aim_parquet.storage.index.param_columns import MISSING, NONE, OTHER
from aim_parquet.storage.index.run_records import RunRecord

__all__ = ["UNKNOWN", "Encoded", "Path", "Step", "path_column", "unsupported_first_step"]

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


class Encoded(NamedTuple):
    """A column as distinct values and, per run, the position of its value among them."""

    distinct: list[Any]
    slots: npt.NDArray[np.intp]


_NULL_AS: Final[dict[str, Callable[[], Any]]] = {  # a direct column's value for a null cell
    "description": lambda: None,
    "end_time": lambda: None,
    "experiment": lambda: DEFAULT_EXPERIMENT,
}
_NORMAL: Final[dict[str, Callable[[Any], Any]]] = {  # a direct column's value for a cell
    "experiment": experiment_or_default,
}


def path_column(snapshot: IndexSnapshot, path: Path) -> Encoded:
    """The value of `run<path>` for each run of `snapshot` in stored order (UNKNOWN where
    computing it raises): from the snapshot's columns, and from the records of the runs the
    columns cannot tell (made only for them)."""
    (kind, key), rest = path[0], path[1:]
    if kind == "attr" and key in _DIRECT and not rest:
        return _direct(snapshot, key, path)
    is_param = (kind == "attr" and key not in RUN_PROPERTIES) or (
        kind == "item" and type(key) is str
    )
    if is_param and all(type(k) is str for _, k in rest):
        names = (key, *(k for _, k in rest))
        return _param(snapshot, names, path)
    return _listed([_one(r, path) for r in snapshot.in_stored_order])


def _listed(values: list[Any]) -> Encoded:
    return Encoded(values, np.arange(len(values), dtype=np.intp))


def _encode(column: pa.ChunkedArray | pa.Array) -> tuple[list[Any], npt.NDArray[np.intp], Any]:
    """(distinct values, position of each cell's among them, -1 for null; its null mask)."""
    encoded = pc.dictionary_encode(column)
    chunks = encoded.chunks if isinstance(encoded, pa.ChunkedArray) else [encoded]
    if not chunks:
        return [], np.zeros(0, dtype=np.intp), np.zeros(0, dtype=bool)
    combined = pa.chunked_array(chunks, type=chunks[0].type).unify_dictionaries()
    combined = combined.combine_chunks()
    index = positions_numpy(combined.indices)
    return combined.dictionary.to_pylist(), index, index < 0


def _finish(
    snapshot: IndexSnapshot,
    distinct: list[Any],
    table_index: npt.NDArray[np.intp],
    irregular: list[int],
    value_of: Callable[[RunRecord], Any],
) -> Encoded:
    """The column of the snapshot's table rows (`table_index` into `distinct`, its stored
    positions `irregular` and every extra record computed by `value_of`)."""
    index = np.empty(snapshot.size, dtype=np.intp)
    index[: len(table_index)] = table_index
    positions = [*irregular, *range(len(table_index), snapshot.size)]
    for position, record in zip(positions, snapshot.records_at(positions), strict=True):
        index[position] = len(distinct)
        distinct.append(value_of(record))
    return Encoded(distinct, index)


def _direct(snapshot: IndexSnapshot, key: str, path: Path) -> Encoded:
    getter = _DIRECT[key]

    def value_of(record: RunRecord) -> Any:
        try:
            return getter(record)
        except Exception:  # a damaged record
            return _one(record, path)

    column = "name" if key == "name" else key
    taken = snapshot.taken(snapshot.table.column(column))
    distinct, index, nulls = _encode(taken)
    normal = _NORMAL.get(key)
    if normal is not None:
        distinct = [normal(v) for v in distinct]
    irregular_rows = snapshot.table.has_fields[snapshot.rows]
    if nulls.any():
        null_as = _NULL_AS.get(key)
        if null_as is None:  # (a run without name: its own display name)
            irregular_rows = irregular_rows | nulls
        else:
            index[nulls] = len(distinct)
            distinct.append(null_as())
    irregular = np.flatnonzero(irregular_rows).tolist()
    return _finish(snapshot, distinct, index, irregular, value_of)


def _param(snapshot: IndexSnapshot, names: tuple[str, ...], path: Path) -> Encoded:
    """A param path of str keys: from its typed column (`storage.index.param_columns`) where
    the index file has one, else from every run's stored params (`_stored`)."""
    found = snapshot.table.param_column(names)
    if found is None:
        return _listed(_stored(snapshot.in_stored_order, names, path))
    values, statuses = found
    status = statuses if snapshot.is_whole_table else statuses[snapshot.rows]
    distinct, index, _ = _encode(snapshot.taken(values))
    index[status == NONE] = len(distinct)
    distinct.append(None)
    index[status == MISSING] = len(distinct)
    distinct.append(rt.SafeNone)
    irregular = np.flatnonzero(status == OTHER).tolist()
    return _finish(snapshot, distinct, index, irregular, lambda r: _stored([r], names, path)[0])


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
    nodes: list[Any] = [r.stored_params() for r in records]  # (None: they do not decode)
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
