"""The run part of a query evaluated column-wise over every run of an index snapshot, to drop
the runs it surely rejects before the interpreter looks at any run.

`run_mask(run_filter, snapshot)` gives one bool per run of `snapshot.newest_first`: False where
the run part is certainly False for that run, True where it may hold. The executor evaluates the
interpreter (`CompiledQuery.matches`) on the True runs only, and not even on those where
`run_verdicts` says the run part is certainly True (and raises nothing); the verdicts only have
to be sound: never F where the interpreter would say True or raise, never T where it would say
False or raise.

Each node of the syntax tree gets a verdict per run, F (false, and evaluating it raises
nothing), T (true, raises nothing) or U (unknown: anything, an error included):

- a comparison of `run.<path>` (attribute and item steps with constant keys, as
  `query.run_columns` reads them) with a constant, by one of `== != < <= > >= in not in`, or by
  `is`/`is not` with None, True or False (identity is only decided by value for those), and a
  bare `run.<path>` (its truth): the interpreter's own operator (`query.runtime`) is applied
  once per distinct (type, value) of the column (plain JSON values, datetimes, lists of
  those); any other value, a value whose computation raised and an operator that raises give U;
- `not`, and `and`/`or` left to right as Python evaluates them (`a and b`: F where a is F, b
  where a is T, U where a is U; so an unknown operand never hides a later error);
- any other node (calls, arithmetic, comparison chains, `run.active`, `run.metrics`, ...) is U.

Columns (`query.run_columns`: from the index's columns, as distinct values and a slot per run)
and verdicts are computed in the snapshot's stored order and the mask is put in
`newest_first`'s order at the end. Verdicts of each node, each column and each mask
are kept in the snapshot's `query_cache`, so a warm process evaluates a query again in the time
of a few array operations.
"""

from __future__ import annotations

import ast
import datetime as _dt
from collections.abc import Callable, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from aim_parquet.query import runtime as rt
from aim_parquet.query.closures import COMPARE, NOT_CONSTANT
from aim_parquet.query.compiler import Compiler
from aim_parquet.query.lang import CompiledQuery
from aim_parquet.query.run_columns import (
    UNKNOWN,
    Encoded,
    Path,
    Step,
    path_column,
    unsupported_first_step,
)
from aim_parquet.storage.index.run_index import IndexSnapshot
from aim_parquet.system.gc_pause import gc_paused

__all__ = ["run_mask"]

Codes = npt.NDArray[np.int8]
F: Final = 0
T: Final = 1
U: Final = 2
_NOT: Final = np.array([T, F, U], dtype=np.int8)
_KEYED: Final = frozenset(
    {str, int, float, bool, type(None), type(rt.SafeNone), _dt.datetime, type(UNKNOWN)}
)
_IDENTITY_CONSTANTS: Final = frozenset({type(None), bool})
_ABSENT: Final[Any] = object()
_MAX_CACHED: Final = 64  # entries of a snapshot's query_cache before it is emptied (a column of
# 100,000 runs is about 1 MB)


def run_mask(run_filter: CompiledQuery | None, snapshot: IndexSnapshot) -> Any:
    """One bool per run of `snapshot.newest_first` (a numpy array), False where `run_filter`
    surely does not match; None when it rejects no run for sure (module doc)."""
    return run_verdicts(run_filter, snapshot)[0]


def run_verdicts(run_filter: CompiledQuery | None, snapshot: IndexSnapshot) -> tuple[Any, Any]:
    """(`run_mask`, and one bool per run of `snapshot.newest_first`, True where `run_filter`
    surely matches and raises nothing, None when it is sure of no run)."""
    if run_filter is None:
        return None, None
    cache = snapshot.query_cache
    nodes = run_filter.nodes
    key = ("mask", *(ast.dump(n) for n in nodes))
    cached = cache.get(key, _ABSENT)  # (one lookup: another thread may empty the cache)
    if cached is not _ABSENT:
        return cached  # type: ignore[no-any-return]
    if len(cache) > _MAX_CACHED:
        cache.clear()
    with gc_paused():  # (columns allocate an object or more per run)
        codes = _Columns(snapshot, cache).all_of(nodes)
    if codes is None:
        cache[key] = None, None
        return None, None
    order = cache.get("newest positions")
    if order is None:
        order = cache["newest positions"] = snapshot.newest_positions
    codes = codes[order]
    mask, sure = codes != F, codes == T
    found = (None if bool(mask.all()) else mask, sure if bool(sure.any()) else None)
    cache[key] = found
    return found


