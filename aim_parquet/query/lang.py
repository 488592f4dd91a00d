"""AimQL, Aim's query language: one Python expression, run by our own interpreter.

A query such as ``run.hparams.lr > 0.01 and metric.name == "loss"`` is parsed with
``ast.parse(mode="eval")``, checked against allow-lists of node types, names, attributes and calls,
and compiled once into a tree of closures. Evaluating it calls the root closure with an environment
such as ``{"run": run_view, "metric": metric_view}``. The text is never given to eval, exec or
compile. The values and operations the closures use live in `aim_parquet.query.runtime`.

Semantics follow Aim 3.29 (``aim/storage/query.py``):

- a leading ``SELECT ... IF`` is stripped (case-insensitively) together with surrounding space;
- unless the query mentions ``run.archived`` or ``run["archived"]``, the conjunct
  ``run.archived == False`` is put in front, so an empty query matches every non-archived run
  (the caller's run view must answer ``query_attr("archived")`` with a bool);
- a runtime error (``TypeError`` from ``SafeNone + 1``, ``ZeroDivisionError``, a missing list index,
  an environment without a name the query uses ...) makes the query a non-match;
- a missing value is `SafeNone`; an ordering comparison that cannot be made gives False.

Two deliberate differences: ``x is None`` is True when x is SafeNone, and the archived check looks
at the syntax tree, so ``run . archived`` counts and a string literal ``'run.archived'`` does not.

Comprehensions, generator expressions and ``isinstance`` are compiled by
`aim_parquet.query.comprehensions` (loop variables are plain names; each loop step spends the
evaluation's size budget). ``timezone.utc`` is the one time zone a query can name
(``datetime.now(timezone.utc)``; ``datetime.utcnow()`` is naive UTC, like ``run.created_at``).

Refusals raise `QueryError` at compile time with the column and a caret (a name that is not
allowed, an attribute starting with ``_``, lambda, f-strings, ``:=``, ``*x``, ``str.format``,
calls of anything but the allowed builtins and methods, a loop variable starting with ``_`` or
shadowing a query variable, async comprehensions, too long or too deeply nested queries), or at
evaluation time for the size limits of `aim_parquet.query.runtime`. A malformed query raises
`QuerySyntaxError`.
"""

from __future__ import annotations

import ast
import functools
import logging
import operator
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, NamedTuple

from aim_parquet.errors import QueryError, QuerySyntaxError
from aim_parquet.query import comprehensions
from aim_parquet.query import runtime as rt
from aim_parquet.query.runtime import QueryObject, SafeNone

__all__ = ["DEFAULT_NAMES", "CompiledQuery", "QueryObject", "SafeNone", "compile_query"]

logger = logging.getLogger(__name__)

Env = Mapping[str, Any]
_Fn = Callable[[Env], Any]

