"""The values and operations an AimQL query may use at run time: the operators and attribute
and item access here; the values and their size budget in `query.safe_values`; the methods and
builtin functions in `query.calls` (all of them importable from here, the one name the compiled
closures use).

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
from collections.abc import Mapping
from typing import Any, Final

from aim_parquet.errors import QueryError
from aim_parquet.query.calls import (
    BUILTIN_FUNCTIONS,
    DATE_METHODS,
    DATETIME_CLASS_METHODS,
    DATETIME_METHODS,
    DICT_METHODS,
    METHOD_NAMES,
    QUERY_OBJECT_METHODS,
    SEQUENCE_METHODS,
    STR_METHODS,
    TIMEDELTA_METHODS,
    UTC_TIMEZONE,
    Builtin,
    call_method,
    join_names,
)
from aim_parquet.query.safe_values import (
    BUDGET,
    COLLECTION_TYPES,
    DATETIME_TYPES,
    LIST_TYPES,
    MAX_EVAL_SIZE,
    MAX_INT_BITS,
    MAX_ROUND_DIGITS,
    MAX_STRFTIME_FORMAT,
    MAX_VALUE_SIZE,
    SEQUENCE_TYPES,
    TEXT_TYPES,
    QueryObject,
    SafeNone,
    charge,
    check_int,
    is_sequence,
    iterable,
    iterate,
    too_large,
    weight,
)

__all__ = [
    "BUDGET",
    "BUILTIN_FUNCTIONS",
    "Builtin",
    "COLLECTION_TYPES",
    "DATETIME_CLASS_METHODS",
    "DATETIME_METHODS",
    "DATETIME_TYPES",
    "DATE_METHODS",
    "DICT_METHODS",
    "LIST_TYPES",
    "MAX_EVAL_SIZE",
    "MAX_INT_BITS",
    "MAX_ROUND_DIGITS",
    "MAX_STRFTIME_FORMAT",
    "MAX_VALUE_SIZE",
    "METHOD_NAMES",
    "QUERY_OBJECT_METHODS",
    "QueryObject",
    "SEQUENCE_METHODS",
    "SEQUENCE_TYPES",
    "STR_METHODS",
    "SafeNone",
    "TEXT_TYPES",
    "TIMEDELTA_METHODS",
    "UTC_TIMEZONE",
    "add",
    "bit_and",
    "bit_or",
    "bit_xor",
    "call_method",
    "charge",
    "check_int",
    "floordiv",
    "ge",
    "get_attr",
    "get_item",
    "gt",
    "is_",
    "is_in",
    "is_not",
    "is_sequence",
    "iterable",
    "iterate",
    "join_names",
    "le",
    "lshift",
    "lt",
    "mod",
    "mul",
    "not_in",
    "power",
    "rshift",
    "sub",
    "too_large",
    "truediv",
    "weight",
]

# --------------------------------------------------------------------------- operators

_NUMBERS: Final = frozenset({int, float, bool})


def add(a: Any, b: Any) -> Any:
    """`a + b`, refusing a concatenation longer than MAX_VALUE_SIZE."""
    if type(a) in _NUMBERS and type(b) in _NUMBERS:
        return check_int(a + b)
    if is_sequence(a) and is_sequence(b):
        size = len(a) + len(b)
        if size > MAX_VALUE_SIZE:
            raise too_large("a concatenation", size)
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
            raise too_large("a repetition", size)
        charge(size)
    return sequence * count


def mul(a: Any, b: Any) -> Any:
    """`a * b`, refusing a repetition larger than MAX_VALUE_SIZE and ints over MAX_INT_BITS."""
    if type(a) in _NUMBERS and type(b) in _NUMBERS:
        return check_int(a * b)
    if is_sequence(a):
        return _repeat(a, b)
    if is_sequence(b):
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
    if isinstance(a, TEXT_TYPES):
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
    if is_sequence(obj):
        value = obj[key]
        if isinstance(key, slice):
            charge(len(value))
        return value
    raise TypeError(f"{type(obj).__name__!r} value is not subscriptable in queries")
