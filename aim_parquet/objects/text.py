"""``Text``, ``LogLine`` and ``LogRecord``: text payloads stored as UTF-8.

Lone surrogates (which plain UTF-8 refuses) survive the round trip through ``surrogatepass``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Self

import numpy as np

from aim_parquet.errors import UnsupportedValueError

from .base import CustomObject, InvalidObjectError, ObjectRecord

__all__ = ["LogLine", "LogRecord", "Text"]

_ENCODING = "utf-8"
_ERRORS = "surrogatepass"


class Text(CustomObject):
    """A piece of text."""

    AIM_NAME = "aim.text"

    _text: str

    def __init__(self, text: str) -> None:
        if not isinstance(text, str):
            raise UnsupportedValueError(
                f"{type(self).__name__} takes a str, not {type(text).__name__}; "
                "convert it first, e.g. str(value)"
            )
        self._text = str(text)  # a str subclass (numpy.str_) becomes a plain str

    def to_record(self) -> ObjectRecord:
        return ObjectRecord(payload=self._text.encode(_ENCODING, _ERRORS), meta={})

    @classmethod
    def from_record(cls, payload: bytes, meta: Mapping[str, Any]) -> Self:
        obj = cls.__new__(cls)
        obj._text = _decode(payload, cls.AIM_NAME)
        return obj

    @property
    def data(self) -> str:
        return self._text

    def json(self) -> dict[str, Any]:
        return {}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Text):
            return NotImplemented
        return self.AIM_NAME == other.AIM_NAME and self._text == other._text

    def __repr__(self) -> str:
        return self._text


class LogLine(Text):
    """One line of captured terminal output."""

    AIM_NAME = "aim.log_line"


class LogRecord(CustomObject):
    """A structured log entry: message, level, timestamp, extra arguments and caller location."""

    AIM_NAME = "aim.log_record"

    _message: str
    _log_level: int
    _timestamp: float
    _extra_args: dict[str, Any]
    _logger_info: list[Any] | None
    _payload: bytes

    def __init__(
        self,
        message: str,
        level: int | np.integer[Any],
        timestamp: float,
        extra_args: Mapping[str, Any] | None = None,
        logger_info: tuple[str, int] | list[Any] | None = None,
    ) -> None:
        if not isinstance(message, str):
            raise UnsupportedValueError(f"message must be a str, not {type(message).__name__}")
        if isinstance(level, bool) or not isinstance(level, int | np.integer):
            raise UnsupportedValueError(f"level must be an int, not {type(level).__name__}")
        if isinstance(timestamp, bool) or not isinstance(timestamp, int | float | np.number):
            raise UnsupportedValueError(
                f"timestamp must be a number (seconds since the epoch), not {type(timestamp).__name__}"
            )
        if not math.isfinite(float(timestamp)):
            raise InvalidObjectError(f"timestamp must be finite, got {timestamp}")
        self._message = message
        self._log_level = int(level)
        self._timestamp = float(timestamp)
        self._extra_args = _extra_args(extra_args)
        self._logger_info = _logger_info(logger_info)
        try:
            text = json.dumps(self.json(), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise UnsupportedValueError(
                f"LogRecord extra_args must be JSON values (str, number, bool, None, list, dict "
                f"with str keys; no NaN): {exc}"
            ) from exc
        # Keep what a reader will get back (tuples become lists, nested dicts are copies).
        self._extra_args = json.loads(text)["extra_args"]
        self._payload = text.encode(_ENCODING, _ERRORS)

    def to_record(self) -> ObjectRecord:
        return ObjectRecord(payload=self._payload, meta={})

    @classmethod
    def from_record(cls, payload: bytes, meta: Mapping[str, Any]) -> Self:
        try:
            fields = json.loads(_decode(payload, cls.AIM_NAME))
            obj = cls.__new__(cls)
            obj._message = str(fields["message"])
            obj._log_level = int(fields["log_level"])
            obj._timestamp = float(fields["timestamp"])
            obj._extra_args = dict(fields.get("extra_args") or {})
            info = fields.get("logger_info")
            obj._logger_info = list(info) if info is not None else None
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidObjectError(f"stored {cls.AIM_NAME} record is not valid: {exc}") from exc
        obj._payload = bytes(payload)
        return obj

    @property
    def message(self) -> str:
        return self._message

    @property
    def log_level(self) -> int:
        return self._log_level

    @property
    def level(self) -> int:
        """Same as ``log_level`` (the constructor's name)."""
        return self._log_level

    @property
    def timestamp(self) -> float:
        return self._timestamp

    @property
    def extra_args(self) -> dict[str, Any]:
        return dict(self._extra_args)

    @property
    def logger_info(self) -> list[Any] | None:
        """``[caller file, line]`` or ``None``."""
        return None if self._logger_info is None else list(self._logger_info)

    def json(self) -> dict[str, Any]:
        return {
            "message": self._message,
            "log_level": self._log_level,
            "timestamp": self._timestamp,
            "extra_args": dict(self._extra_args),
            "logger_info": self.logger_info,
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LogRecord):
            return NotImplemented
        return self.json() == other.json()

    def __repr__(self) -> str:
        return (
            f"LogRecord(message={self._message!r}, level={self._log_level}, "
            f"timestamp={self._timestamp})"
        )


def _decode(payload: bytes, owner: str) -> str:
    try:
        return bytes(payload).decode(_ENCODING, _ERRORS)
    except UnicodeDecodeError as exc:
        raise InvalidObjectError(f"stored {owner} payload is not UTF-8: {exc}") from exc


def _extra_args(extra_args: Mapping[str, Any] | None) -> dict[str, Any]:
    if extra_args is None:
        return {}
    if not isinstance(extra_args, Mapping):
        raise UnsupportedValueError(f"extra_args must be a dict, not {type(extra_args).__name__}")
    if not all(isinstance(key, str) for key in extra_args):
        raise UnsupportedValueError("extra_args keys must be str")
    return dict(extra_args)


def _logger_info(info: Any) -> list[Any] | None:
    if info is None:
        return None
    try:
        filename, line = info
    except (TypeError, ValueError) as exc:
        raise UnsupportedValueError(
            f"logger_info must be (caller file, line number), got {info!r}"
        ) from exc
    if not isinstance(filename, str) or isinstance(line, bool) or not isinstance(line, int):
        raise UnsupportedValueError(f"logger_info must be (str file, int line), got {info!r}")
    return [filename, line]
