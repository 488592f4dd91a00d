"""Text, LogLine and LogRecord: UTF-8 payloads, strict input types, exact round trips."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aim_parquet.errors import UnsupportedValueError
from aim_parquet.objects import InvalidObjectError, LogLine, LogRecord, Text, object_class


@pytest.mark.parametrize(
    "text", ["", "hello", "ünïcødé ✓ 日本語 🚀", "line\nbreak\x00nul", "lone \ud800 surrogate"]
)
def test_text_round_trip(text: str) -> None:
    value = Text(text)
    record = value.to_record()
    assert record.meta == {}
    if "\ud800" not in text:
        assert record.payload == text.encode("utf-8")
    again = Text.from_record(record.payload, record.meta)
    assert again == value
    assert again.data == text


def test_text_accessors() -> None:
    value = Text("some text")
    assert value.data == "some text"
    assert value.json() == {}
    assert repr(value) == "some text"
    assert value != "some text"
    assert value != Text("other")


@pytest.mark.parametrize("bad", [3, b"bytes", None, ["a"], bytearray(b"x")])
def test_text_refuses_non_str(bad: object) -> None:
    with pytest.raises(UnsupportedValueError, match="takes a str") as info:
        Text(bad)  # type: ignore[arg-type]
    assert isinstance(info.value, TypeError)


def test_str_subclasses_become_plain_str() -> None:
    value = Text(np.str_("numpy text"))
    assert type(value.data) is str
    assert value == Text("numpy text")


def test_log_line_is_a_text_of_its_own_kind() -> None:
    line = LogLine("epoch 1 done")
    assert isinstance(line, Text)
    assert line.AIM_NAME == "aim.log_line"
    record = line.to_record()
    again = object_class("aim.log_line").from_record(record.payload, record.meta)
    assert type(again) is LogLine
    assert again == line
    assert line != Text("epoch 1 done")
    with pytest.raises(UnsupportedValueError):
        LogLine(1)  # type: ignore[arg-type]


def test_text_from_record_with_bad_utf8() -> None:
    with pytest.raises(InvalidObjectError, match="not UTF-8"):
        Text.from_record(b"\xff\xfe", {})


# ----------------------------------------------------------------------------- LogRecord


def test_log_record_round_trip() -> None:
    record_value = LogRecord(
        "loss is nan ⚠",
        30,
        1_700_000_000.25,
        extra_args={"step": 3, "tags": ("a", "b"), "nested": {"x": None}},
        logger_info=("train.py", 42),
    )
    record = record_value.to_record()
    fields = json.loads(record.payload.decode("utf-8"))
    assert fields == {
        "message": "loss is nan ⚠",
        "log_level": 30,
        "timestamp": 1_700_000_000.25,
        "extra_args": {"step": 3, "tags": ["a", "b"], "nested": {"x": None}},
        "logger_info": ["train.py", 42],
    }
    again = LogRecord.from_record(record.payload, record.meta)
    assert again == record_value
    assert again.to_record() == record
    assert again.message == "loss is nan ⚠"
    assert again.log_level == again.level == 30
    assert again.timestamp == 1_700_000_000.25
    assert again.extra_args == {"step": 3, "tags": ["a", "b"], "nested": {"x": None}}
    assert again.logger_info == ["train.py", 42]
    assert again.json() == fields


def test_log_record_defaults() -> None:
    value = LogRecord("hi", 20, 5)
    assert value.extra_args == {}
    assert value.logger_info is None
    assert value.timestamp == 5.0
    assert isinstance(value.timestamp, float)
    assert repr(value) == "LogRecord(message='hi', level=20, timestamp=5.0)"
    assert LogRecord("hi", np.int64(20), np.float64(5.0)) == value


def test_log_record_accessors_return_copies() -> None:
    value = LogRecord("hi", 20, 1.0, extra_args={"a": [1]})
    value.extra_args["a"] = 2
    assert value.extra_args == {"a": [1]}


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        ((1, 20, 1.0), {}, UnsupportedValueError, "message must be a str"),
        (("m", "INFO", 1.0), {}, UnsupportedValueError, "level must be an int"),
        (("m", True, 1.0), {}, UnsupportedValueError, "level must be an int"),
        (("m", 20, "now"), {}, UnsupportedValueError, "timestamp must be a number"),
        (("m", 20, float("nan")), {}, InvalidObjectError, "timestamp must be finite"),
        (("m", 20, 1.0), {"extra_args": [1]}, UnsupportedValueError, "extra_args must be a dict"),
        (("m", 20, 1.0), {"extra_args": {1: "a"}}, UnsupportedValueError, "keys must be str"),
        (("m", 20, 1.0), {"extra_args": {"a": object()}}, UnsupportedValueError, "JSON values"),
        (("m", 20, 1.0), {"extra_args": {"a": float("nan")}}, UnsupportedValueError, "no NaN"),
        (("m", 20, 1.0), {"logger_info": "file.py"}, UnsupportedValueError, "logger_info"),
        (("m", 20, 1.0), {"logger_info": ("f.py", "12")}, UnsupportedValueError, "logger_info"),
    ],
)
def test_log_record_refuses_bad_fields(
    args: tuple[object, ...], kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        LogRecord(*args, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("payload", [b"not json", b'{"message": "m"}', b"[1, 2]", b"\xff"])
def test_log_record_from_bad_record(payload: bytes) -> None:
    with pytest.raises(InvalidObjectError):
        LogRecord.from_record(payload, {})
