"""The values and operations an AimQL query may use at run time.

`aim_parquet.query.lang` compiles a query into closures; every closure that does more than read a
constant calls one of the functions here. Nothing in this module ever calls `eval`, `exec`,
`compile` or a `getattr` with a name chosen by the query outside the allow-lists below.

Limits (a violation raises `QueryError`, which `CompiledQuery.matches` lets propagate)::

    MAX_VALUE_SIZE   one value built by the query: characters, elements (counted deeply for
                     repetition and str()), e.g. 'a' * 10**12 or [0] * 10**12
    MAX_EVAL_SIZE    all values built during one evaluation together, e.g. a list of 500
                     literals each [0] * 10**6
    MAX_INT_BITS     an integer result, e.g. 10 ** 10 ** 10 or 1 << 10**6
    MAX_STRFTIME_FORMAT, MAX_ROUND_DIGITS   arguments that would make a call expensive

Ordinary failures (a `TypeError` from `SafeNone + 1`, `ZeroDivisionError`, a missing list index)
are raised as the builtin exception; `CompiledQuery.matches` turns them into a non-match.
"""

from __future__ import annotations

import datetime as _dt
import operator
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final, NamedTuple, Protocol

from aim_parquet.errors import QueryError

MAX_VALUE_SIZE: Final = 1_000_000
MAX_EVAL_SIZE: Final = 10_000_000
MAX_INT_BITS: Final = 10_000
MAX_STRFTIME_FORMAT: Final = 256
MAX_ROUND_DIGITS: Final = 1_000

_TEXT_TYPES: Final = (str, bytes, bytearray)
_LIST_TYPES: Final = (list, tuple)
_SEQUENCE_TYPES: Final = (*_TEXT_TYPES, *_LIST_TYPES)
_COLLECTION_TYPES: Final = (list, tuple, set, frozenset)
_DATETIME_TYPES: Final = (_dt.date, _dt.timedelta)


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
        if isinstance(item, _TEXT_TYPES):
            total += len(item)
        elif isinstance(item, int):
            total += item.bit_length() // 64
        elif isinstance(item, _COLLECTION_TYPES):
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


def _too_large(what: str, size: int) -> QueryError:
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


def _is_sequence(value: object) -> bool:
    return isinstance(value, (*_SEQUENCE_TYPES, Sequence))


def _iterable(value: Any) -> Any:
    """`value` if it can be iterated without the legacy __getitem__ protocol (which may not end)."""
    if not hasattr(type(value), "__iter__"):
        raise TypeError(f"{type(value).__name__!r} value is not iterable in queries")
    return value


def iterate(value: Any) -> Iterator[Any]:
    """An iterator over `value` (a comprehension's loop), refusing what `_iterable` refuses."""
    return iter(_iterable(value))


# --------------------------------------------------------------------------- operators

_NUMBERS: Final = frozenset({int, float, bool})


def add(a: Any, b: Any) -> Any:
    """`a + b`, refusing a concatenation longer than MAX_VALUE_SIZE."""
    if type(a) in _NUMBERS and type(b) in _NUMBERS:
        return check_int(a + b)
    if _is_sequence(a) and _is_sequence(b):
        size = len(a) + len(b)
        if size > MAX_VALUE_SIZE:
            raise _too_large("a concatenation", size)
        charge(size)
        return a + b
    return check_int(a + b)


def sub(a: Any, b: Any) -> Any:
    """`a - b`."""
    return check_int(a - b)


