"""The query compiler: a checked syntax tree to a tree of closures over an environment, under the
allow-lists of node types, names, attributes and calls, folding constant sub-expressions (the
values and operations the closures call live in `aim_parquet.query.runtime`)."""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, Final

from aim_parquet.errors import QueryError
from aim_parquet.query import comprehensions
from aim_parquet.query import runtime as rt
from aim_parquet.query.closures import (
    BINARY,
    COMPARE,
    NOT_CONSTANT,
    UNARY,
    Code,
    Conjunct,
    Env,
    Fn,
    all_of,
    any_of,
    constant,
)
from aim_parquet.query.syntax import located_error

__all__ = ["Compiler"]

_FOLD_KEEP_SIZE: Final = 256  # folded constants larger than this are rebuilt at each evaluation
_EMPTY_ENV: Final[Env] = MappingProxyType({})

_REFUSED: Final[Mapping[type[ast.AST], str]] = {
    ast.Lambda: "lambda expressions",
    ast.JoinedStr: "f-strings",
    ast.FormattedValue: "f-strings",
    ast.NamedExpr: "assignment expressions (:=)",
    ast.Starred: "starred expressions (*x)",
    ast.Await: "await expressions",
    ast.Yield: "yield expressions",
    ast.YieldFrom: "yield expressions",
}


