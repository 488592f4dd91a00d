"""Comprehensions, generator expressions and `isinstance` in AimQL, within the interpreter's rules.

    any(t.startswith("exp") for t in run.tags)
    [k for k, v in run.hparams.items() if v is None]
    {c for c in metric.context.values()}
    isinstance(run.hparams.lr, (int, float))

A loop variable is a plain name (or a tuple of them): not starting with `_`, not shadowing a
query variable (`run`, `metric`, ...), a callable builtin or `datetime`/`timezone`. Every step of
every loop spends `LOOP_STEP_COST` units of the evaluation's size budget
(`aim_parquet.query.runtime.MAX_EVAL_SIZE`), so nested loops over large values are refused like
any other oversized query; a built list/set/dict is charged its length too. `async` loops are
refused. Comprehensions are never folded into constants (a generator can be consumed once).

`isinstance(x, T)` takes T from a fixed table of names (`int`, `float`, `str`, `bool`, `list`,
`tuple`, `dict`, `set`, `bytes`, `datetime`, `timedelta`) or a tuple of them; any other second
argument is refused when the query is compiled.
"""

from __future__ import annotations

import ast
import datetime as _dt
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final, Protocol

from aim_parquet.errors import QueryError
from aim_parquet.query import runtime as rt

Env = Mapping[str, Any]


class QueryCompiler(Protocol):
    """What these functions need of the query compiler (`query.compiler.Compiler`), kept as a
    protocol so that this module does not import the compiler back."""

    allowed_names: frozenset[str]
    local_names: set[str]

    def error(self, node: ast.AST, message: str) -> QueryError: ...

    def compile(self, node: ast.AST) -> Any: ...


_Fn = Callable[[Env], Any]
_Bind = Callable[[Env, Any], Env]

LOOP_STEP_COST: Final = 10
"""Budget units one loop step costs: at most MAX_EVAL_SIZE / 10 (1,000,000) steps per evaluation."""
MAX_LOOP_STEPS: Final = rt.MAX_EVAL_SIZE // LOOP_STEP_COST

ISINSTANCE_TYPES: Final[Mapping[str, type]] = {
    "int": int,
    "float": float,
    "str": str,
    "bool": bool,
    "list": list,
    "tuple": tuple,
    "dict": dict,
    "set": set,
    "bytes": bytes,
    "datetime": _dt.datetime,
    "timedelta": _dt.timedelta,
}
RESERVED_NAMES: Final = frozenset({"datetime", "timezone", "isinstance"})


def _loop_steps(generators: list[tuple[_Fn, _Bind, list[_Fn]]], env: Env) -> Iterator[Env]:
    """The environment of each innermost loop step that passes every `if`."""
    if not generators:
        yield env
        return
    (iter_fn, bind, conditions), rest = generators[0], generators[1:]
    budget = rt.BUDGET
    for item in rt.iterate(iter_fn(env)):
        if budget.left < LOOP_STEP_COST:
            raise QueryError(
                f"query refused: its loops take more than {MAX_LOOP_STEPS:,} steps in one "
                "evaluation; loop over smaller values"
            )
        budget.left -= LOOP_STEP_COST
        inner = bind(env, item)
        if all(condition(inner) for condition in conditions):
            yield from _loop_steps(rest, inner)


def _binder(compiler: QueryCompiler, target: ast.expr, names: set[str]) -> _Bind:
    """How a loop target binds one item: a name, or a tuple of targets unpacking it."""
    if isinstance(target, ast.Name):
        name = target.id
        if (
            name.startswith("_")
            or name in compiler.allowed_names
            or name in rt.BUILTIN_FUNCTIONS
            or name in RESERVED_NAMES
        ):
            raise compiler.error(target, f"{name!r} cannot be a loop variable in queries")
        names.add(name)
        return lambda env, item: {**env, name: item}
    if isinstance(target, ast.Tuple | ast.List):
        parts = [_binder(compiler, elt, names) for elt in target.elts]
        count = len(parts)

        def unpack(env: Env, item: Any) -> Env:
            values = tuple(rt.iterate(item))
            if len(values) != count:
                raise ValueError(f"cannot unpack {len(values)} values into {count} names")
            for part, value in zip(parts, values, strict=True):
                env = part(env, value)
            return env

        return unpack
    raise compiler.error(target, "a loop variable in a query is a name or a tuple of names")


def compile_comprehension(compiler: QueryCompiler, node: ast.expr) -> _Fn:
    """A closure for a list/set/dict comprehension or a generator expression."""
    assert isinstance(node, ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp)
    saved = set(compiler.local_names)
    generators: list[tuple[_Fn, _Bind, list[_Fn]]] = []
    try:
        for gen in node.generators:
            if gen.is_async:
                raise compiler.error(node, "async comprehensions are not allowed in queries")
            iter_fn = compiler.compile(gen.iter).fn
            names: set[str] = set()
            bind = _binder(compiler, gen.target, names)
            compiler.local_names |= names
            conditions = [compiler.compile(cond).fn for cond in gen.ifs]
            generators.append((iter_fn, bind, conditions))
        if isinstance(node, ast.DictComp):
            key_fn, value_fn = compiler.compile(node.key).fn, compiler.compile(node.value).fn
        else:
            elt_fn = compiler.compile(node.elt).fn
    finally:
        compiler.local_names = saved
    if isinstance(node, ast.GeneratorExp):
        return lambda env: (elt_fn(e) for e in _loop_steps(generators, env))
    if isinstance(node, ast.ListComp):
        return lambda env: _charged([elt_fn(e) for e in _loop_steps(generators, env)])
    if isinstance(node, ast.SetComp):
        return lambda env: _charged({elt_fn(e) for e in _loop_steps(generators, env)})
    return lambda env: _charged({key_fn(e): value_fn(e) for e in _loop_steps(generators, env)})


def _charged(value: Any) -> Any:
    rt.charge(len(value))
    return value


def compile_isinstance(
    compiler: QueryCompiler, node: ast.Call
) -> tuple[_Fn, type | tuple[type, ...]]:
    """The closure of the value checked, and the type(s) from the table, of `isinstance(x, T)`."""
    if len(node.args) != 2 or node.keywords:
        raise compiler.error(node, "isinstance() takes a value and a type (or a tuple of types)")
    spec = node.args[1]
    elts = spec.elts if isinstance(spec, ast.Tuple) else [spec]
    types = []
    for elt in elts:
        if not isinstance(elt, ast.Name) or elt.id not in ISINSTANCE_TYPES:
            allowed = rt.join_names(ISINSTANCE_TYPES)
            raise compiler.error(elt, f"isinstance() checks one of {allowed} (or a tuple of them)")
        types.append(ISINSTANCE_TYPES[elt.id])
    value_fn = compiler.compile(node.args[0]).fn
    return value_fn, tuple(types) if isinstance(spec, ast.Tuple) else types[0]
