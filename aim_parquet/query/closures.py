"""The pieces a compiled query is made of: closures over an environment (`Fn`), a compiled node
that may have folded to a constant (`Code`), a top-level `and` operand (`Conjunct`), the `and` /
`or` closures, and the tables from an operator's syntax node to the function it calls."""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, NamedTuple

from aim_parquet.query import runtime as rt

__all__ = [
    "BINARY", "COMPARE", "NOT_CONSTANT", "UNARY", "Code", "Conjunct", "Env", "Fn", "all_of",
    "any_of", "constant",
]  # fmt: skip

Env = Mapping[str, Any]
Fn = Callable[[Env], Any]

NOT_CONSTANT: Final = object()
"""`Code.value` of a node that did not fold to a constant."""

BINARY: Final[Mapping[type[ast.operator], Callable[[Any, Any], Any]]] = {
    ast.Add: rt.add,
    ast.Sub: rt.sub,
    ast.Mult: rt.mul,
    ast.Div: rt.truediv,
    ast.FloorDiv: rt.floordiv,
    ast.Mod: rt.mod,
    ast.Pow: rt.power,
    ast.LShift: rt.lshift,
    ast.RShift: rt.rshift,
    ast.BitOr: rt.bit_or,
    ast.BitAnd: rt.bit_and,
    ast.BitXor: rt.bit_xor,
}
UNARY: Final[Mapping[type[ast.unaryop], Callable[[Any], Any]]] = {
    ast.Not: operator.not_,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
    ast.Invert: operator.invert,
}
COMPARE: Final[Mapping[type[ast.cmpop], Callable[[Any, Any], Any]]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: rt.lt,
    ast.LtE: rt.le,
    ast.Gt: rt.gt,
    ast.GtE: rt.ge,
    ast.Is: rt.is_,
    ast.IsNot: rt.is_not,
    ast.In: rt.is_in,
    ast.NotIn: rt.not_in,
}


class Code(NamedTuple):
    """A compiled node: its closure and, when it folded to a constant, the constant's value."""

    fn: Fn
    value: Any = NOT_CONSTANT


def constant(value: Any) -> Code:
    return Code(lambda env: value, value)


class Conjunct(NamedTuple):
    """One top-level `and` operand: the planner splits a query along these."""

    fn: Fn
    names: frozenset[str]
    node: ast.expr


def all_of(fns: Sequence[Fn]) -> Fn:
    """A closure that is the `and` of `fns` (True for none)."""
    if not fns:
        return lambda env: True
    if len(fns) == 1:
        return fns[0]
    if len(fns) == 2:
        first, second = fns
        return lambda env: first(env) and second(env)
    if len(fns) == 3:
        first, second, third = fns
        return lambda env: first(env) and second(env) and third(env)

    def every(env: Env) -> Any:
        value: Any = True
        for fn in fns:
            value = fn(env)
            if not value:
                return value
        return value

    return every


def any_of(fns: Sequence[Fn]) -> Fn:
    """A closure that is the `or` of `fns`."""
    if len(fns) == 2:
        first, second = fns
        return lambda env: first(env) or second(env)

    def some(env: Env) -> Any:
        value: Any = False
        for fn in fns:
            value = fn(env)
            if value:
                return value
        return value

    return some
