"""A query's text and syntax tree: the size limits, stripping `SELECT ... IF`, parsing with
`ast` (a query over several lines in brackets), syntax errors located with a caret, and the facts
read off the tree (does it mention `run.archived`, its top-level `and` operands)."""

from __future__ import annotations

import ast
import functools
import re
import warnings
from typing import Final

from aim_parquet.errors import QueryError, QuerySyntaxError

__all__ = [
    "DEFAULT_NAMES", "MAX_AST_DEPTH", "MAX_AST_NODES", "MAX_QUERY_CHARS", "check_shape",
    "default_conjunct", "flatten_and", "located_error", "normalize", "parse", "reads_archived",
]  # fmt: skip

DEFAULT_NAMES: Final = frozenset(
    {"run", "metric", "images", "audios", "distributions", "figures", "texts"}
)
MAX_QUERY_CHARS: Final = 10_000
MAX_AST_NODES: Final = 5_000
MAX_AST_DEPTH: Final = 100
_SELECT_RE: Final = re.compile(r"select\b.*?\bif\b", re.IGNORECASE | re.DOTALL)
_LINE_BREAK_RE: Final = re.compile(r"\r\n|\r|\n")
_DEFAULT_CONJUNCT: Final = "run.archived == False"
_BRACKET_WORDS: Final = ("parenthesis", "never closed", "unmatched")


def normalize(text: str) -> str:
    """Strip whitespace and a leading `SELECT ... IF` (with no IF the whole query is empty)."""
    stripped = text.strip()
    if stripped[:6].lower() == "select" and re.match(r"select\b", stripped, re.IGNORECASE):
        select = _SELECT_RE.match(stripped)
        stripped = stripped[select.end() :].strip() if select else ""
    return stripped


@functools.cache
def default_conjunct() -> ast.expr:
    """The parsed implied `run.archived == False` (compiling never changes a node)."""
    return _parse_source(_DEFAULT_CONJUNCT)


def _parse_source(source: str) -> ast.expr:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "invalid escape sequence": keep Python's meaning
        return ast.parse(source, mode="eval").body


def parse(text: str) -> tuple[ast.expr, str, int]:
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
    message, line, col = located(f"invalid query syntax: {detail}", text, lineno, col)
    return _new_syntax_error(message, lineno, col, line)


def _new_syntax_error(
    message: str, lineno: int | None, col: int | None, line: str | None
) -> QuerySyntaxError:
    error = QuerySyntaxError(message)
    SyntaxError.__init__(error, message, (None, lineno, col, line, lineno, col))
    return error


def located(message: str, text: str, lineno: int, col: int) -> tuple[str, str, int]:
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


def located_error(text: str, source: str, shift: int, node: ast.AST, message: str) -> QueryError:
    """A QueryError for `node` of the parsed `source` (shifted by `shift` on line 1, see
    `parse`), showing the line of `text` with a caret under the node."""
    source_lines = _LINE_BREAK_RE.split(source)
    lineno = getattr(node, "lineno", 1)
    line = source_lines[lineno - 1] if lineno <= len(source_lines) else ""
    raw = line.encode("utf-8", "surrogatepass")[: getattr(node, "col_offset", 0)]
    col = len(raw.decode("utf-8", "ignore")) + 1 - (shift if lineno == 1 else 0)
    return QueryError(located(message, text, lineno, col)[0])


def check_shape(root: ast.expr, text: str, source: str, shift: int) -> None:
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
            raise located_error(text, source, shift, node, message)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


def reads_archived(root: ast.expr) -> bool:
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


def flatten_and(root: ast.expr) -> list[ast.expr]:
    if isinstance(root, ast.BoolOp) and isinstance(root.op, ast.And):
        return [node for value in root.values for node in flatten_and(value)]
    return [root]
