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
from aim_parquet.format.values import MAX_JSON_DEPTH, TAG, decode_json_value, encode_json_value

__all__ = [
    "context_of", "decode_json_values", "decode_number", "encode_number", "integer",
    "is_plain_entry", "is_plain_sidecar", "json_bytes", "json_depth", "loads_json",
    "loads_json_object", "number", "opt_integer", "opt_str", "seq_id_of", "typed",
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


# -- the plain case, checked at once ---------------------------------------------------------
# Reading every sidecar of a repository (the run index) calls the field decoders above some 30
# times per run. A record whose fields all have their plain JSON type (what every writer of this
# format writes) is checked by the predicates below in one expression and built directly; any
# other record goes through the field decoders, which give its value or its error: the result is
# the same either way (tests/property/test_sidecar_decode.py checks it).
_LEAF = frozenset({str, int, float, bool, type(None)})
_NUMBER = frozenset({int, float})
_OPT_STR = frozenset({str, type(None)})
_OPT_INT = frozenset({int, type(None)})
_OPT_FLOAT = frozenset({float, type(None)})


def decode_json_values(value: Any, _depth: int = 0) -> Any:
    """`values.decode_json_value(value)`, without a call per leaf: containers without a tag are
    copied here, anything else (a tagged value, a subclass, the depth bound) is left to it."""
    kind = type(value)
    if kind in _LEAF:
        return value
    leaf, depth = _LEAF, _depth + 1
    if kind is list and _depth < MAX_JSON_DEPTH:
        out = []
        for v in value:  # loops, not comprehensions: one stack frame per level, as there
            out.append(v if type(v) in leaf else decode_json_values(v, depth))
        return out
    if kind is dict and _depth < MAX_JSON_DEPTH and TAG not in value:
        decoded = {}
        for k, v in value.items():
            decoded[k] = v if type(v) in leaf else decode_json_values(v, depth)
        return decoded
    return decode_json_value(value, _depth)


def is_plain_sidecar(data: dict[str, Any]) -> bool:
    """Whether the run-level fields of a sidecar's JSON object (all but its params' and
    catalogue's content) have their plain JSON types, so `RunMeta.from_json` can take them as
    they are. (`format_version` is checked before.)"""
    get = data.get
    tags = get("tags") or []
    return (
        type(get("hash")) is str
        and type(get("creation_time")) in _NUMBER
        and type(get("name")) in _OPT_STR
        and type(get("description")) in _OPT_STR
        and type(get("experiment")) in _OPT_STR
        and type(get("archived", False)) is bool
        and (get("end_time") is None or type(get("end_time")) in _NUMBER)
        and type(get("updated_at") or 0.0) in _NUMBER
        and type(get("params") or {}) is dict
        and type(get("sequences") or []) is list
        and type(tags) is list
        and all(type(t) is str for t in tags)
    )


def is_plain_entry(data: Any) -> bool:
    """Whether a catalogue entry's JSON has its plain JSON types (its `reach` aside, which is
    read leniently), so `SequenceInfo.from_json` can take its fields as they are."""
    if type(data) is not dict:
        return False
    get = data.get
    seq_id = get("seq_id")
    return (
        type(seq_id) is str
        and is_valid_seq_id(seq_id)
        and type(get("name")) is str
        and type(get("kind")) is str
        and type(get("count", 0)) is int
        and (get("context") is None or type(get("context")) is dict)
        and type(get("first_step")) in _OPT_INT
        and type(get("last_step")) in _OPT_INT
        and type(get("first")) in _LEAF
        and type(get("last")) in _LEAF
        and type(get("min")) in _OPT_FLOAT
        and type(get("max")) in _OPT_FLOAT
    )