DEFAULT_NAMES: Final = frozenset(
    {"run", "metric", "images", "audios", "distributions", "figures", "texts"}
)
MAX_QUERY_CHARS: Final = 10_000
MAX_AST_NODES: Final = 5_000
MAX_AST_DEPTH: Final = 100
_FOLD_KEEP_SIZE: Final = 256  # folded constants larger than this are rebuilt at each evaluation
_NOT_CONSTANT: Final = object()
_EMPTY_ENV: Final[Env] = MappingProxyType({})
_SELECT_RE: Final = re.compile(r"select\b.*?\bif\b", re.IGNORECASE | re.DOTALL)
_LINE_BREAK_RE: Final = re.compile(r"\r\n|\r|\n")
_DEFAULT_CONJUNCT: Final = "run.archived == False"
_BRACKET_WORDS: Final = ("parenthesis", "never closed", "unmatched")

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
_BINARY: Final[Mapping[type[ast.operator], Callable[[Any, Any], Any]]] = {
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
_UNARY: Final[Mapping[type[ast.unaryop], Callable[[Any], Any]]] = {
    ast.Not: operator.not_,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
    ast.Invert: operator.invert,
}
_COMPARE: Final[Mapping[type[ast.cmpop], Callable[[Any, Any], Any]]] = {
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


class _Code(NamedTuple):
    """A compiled node: its closure and, when it folded to a constant, the constant's value."""

    fn: _Fn
    value: Any = _NOT_CONSTANT


def _constant(value: Any) -> _Code:
    return _Code(lambda env: value, value)


class _Conjunct(NamedTuple):
    """One top-level `and` operand: the planner splits a query along these."""

    fn: _Fn
    names: frozenset[str]
    node: ast.expr


def _all_of(fns: Sequence[_Fn]) -> _Fn:
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


def _any_of(fns: Sequence[_Fn]) -> _Fn:
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


class CompiledQuery:
    """A query compiled into closures; build it with `compile_query`.

    `text` is the normalised query (for a part returned by `split`, the source of its conjuncts);
    `names` are the environment names the evaluation reads, the default archived filter included.
    """

    __slots__ = ("_text", "names", "_conjuncts", "_root", "_mentions_archived", "_parts")

    def __init__(
        self,
        text: str | Callable[[], str],
        conjuncts: tuple[_Conjunct, ...],
        *,
        mentions_archived: bool,
    ) -> None:
        self._text = text  # or how to make it (a part's text is only shown in messages)
        self.names: frozenset[str] = frozenset().union(*(c.names for c in conjuncts))
        self._conjuncts = conjuncts
        self._root = _all_of([c.fn for c in conjuncts])
        self._mentions_archived = mentions_archived
        self._parts: tuple[CompiledQuery | None, CompiledQuery | None] | None = None

    @property
    def text(self) -> str:
        if not isinstance(self._text, str):
            self._text = self._text()
        return self._text

    def __repr__(self) -> str:
        return f"CompiledQuery({self.text!r})"

    def matches(self, env: Env) -> bool:
        """True when the query holds for `env`; any runtime error is a non-match (as in Aim),
        but a limit violation raises QueryError."""
        budget = rt.BUDGET
        saved = budget.left
        budget.left = rt.MAX_EVAL_SIZE
        try:
            return bool(self._root(env))
        except QueryError:
            raise
        except Exception as exc:
            logger.debug("query %r does not match: %s: %s", self.text, type(exc).__name__, exc)
            return False
        finally:
            budget.left = saved

    def evaluate(self, env: Env) -> Any:
        """The raw value of the query for `env`. Runtime errors propagate unchanged (TypeError,
        ZeroDivisionError, ...); limit violations raise QueryError."""
        budget = rt.BUDGET
        saved = budget.left
        budget.left = rt.MAX_EVAL_SIZE
        try:
            return self._root(env)
        finally:
            budget.left = saved

    def split(self) -> tuple[CompiledQuery | None, CompiledQuery | None]:
        """`(run_part, sequence_part)`: the top-level `and` conjuncts that read only `run` (or no
        name), and the rest. None stands for "always true". The query matches exactly when both
        parts match."""
        if self._parts is None:
            run_only = frozenset({"run"})
            run_part = tuple(c for c in self._conjuncts if c.names <= run_only)
            sequence_part = tuple(c for c in self._conjuncts if not c.names <= run_only)
            self._parts = (self._part(run_part), self._part(sequence_part))
        return self._parts

    def _part(self, conjuncts: tuple[_Conjunct, ...]) -> CompiledQuery | None:
        if not conjuncts:
            return None
        if conjuncts == self._conjuncts:
            return self

        def text() -> str:
            sources = [ast.unparse(c.node) for c in conjuncts]
            if len(conjuncts) > 1:
                sources = [
                    f"({source})" if isinstance(c.node, ast.BoolOp | ast.IfExp) else source
                    for c, source in zip(conjuncts, sources, strict=True)
                ]
            return " and ".join(sources)

        return CompiledQuery(text, conjuncts, mentions_archived=self._mentions_archived)

    def mentions_archived(self) -> bool:
        """True when the query itself reads `run.archived`, so no default filter was added."""
        return self._mentions_archived


def compile_query(text: str, *, allowed_names: frozenset[str] = DEFAULT_NAMES) -> CompiledQuery:
    """Compile an AimQL query (cached by text and names).

    Raises QuerySyntaxError for a malformed expression and QueryError for a refused construct or
    an exceeded limit; both carry the column and show the query with a caret.
    """
    return _compile_cached(text, frozenset(allowed_names))


@functools.lru_cache(maxsize=256)
def _compile_cached(text: str, allowed_names: frozenset[str]) -> CompiledQuery:
    if not isinstance(text, str):
        raise TypeError(f"a query is a str, not {type(text).__name__}")
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(
            f"query refused: {len(text):,} characters (limit {MAX_QUERY_CHARS:,}); "
            "shorten the query"
        )
    normalized = _normalize(text)
    nodes: list[ast.expr] = []
    mentions_archived = False
    source, shift = normalized, 0
    if normalized:
        root, source, shift = _parse(normalized)
        _check_shape(root, normalized, source, shift)
        mentions_archived = _mentions_archived(root)
        nodes = _flatten_and(root)
    if "run" in allowed_names and not mentions_archived:
        nodes.insert(0, _default_conjunct())
    compiler = _Compiler(normalized, source, shift, allowed_names)
    saved = rt.BUDGET.left
    rt.BUDGET.left = rt.MAX_EVAL_SIZE  # constant folding shares one evaluation's budget
    try:
        conjuncts = tuple(compiler.conjunct(node) for node in nodes)
    finally:
        rt.BUDGET.left = saved
    return CompiledQuery(normalized, conjuncts, mentions_archived=mentions_archived)


def _normalize(text: str) -> str:
    """Strip whitespace and a leading `SELECT ... IF` (with no IF the whole query is empty)."""
    stripped = text.strip()
    if stripped[:6].lower() == "select" and re.match(r"select\b", stripped, re.IGNORECASE):
        select = _SELECT_RE.match(stripped)
        stripped = stripped[select.end() :].strip() if select else ""
    return stripped


@functools.cache
def _default_conjunct() -> ast.expr:
    """The parsed implied `run.archived == False` (compiling never changes a node)."""
    return _parse_source(_DEFAULT_CONJUNCT)


def _parse_source(source: str) -> ast.expr:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "invalid escape sequence": keep Python's meaning
        return ast.parse(source, mode="eval").body


def _parse(text: str) -> tuple[ast.expr, str, int]:
    """Parse `text`: the expression, the source actually parsed, and the shift of its line 1.

    A query that spans lines is parsed inside brackets, as Aim does with parentheses; the brackets
    must pair with each other, so an unbalanced query is still a syntax error.
    """
    try:
        try:
            return _parse_source(text), text, 0
        except SyntaxError as plain_error:
            if "\n" not in text and "\r" not in text:
                raise _syntax_error(text, 0, plain_error) from None
            wrapped = f"[{text}\n]"
            try:
                root = _parse_source(wrapped)
            except SyntaxError as wrapped_error:
                if any(word in str(wrapped_error.msg) for word in _BRACKET_WORDS):
                    raise _syntax_error(text, 0, plain_error) from None  # the user's brackets
                raise _syntax_error(text, 1, wrapped_error) from None
            lines = _LINE_BREAK_RE.split(wrapped)
            spans_all = (root.lineno, root.col_offset) == (1, 0) and (
                root.end_lineno,
                root.end_col_offset,
            ) == (len(lines), 1)
            if not isinstance(root, ast.List) or not spans_all or len(root.elts) != 1:
                raise _syntax_error(text, 0, plain_error) from None
            return root.elts[0], wrapped, 1
    except QueryError:
        raise
    except (RecursionError, MemoryError):
        raise QueryError(
            "query refused: it is nested too deeply to parse; simplify the expression"
        ) from None
    except ValueError as exc:  # e.g. null bytes or lone surrogates in the source
        raise _new_syntax_error(f"invalid query text: {exc}", None, None, None) from None


def _syntax_error(text: str, shift: int, error: SyntaxError) -> QuerySyntaxError:
    """A QuerySyntaxError located in `text` for `error`, raised while parsing `text` (shift 0) or
    `text` in brackets (shift 1: one added character on line 1)."""
    text_lines = _LINE_BREAK_RE.split(text)
    lineno, col = error.lineno or 1, error.offset or 0
    detail = error.msg or "invalid syntax"
    at_end = lineno > len(text_lines) or (col == 0 and lineno == len(text_lines))
    if at_end:  # the end of the query (Python reports offset 0, or the added closing bracket)
        lineno, col = len(text_lines), len(text_lines[-1]) + 1
        detail = "unexpected end of query" if detail == "invalid syntax" else detail
    elif lineno == 1:
        col -= shift
    message, line, col = _located(f"invalid query syntax: {detail}", text, lineno, col)
    return _new_syntax_error(message, lineno, col, line)


def _new_syntax_error(
    message: str, lineno: int | None, col: int | None, line: str | None
) -> QuerySyntaxError:
    error = QuerySyntaxError(message)
    SyntaxError.__init__(error, message, (None, lineno, col, line, lineno, col))
    return error


def _located(message: str, text: str, lineno: int, col: int) -> tuple[str, str, int]:
    """`message` followed by the query line and a caret under 1-based `col`; also returns the
    line and the clamped column."""
    lines = _LINE_BREAK_RE.split(text)
    line = lines[lineno - 1] if 0 < lineno <= len(lines) else ""
    col = max(1, min(col, len(line) + 1))
    start = max(0, min(col - 40, len(line) - 80))
    shown = "".join(c if c.isprintable() else "?" for c in line[start : start + 80])
    prefix = "..." if start else ""
    suffix = "..." if start + 80 < len(line) else ""
    where = f"column {col}" if len(lines) == 1 else f"line {lineno}, column {col}"
    pointer = " " * (len(prefix) + col - 1 - start) + "^"
    return f"{message}, at {where}:\n    {prefix}{shown}{suffix}\n    {pointer}", line, col


def _check_shape(root: ast.expr, text: str, source: str, shift: int) -> None:
    """Refuse too many or too deeply nested nodes, without recursion."""
    count = 0
    stack: list[tuple[ast.AST, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, ast.expr):
            count += 1
            if count > MAX_AST_NODES:
                raise QueryError(
                    f"query refused: more than {MAX_AST_NODES:,} expression nodes; "
                    "shorten the query"
                )
        if depth > MAX_AST_DEPTH:
            message = f"query refused: nested more than {MAX_AST_DEPTH} levels deep"
            raise _Compiler(text, source, shift, frozenset()).error(node, message)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


def _mentions_archived(root: ast.expr) -> bool:
    def is_run(node: ast.expr) -> bool:  # `run`, or a sequence's run: `metric.run`
        if isinstance(node, ast.Attribute) and node.attr == "run":
            return isinstance(node.value, ast.Name) and node.value.id in DEFAULT_NAMES - {"run"}
        return isinstance(node, ast.Name) and node.id == "run"

    for node in ast.walk(root):
        if isinstance(node, ast.Attribute) and node.attr == "archived" and is_run(node.value):
            return True
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.slice, ast.Constant)
            and node.slice.value == "archived"
            and is_run(node.value)
        ):
            return True
    return False


def _flatten_and(root: ast.expr) -> list[ast.expr]:
    if isinstance(root, ast.BoolOp) and isinstance(root.op, ast.And):
        return [node for value in root.values for node in _flatten_and(value)]
    return [root]


class _Compiler:
    """Turns checked AST nodes into closures, folding constant sub-expressions."""

    def __init__(self, text: str, source: str, shift: int, allowed_names: frozenset[str]) -> None:
        self.text = text
        self.source_lines = _LINE_BREAK_RE.split(source)
        self.shift = shift
        self.allowed_names = allowed_names
        self.names: set[str] = set()
        self.local_names: set[str] = set()  # loop variables of the comprehensions compiled now

    def conjunct(self, node: ast.expr) -> _Conjunct:
        self.names = set()
        code = self.compile(node)
        return _Conjunct(code.fn, frozenset(self.names), node)

    def error(self, node: ast.AST, message: str) -> QueryError:
        lineno = getattr(node, "lineno", 1)
        line = self.source_lines[lineno - 1] if lineno <= len(self.source_lines) else ""
        raw = line.encode("utf-8", "surrogatepass")[: getattr(node, "col_offset", 0)]
        col = len(raw.decode("utf-8", "ignore")) + 1 - (self.shift if lineno == 1 else 0)
        return QueryError(_located(message, self.text, lineno, col)[0])

    def compile(self, node: ast.AST) -> _Code:
        refused = _REFUSED.get(type(node))
        if refused is not None:
            raise self.error(node, f"{refused} are not allowed in queries")
        handler = _HANDLERS.get(type(node))
        if handler is None:
            raise self.error(node, f"{type(node).__name__} expressions are not allowed in queries")
        return handler(self, node)

    def _fold(
        self, node: ast.AST, fn: _Fn, parts: Iterable[_Code], *, is_pure: bool = True
    ) -> _Code:
        """`fn`, or its value when every part is constant (a limit error surfaces here, at compile
        time; any other error is left for evaluation, where it makes a non-match)."""
        if not is_pure or any(part.value is _NOT_CONSTANT for part in parts):
            return _Code(fn)
        try:
            value = fn(_EMPTY_ENV)
        except QueryError as exc:
            raise self.error(node, str(exc)) from None
        except Exception:
            return _Code(fn)
        if rt.weight(value, _FOLD_KEEP_SIZE) > _FOLD_KEEP_SIZE:
            return _Code(fn)
        return _constant(value)

    def _compile_constant(self, node: ast.Constant) -> _Code:
        value = node.value
        if isinstance(value, int) and value.bit_length() > rt.MAX_INT_BITS:
            raise self.error(node, f"integer literals are limited to {rt.MAX_INT_BITS:,} bits")
        if value is not None and not isinstance(value, bool | int | float | str | bytes):
            raise self.error(node, f"{type(value).__name__} literals are not supported in queries")
        return _constant(value)

    def _compile_name(self, node: ast.Name) -> _Code:
        name = node.id
        if name in self.local_names:
            return _Code(operator.itemgetter(name))
        if name in self.allowed_names:
            self.names.add(name)
            return _Code(operator.itemgetter(name))
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

    def _compile_attribute(self, node: ast.Attribute) -> _Code:
        self._check_attribute(node)
        if self._is_class(node.value, "timezone"):
            if node.attr != "utc":
                raise self.error(node, f"timezone.{node.attr} is not available; use timezone.utc")
            return _constant(rt.UTC_TIMEZONE)
        if self._is_datetime_class(node.value):
            raise self.error(node, f"datetime.{node.attr} is not available; call datetime(...)")
        obj = self.compile(node.value)
        get, name, obj_fn = rt.get_attr, node.attr, obj.fn
        root = node.value
        if isinstance(root, ast.Name) and root.id in self.allowed_names:  # `run.x`: one call
            var = root.id
            return _Code(lambda env: get(env[var], name))
        if (
            isinstance(root, ast.Attribute)
            and isinstance(root.value, ast.Name)
            and root.value.id in self.allowed_names
        ):  # `run.x.y`: one call
            var, first = root.value.id, root.attr
            return _Code(lambda env: get(get(env[var], first), name))
        return self._fold(node, lambda env: get(obj_fn(env), name), [obj])

    def _compile_subscript(self, node: ast.Subscript) -> _Code:
        obj, key = self.compile(node.value), self.compile(node.slice)
        get, obj_fn, key_fn, key_value = rt.get_item, obj.fn, key.fn, key.value
        if key_value is _NOT_CONSTANT:
            return self._fold(node, lambda env: get(obj_fn(env), key_fn(env)), [obj, key])
        return self._fold(node, lambda env: get(obj_fn(env), key_value), [obj, key])

    def _compile_slice(self, node: ast.Slice) -> _Code:
        parts = [
            self.compile(p) if p else _constant(None) for p in (node.lower, node.upper, node.step)
        ]
        lower, upper, step = (p.fn for p in parts)
        return self._fold(node, lambda env: slice(lower(env), upper(env), step(env)), parts)

    def _elements(self, nodes: list[ast.expr]) -> tuple[list[_Code], list[_Fn]]:
        codes = [self.compile(n) for n in nodes]
        return codes, [c.fn for c in codes]

    def _compile_list(self, node: ast.List) -> _Code:
        codes, fns = self._elements(node.elts)
        return self._fold(node, lambda env: [fn(env) for fn in fns], codes)

    def _compile_tuple(self, node: ast.Tuple) -> _Code:
        codes, fns = self._elements(node.elts)
        return self._fold(node, lambda env: tuple([fn(env) for fn in fns]), codes)

    def _compile_set(self, node: ast.Set) -> _Code:
        codes, fns = self._elements(node.elts)
        return self._fold(node, lambda env: {fn(env) for fn in fns}, codes)

    def _compile_dict(self, node: ast.Dict) -> _Code:
        if any(key is None for key in node.keys):
            raise self.error(node, "dict unpacking (**) is not allowed in queries")
        keys, key_fns = self._elements([key for key in node.keys if key is not None])
        values, value_fns = self._elements(node.values)
        pairs = list(zip(key_fns, value_fns, strict=True))
        return self._fold(node, lambda env: {k(env): v(env) for k, v in pairs}, keys + values)

    def _compile_bool_op(self, node: ast.BoolOp) -> _Code:
        codes, fns = self._elements(node.values)
        fn = _all_of(fns) if isinstance(node.op, ast.And) else _any_of(fns)
        return self._fold(node, fn, codes)

    def _compile_bin_op(self, node: ast.BinOp) -> _Code:
        op = _BINARY.get(type(node.op))
        if op is None:
            raise self.error(node, "the @ operator is not supported in queries")
        left, right = self.compile(node.left), self.compile(node.right)
        left_fn, right_fn, right_value = left.fn, right.fn, right.value
        if right_value is _NOT_CONSTANT:
            return self._fold(node, lambda env: op(left_fn(env), right_fn(env)), [left, right])
        return self._fold(node, lambda env: op(left_fn(env), right_value), [left, right])

    def _compile_unary_op(self, node: ast.UnaryOp) -> _Code:
        op, operand = _UNARY[type(node.op)], self.compile(node.operand)
        operand_fn = operand.fn
        return self._fold(node, lambda env: op(operand_fn(env)), [operand])

    def _compile_if_exp(self, node: ast.IfExp) -> _Code:
        codes, (test, body, orelse) = self._elements([node.test, node.body, node.orelse])
        return self._fold(node, lambda env: body(env) if test(env) else orelse(env), codes)

    def _compile_compare(self, node: ast.Compare) -> _Code:
        left = self.compile(node.left)
        codes, fns = self._elements(node.comparators)
        ops = [_COMPARE[type(op)] for op in node.ops]
        left_fn = left.fn
        if len(ops) == 1:
            op, right_fn, right_value = ops[0], fns[0], codes[0].value
            if right_value is _NOT_CONSTANT:
                fn: _Fn = lambda env: op(left_fn(env), right_fn(env))  # noqa: E731
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

    def _compile_call(self, node: ast.Call) -> _Code:
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

    def _call_isinstance(self, node: ast.Call) -> _Code:
        value_fn, types = comprehensions.compile_isinstance(self, node)
        return _Code(lambda env: isinstance(value_fn(env), types))

    def _compile_comprehension(self, node: ast.expr) -> _Code:
        return _Code(comprehensions.compile_comprehension(self, node))

    def _arguments(self, node: ast.Call) -> tuple[list[_Code], list[_Fn], list[tuple[str, _Fn]]]:
        codes, fns = self._elements(node.args)
        keywords = [(k.arg or "", self.compile(k.value)) for k in node.keywords]
        return codes + [code for _, code in keywords], fns, [(k, c.fn) for k, c in keywords]

    def _call_builtin(self, node: ast.Call, name: str, builtin: rt.Builtin) -> _Code:
        for keyword in node.keywords:
            if keyword.arg not in builtin.keywords:
                raise self.error(keyword, f"{name}() takes no keyword {keyword.arg!r} in queries")
        codes, fns, keywords = self._arguments(node)
        function = builtin.function
        if keywords:
            fn: _Fn = lambda env: function(  # noqa: E731
                *[f(env) for f in fns], **{k: f(env) for k, f in keywords}
            )
        elif len(fns) == 1:
            only = fns[0]
            fn = lambda env: function(only(env))  # noqa: E731
        else:
            fn = lambda env: function(*[f(env) for f in fns])  # noqa: E731
        return self._fold(node, fn, codes, is_pure=builtin.is_pure)

    def _call_method(self, node: ast.Call, func: ast.Attribute) -> _Code:
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


_HANDLERS: Final[Mapping[type[ast.AST], Callable[[_Compiler, Any], _Code]]] = {
    ast.Constant: _Compiler._compile_constant,
    ast.Name: _Compiler._compile_name,
    ast.Attribute: _Compiler._compile_attribute,
    ast.Subscript: _Compiler._compile_subscript,
    ast.Slice: _Compiler._compile_slice,
    ast.List: _Compiler._compile_list,
    ast.Tuple: _Compiler._compile_tuple,
    ast.Set: _Compiler._compile_set,
    ast.Dict: _Compiler._compile_dict,
    ast.BoolOp: _Compiler._compile_bool_op,
    ast.BinOp: _Compiler._compile_bin_op,
    ast.UnaryOp: _Compiler._compile_unary_op,
    ast.IfExp: _Compiler._compile_if_exp,
    ast.Compare: _Compiler._compile_compare,
    ast.Call: _Compiler._compile_call,
    ast.ListComp: _Compiler._compile_comprehension,
    ast.SetComp: _Compiler._compile_comprehension,
    ast.DictComp: _Compiler._compile_comprehension,
    ast.GeneratorExp: _Compiler._compile_comprehension,
}
