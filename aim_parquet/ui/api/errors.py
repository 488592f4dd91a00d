"""How library errors reach the browser: a status code and `{"error", "message"}`.

Query errors keep the SDK's message with its caret line, so the page can show it as the CLI does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps

from starlette.requests import Request
from starlette.responses import Response

from aim_parquet.errors import (
    CorruptFileError,
    FormatVersionError,
    InvalidRunHashError,
    MissingRunError,
    QueryError,
    QuerySyntaxError,
    RepoNotFoundError,
    RunLockedError,
    UnsupportedValueError,
)
from aim_parquet.ui.api.jsonout import error_response

Endpoint = Callable[[Request], Awaitable[Response]]


class BadRequest(ValueError):
    """A request the API cannot serve as sent (a bad parameter); the message says which."""


class QueryTooSlow(BadRequest):
    """A query that ran past the server's time limit for one request (stopped, not finished)."""


class ServerStopping(RuntimeError):
    """The server was asked to stop (Ctrl-C, SIGTERM) while this request was being read."""


_STATUS: list[tuple[type[BaseException], int, str]] = [
    (QueryTooSlow, 400, "query_time"),
    (QuerySyntaxError, 400, "query_syntax"),
    (QueryError, 400, "query"),
    (InvalidRunHashError, 400, "bad_hash"),
    (BadRequest, 400, "bad_request"),
    (UnsupportedValueError, 400, "bad_request"),
    (MissingRunError, 404, "not_found"),
    (RepoNotFoundError, 404, "repo_missing"),
    (RunLockedError, 409, "run_locked"),
    (CorruptFileError, 500, "damaged"),  # (a link or FIFO in place of a file too)
    (FormatVersionError, 500, "newer_format"),
    (PermissionError, 500, "permission_denied"),  # another user's run: not damage
    (ServerStopping, 503, "stopping"),
]


def api_errors(endpoint: Endpoint) -> Endpoint:
    """Turn the library's errors raised by `endpoint` into JSON error responses."""

    @wraps(endpoint)
    async def wrapper(request: Request) -> Response:
        try:
            return await endpoint(request)
        except Exception as exc:
            for cls, status, kind in _STATUS:
                if isinstance(exc, cls):
                    return error_response(status, kind, str(exc))
            raise

    return wrapper
