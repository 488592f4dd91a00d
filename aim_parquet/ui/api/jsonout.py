"""JSON for the browser: strict JSON (the browser's `JSON.parse` rejects NaN), ASCII-escaped.

Non-finite floats become the strings "NaN", "Infinity" and "-Infinity" (what JavaScript's
`Number(...)` parses back); bytes become a short description; anything else unknown is `str()`.
"""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.responses import Response

_NONFINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def _default(value: Any) -> Any:
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    return str(value)


def jsonable(value: Any) -> Any:
    """`value` with non-finite floats replaced (recursively)."""
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if value != value else _NONFINITE[value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def json_bytes(data: Any) -> bytes:
    """Strict JSON; the slower sanitising pass only when a non-finite float is present."""
    try:
        text = json.dumps(data, allow_nan=False, default=_default, separators=(",", ":"))
    except ValueError:
        text = json.dumps(jsonable(data), allow_nan=False, default=_default, separators=(",", ":"))
    return text.encode("ascii")  # ensure_ascii: lone surrogates are escapes, never raw bytes


class JsonResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json_bytes(content)


def error_response(status: int, kind: str, message: str) -> JsonResponse:
    """`{"error": kind, "message": message}`; the message says what to do, as the CLI's does."""
    return JsonResponse({"error": kind, "message": message}, status_code=status)
