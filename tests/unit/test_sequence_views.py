"""Context, ArrayView, value conversion and DataFrame columns on in-memory columns (no files)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from aim_parquet.format.meta import SequenceInfo
from aim_parquet.sdk.dataframes import concat_columns, flatten_params
from aim_parquet.sdk.sequence import (
    ArrayView,
    Context,
    Images,
    Metric,
    Sequence,
    make_sequence,
    metric_values,
    sequence_class_for,
)


class _Run:
    hash = "b" * 24
    _layout = None


def metric_with(steps: list[int], values: list[Any], kind: str = "float") -> Metric:
    info = SequenceInfo(seq_id="1" * 20, name="loss", context={"subset": "train"}, kind=kind)
    m = Metric(info, _Run(), layout=None)  # type: ignore[arg-type]
    s = np.asarray(steps, dtype=np.int64)
    m._columns["value"] = (s, metric_values(np.asarray(values, dtype=np.float64), kind))
    return m


def test_context_access_and_identity() -> None:
    ctx = Context({"subset": "train", "k": [1, 2]})
    assert ctx.subset == "train" and ctx["k"] == [1, 2]
    assert ctx.to_dict() == {"subset": "train", "k": [1, 2]}
    assert ctx == {"k": [1, 2], "subset": "train"}
    assert hash(ctx) == hash(Context({"k": [1, 2], "subset": "train"}))
    assert len(ctx) == 2 and set(ctx) == {"subset", "k"}
    with pytest.raises(AttributeError):
        _ = ctx.missing
    copy = ctx.to_dict()
    copy["k"].append(3)
    assert ctx["k"] == [1, 2]


def test_array_view_methods() -> None:
    m = metric_with([1, 4, 9], [0.5, 0.25, 0.125])
    view = m.values
    steps, values = view.sparse_numpy()
    assert steps.dtype == np.int64 and steps.tolist() == [1, 4, 9]
    assert values.tolist() == [0.5, 0.25, 0.125]
    assert view.sparse_list() == ([1, 4, 9], [0.5, 0.25, 0.125])
    assert view.indices_list() == [1, 4, 9] and view.values_list() == [0.5, 0.25, 0.125]
    assert list(view.keys()) == [1, 4, 9] and list(view.indices()) == [1, 4, 9]
    assert list(view.values()) == [0.5, 0.25, 0.125]
    assert list(view.items()) == [(1, 0.5), (4, 0.25), (9, 0.125)]
    assert view.first() == (1, 0.5) and view.last() == (9, 0.125)
    assert view.first_idx() == 1 and view.last_idx() == 9
    assert view.first_value() == 0.5 and view.last_value() == 0.125
    assert view[4] == 0.25 and len(view) == 3 and view.tolist() == [0.5, 0.25, 0.125]
    with pytest.raises(KeyError):
        view[5]


def test_empty_view() -> None:
    view = metric_with([], []).values
    assert len(view) == 0 and view.sparse_list() == ([], [])
    with pytest.raises(IndexError):
        view.last()


def test_int_metric_values_are_int64_when_exact() -> None:
    assert metric_values(np.array([1.0, 2.0]), "int").dtype == np.int64
    assert metric_values(np.array([1.0, 2.5]), "int").dtype == np.float64
    assert metric_values(np.array([1.0, np.nan]), "int").dtype == np.float64
    assert metric_values(np.array([1.0, 2.0]), "float").dtype == np.float64
    assert metric_values(np.array([]), "int").dtype == np.int64
    assert type(metric_with([0], [3], kind="int").values.last_value()) is int


def test_sequence_classes_by_kind() -> None:
    assert sequence_class_for("float") is Metric
    assert sequence_class_for("list(aim.image)") is Images
    assert sequence_class_for("something.new") is Sequence
    info = SequenceInfo(seq_id="2" * 20, name="x", context={}, kind="aim.image")
    assert type(make_sequence(info, _Run(), None)) is Images  # type: ignore[arg-type]
    assert Metric.sequence_name() == "metric" and Images.accepts("aim.image")


def test_object_values_numpy_keeps_lists_per_step() -> None:
    info = SequenceInfo(seq_id="3" * 20, name="imgs", context={}, kind="list(aim.text)")
    seq = Sequence(info, _Run(), layout=None)  # type: ignore[arg-type]
    seq._columns["value"] = (np.array([0, 2]), [["a", "b"], ["c"]])
    arr = ArrayView(seq, "value").values_numpy()
    assert arr.dtype == object and arr[0] == ["a", "b"] and arr[1] == ["c"]


def test_flatten_params_depth_and_json() -> None:
    flat = flatten_params({"a": {"b": {"c": {"d": 1}}}, "l": [1, 2], "x": 1, "e": {}})
    assert flat == {"a.b.c": '{"d": 1}', "l": "[1, 2]", "x": 1, "e": "{}"}


def test_concat_columns_fills_and_keeps_types() -> None:
    cols = concat_columns(
        [
            {"a": np.array([1, 2]), "s": np.array(["x", "y"])},
            {"a": np.array([0.5]), "b": np.array([True])},
        ]
    )
    assert cols["a"].dtype == np.float64 and cols["a"].tolist() == [1.0, 2.0, 0.5]
    s, b = cols["s"].tolist(), cols["b"].tolist()  # NaN where missing, as pandas' concat
    assert s[:2] == ["x", "y"] and s[2] != s[2] and b[2] is True and b[0] != b[0]
    nulls = concat_columns([{"s": np.array(["x"])}, {"t": np.array([1])}], fill=None)
    assert nulls["s"].tolist() == ["x", None] and nulls["t"].tolist() == [None, 1]
