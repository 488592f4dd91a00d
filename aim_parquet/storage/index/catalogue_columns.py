"""The run index's catalogue as columns (index format 6): one list per run of each field of its
catalogue entries, in catalogue order, so that a query or a run-level frame reads every run's
sequence names, kinds, contexts and summaries without parsing JSON per run.

A run's lists hold its catalogue exactly when its `seq_plain` cell is true: every entry decodes,
its name, kind and seq_id are UTF-8 strings, its context an object of plain JSON scalars (no
tagged value, no non-finite float), `count` and the steps int64 integers (or null), and `first`,
`last`, `min`, `max` floats or null. Any other run has empty lists and `seq_plain` false: readers
then parse its JSON catalogue (`catalogue_keys`, `catalogue_stats`), which stays the truth.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from itertools import chain
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from aim_parquet.errors import CorruptFileError
from aim_parquet.format.meta import SequenceInfo
from aim_parquet.format.values import TAG, has_lone_surrogate
from aim_parquet.storage.base.cached import cached_property
from aim_parquet.storage.base.columns import any_numpy, nullable_scalars, nullable_strings

if TYPE_CHECKING:
    from aim_parquet.storage.index.run_records import RunRecord

__all__ = [
    "LIST_COLUMNS",
    "SEQ_FIELDS",
    "CatalogueColumns",
    "catalogue_cells",
    "check_columns",
    "entry_cells",
]

_STRINGS: Final = ("seq_id", "seq_name", "seq_kind", "seq_context")
_INTS: Final = ("seq_count", "seq_first_step", "seq_last_step")
_FLOATS: Final = ("seq_first", "seq_last", "seq_min", "seq_max")
LIST_COLUMNS: Final = (*_STRINGS, *_INTS, *_FLOATS)
SEQ_FIELDS: Final[list[tuple[str, pa.DataType]]] = [
    *((n, pa.list_(pa.string())) for n in _STRINGS),
    *((n, pa.list_(pa.int64())) for n in _INTS),
    *((n, pa.list_(pa.float64())) for n in _FLOATS),
    ("seq_plain", pa.bool_()),
]
_INT64: Final = 2**63
_SCALARS: Final = frozenset({str, int, bool, type(None)})
_STATS: Final = ("count", "first_step", "last_step", "first", "last", "min", "max")
Cells = tuple[list[Any], ...]  # one list per LIST_COLUMNS entry


def _utf8(text: Any) -> bool:
    return type(text) is str and not has_lone_surrogate(text)


def _plain_context(context: Any) -> bool:
    if type(context) is not dict or TAG in context:
        return False
    for key, value in context.items():
        if type(key) is not str:
            return False
        kind = type(value)
        if kind is float:
            if not np.isfinite(value):
                return False
        elif kind not in _SCALARS:
            return False
    return True


def _int(value: Any) -> bool:
    return value is None or (type(value) is int and -_INT64 <= value < _INT64)


def _float(value: Any) -> bool:
    return value is None or type(value) is float


def catalogue_cells(record: RunRecord) -> Cells | None:
    """The lists of `record`'s catalogue (`LIST_COLUMNS` order), None when it is not plain."""
    try:
        keys = record.sequence_keys()
        infos = [record.sequence_info(i) for i in range(len(keys))]
    except CorruptFileError:
        return None
    entries = (
        (i.seq_id, i.name, i.kind, k[3], i.count, i.first_step, i.last_step, i.first, i.last,
         i.min, i.max)
        for k, i in zip(keys, infos, strict=True)
    )  # fmt: skip
    return entry_cells(entries)


def entry_cells(entries: Iterable[tuple[Any, ...]]) -> Cells | None:
    """`catalogue_cells` of catalogue entries given as `(seq_id, name, kind, context, count,
    first_step, last_step, first, last, min, max)`."""
    out: Cells = tuple([] for _ in LIST_COLUMNS)
    for (
        seq_id,
        name,
        kind,
        context,
        count,
        first_step,
        last_step,
        first,
        last,
        low,
        high,
    ) in entries:
        if not (
            _utf8(seq_id)
            and _utf8(name)
            and _utf8(kind)
            and _plain_context(context)
            and _int(count)
            and count is not None
            and _int(first_step)
            and _int(last_step)
            and _float(first)
            and _float(last)
            and _float(low)
            and _float(high)
        ):
            return None
        values = (
            seq_id, name, kind, json.dumps(context, ensure_ascii=True) if context else "{}",
            count, first_step, last_step, first, last, low, high,
        )  # fmt: skip
        for cells, value in zip(out, values, strict=True):
            cells.append(value)
    return out


