"""Param values: normalisation of user input and their lossless JSON encoding.

Params are stored as standard JSON (readable by any JSON reader). Values JSON cannot hold are
tagged objects with the reserved key ``"$aim_parquet"``:

- bytes            -> {"$aim_parquet": "bytes", "v": "<base64>"}
- NaN, inf, -inf   -> {"$aim_parquet": "float", "v": "nan" | "inf" | "-inf"}
- a dict that itself has the key "$aim_parquet" -> {"$aim_parquet": "dict", "v": {...}}
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from typing import Any

from aim_parquet.errors import UnsupportedValueError

TAG = "$aim_parquet"
MAX_DEPTH = 200  # params and contexts a writer accepts
MAX_JSON_DEPTH = 512  # what readers accept in any JSON file (MAX_DEPTH plus tagging, with room)


def _type_name(value: object) -> str:
    t = type(value)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def to_python_number(value: Any) -> int | float | bool | None:
    """Convert numpy scalars, 0-d/size-1 arrays and tensors (anything with `.item()`) to Python.

    Returns None when `value` is not number-like. Never imports numpy/torch.
    """
    t = type(value)
    if t is float or t is int or t is bool:
        return value  # type: ignore[no-any-return]
    item = getattr(value, "item", None)
    if item is None or isinstance(value, (str, bytes, dict, list, tuple)):
        return None
    size = getattr(value, "size", None)
    if callable(size):  # torch: .size() is a method; numel gives the count
        numel = getattr(value, "numel", None)
        size = numel() if callable(numel) else None
    if size is not None and size != 1:
        return None
    try:
        out = item()
    except (ValueError, TypeError, RuntimeError):
        return None
    if type(out) in (int, float, bool):
        return out  # type: ignore[no-any-return]
    return None


def normalize_param(value: Any, key: str, _depth: int = 0) -> Any:
    """Return a plain-Python copy of a param value, or raise UnsupportedValueError naming `key`.

    Accepted: None, bool, int, float (NaN/inf kept), str, bytes, list, tuple (becomes list), dict with
    str keys at any depth; numpy scalars and size-1 arrays become Python numbers.
    """
    if _depth > MAX_DEPTH:
        raise UnsupportedValueError(
            f"Param {key!r} is nested deeper than {MAX_DEPTH} levels; flatten it before storing."
        )
    if value is None or isinstance(value, (bool, int, float, str)):
        if isinstance(value, str) and "\x00" in value:
            return value  # NUL is valid in JSON strings
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, (list, tuple)):
        return [normalize_param(v, f"{key}[{i}]", _depth + 1) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise UnsupportedValueError(
                    f"Param {key!r} has a dict key {k!r} of type {_type_name(k)}; "
                    "only str keys can be stored. Convert the keys with str()."
                )
            out[k] = normalize_param(v, f"{key}.{k}", _depth + 1)
        return out
    number = to_python_number(value)
    if number is not None:
        return number
    to_container = getattr(value, "_metadata", None)
    if to_container is not None and type(value).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf  # optional; only reached for OmegaConf objects

        return normalize_param(OmegaConf.to_container(value, resolve=True), key, _depth)
    raise UnsupportedValueError(
        f"Cannot store param {key!r}: values of type {_type_name(value)} are not supported "
        "(use None, bool, int, float, str, bytes, list, tuple or dict with str keys)."
    )


def encode_json_value(value: Any) -> Any:
    """Encode a normalised param value into JSON-safe form (tagging bytes and non-finite floats)."""
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return {TAG: "float", "v": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    if isinstance(value, bytes):
        return {TAG: "bytes", "v": base64.b64encode(value).decode("ascii")}
    if isinstance(value, list):
        out = []
        for v in value:  # a loop, not a comprehension: one stack frame per level
            out.append(encode_json_value(v))
        return out
    if isinstance(value, dict):
        encoded = {}
        for k, v in value.items():
            encoded[k] = encode_json_value(v)
        return {TAG: "dict", "v": encoded} if TAG in value else encoded
    return value


def decode_json_value(value: Any, _depth: int = 0) -> Any:
    """Inverse of :func:`encode_json_value`. Raises ValueError for JSON nested deeper than
    `MAX_JSON_DEPTH` levels (no file this format writes comes close) or a malformed tagged value."""
    if _depth > MAX_JSON_DEPTH:
        raise ValueError(f"values nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, list):
        out = []
        for v in value:  # a loop, not a comprehension: one stack frame per level
            out.append(decode_json_value(v, _depth + 1))
        return out
    if isinstance(value, dict):
        tag = value.get(TAG)
        items = value.items()
        if tag == "float":
            return float(value["v"])
        if tag == "bytes":
            return base64.b64decode(value["v"])
        if tag == "dict":
            inner = value["v"]
            if not isinstance(inner, dict):
                raise ValueError(f"tagged dict value is not an object: {inner!r:.40}")
            items = inner.items()
        decoded = {}
        for k, v in items:
            decoded[k] = decode_json_value(v, _depth + 1)
        return decoded
    return value


def normalize_context(context: Any) -> dict[str, Any]:
    """Validate a sequence context: a dict with str keys of JSON-like values (tuples become lists)."""
    if context is None:
        return {}
    if not isinstance(context, Mapping):
        raise UnsupportedValueError(
            f"context must be a dict, not {_type_name(context)} (e.g. context={{'subset': 'train'}})."
        )
    out = normalize_param(context, "context")
    _reject_non_json(out, "context")
    return out  # type: ignore[no-any-return]


def has_lone_surrogate(text: str) -> bool:
    """Whether `text` holds a lone surrogate (a str that is not valid Unicode text)."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def utf8_safe(text: str) -> str:
    """`text` as valid Unicode: each lone surrogate (which UTF-8 cannot encode) becomes the
    visible escape `\\udcxx`; any other text is returned unchanged."""
    if not has_lone_surrogate(text):
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def valid_text(text: str) -> str:
    """`text` made valid Unicode: the bytes of a name `os.fsdecode` could not decode (surrogate
    escapes) decoded as UTF-8 with U+FFFD for what is not UTF-8, any other lone surrogate
    replaced by U+FFFD. Valid text is returned as it is."""
    if not has_lone_surrogate(text):
        return text
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)


def check_text(value: Any, what: str) -> None:
    """Refuse a run property (name, experiment, description, tag) that is not valid Unicode."""
    if isinstance(value, str) and has_lone_surrogate(value):
        raise UnsupportedValueError(
            f"{what} {value[:40]!r} holds a lone surrogate (text that is not valid Unicode, e.g. "
            "from os.fsdecode of a non-UTF-8 file name); it is shown in tables and stored as "
            "UTF-8 Parquet, so decode it properly first, e.g. "
            "os.fsencode(text).decode('utf-8', 'replace')."
        )


def _reject_non_json(value: Any, where: str) -> None:
    if isinstance(value, str) and has_lone_surrogate(value):
        raise UnsupportedValueError(
            f"{where} holds a lone surrogate in {value[:40]!r}; sequence names and contexts are "
            "stored as UTF-8, so decode such text properly (or use errors='replace')."
        )
    if isinstance(value, bytes):
        raise UnsupportedValueError(f"{where} cannot hold bytes values; use str.")
    if isinstance(value, float) and not math.isfinite(value):
        raise UnsupportedValueError(f"{where} cannot hold NaN or infinite floats.")
    if isinstance(value, list):
        for v in value:
            _reject_non_json(v, where)
    elif isinstance(value, dict):
        for k, v in value.items():
            _reject_non_json(k, where)
            _reject_non_json(v, f"{where}.{k}")