class _Columns:
    """Verdicts of syntax nodes over `records` (module doc), cached in `cache`."""

    def __init__(self, snapshot: IndexSnapshot, cache: dict[Any, Any]) -> None:
        self.snapshot = snapshot
        self.cache = cache
        self.size = len(snapshot)

    def unknown(self) -> Codes:
        return np.full(self.size, U, dtype=np.int8)

    def all_of(self, nodes: Sequence[ast.expr]) -> Codes | None:
        return self._fold([self.codes(n) for n in nodes], T)

    def _fold(self, parts: list[Codes | None], stop_unless: int) -> Codes | None:
        """`and` (stop_unless=T) or `or` (stop_unless=F) of `parts`, left to right."""
        acc = parts[0]
        if acc is None:
            return None
        for part in parts[1:]:
            acc = np.where(acc == stop_unless, self.unknown() if part is None else part, acc)
        return acc

    def codes(self, node: ast.expr) -> Codes | None:
        """The verdicts of `node`, None when they are all U."""
        if isinstance(node, ast.BoolOp):
            parts = [self.codes(v) for v in node.values]
            return self._fold(parts, T if isinstance(node.op, ast.And) else F)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            inner = self.codes(node.operand)
            return None if inner is None else _NOT[inner]
        key = ("node", ast.dump(node))
        codes: Codes | None = self.cache.get(key, _ABSENT)
        if codes is _ABSENT:
            codes = self.cache[key] = self._leaf(node)
        return codes

    def _leaf(self, node: ast.expr) -> Codes | None:
        test = _leaf_test(node)
        if test is None:
            return None
        path_node, fn = test
        values = self.column(path_node)
        return None if values is None else _verdicts(values, fn, _numeric_test(node))

    def column(self, node: ast.expr) -> Encoded | None:
        key = ("column", ast.dump(node))
        values: Encoded | None = self.cache.get(key, _ABSENT)
        if values is _ABSENT:
            path = _path(node)
            values = None if path is None else path_column(self.snapshot, path)
            self.cache[key] = values
        return values


def _verdicts(
    column: Encoded, test: Callable[[Any], Any], numeric: NumericTest | None = None
) -> Codes:
    """`test` applied once per distinct (type, value) of the column (UNKNOWN: U); with numpy
    for the many distinct ints and floats of a column compared with a number (`numeric`)."""
    distinct = column.distinct
    if numeric is not None and len(distinct) > _VECTOR_FROM:
        codes = _numeric_verdicts(distinct, test, numeric)
    else:
        codes = _verdicts_mixed(distinct, test)
    return codes[column.slots] if len(codes) else np.zeros(len(column.slots), dtype=np.int8)


NumericTest = tuple[Callable[[Any, Any], Any], Any, bool]  # (numpy operator, constant, on left)
_VECTOR_FROM: Final = 256  # distinct values from which numbers are compared with numpy
_NUMPY_COMPARE: Final[dict[type[ast.cmpop], Callable[[Any, Any], Any]]] = {
    ast.Eq: np.equal,
    ast.NotEq: np.not_equal,
    ast.Lt: np.less,
    ast.LtE: np.less_equal,
    ast.Gt: np.greater,
    ast.GtE: np.greater_equal,
}
_EXACT: Final = 2**53  # ints up to this convert to float64 exactly


def _numeric_test(node: ast.expr) -> NumericTest | None:
    """(numpy operator, constant, whether the column is on the left) of a comparison of a
    `run.<path>` with an int or float constant (not bool) by `== != < <= > >=`."""
    if not isinstance(node, ast.Compare) or len(node.ops) != 1:
        return None
    op = _NUMPY_COMPARE.get(type(node.ops[0]))
    if op is None:
        return None
    left, right = node.left, node.comparators[0]
    column_left = _path(left) is not None
    value = _constant(right if column_left else left)
    if type(value) not in (int, float):
        return None
    return op, value, column_left