def catalogue_arrays(rows: list[Cells | None]) -> list[pa.Array]:
    """The `SEQ_FIELDS` arrays of the rows' cells (None: a run that is not plain)."""
    lengths = [0 if cells is None else len(cells[0]) for cells in rows]
    bounds = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int32)
    offsets = pa.Array.from_buffers(pa.int32(), len(bounds), [None, pa.py_buffer(bounds)])
    # (not `pa.array`: it imports pandas, half a second)
    out: list[pa.Array] = []
    plain = [cells for cells in rows if cells is not None]
    for i, name in enumerate(LIST_COLUMNS):
        flat = list(chain.from_iterable(map(itemgetter(i), plain)))  # (no Python loop per run)
        if name in _STRINGS:
            values = nullable_strings(flat)
        else:
            values = nullable_scalars(flat, pa.int64() if name in _INTS else pa.float64())
        out.append(pa.ListArray.from_arrays(offsets, values))
    out.append(nullable_scalars([cells is not None for cells in rows], pa.bool_()))
    return out


def check_columns(table: pa.Table) -> None:
    """ValueError unless the catalogue columns are consistent: no nulls, one length per run
    for every list, empty lists for a run that is not plain, no null string or count."""
    plain = any_numpy(table.column("seq_plain"))
    lengths = None
    for name in (*LIST_COLUMNS, "seq_plain"):
        if table.column(name).null_count:
            raise ValueError(f"column {name} has nulls")
    for name in LIST_COLUMNS:
        column = table.column(name)
        these = any_numpy(pc.list_value_length(column))
        if lengths is None:
            lengths = these
        elif not np.array_equal(lengths, these):
            raise ValueError(f"column {name} has other lengths")
        if (name in _STRINGS or name == "seq_count") and pc.list_flatten(column).null_count:
            raise ValueError(f"column {name} has null entries")
    if lengths is not None and bool((lengths[~np.asarray(plain, dtype=bool)] != 0).any()):
        raise ValueError("a run that is not plain has catalogue entries")


class CatalogueColumns:
    """The catalogue columns of an index table as Python lists (made once, on first use) and
    where each run's entries lie in them."""

    def __init__(self, table: pa.Table) -> None:
        self._table = table
        self.plain = np.asarray(any_numpy(table.column("seq_plain")), dtype=bool)
        self._contexts: dict[str, dict[str, Any]] = {}

    @cached_property
    def starts(self) -> list[int]:
        lengths = any_numpy(pc.list_value_length(self._table.column("seq_name")))
        return np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).tolist()  # type: ignore[no-any-return]

    def _flat(self, name: str) -> list[Any]:
        return pc.list_flatten(self._table.column(name)).to_pylist()  # type: ignore[no-any-return]

    @cached_property
    def key_lists(self) -> tuple[list[str], list[str], list[str], list[str]]:
        return (
            self._flat("seq_id"),
            self._flat("seq_name"),
            self._flat("seq_kind"),
            self._flat("seq_context"),
        )

    @cached_property
    def stat_lists(self) -> tuple[list[Any], ...]:
        return tuple(self._flat(n) for n in (*_INTS, *_FLOATS))

    def stat(self, field: str) -> list[Any]:
        """The flat list of a summary field (`count`, `first_step`, ..., `max`)."""
        return self.stat_lists[_STATS.index(field)]

    def context(self, text: str) -> dict[str, Any]:
        """A fresh dict of a context's text (each parsed once)."""
        parsed = self._contexts.get(text)
        if parsed is None:
            parsed = self._contexts[text] = json.loads(text)
        return dict(parsed)

    def keys(self, row: int) -> list[list[Any]]:
        """`[seq_id, name, kind, context]` of each entry of a plain row."""
        start, end = self.starts[row], self.starts[row + 1]
        ids, names, kinds, contexts = self.key_lists
        return [[ids[i], names[i], kinds[i], self.context(contexts[i])] for i in range(start, end)]

    def info(self, row: int, position: int, key: list[Any]) -> SequenceInfo:
        """The SequenceInfo of entry `position` of a plain row (`key` its key row)."""
        return self._info_at(self.starts[row] + position, key)

    def flat_info(self, i: int) -> SequenceInfo:
        """The SequenceInfo of flat entry `i` of the columns (whatever its row)."""
        ids, names, kinds, contexts = self.key_lists
        return self._info_at(i, [ids[i], names[i], kinds[i], self.context(contexts[i])])

    def _info_at(self, i: int, key: list[Any]) -> SequenceInfo:
        count, first_step, last_step, first, last, lo, hi = (s[i] for s in self.stat_lists)
        return SequenceInfo(
            seq_id=key[0], name=key[1], context=key[3], kind=key[2], count=count,
            first_step=first_step, last_step=last_step, first=first, last=last, min=lo, max=hi,
        )  # fmt: skip
