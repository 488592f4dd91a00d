"""The values a query works with and what they may cost: `SafeNone` (a missing field, falsy and
absorbing), the `QueryObject` protocol of runs and sequences, the per-evaluation size budget
(`charge`, `weight`, `check_int`) and the limits of `aim_parquet.query.runtime`'s module doc."""

from __future__ import annotations

import datetime as _dt
import threading
from collections.abc import Iterator, Sequence
from typing import Any, Final, Protocol

from aim_parquet.errors import QueryError

MAX_VALUE_SIZE: Final = 1_000_000
MAX_EVAL_SIZE: Final = 10_000_000
MAX_INT_BITS: Final = 10_000
MAX_STRFTIME_FORMAT: Final = 256
MAX_ROUND_DIGITS: Final = 1_000

TEXT_TYPES: Final = (str, bytes, bytearray)
LIST_TYPES: Final = (list, tuple)
SEQUENCE_TYPES: Final = (*TEXT_TYPES, *LIST_TYPES)
COLLECTION_TYPES: Final = (list, tuple, set, frozenset)
DATETIME_TYPES: Final = (_dt.date, _dt.timedelta)


class _SafeNoneType:
    """The type of `SafeNone`: a missing value that compares and chains but does not compute.

    `SafeNone == None` is True and `bool(SafeNone)` is False; ordering comparisons give False;
    attribute and item access (through `query_attr`/`query_item`) and calls give SafeNone again;
    iteration yields nothing; arithmetic raises `TypeError`, which makes the query a non-match.
    """

    __slots__ = ()
    _instance: _SafeNoneType | None = None

    def __new__(cls) -> _SafeNoneType:
        if _SafeNoneType._instance is None:
            _SafeNoneType._instance = super().__new__(cls)
        return _SafeNoneType._instance

    def __repr__(self) -> str:
        return "SafeNone"

    def __str__(self) -> str:
        return "None"

    def __reduce__(self) -> str:
        return "SafeNone"

    def __copy__(self) -> _SafeNoneType:
        return self

    def __deepcopy__(self, memo: object) -> _SafeNoneType:
        return self

    def __bool__(self) -> bool:
        return False

    def __eq__(self, other: object) -> bool:
        return other is None or other is self

    def __ne__(self, other: object) -> bool:
        return not (other is None or other is self)

    def __hash__(self) -> int:
        return hash(None)

    def __lt__(self, other: object) -> bool:
        return False

    __le__ = __gt__ = __ge__ = __lt__

    def __iter__(self) -> Iterator[Any]:
        return iter(())

    def __contains__(self, item: object) -> bool:
        return False

    def __call__(self, *args: object, **kwargs: object) -> _SafeNoneType:
        return self

    def query_attr(self, name: str) -> _SafeNoneType:
        """Any attribute of a missing value is missing too."""
        return self

    def query_item(self, key: object) -> _SafeNoneType:
        """Any item of a missing value is missing too."""
        return self


SafeNone: Final = _SafeNoneType()


class QueryObject(Protocol):
    """A view the caller puts into a query's environment (a run, a metric, an image sequence ...).

    `run.hparams` calls `query_attr("hparams")`; `run["hparams", "lr"]` calls
    `query_item(("hparams", "lr"))`. Both return `SafeNone` for a missing value. Keys and values the
    interpreter passes in may be shared between evaluations and must not be mutated.
    """

    def query_attr(self, name: str) -> Any:
        """The value of attribute `name`, or SafeNone when it is missing."""

    def query_item(self, key: Any) -> Any:
        """The value under `key` (a tuple for `x[a, b]`), or SafeNone when it is missing."""


# --------------------------------------------------------------------------- size accounting


class _Budget(threading.local):
    """Units of MAX_EVAL_SIZE left to the evaluation running in this thread."""

    def __init__(self) -> None:
        self.left = MAX_EVAL_SIZE


BUDGET: Final = _Budget()


def charge(units: int) -> None:
    """Spend `units` of this evaluation's budget; raise QueryError when it runs out."""
    left = BUDGET.left - units
    if left < 0:
        raise QueryError(
            f"query refused: it builds more than {MAX_EVAL_SIZE:,} characters/elements in one "
            "evaluation; simplify the repetitions, concatenations or conversions"
        )
    BUDGET.left = left


def weight(value: object, limit: int) -> int:
    """The deep size of `value`: string/bytes lengths plus container lengths plus big-int words.

    Stops once the total passes `limit` (and then returns a number above it), so the cost is
    bounded by `limit` even for huge or self-referencing data.
    """
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, TEXT_TYPES):
            total += len(item)
        elif isinstance(item, int):
            total += item.bit_length() // 64
        elif isinstance(item, COLLECTION_TYPES):
            total += len(item)
            if total <= limit:
                stack.extend(item)
        elif isinstance(item, dict):
            total += len(item)
            if total <= limit:
                stack.extend(item.keys())
                stack.extend(item.values())
        elif isinstance(item, Sequence):
            total += len(item)
        if total > limit:
            return total
    return total


def too_large(what: str, size: int) -> QueryError:
    return QueryError(
        f"query refused: {what} would have at least {size:,} characters/elements "
        f"(limit {MAX_VALUE_SIZE:,})"
    )


def check_int(value: Any) -> Any:
    """Return `value`, refusing an int wider than MAX_INT_BITS."""
    if type(value) is int and value.bit_length() > MAX_INT_BITS:
        raise QueryError(
            f"query refused: an integer result has {value.bit_length():,} bits "
            f"(limit {MAX_INT_BITS:,})"
        )
    return value


def is_sequence(value: object) -> bool:
    return isinstance(value, (*SEQUENCE_TYPES, Sequence))


def iterable(value: Any) -> Any:
    """`value` if it can be iterated without the legacy __getitem__ protocol (which may not end)."""
    if not hasattr(type(value), "__iter__"):
        raise TypeError(f"{type(value).__name__!r} value is not iterable in queries")
    return value


def iterate(value: Any) -> Iterator[Any]:
    """An iterator over `value` (a comprehension's loop), refusing what `iterable` refuses."""
    return iter(iterable(value))
