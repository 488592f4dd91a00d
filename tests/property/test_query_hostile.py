"""Random query text and random expression trees: compiling and evaluating them raises nothing
but QueryError/QuerySyntaxError, and each example finishes well within the deadline."""

from __future__ import annotations

import ast
import datetime as dt
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aim_parquet.errors import QueryError
from aim_parquet.query.lang import SafeNone, compile_query

SETTINGS = settings(
    max_examples=300,
    deadline=dt.timedelta(seconds=2),  # far above the milliseconds each example takes: no hangs
    suppress_health_check=[HealthCheck.too_slow],
)


class View:
    """A run or sequence view over a plain dict."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def query_attr(self, name: str) -> Any:
        return self.values.get(name, SafeNone)

    def query_item(self, key: Any) -> Any:
        return self.values.get(key, SafeNone) if isinstance(key, str) else SafeNone


ENV = {
    "run": View(
        {
            "archived": False,
            "name": "run-1",
            "tags": ["a", "b"],
            "hparams": {"lr": 0.01, "layers": [1, 2, 3], "opt": {"name": "adam"}},
            "created_at": dt.datetime(2022, 2, 2),
            "duration": 3.5,
            "metrics": View({"loss": View({"last": 0.5})}),
        }
    ),
    "metric": View({"name": "loss", "context": {"subset": "train"}, "last": 1.0}),
}


def check(text: str) -> None:
    """Compile and evaluate `text`; only the query errors may escape."""
    try:
        query = compile_query(text)
        assert isinstance(query.matches(ENV), bool)
        query.split()
    except QueryError:
        pass


TOKENS = [
    "run", "metric", "images", ".", "hparams", "lr", "name", "tags", "archived", "__class__",
    "_x", "[", "]", "(", ")", "{", "}", ",", ":", "'a'", '"b"', "b'c'", "0", "1", "-1", "2.5",
    "1e308", "10", "**", "*", "+", "-", "/", "//", "%", "<<", ">>", "&", "|", "^", "~", "@",
    "==", "!=", "<", "<=", ">", ">=", " is ", " is not ", " in ", " not in ", " and ", " or ",
    " not ", " if ", " else ", "lambda", " for ", ":=", "len", "str", "sorted", "sum", "max",
    "int", "round", "datetime", "timedelta", "strftime", "join", "replace", "zfill", "format",
    "get", "keys", "True", "None", "\n", " ", "SELECT ", "'%s'", "10**6", "f'", "{x}", "#",
]  # fmt: skip


@SETTINGS
@given(st.text(max_size=300))
def test_random_text(text: str) -> None:
    check(text)


@SETTINGS
@given(st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=300))
def test_random_printable_ascii(text: str) -> None:
    check(text)


@SETTINGS
@given(st.lists(st.sampled_from(TOKENS), max_size=40).map("".join))
def test_random_token_sequences(text: str) -> None:
    check(text)


# --------------------------------------------------------------------------- random trees

NAMES = ["run", "metric", "images", "len", "str", "sorted", "sum", "max", "min", "round", "int",
         "datetime", "timedelta", "eval", "open", "_secret", "x"]  # fmt: skip
ATTRIBUTES = ["hparams", "lr", "name", "tags", "last", "context", "subset", "created_at",
              "year", "strftime", "join", "replace", "split", "upper", "get", "keys", "items",
              "count", "zfill", "format", "__class__", "_private", "metrics", "now"]  # fmt: skip

constants = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, 2, 10, 64, 10**6, 10**12]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.binary(max_size=4),
).map(lambda value: ast.Constant(value=value))

leaves = st.one_of(
    constants,
    st.sampled_from(NAMES).map(lambda name: ast.Name(id=name, ctx=ast.Load())),
)

BINARY = [ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.LShift,
          ast.RShift, ast.BitOr, ast.BitAnd, ast.BitXor, ast.MatMult]  # fmt: skip
UNARY = [ast.Not, ast.USub, ast.UAdd, ast.Invert]
COMPARE = [ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Is, ast.IsNot, ast.In,
           ast.NotIn]  # fmt: skip


def refused(children: st.SearchStrategy[ast.expr]) -> st.SearchStrategy[ast.expr]:
    """Forms the compiler must refuse: lambda, a comprehension, a starred argument."""
    load = ast.Load()
    return st.one_of(
        children.map(lambda body: ast.Lambda(ast.arguments([], [], None, [], [], None, []), body)),
        children.map(lambda elt: ast.ListComp(elt, [ast.comprehension(
            ast.Name("_x", ast.Store()), ast.Name("run", load), [], 0)])),
        st.builds(lambda func, value: ast.Call(func, [ast.Starred(value, load)], []), children,
                  children),
    )  # fmt: skip


def extend(children: st.SearchStrategy[ast.expr]) -> st.SearchStrategy[ast.expr]:
    """Every expression form the compiler accepts (given acceptable names), over `children`."""
    some = st.lists(children, max_size=3)
    load = ast.Load()
    return st.one_of(
        st.builds(lambda a, op, b: ast.BinOp(a, op(), b), children, st.sampled_from(BINARY),
                  children),
        st.builds(lambda op, a: ast.UnaryOp(op(), a), st.sampled_from(UNARY), children),
        st.builds(lambda op, values: ast.BoolOp(op(), values),
                  st.sampled_from([ast.And, ast.Or]), st.lists(children, min_size=2, max_size=3)),
        st.builds(lambda a, pairs: ast.Compare(a, [op() for op, _ in pairs], [b for _, b in pairs]),
                  children, st.lists(st.tuples(st.sampled_from(COMPARE), children), min_size=1,
                                     max_size=3)),
        st.builds(lambda value, attr: ast.Attribute(value, attr, load), children,
                  st.sampled_from(ATTRIBUTES)),
        st.builds(lambda value, key: ast.Subscript(value, key, load), children, children),
        st.builds(lambda value, lower, upper: ast.Subscript(value, ast.Slice(lower, upper), load),
                  children, children, children),
        st.builds(lambda func, args: ast.Call(func, args, []), children, some),
        st.builds(lambda test, body, orelse: ast.IfExp(test, body, orelse), children, children,
                  children),
        some.map(lambda elts: ast.List(elts, load)),
        some.map(lambda elts: ast.Tuple(elts, load)),
        st.lists(children, min_size=1, max_size=3).map(lambda elts: ast.Set(elts)),
        st.lists(st.tuples(children, children), max_size=3).map(
            lambda pairs: ast.Dict([k for k, _ in pairs], [v for _, v in pairs])
        ),
    )  # fmt: skip


def to_text(tree: ast.expr) -> str:
    """The source of `tree`, or "" for a tree `ast.unparse` cannot print."""
    try:
        return ast.unparse(ast.fix_missing_locations(ast.Expression(tree)))
    except (ValueError, TypeError, AttributeError, RecursionError):
        return ""


accepted_texts = st.recursive(leaves, extend, max_leaves=12).map(to_text)
any_texts = st.recursive(
    leaves, lambda children: st.one_of(extend(children), refused(children)), max_leaves=12
).map(to_text)


@SETTINGS
@given(accepted_texts)
def test_random_expression_trees(text: str) -> None:
    check(text)


@SETTINGS
@given(any_texts)
def test_random_trees_with_refused_forms(text: str) -> None:
    check(text)


@SETTINGS
@given(accepted_texts)
def test_random_trees_inside_select_and_conjunctions(text: str) -> None:
    check(f"SELECT metric IF metric.name == 'loss' and ({text})")
    check(f"run.archived == False or\n({text})")
