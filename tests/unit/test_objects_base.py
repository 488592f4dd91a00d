"""The object contract: registry, object_kind, ObjectRecord, shared helpers, import hygiene."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import aim_parquet.objects as objects
from aim_parquet.errors import AimParquetError, UnsupportedValueError
from aim_parquet.objects import (
    Audio,
    CustomObject,
    Distribution,
    Figure,
    Image,
    InvalidObjectError,
    LogLine,
    LogRecord,
    ObjectFileNotFoundError,
    ObjectRecord,
    OptionalDependencyError,
    Text,
    object_class,
    object_kind,
)
from aim_parquet.objects.base import as_ndarray, caption_text

REPO_ROOT = Path(__file__).resolve().parents[2]


class FakeTensor:
    """Quacks like a torch tensor: detach(), cpu(), numpy()."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.calls: list[str] = []

    def detach(self) -> FakeTensor:
        self.calls.append("detach")
        return self

    def cpu(self) -> FakeTensor:
        self.calls.append("cpu")
        return self

    def numpy(self) -> np.ndarray:
        self.calls.append("numpy")
        return self.array


class FakeBFloat16Tensor(FakeTensor):
    """numpy() refuses, like torch does for bfloat16; float() widens."""

    def numpy(self) -> np.ndarray:
        raise TypeError("Got unsupported ScalarType BFloat16")

    def float(self) -> FakeTensor:
        return FakeTensor(self.array.astype(np.float32))


class ScalarTensor:
    """A 0-d tensor label, as a data loader yields it: only .item() gives the number."""

    def __init__(self, value: int) -> None:
        self.value = value

    def item(self) -> int:
        return self.value


class ArrayLike:
    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        return self.array


def test_all_is_sorted_and_complete() -> None:
    assert objects.__all__ == sorted(objects.__all__)
    for name in objects.__all__:
        assert hasattr(objects, name)


def test_import_does_not_load_heavy_libraries() -> None:
    code = (
        "import sys, aim_parquet.objects; "
        "heavy = [m for m in ('PIL', 'matplotlib', 'plotly', 'wave') if m in sys.modules]; "
        "print(heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("aim_name", "cls"),
    [
        ("aim.image", Image),
        ("aim.distribution", Distribution),
        ("aim.text", Text),
        ("aim.log_line", LogLine),
        ("aim.log_record", LogRecord),
        ("aim.audio", Audio),
        ("aim.figure", Figure),
    ],
)
def test_registry_maps_aim_names_to_classes(aim_name: str, cls: type[CustomObject]) -> None:
    assert object_class(aim_name) is cls
    assert aim_name == cls.AIM_NAME


def test_unknown_aim_name_is_a_clear_error() -> None:
    with pytest.raises(InvalidObjectError, match=r"unknown object type 'aim\.video'.*aim\.image"):
        object_class("aim.video")


def test_registering_a_taken_name_fails() -> None:
    with pytest.raises(TypeError, match="already used"):

        class Impostor(CustomObject):  # noqa: F841 - defining it is the test
            AIM_NAME = "aim.image"


def test_object_record_is_frozen() -> None:
    record = ObjectRecord(payload=b"x", meta={"a": 1})
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.payload = b"y"  # type: ignore[misc]


def test_error_classes_reach_the_base_and_builtins() -> None:
    assert issubclass(InvalidObjectError, AimParquetError)
    assert issubclass(InvalidObjectError, ValueError)
    assert issubclass(ObjectFileNotFoundError, FileNotFoundError)
    assert issubclass(ObjectFileNotFoundError, ValueError)
    assert issubclass(OptionalDependencyError, ImportError)
    assert issubclass(OptionalDependencyError, AimParquetError)


# ----------------------------------------------------------------------------- object_kind


def test_object_kind_of_single_objects() -> None:
    assert object_kind(Text("a")) == "aim.text"
    assert object_kind(LogLine("a")) == "aim.log_line"
    assert object_kind(Distribution([1, 2, 3])) == "aim.distribution"
    assert object_kind(Image(np.zeros((2, 2), np.uint8))) == "aim.image"


def test_object_kind_of_lists() -> None:
    images = [Image(np.zeros((2, 2), np.uint8)), Image(np.ones((2, 2), np.uint8))]
    assert object_kind(images) == "list(aim.image)"
    assert object_kind(tuple(images)) == "list(aim.image)"
    assert object_kind([Text("a")]) == "list(aim.text)"
    assert object_kind([]) == "list"
    assert object_kind(()) == "list"


@pytest.mark.parametrize("value", [1.0, 3, "text", None, {"a": Text("x")}, [1, 2], [[Text("a")]]])
def test_object_kind_of_other_values_is_none(value: object) -> None:
    assert object_kind(value) is None


def test_object_kind_refuses_mixed_kinds() -> None:
    with pytest.raises(UnsupportedValueError, match=r"item 0 is 'aim\.text' but item 1"):
        object_kind([Text("a"), Distribution([1.0])])
    with pytest.raises(UnsupportedValueError, match="mixes kinds"):
        object_kind([Text("a"), LogLine("b")])


def test_object_kind_refuses_objects_mixed_with_other_values() -> None:
    with pytest.raises(UnsupportedValueError):
        object_kind([Text("a"), "b"])
    with pytest.raises(UnsupportedValueError, match="mixes objects with other values"):
        object_kind([1.0, Text("a")])


# ----------------------------------------------------------------------------- helpers


def test_as_ndarray_duck_types_tensors() -> None:
    array = np.arange(6.0)
    tensor = FakeTensor(array)
    assert as_ndarray(tensor) is array
    assert tensor.calls == ["detach", "cpu", "numpy"]
    assert as_ndarray(array) is array
    np.testing.assert_array_equal(as_ndarray(ArrayLike(array)), array)
    np.testing.assert_array_equal(as_ndarray(FakeBFloat16Tensor(array)), array)
    assert as_ndarray([1, 2]) is None
    assert as_ndarray("text") is None


def test_caption_text() -> None:
    assert caption_text("cat") == "cat"
    assert caption_text(None) == ""
    assert caption_text(3) == "3"
    assert caption_text(np.int64(7)) == "7"
    assert caption_text(ScalarTensor(5)) == "5"
    with pytest.raises(UnsupportedValueError, match="caption must be a str"):
        caption_text(object())


def test_every_record_meta_is_json_serialisable() -> None:
    values: list[CustomObject] = [
        Image(np.zeros((3, 3, 3), np.uint8), caption="c"),
        Distribution(np.arange(10.0)),
        Text("t"),
        LogLine("l"),
        LogRecord("m", 20, 1.5),
        Audio(np.zeros(4)),
    ]
    for value in values:
        record = value.to_record()
        assert isinstance(record.payload, bytes)
        json.dumps(record.meta, allow_nan=False)
        json.dumps(value.json(), allow_nan=False)
        again = type(value).from_record(record.payload, record.meta)
        assert again == value
        assert again.to_record() == record