def _numeric_verdicts(values: list[Any], test: Callable[[Any], Any], numeric: NumericTest) -> Codes:
    """`_verdicts_mixed`, with the ints and floats among `values` compared by numpy where it
    gives Python's answer: float64 against a float or an int up to 2**53, int64 against an int64
    or against a float when every int is up to 2**53 (numpy converts both to float64)."""
    op, constant, column_left = numeric
    kinds = [type(v) for v in values]
    floats = [i for i, k in enumerate(kinds) if k is float]
    ints = [i for i, k in enumerate(kinds) if k is int]
    out = np.full(len(values), -1, dtype=np.int8)
    if floats and (type(constant) is float or abs(constant) <= _EXACT):
        out[floats] = _compared(np.array([values[i] for i in floats], np.float64), numeric)
    if ints and all(abs(values[i]) < 2**63 for i in ints):
        array = np.array([values[i] for i in ints], np.int64)
        if (
            type(constant) is int
            and abs(constant) < 2**63
            or type(constant) is float
            and int(np.abs(array).max()) <= _EXACT
        ):
            out[ints] = _compared(array, numeric)
    rest = np.flatnonzero(out < 0)
    if len(rest):
        out[rest] = _verdicts_mixed([values[i] for i in rest.tolist()], test)
    return out


def _compared(array: npt.NDArray[Any], numeric: NumericTest) -> Codes:
    op, constant, column_left = numeric
    truth = op(array, constant) if column_left else op(constant, array)
    return np.where(truth, T, F).astype(np.int8)


def _verdicts_mixed(values: list[Any], test: Callable[[Any], Any]) -> Codes:
    """`_verdicts` for a column that also holds lists or values of other types."""
    memo: dict[Any, int] = {}
    out = bytearray(len(values))
    keyed = _KEYED
    for i, value in enumerate(values):
        kind = type(value)
        if kind in keyed:
            key: Any = (kind, value)
        elif kind is list and all(type(v) in keyed for v in value):
            key = (list, tuple(value), tuple(map(type, value)))
        else:
            out[i] = U
            continue
        code = memo.get(key)
        if code is None:
            code = memo[key] = _verdict(test, value)
        out[i] = code
    return np.frombuffer(out, dtype=np.int8)


def _verdict(test: Callable[[Any], Any], value: Any) -> int:
    if value is UNKNOWN:
        return U
    budget = rt.BUDGET
    saved = budget.left
    budget.left = rt.MAX_EVAL_SIZE
    try:
        return T if test(value) else F
    except Exception:
        return U
    finally:
        budget.left = saved


def _leaf_test(node: ast.expr) -> tuple[ast.expr, Callable[[Any], Any]] | None:
    """(the `run.<path>` node, the test of its value) for a node the columns decide."""
    if _path(node) is not None:
        return node, _truth
    if not isinstance(node, ast.Compare) or len(node.ops) != 1:
        return None
    op_node, left, right = node.ops[0], node.left, node.comparators[0]
    op = COMPARE[type(op_node)]
    is_identity = isinstance(op_node, ast.Is | ast.IsNot)
    if _path(left) is not None:
        value = _constant(right)
        if not _usable(value, is_identity):
            return None
        return left, lambda v: op(v, value)
    if _path(right) is not None:
        value = _constant(left)
        if not _usable(value, is_identity):
            return None
        return right, lambda v: op(value, v)
    return None


def _truth(value: Any) -> Any:
    return value


def _usable(value: Any, is_identity: bool) -> bool:
    if value is NOT_CONSTANT:
        return False
    return not is_identity or type(value) in _IDENTITY_CONSTANTS


def _path(node: ast.expr) -> Path | None:
    """The steps of `run.<path>` (constant keys only), None for any other node."""
    steps: list[Step] = []
    while not (isinstance(node, ast.Name) and node.id == "run"):
        if isinstance(node, ast.Attribute):
            steps.append(("attr", node.attr))
            node = node.value
        elif isinstance(node, ast.Subscript):
            key = _constant(node.slice)
            if key is NOT_CONSTANT:
                return None
            try:
                hash(key)
            except TypeError:
                return None
            steps.append(("item", key))
            node = node.value
        else:
            return None
    if not steps:
        return None
    steps.reverse()
    return None if unsupported_first_step(steps[0]) else tuple(steps)


def _constant(node: ast.expr) -> Any:
    """The value the interpreter folds `node` to, NOT_CONSTANT when it does not fold."""
    if isinstance(node, ast.Constant):
        value = node.value
        if value is None or type(value) in (bool, float, str):
            return value
    budget = rt.BUDGET
    saved = budget.left
    budget.left = rt.MAX_EVAL_SIZE
    try:
        return Compiler("", "", 0, frozenset()).compile(node).value
    except Exception:
        return NOT_CONSTANT
    finally:
        budget.left = saved
