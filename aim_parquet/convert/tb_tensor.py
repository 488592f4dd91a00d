"""`TensorProto` as numpy (or a list of byte strings), and the hparams plugin's messages.

TensorProto (tensorflow/core/framework/tensor.proto): dtype (1), tensor_shape (2: dim (2): size
(1)), tensor_content (4, raw little-endian), or typed repeated fields; when fewer values than
elements are given the last one is repeated, as TensorFlow's `make_ndarray` does.

HParamsPluginData (tensorboard/plugins/hparams/plugin_data.proto): session_start_info (3) with
hparams (1, map<string, google.protobuf.Value>), group_name (4), start_time_secs (5);
session_end_info (4) with status (1) and end_time_secs (2); experiment (2), the hparam domains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aim_parquet.convert.protowire import (
    FIXED32,
    FIXED64,
    LENGTH,
    VARINT,
    WireError,
    as_double,
    as_float,
    fields,
    packed_fixed,
    packed_varints,
    signed64,
    span,
    text,
)

DT_STRING = 7
DT_BFLOAT16 = 14
# TensorFlow DataType enum -> numpy dtype (little endian), for the numeric types.
NUMPY_DTYPES: dict[int, str] = {
    1: "<f4",
    2: "<f8",
    3: "<i4",
    4: "u1",
    5: "<i2",
    6: "i1",
    9: "<i8",
    10: "?",
    17: "<u2",
    19: "<f2",
    22: "<u4",
    23: "<u8",
}
# Which repeated field holds the values of each dtype, and how it is encoded.
_INT_FIELD_DTYPES = {3, 4, 5, 6, 17}  # int_val (7)
SESSION_STATUS = {0: "unknown", 1: "success", 2: "failure", 3: "running"}


@dataclass
class Tensor:
    """A decoded TensorProto: `array` for numbers, `strings` for DT_STRING."""

    dtype: int
    shape: tuple[int, ...]
    array: np.ndarray[Any, Any] | None = None
    strings: list[bytes] = field(default_factory=list)

    @property
    def size(self) -> int:
        return math.prod(self.shape)


def decode_tensor(buf: bytes, where: tuple[int, int]) -> Tensor:
    dtype = 0
    shape: tuple[int, ...] = ()
    content: bytes | None = None
    numbers: list[Any] = []
    strings: list[bytes] = []
    for number, wire, value in fields(buf, *where):
        if number == 1 and wire == VARINT:
            assert isinstance(value, int)
            dtype = value
        elif number == 2 and wire == LENGTH:
            shape = _decode_shape(buf, *span(value))
        elif number == 4 and wire == LENGTH:
            s, e = span(value)
            content = buf[s:e]
        elif number == 8 and wire == LENGTH:
            s, e = span(value)
            strings.append(buf[s:e])
        elif number in (5, 6):  # float_val, double_val
            fmt = "f" if number == 5 else "d"
            if wire == LENGTH:
                numbers.extend(packed_fixed(buf, *span(value), fmt))
            else:
                numbers.append(as_float(value) if wire == FIXED32 else as_double(value))
        elif number in (7, 10, 11, 13, 16, 17):  # int, int64, bool, half, uint32, uint64 values
            if wire == LENGTH:
                numbers.extend(packed_varints(buf, *span(value)))
            elif wire == VARINT:
                numbers.append(value)
    if dtype == DT_STRING:
        return Tensor(dtype, shape, strings=strings)
    return Tensor(dtype, shape, array=_numeric_array(dtype, shape, content, numbers))


def _decode_shape(buf: bytes, start: int, end: int) -> tuple[int, ...]:
    dims: list[int] = []
    for number, wire, value in fields(buf, start, end):
        if number == 2 and wire == LENGTH:
            size = 0
            for n2, w2, v2 in fields(buf, *span(value)):
                if n2 == 1 and w2 == VARINT:
                    assert isinstance(v2, int)
                    size = signed64(v2)
            dims.append(size)
    return tuple(dims)


def _numeric_array(
    dtype: int, shape: tuple[int, ...], content: bytes | None, numbers: list[Any]
) -> np.ndarray[Any, Any]:
    count = math.prod(shape)
    if dtype == DT_BFLOAT16:
        if content is not None:
            bits = np.frombuffer(content, dtype="<u2")
        else:
            bits = np.asarray(numbers, dtype=np.uint32).astype("<u2")
        array = (bits.astype(np.uint32) << 16).view(np.float32)
    elif dtype in NUMPY_DTYPES:
        np_dtype = np.dtype(NUMPY_DTYPES[dtype])
        if content is not None:
            array = np.frombuffer(content, dtype=np_dtype)
        elif dtype == 19:  # half_val holds the 16 bits of each half
            array = np.asarray(numbers, dtype=np.uint32).astype("<u2").view(np.float16)
        elif np_dtype.kind in "iu" and dtype not in _INT_FIELD_DTYPES:
            array = np.asarray([signed64(v) if np_dtype.kind == "i" else v for v in numbers])
            array = array.astype(np_dtype)
        elif np_dtype.kind in "iu":
            array = np.asarray([_signed32(v) for v in numbers]).astype(np_dtype)
        else:
            array = np.asarray(numbers).astype(np_dtype)
    else:
        raise WireError(f"tensor dtype {dtype} is not a number type this converter reads")
    if array.size == count:
        return array.reshape(shape)
    if array.size == 0:
        return np.zeros(shape, dtype=array.dtype)
    if array.size < count:  # TensorFlow repeats the last value
        padded = np.concatenate([array, np.repeat(array[-1:], count - array.size)])
        return padded.reshape(shape)
    raise WireError(f"tensor has {array.size} values for shape {shape}")


def _signed32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


@dataclass(frozen=True)
class HParamsData:
    """What a `_hparams_/...` summary says about the run."""

    hparams: dict[str, Any] = field(default_factory=dict)
    group_name: str | None = None
    start_time_secs: float | None = None
    status: str | None = None
    end_time_secs: float | None = None
    is_experiment: bool = False


def decode_hparams(content: bytes) -> HParamsData:
    hparams: dict[str, Any] = {}
    group: str | None = None
    start: float | None = None
    status: str | None = None
    end: float | None = None
    is_experiment = False
    for number, wire, value in fields(content):
        if wire != LENGTH:
            continue
        s, e = span(value)
        if number == 2:
            is_experiment = True
        elif number == 3:
            for n2, w2, v2 in fields(content, s, e):
                if n2 == 1 and w2 == LENGTH:
                    key, item = _map_entry(content, *span(v2))
                    hparams[key] = item
                elif n2 == 4 and w2 == LENGTH:
                    group = text(content, v2)
                elif n2 == 5 and w2 == FIXED64:
                    start = as_double(v2)
        elif number == 4:
            for n2, w2, v2 in fields(content, s, e):
                if n2 == 1 and w2 == VARINT:
                    assert isinstance(v2, int)
                    status = SESSION_STATUS.get(v2, str(v2))
                elif n2 == 2 and w2 == FIXED64:
                    end = as_double(v2)
    return HParamsData(hparams, group, start, status, end, is_experiment)


def _map_entry(buf: bytes, start: int, end: int) -> tuple[str, Any]:
    key = ""
    item: Any = None
    for number, wire, value in fields(buf, start, end):
        if number == 1 and wire == LENGTH:
            key = text(buf, value)
        elif number == 2 and wire == LENGTH:
            item = _pb_value(buf, *span(value))
    return key, item


def _pb_value(buf: bytes, start: int, end: int) -> Any:
    """A `google.protobuf.Value` as a Python value (struct -> dict, list -> list)."""
    result: Any = None
    for number, wire, value in fields(buf, start, end):
        if number == 1:
            result = None
        elif number == 2 and wire == FIXED64:
            result = as_double(value)
        elif number == 3 and wire == LENGTH:
            result = text(buf, value)
        elif number == 4 and wire == VARINT:
            result = bool(value)
        elif number == 5 and wire == LENGTH:
            result = dict(
                _map_entry(buf, *span(v2))
                for n2, w2, v2 in fields(buf, *span(value))
                if n2 == 1 and w2 == LENGTH
            )
        elif number == 6 and wire == LENGTH:
            result = [
                _pb_value(buf, *span(v2))
                for n2, w2, v2 in fields(buf, *span(value))
                if n2 == 1 and w2 == LENGTH
            ]
    return result