def _repeat(sequence: Any, times: Any) -> Any:
    count = operator.index(times)
    if count > 0:
        size = weight(sequence, MAX_VALUE_SIZE // count) * count
        if size > MAX_VALUE_SIZE:
            raise _too_large("a repetition", size)
        charge(size)
    return sequence * count


def mul(a: Any, b: Any) -> Any:
    """`a * b`, refusing a repetition larger than MAX_VALUE_SIZE and ints over MAX_INT_BITS."""
    if type(a) in _NUMBERS and type(b) in _NUMBERS:
        return check_int(a * b)
    if _is_sequence(a):
        return _repeat(a, b)
    if _is_sequence(b):
        return _repeat(b, a)
    return check_int(a * b)


def truediv(a: Any, b: Any) -> Any:
    """`a / b`."""
    return a / b


def floordiv(a: Any, b: Any) -> Any:
    """`a // b`."""
    return check_int(a // b)


def mod(a: Any, b: Any) -> Any:
    """`a % b`; printf-style string formatting is refused like `str.format`."""
    if isinstance(a, _TEXT_TYPES):
        raise QueryError("query refused: '%' formatting of strings is not allowed in queries")
    return check_int(a % b)


def power(a: Any, b: Any) -> Any:
    """`a ** b`, refusing an integer power wider than MAX_INT_BITS before computing it."""
    bits_at_least = 0
    if isinstance(a, int) and isinstance(b, int) and b > 1:
        bits_at_least = (abs(a).bit_length() - 1) * b
    if bits_at_least > MAX_INT_BITS:
        raise QueryError(
            f"query refused: an integer power would have more than {MAX_INT_BITS:,} bits"
        )
    return check_int(a**b)


def lshift(a: Any, b: Any) -> Any:
    """`a << b`, refusing a shift wider than MAX_INT_BITS before computing it."""
    if (
        isinstance(a, int)
        and isinstance(b, int)
        and a
        and b > 0
        and a.bit_length() + b > MAX_INT_BITS
    ):
        raise QueryError(
            f"query refused: an integer shift would have more than {MAX_INT_BITS:,} bits"
        )
    return a << b


def rshift(a: Any, b: Any) -> Any:
    """`a >> b`."""
    return a >> b


def bit_or(a: Any, b: Any) -> Any:
    """`a | b` (ints, bools, sets, dicts)."""
    return a | b


def bit_and(a: Any, b: Any) -> Any:
    """`a & b`."""
    return a & b


def bit_xor(a: Any, b: Any) -> Any:
    """`a ^ b`."""
    return a ^ b


def lt(a: Any, b: Any) -> Any:
    """`a < b`; False when the values cannot be ordered (None, mixed types), as in Aim."""
    try:
        return a < b
    except TypeError:
        return False


def le(a: Any, b: Any) -> Any:
    """`a <= b`, False when the values cannot be ordered."""
    try:
        return a <= b
    except TypeError:
        return False


def gt(a: Any, b: Any) -> Any:
    """`a > b`, False when the values cannot be ordered."""
    try:
        return a > b
    except TypeError:
        return False


def ge(a: Any, b: Any) -> Any:
    """`a >= b`, False when the values cannot be ordered."""
    try:
        return a >= b
    except TypeError:
        return False


def is_(a: Any, b: Any) -> bool:
    """`a is b`, where SafeNone counts as None (`run.missing is None` is True)."""
    return (None if a is SafeNone else a) is (None if b is SafeNone else b)


def is_not(a: Any, b: Any) -> bool:
    """`a is not b`, where SafeNone counts as None."""
    return (None if a is SafeNone else a) is not (None if b is SafeNone else b)


def is_in(item: Any, container: Any) -> bool:
    """`item in container`; a container that only has `__getitem__` is refused (its legacy
    iteration may never end)."""
    kind = type(container)
    if not (hasattr(kind, "__contains__") or hasattr(kind, "__iter__")):
        raise TypeError(f"{kind.__name__!r} value does not support 'in' in queries")
    return item in container


def not_in(item: Any, container: Any) -> bool:
    """`item not in container`."""
    return not is_in(item, container)


# --------------------------------------------------------------------------- attributes, items

_DATETIME_ATTRS: Final = frozenset(
    {"year", "month", "day", "hour", "minute", "second", "microsecond"}
)
_DATE_ATTRS: Final = frozenset({"year", "month", "day"})
_TIMEDELTA_ATTRS: Final = frozenset({"days", "seconds", "microseconds"})


def get_attr(obj: Any, name: str) -> Any:
    """`obj.name`: a QueryObject's `query_attr`, a dict key, or an allowed datetime field."""
    if type(obj) is dict:
        return obj.get(name, SafeNone)
    query_attr = getattr(obj, "query_attr", None)
    if query_attr is not None:
        return query_attr(name)
    if isinstance(obj, Mapping):
        try:
            return obj[name]
        except KeyError:
            return SafeNone
    if isinstance(obj, _dt.datetime):
        allowed = _DATETIME_ATTRS
    elif isinstance(obj, _dt.date):
        allowed = _DATE_ATTRS
    elif isinstance(obj, _dt.timedelta):
        allowed = _TIMEDELTA_ATTRS
    else:
        allowed = frozenset()
    if name in allowed:
        return getattr(obj, name)
    raise AttributeError(f"{type(obj).__name__!r} value has no attribute {name!r} in queries")


def _mapping_item(obj: Mapping[Any, Any], key: Any) -> Any:
    try:
        return obj[key]
    except KeyError:
        if type(key) is tuple and key:
            value: Any = obj
            for part in key:
                value = get_item(value, part)
            return value
        return SafeNone


def get_item(obj: Any, key: Any) -> Any:
    """`obj[key]`: a QueryObject's `query_item`, a dict lookup (missing: SafeNone; a tuple key
    that is not itself a key walks nested dicts), or list/tuple/str indexing and slicing."""
    if type(obj) is dict:
        return _mapping_item(obj, key)
    query_item = getattr(obj, "query_item", None)
    if query_item is not None:
        return query_item(key)
    if isinstance(obj, Mapping):
        return _mapping_item(obj, key)
    if _is_sequence(obj):
        value = obj[key]
        if isinstance(key, slice):
            charge(len(value))
        return value
    raise TypeError(f"{type(obj).__name__!r} value is not subscriptable in queries")


# --------------------------------------------------------------------------- methods

STR_METHODS: Final = frozenset(
    {
        "startswith", "endswith", "lower", "upper", "strip", "lstrip", "rstrip", "split",
        "rsplit", "replace", "find", "rfind", "count", "isdigit", "isalpha", "isalnum",
        "isspace", "title", "capitalize", "casefold", "join", "zfill", "partition", "rpartition",
    }
)  # fmt: skip
SEQUENCE_METHODS: Final = frozenset({"count", "index"})
DICT_METHODS: Final = frozenset({"get", "keys", "values", "items"})
DATETIME_METHODS: Final = frozenset({"strftime", "timestamp", "date", "weekday", "isoformat"})
DATE_METHODS: Final = frozenset({"strftime", "weekday", "isoformat"})
TIMEDELTA_METHODS: Final = frozenset({"total_seconds"})
QUERY_OBJECT_METHODS: Final = frozenset({"get"})
METHOD_NAMES: Final = (
    STR_METHODS
    | SEQUENCE_METHODS
    | DICT_METHODS
    | DATETIME_METHODS
    | DATE_METHODS
    | TIMEDELTA_METHODS
    | QUERY_OBJECT_METHODS
)


def _str_join(sep: str, items: Any) -> str:
    parts = list(_iterable(items))
    size = len(sep) * max(len(parts) - 1, 0)
    size += sum(len(part) for part in parts if isinstance(part, str))
    if size > MAX_VALUE_SIZE:
        raise _too_large("str.join()", size)
    return sep.join(parts)


def _check_replace(text: str, args: tuple[Any, ...]) -> None:
    if len(args) < 2 or not isinstance(args[0], str) or not isinstance(args[1], str):
        return
    old, new = args[0], args[1]
    if len(new) <= len(old):
        return
    hits = text.count(old)
    if len(args) > 2 and isinstance(args[2], int) and args[2] >= 0:
        hits = min(hits, args[2])
    size = len(text) + hits * (len(new) - len(old))
    if size > MAX_VALUE_SIZE:
        raise _too_large("str.replace()", size)


def _call_str_method(text: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if name not in STR_METHODS:
        raise _no_method(text, name)
    if name == "join" and len(args) == 1 and not kwargs:
        result: Any = _str_join(text, args[0])
    else:
        if name == "replace":
            _check_replace(text, args)
        elif name == "zfill" and args and operator.index(args[0]) > MAX_VALUE_SIZE:
            raise _too_large("str.zfill()", operator.index(args[0]))
        result = getattr(text, name)(*args, **kwargs)
    if isinstance(result, str):
        charge(len(result))
    elif isinstance(result, _LIST_TYPES):
        charge(len(text) + len(result))
    return result


def _call_datetime_method(
    value: _dt.date | _dt.timedelta, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    if isinstance(value, _dt.datetime):
        allowed = DATETIME_METHODS
    elif isinstance(value, _dt.date):
        allowed = DATE_METHODS
    else:
        allowed = TIMEDELTA_METHODS
    if name not in allowed:
        raise _no_method(value, name)
    if name == "strftime":
        fmt = args[0] if args else kwargs.get("format")
        if isinstance(fmt, str) and len(fmt) > MAX_STRFTIME_FORMAT:
            raise QueryError(
                f"query refused: strftime() format longer than {MAX_STRFTIME_FORMAT} characters"
            )
    return getattr(value, name)(*args, **kwargs)


def _query_object_get(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    def get(key: Any, default: Any = None) -> Any:
        value = obj.query_item(key)
        return default if value is SafeNone else value

    return get(*args, **kwargs)


def _no_method(obj: object, name: str) -> TypeError:
    return TypeError(f"{type(obj).__name__!r} value has no method {name!r} usable in queries")


def call_method(obj: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """`obj.name(*args, **kwargs)` for the allow-listed methods of str, list/tuple, dict,
    datetime/date/timedelta and `get` on a QueryObject; on SafeNone the result is SafeNone."""
    if obj is SafeNone:
        return SafeNone
    if isinstance(obj, str):
        return _call_str_method(obj, name, args, kwargs)
    if isinstance(obj, _LIST_TYPES):
        if name not in SEQUENCE_METHODS:
            raise _no_method(obj, name)
        return getattr(obj, name)(*args, **kwargs)
    if isinstance(obj, Mapping):
        if name not in DICT_METHODS:
            raise _no_method(obj, name)
        return getattr(obj, name)(*args, **kwargs)
    if isinstance(obj, _DATETIME_TYPES):
        return _call_datetime_method(obj, name, args, kwargs)
    if name == "get" and getattr(obj, "query_item", None) is not None:
        return _query_object_get(obj, args, kwargs)
    raise _no_method(obj, name)


# --------------------------------------------------------------------------- builtin functions


def _len(value: Any, /) -> int:
    return len(value)


def _min(*args: Any, **kwargs: Any) -> Any:
    return min(_iterable(args[0]), **kwargs) if len(args) == 1 else min(*args, **kwargs)


def _max(*args: Any, **kwargs: Any) -> Any:
    return max(_iterable(args[0]), **kwargs) if len(args) == 1 else max(*args, **kwargs)


def _round(number: Any, ndigits: Any = None) -> Any:
    if ndigits is None:
        return round(number)
    if abs(operator.index(ndigits)) > MAX_ROUND_DIGITS:
        raise QueryError(f"query refused: round() to more than {MAX_ROUND_DIGITS} digits")
    return round(number, ndigits)


def _sum(values: Any, /, start: Any = 0) -> Any:
    if _is_sequence(start):
        raise TypeError("sum() adds numbers only in queries; use str.join() for strings")
    return check_int(sum(_iterable(values), start))


def _any(values: Any, /) -> bool:
    return any(_iterable(values))


def _all(values: Any, /) -> bool:
    return all(_iterable(values))


def _sorted(values: Any, /, *, reverse: bool = False) -> list[Any]:
    result = sorted(_iterable(values), reverse=reverse)
    charge(len(result))
    return result


def _int(value: Any = 0, /, base: Any = None) -> int:
    result = int(value) if base is None else int(value, base)
    check_int(result)
    return result


def _float(value: Any = 0.0, /) -> float:
    return float(value)


def _str(value: Any = "", /) -> str:
    if not isinstance(value, str) and weight(value, MAX_VALUE_SIZE) > MAX_VALUE_SIZE:
        raise _too_large("str()", MAX_VALUE_SIZE + 1)
    result = str(value)
    if len(result) > MAX_VALUE_SIZE:
        raise _too_large("str()", len(result))
    charge(len(result))
    return result


def _bool(value: Any = False, /) -> bool:
    return bool(value)


def _list(values: Any = (), /) -> list[Any]:
    result = list(_iterable(values))
    charge(len(result))
    return result


def _tuple(values: Any = (), /) -> tuple[Any, ...]:
    return tuple(_list(values))


def _set(values: Any = (), /) -> set[Any]:
    result = set(_iterable(values))
    charge(len(result))
    return result


def _datetime(*args: Any, **kwargs: Any) -> _dt.datetime:
    return _dt.datetime(*args, **kwargs)


def _timedelta(*args: Any, **kwargs: Any) -> _dt.timedelta:
    return _dt.timedelta(*args, **kwargs)


def _now(tz: Any = None) -> _dt.datetime:
    """Local time, naive; `datetime.now(timezone.utc)`: UTC, aware."""
    return _dt.datetime.now(tz)


def _utcnow() -> _dt.datetime:
    """UTC now, naive (compares with `run.created_at`, which is naive UTC)."""
    return _dt.datetime.now(_dt.UTC).replace(tzinfo=None)


def _fromtimestamp(timestamp: Any, tz: Any = None, /) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(timestamp, tz)


def _fromisoformat(text: Any, /) -> _dt.datetime:
    return _dt.datetime.fromisoformat(text)


class Builtin(NamedTuple):
    """A function a query may call: the implementation, its allowed keyword arguments, and
    whether it is pure (same arguments, same result), which lets the compiler fold it."""

    function: Callable[..., Any]
    keywords: frozenset[str] = frozenset()
    is_pure: bool = True


_DATETIME_FIELDS: Final = frozenset(
    {"year", "month", "day", "hour", "minute", "second", "microsecond", "fold", "tzinfo"}
)
_TIMEDELTA_FIELDS: Final = frozenset(
    {"days", "seconds", "microseconds", "milliseconds", "minutes", "hours", "weeks"}
)

BUILTIN_FUNCTIONS: Final[Mapping[str, Builtin]] = {
    "len": Builtin(_len),
    "abs": Builtin(abs),
    "min": Builtin(_min, frozenset({"default"})),
    "max": Builtin(_max, frozenset({"default"})),
    "round": Builtin(_round, frozenset({"ndigits"})),
    "sum": Builtin(_sum, frozenset({"start"})),
    "any": Builtin(_any),
    "all": Builtin(_all),
    "sorted": Builtin(_sorted, frozenset({"reverse"})),
    "int": Builtin(_int, frozenset({"base"})),
    "float": Builtin(_float),
    "str": Builtin(_str),
    "bool": Builtin(_bool),
    "list": Builtin(_list),
    "tuple": Builtin(_tuple),
    "set": Builtin(_set),
    "datetime": Builtin(_datetime, _DATETIME_FIELDS),
    "timedelta": Builtin(_timedelta, _TIMEDELTA_FIELDS),
}
"""Functions callable by name: `len(run.tags)`, `datetime(2022, 2, 2)`, `timedelta(days=7)`
(and `isinstance(x, T)`, compiled by `aim_parquet.query.comprehensions`)."""

UTC_TIMEZONE: Final = _dt.UTC
"""`timezone.utc`, the one time zone a query can name (for `datetime.now(timezone.utc)`)."""

DATETIME_CLASS_METHODS: Final[Mapping[str, Builtin]] = {
    "now": Builtin(_now, frozenset({"tz"}), is_pure=False),
    "utcnow": Builtin(_utcnow, is_pure=False),
    "fromtimestamp": Builtin(_fromtimestamp),
    "fromisoformat": Builtin(_fromisoformat),
}
"""Functions callable as `datetime.<name>(...)`."""


def join_names(values: Iterable[str]) -> str:
    """`values` sorted and joined for an error message."""
    return ", ".join(sorted(values))
