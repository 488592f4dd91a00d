"""The JSON of the metadata files: strict UTF-8 encoding (no NaN tokens), bounded decoding (a
hostile file's depth is refused before parsing), and the checked field decoders every record's
`from_json` uses (a wrong type raises TypeError or ValueError, which the record turns into
CorruptFileError naming the file)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np

from aim_parquet.errors import CorruptFileError
from aim_parquet.format.paths import is_valid_seq_id
from aim_parquet.format.values import MAX_JSON_DEPTH, decode_json_value, encode_json_value

__all__ = [
    "context_of", "decode_number", "encode_number", "integer", "json_bytes", "json_depth",
    "loads_json", "loads_json_object", "number", "opt_integer", "opt_str", "seq_id_of", "typed",
]  # fmt: skip


def json_bytes(obj: Any, **options: Any) -> bytes:
    """Strict UTF-8 JSON (no NaN tokens); strings holding lone surrogates (which UTF-8 cannot
    encode) are written as `\\uXXXX` escapes so any JSON reader still opens the file."""
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False, **options)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj, ensure_ascii=True, allow_nan=False, **options).encode("ascii")


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')


def json_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in the JSON text `raw` (brackets inside strings
    do not count). Cheap for the usual file: one with fewer brackets cannot be deeper."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:
        return 0  # (not exact: only "no deeper than the bound")
    bare = np.frombuffer(_JSON_STRING.sub(b"", raw), dtype=np.uint8)
    opens = ((bare == ord("[")) | (bare == ord("{"))).astype(np.int32)
    closes = ((bare == ord("]")) | (bare == ord("}"))).astype(np.int32)
    return int(np.cumsum(opens - closes).max(initial=0))


def loads_json(raw: bytes, what: str) -> Any:
    """Parse the JSON file content `raw` (`what` names the file in errors): CorruptFileError when
    it is not UTF-8 JSON or is nested deeper than `MAX_JSON_DEPTH` levels, so one hostile file
    can never exhaust the stack of a command that reads every run."""
    if json_depth(raw) > MAX_JSON_DEPTH:
        raise CorruptFileError(
            f"{what} is nested deeper than {MAX_JSON_DEPTH} levels; no file aim_parquet writes "
            "is. Run `aim-parquet verify --repair` to rebuild or quarantine it."
        )
    try:
        return json.loads(raw.decode("utf-8", "surrogatepass"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise CorruptFileError(
            f"{what} is not valid JSON ({exc}). Run `aim-parquet verify --repair` to rebuild it."
        ) from exc


def loads_json_object(raw: bytes, what: str) -> dict[str, Any]:
    """`loads_json` that also requires a JSON object."""
    data = loads_json(raw, what)
    if not isinstance(data, dict):
        raise CorruptFileError(f"{what} is not a JSON object.")
    return data


def typed(value: Any, typ: type, what: str) -> Any:
    if not isinstance(value, typ):
        raise TypeError(f"{what} must be a {typ.__name__}, not {type(value).__name__}")
    return value


def opt_str(value: Any, what: str) -> str | None:
    return None if value is None else typed(value, str, what)


def number(value: Any) -> float:
    """A number field (bools and strings refused: `float("1e9")` would accept a string)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, not {type(value).__name__}")
    return float(value)


def integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, not {type(value).__name__}")
    return value


def opt_integer(value: Any) -> int | None:
    return None if value is None else integer(value)


def seq_id_of(value: Any) -> str:
    if not isinstance(value, str) or not is_valid_seq_id(value):
        raise ValueError(f"invalid sequence id {value!r:.40}")
    return value


def context_of(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"context must be an object, not {type(value).__name__}")
    return value


def encode_number(value: float | None) -> Any:
    if value is None or math.isfinite(value):
        return value
    return encode_json_value(value)


def decode_number(value: Any) -> float | None:
    return None if value is None else float(decode_json_value(value))
