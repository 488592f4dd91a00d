"""AimQL, Aim's query language: one Python expression, run by our own interpreter.

A query such as ``run.hparams.lr > 0.01 and metric.name == "loss"`` is parsed with
``ast.parse(mode="eval")``, checked against allow-lists of node types, names, attributes and calls,
and compiled once into a tree of closures. Evaluating it calls the root closure with an environment
such as ``{"run": run_view, "metric": metric_view}``. The text is never given to eval, exec or
compile. This module is the front: `compile_query` and `CompiledQuery`; the text and its syntax
tree are handled by `aim_parquet.query.syntax`, the closures made by `aim_parquet.query.compiler`,
and the values and operations the closures use live in `aim_parquet.query.runtime`.

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
from collections.abc import Callable
from typing import Any

from aim_parquet.errors import QueryError
from aim_parquet.query import runtime as rt
from aim_parquet.query.closures import Conjunct, Env, all_of
from aim_parquet.query.compiler import Compiler
from aim_parquet.query.runtime import QueryObject, SafeNone
from aim_parquet.query.syntax import (
    DEFAULT_NAMES,
    MAX_QUERY_CHARS,
    check_shape,
    default_conjunct,
    flatten_and,
    normalize,
    parse,
    reads_archived,
)

__all__ = ["DEFAULT_NAMES", "CompiledQuery", "QueryObject", "SafeNone", "compile_query"]

logger = logging.getLogger(__name__)


class CompiledQuery:
    """A query compiled into closures; build it with `compile_query`.

    `text` is the normalised query (for a part returned by `split`, the source of its conjuncts);
    `names` are the environment names the evaluation reads, the default archived filter included.
    """

    __slots__ = ("_text", "names", "_conjuncts", "_root", "_mentions_archived", "_parts")

    def __init__(
        self,
        text: str | Callable[[], str],
        conjuncts: tuple[Conjunct, ...],
        *,
        mentions_archived: bool,
    ) -> None:
        self._text = text  # or how to make it (a part's text is only shown in messages)
        self.names: frozenset[str] = frozenset().union(*(c.names for c in conjuncts))
        self._conjuncts = conjuncts
        self._root = all_of([c.fn for c in conjuncts])
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

    def _part(self, conjuncts: tuple[Conjunct, ...]) -> CompiledQuery | None:
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

    @property
    def nodes(self) -> tuple[ast.expr, ...]:
        """The syntax trees of the top-level `and` operands, in evaluation order (the implied
        `run.archived == False` first when it was added)."""
        return tuple(c.node for c in self._conjuncts)

    def mentions_archived(self) -> bool:
        """True when the query itself reads `run.archived`, so no default filter was added."""
        return self._mentions_archived


def compile_query(text: str, *, allowed_names: frozenset[str] = DEFAULT_NAMES) -> CompiledQuery:
    """Compile an AimQL query (cached by text and names).

    Raises QuerySyntaxError for a malformed expression and QueryError for a refused construct or
    an exceeded limit; both carry the column and show the query with a caret.
    """
    if not isinstance(text, str):  # checked before the cache, which would hash a list first
        raise TypeError(f"a query is a str, not {type(text).__name__}")
    return _compile_cached(text, frozenset(allowed_names))


@functools.lru_cache(maxsize=256)
def _compile_cached(text: str, allowed_names: frozenset[str]) -> CompiledQuery:
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(
            f"query refused: {len(text):,} characters (limit {MAX_QUERY_CHARS:,}); "
            "shorten the query"
        )
    normalized = normalize(text)
    nodes: list[ast.expr] = []
    mentions_archived = False
    source, shift = normalized, 0
    if normalized:
        root, source, shift = parse(normalized)
        check_shape(root, normalized, source, shift)
        mentions_archived = reads_archived(root)
        nodes = flatten_and(root)
    if "run" in allowed_names and not mentions_archived:
        nodes.insert(0, default_conjunct())
    compiler = Compiler(normalized, source, shift, allowed_names)
    saved = rt.BUDGET.left
    rt.BUDGET.left = rt.MAX_EVAL_SIZE  # constant folding shares one evaluation's budget
    try:
        conjuncts = tuple(compiler.conjunct(node) for node in nodes)
    finally:
        rt.BUDGET.left = saved
    return CompiledQuery(normalized, conjuncts, mentions_archived=mentions_archived)
