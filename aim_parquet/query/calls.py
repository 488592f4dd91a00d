"""The calls a query may make (part of `aim_parquet.query.runtime`): the allow-listed methods of
str, list/tuple, dict, datetime/date/timedelta and QueryObject (`call_method`), and the builtin
functions callable by name (`BUILTIN_FUNCTIONS`, `DATETIME_CLASS_METHODS`)."""

from __future__ import annotations

import datetime as _dt
import operator
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, NamedTuple

from aim_parquet.errors import QueryError
from aim_parquet.query.safe_values import (
    DATETIME_TYPES,
    LIST_TYPES,
    MAX_ROUND_DIGITS,
    MAX_STRFTIME_FORMAT,
    MAX_VALUE_SIZE,
    SafeNone,
    charge,
    check_int,
    is_sequence,
    iterable,
    too_large,
    weight,
)

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
    parts = list(iterable(items))
    size = len(sep) * max(len(parts) - 1, 0)
    size += sum(len(part) for part in parts if isinstance(part, str))
    if size > MAX_VALUE_SIZE:
        raise too_large("str.join()", size)
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
        raise too_large("str.replace()", size)


def _call_str_method(text: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if name not in STR_METHODS:
        raise _no_method(text, name)
    if name == "join" and len(args) == 1 and not kwargs:
        result: Any = _str_join(text, args[0])
    else:
        if name == "replace":
            _check_replace(text, args)
        elif name == "zfill" and args and operator.index(args[0]) > MAX_VALUE_SIZE:
            raise too_large("str.zfill()", operator.index(args[0]))
        result = getattr(text, name)(*args, **kwargs)
    if isinstance(result, str):
        charge(len(result))
    elif isinstance(result, LIST_TYPES):
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
    if isinstance(obj, LIST_TYPES):
        if name not in SEQUENCE_METHODS:
            raise _no_method(obj, name)
        return getattr(obj, name)(*args, **kwargs)
    if isinstance(obj, Mapping):
        if name not in DICT_METHODS:
            raise _no_method(obj, name)
        return getattr(obj, name)(*args, **kwargs)
    if isinstance(obj, DATETIME_TYPES):
        return _call_datetime_method(obj, name, args, kwargs)
    if name == "get" and getattr(obj, "query_item", None) is not None:
        return _query_object_get(obj, args, kwargs)
    raise _no_method(obj, name)


# --------------------------------------------------------------------------- builtin functions


def _len(value: Any, /) -> int:
    return len(value)


def _min(*args: Any, **kwargs: Any) -> Any:
    return min(iterable(args[0]), **kwargs) if len(args) == 1 else min(*args, **kwargs)


def _max(*args: Any, **kwargs: Any) -> Any:
    return max(iterable(args[0]), **kwargs) if len(args) == 1 else max(*args, **kwargs)


def _round(number: Any, ndigits: Any = None) -> Any:
    if ndigits is None:
        return round(number)
    if abs(operator.index(ndigits)) > MAX_ROUND_DIGITS:
        raise QueryError(f"query refused: round() to more than {MAX_ROUND_DIGITS} digits")
    return round(number, ndigits)


def _sum(values: Any, /, start: Any = 0) -> Any:
    if is_sequence(start):
        raise TypeError("sum() adds numbers only in queries; use str.join() for strings")
    return check_int(sum(iterable(values), start))


def _any(values: Any, /) -> bool:
    return any(iterable(values))


def _all(values: Any, /) -> bool:
    return all(iterable(values))


def _sorted(values: Any, /, *, reverse: bool = False) -> list[Any]:
    result = sorted(iterable(values), reverse=reverse)
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
        raise too_large("str()", MAX_VALUE_SIZE + 1)
    result = str(value)
    if len(result) > MAX_VALUE_SIZE:
        raise too_large("str()", len(result))
    charge(len(result))
    return result


def _bool(value: Any = False, /) -> bool:
    return bool(value)


def _list(values: Any = (), /) -> list[Any]:
    result = list(iterable(values))
    charge(len(result))
    return result


def _tuple(values: Any = (), /) -> tuple[Any, ...]:
    return tuple(_list(values))


def _set(values: Any = (), /) -> set[Any]:
    result = set(iterable(values))
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