class Compiler:
    """Turns checked AST nodes into closures, folding constant sub-expressions."""

    def __init__(self, text: str, source: str, shift: int, allowed_names: frozenset[str]) -> None:
        self.text = text
        self.source = source
        self.shift = shift
        self.allowed_names = allowed_names
        self.names: set[str] = set()
        self.local_names: set[str] = set()  # loop variables of the comprehensions compiled now

    def conjunct(self, node: ast.expr) -> Conjunct:
        self.names = set()
        code = self.compile(node)
        return Conjunct(code.fn, frozenset(self.names), node)

    def error(self, node: ast.AST, message: str) -> QueryError:
        return located_error(self.text, self.source, self.shift, node, message)

    def compile(self, node: ast.AST) -> Code:
        refused = _REFUSED.get(type(node))
        if refused is not None:
            raise self.error(node, f"{refused} are not allowed in queries")
        handler = _HANDLERS.get(type(node))
        if handler is None:
            raise self.error(node, f"{type(node).__name__} expressions are not allowed in queries")
        return handler(self, node)

    def _fold(self, node: ast.AST, fn: Fn, parts: Iterable[Code], *, is_pure: bool = True) -> Code:
        """`fn`, or its value when every part is constant (a limit error surfaces here, at compile
        time; any other error is left for evaluation, where it makes a non-match)."""
        if not is_pure or any(part.value is NOT_CONSTANT for part in parts):
            return Code(fn)
        try:
            value = fn(_EMPTY_ENV)
        except QueryError as exc:
            raise self.error(node, str(exc)) from None
        except Exception:
            return Code(fn)
        if rt.weight(value, _FOLD_KEEP_SIZE) > _FOLD_KEEP_SIZE:
            return Code(fn)
        return constant(value)

    def _compile_constant(self, node: ast.Constant) -> Code:
        value = node.value
        if isinstance(value, int) and value.bit_length() > rt.MAX_INT_BITS:
            raise self.error(node, f"integer literals are limited to {rt.MAX_INT_BITS:,} bits")
        if value is not None and not isinstance(value, bool | int | float | str | bytes):
            raise self.error(node, f"{type(value).__name__} literals are not supported in queries")
        return constant(value)

    def _compile_name(self, node: ast.Name) -> Code:
        name = node.id
        if name in self.local_names:
            return Code(operator.itemgetter(name))
        if name in self.allowed_names:
            self.names.add(name)
            return Code(operator.itemgetter(name))
        if name == "timezone":
            raise self.error(node, "timezone can only be used as timezone.utc")
        if name in rt.BUILTIN_FUNCTIONS:
            raise self.error(node, f"the function {name!r} can only be called, as in {name}(...)")
        if name.startswith("_"):
            raise self.error(node, f"names starting with '_' are not allowed in queries: {name!r}")
        raise self.error(
            node,
            f"unknown name {name!r}; a query can use {rt.join_names(self.allowed_names)} "
            f"and call {rt.join_names(rt.BUILTIN_FUNCTIONS)}",
        )

    def _check_attribute(self, node: ast.Attribute) -> None:
        if node.attr.startswith("_"):
            raise self.error(
                node, f"attributes starting with '_' are not allowed in queries: {node.attr!r}"
            )

    def _is_datetime_class(self, node: ast.expr) -> bool:
        return self._is_class(node, "datetime")

    def _is_class(self, node: ast.expr, name: str) -> bool:
        return (
            isinstance(node, ast.Name)
            and node.id == name
            and name not in self.allowed_names
            and name not in self.local_names
        )

    def _compile_attribute(self, node: ast.Attribute) -> Code:
        self._check_attribute(node)
        if self._is_class(node.value, "timezone"):
            if node.attr != "utc":
                raise self.error(node, f"timezone.{node.attr} is not available; use timezone.utc")
            return constant(rt.UTC_TIMEZONE)
        if self._is_datetime_class(node.value):
            raise self.error(node, f"datetime.{node.attr} is not available; call datetime(...)")
        obj = self.compile(node.value)
        get, name, obj_fn = rt.get_attr, node.attr, obj.fn
        root = node.value
        if isinstance(root, ast.Name) and root.id in self.allowed_names:  # `run.x`: one call
            var = root.id
            return Code(lambda env: get(env[var], name))
        if (
            isinstance(root, ast.Attribute)
            and isinstance(root.value, ast.Name)
            and root.value.id in self.allowed_names
        ):  # `run.x.y`: one call
            var, first = root.value.id, root.attr
            return Code(lambda env: get(get(env[var], first), name))
        return self._fold(node, lambda env: get(obj_fn(env), name), [obj])

    def _compile_subscript(self, node: ast.Subscript) -> Code:
        obj, key = self.compile(node.value), self.compile(node.slice)
        get, obj_fn, key_fn, key_value = rt.get_item, obj.fn, key.fn, key.value
        if key_value is NOT_CONSTANT:
            return self._fold(node, lambda env: get(obj_fn(env), key_fn(env)), [obj, key])
        return self._fold(node, lambda env: get(obj_fn(env), key_value), [obj, key])

    def _compile_slice(self, node: ast.Slice) -> Code:
        parts = [
            self.compile(p) if p else constant(None) for p in (node.lower, node.upper, node.step)
        ]
        lower, upper, step = (p.fn for p in parts)
        return self._fold(node, lambda env: slice(lower(env), upper(env), step(env)), parts)

    def _elements(self, nodes: list[ast.expr]) -> tuple[list[Code], list[Fn]]:
        codes = [self.compile(n) for n in nodes]
        return codes, [c.fn for c in codes]

    def _compile_list(self, node: ast.List) -> Code:
        codes, fns = self._elements(node.elts)
        return self._fold(node, lambda env: [fn(env) for fn in fns], codes)

    def _compile_tuple(self, node: ast.Tuple) -> Code:
        codes, fns = self._elements(node.elts)
        return self._fold(node, lambda env: tuple([fn(env) for fn in fns]), codes)

    def _compile_set(self, node: ast.Set) -> Code:
        codes, fns = self._elements(node.elts)
        return self._fold(node, lambda env: {fn(env) for fn in fns}, codes)

    def _compile_dict(self, node: ast.Dict) -> Code:
        if any(key is None for key in node.keys):
            raise self.error(node, "dict unpacking (**) is not allowed in queries")
        keys, key_fns = self._elements([key for key in node.keys if key is not None])
        values, value_fns = self._elements(node.values)
        pairs = list(zip(key_fns, value_fns, strict=True))
        return self._fold(node, lambda env: {k(env): v(env) for k, v in pairs}, keys + values)

    def _compile_bool_op(self, node: ast.BoolOp) -> Code:
        codes, fns = self._elements(node.values)
        fn = all_of(fns) if isinstance(node.op, ast.And) else any_of(fns)
        return self._fold(node, fn, codes)

    def _compile_bin_op(self, node: ast.BinOp) -> Code:
        op = BINARY.get(type(node.op))
        if op is None:
            raise self.error(node, "the @ operator is not supported in queries")
        left, right = self.compile(node.left), self.compile(node.right)
        left_fn, right_fn, right_value = left.fn, right.fn, right.value
        if right_value is NOT_CONSTANT:
            return self._fold(node, lambda env: op(left_fn(env), right_fn(env)), [left, right])
        return self._fold(node, lambda env: op(left_fn(env), right_value), [left, right])

    def _compile_unary_op(self, node: ast.UnaryOp) -> Code:
        op, operand = UNARY[type(node.op)], self.compile(node.operand)
        operand_fn = operand.fn
        return self._fold(node, lambda env: op(operand_fn(env)), [operand])

    def _compile_if_exp(self, node: ast.IfExp) -> Code:
        codes, (test, body, orelse) = self._elements([node.test, node.body, node.orelse])
        return self._fold(node, lambda env: body(env) if test(env) else orelse(env), codes)

    def _compile_compare(self, node: ast.Compare) -> Code:
        left = self.compile(node.left)
        codes, fns = self._elements(node.comparators)
        ops = [COMPARE[type(op)] for op in node.ops]
        left_fn = left.fn
        if len(ops) == 1:
            op, right_fn, right_value = ops[0], fns[0], codes[0].value
            if right_value is NOT_CONSTANT:
                fn: Fn = lambda env: op(left_fn(env), right_fn(env))  # noqa: E731
            elif op is operator.eq:
                fn = lambda env: left_fn(env) == right_value  # noqa: E731
            else:
                fn = lambda env: op(left_fn(env), right_value)  # noqa: E731
            return self._fold(node, fn, [left, *codes])
        steps = list(zip(ops, fns, strict=True))

        def chain(env: Env) -> Any:
            a, result = left_fn(env), True
            for step_op, step_fn in steps:
                b = step_fn(env)
                result = step_op(a, b)
                if not result:
                    return result
                a = b
            return result

        return self._fold(node, chain, [left, *codes])

    def _compile_call(self, node: ast.Call) -> Code:
        func = node.func
        for keyword in node.keywords:
            if keyword.arg is None:
                raise self.error(node, "keyword unpacking (**) is not allowed in queries")
        if isinstance(func, ast.Name) and func.id == "isinstance":
            return self._call_isinstance(node)
        if isinstance(func, ast.Name) and func.id not in self.allowed_names:
            builtin = rt.BUILTIN_FUNCTIONS.get(func.id)
            if builtin is None:
                raise self.error(
                    func,
                    f"{func.id}() is not allowed in queries; the callable functions are "
                    f"{rt.join_names(rt.BUILTIN_FUNCTIONS)}",
                )
            return self._call_builtin(node, func.id, builtin)
        if not isinstance(func, ast.Attribute):
            self.compile(func)  # a refused construct (lambda ...) names itself
            raise self.error(func, "only the allowed functions and methods can be called")
        self._check_attribute(func)
        if self._is_datetime_class(func.value):
            builtin = rt.DATETIME_CLASS_METHODS.get(func.attr)
            if builtin is None:
                allowed = rt.join_names(rt.DATETIME_CLASS_METHODS)
                raise self.error(func, f"datetime.{func.attr}() is not allowed; use {allowed}")
            return self._call_builtin(node, f"datetime.{func.attr}", builtin)
        return self._call_method(node, func)

    def _call_isinstance(self, node: ast.Call) -> Code:
        value_fn, types = comprehensions.compile_isinstance(self, node)
        return Code(lambda env: isinstance(value_fn(env), types))

    def _compile_comprehension(self, node: ast.expr) -> Code:
        return Code(comprehensions.compile_comprehension(self, node))

    def _arguments(self, node: ast.Call) -> tuple[list[Code], list[Fn], list[tuple[str, Fn]]]:
        codes, fns = self._elements(node.args)
        keywords = [(k.arg or "", self.compile(k.value)) for k in node.keywords]
        return codes + [code for _, code in keywords], fns, [(k, c.fn) for k, c in keywords]

    def _call_builtin(self, node: ast.Call, name: str, builtin: rt.Builtin) -> Code:
        for keyword in node.keywords:
            if keyword.arg not in builtin.keywords:
                raise self.error(keyword, f"{name}() takes no keyword {keyword.arg!r} in queries")
        codes, fns, keywords = self._arguments(node)
        function = builtin.function
        if keywords:
            fn: Fn = lambda env: function(  # noqa: E731
                *[f(env) for f in fns], **{k: f(env) for k, f in keywords}
            )
        elif len(fns) == 1:
            only = fns[0]
            fn = lambda env: function(only(env))  # noqa: E731
        else:
            fn = lambda env: function(*[f(env) for f in fns])  # noqa: E731
        return self._fold(node, fn, codes, is_pure=builtin.is_pure)

    def _call_method(self, node: ast.Call, func: ast.Attribute) -> Code:
        name, obj = func.attr, self.compile(func.value)
        if name in ("format", "format_map"):
            raise self.error(func, f"str.{name}() is blocked in queries; compare the parts instead")
        if name not in rt.METHOD_NAMES:
            raise self.error(
                func,
                f"method {name!r} is not allowed in queries; the callable methods are "
                f"{rt.join_names(rt.METHOD_NAMES)}",
            )
        codes, fns, keywords = self._arguments(node)
        call, obj_fn = rt.call_method, obj.fn

        def method(env: Env) -> Any:
            target = obj_fn(env)
            args = tuple([f(env) for f in fns])
            return call(target, name, args, {k: f(env) for k, f in keywords})

        return self._fold(node, method, [obj, *codes])


_HANDLERS: Final[Mapping[type[ast.AST], Callable[[Compiler, Any], Code]]] = {
    ast.Constant: Compiler._compile_constant,
    ast.Name: Compiler._compile_name,
    ast.Attribute: Compiler._compile_attribute,
    ast.Subscript: Compiler._compile_subscript,
    ast.Slice: Compiler._compile_slice,
    ast.List: Compiler._compile_list,
    ast.Tuple: Compiler._compile_tuple,
    ast.Set: Compiler._compile_set,
    ast.Dict: Compiler._compile_dict,
    ast.BoolOp: Compiler._compile_bool_op,
    ast.BinOp: Compiler._compile_bin_op,
    ast.UnaryOp: Compiler._compile_unary_op,
    ast.IfExp: Compiler._compile_if_exp,
    ast.Compare: Compiler._compile_compare,
    ast.Call: Compiler._compile_call,
    ast.ListComp: Compiler._compile_comprehension,
    ast.SetComp: Compiler._compile_comprehension,
    ast.DictComp: Compiler._compile_comprehension,
    ast.GeneratorExp: Compiler._compile_comprehension,
}
