"""Distribution: agrees with np.histogram, enforces 1..512 bins, never hides non-finite samples."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator

import numpy as np
import pytest

from aim_parquet.errors import UnsupportedValueError
from aim_parquet.objects import Distribution, InvalidObjectError

RNG = np.random.default_rng(99)


class FakeTensor:
    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def detach(self) -> FakeTensor:
        return self

    def cpu(self) -> FakeTensor:
        return self

    def numpy(self) -> np.ndarray:
        return self.array


class ArrayLike:
    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        return self.array


def assert_matches_numpy(dist: Distribution, samples: object, bins: int = 64) -> None:
    counts, edges = np.histogram(np.asarray(samples), bins=bins)
    np.testing.assert_array_equal(dist.weights, counts)
    np.testing.assert_array_equal(dist.ranges, edges)
    assert dist.range == [edges[0], edges[-1]]
    assert dist.bin_count == bins


def round_trip(dist: Distribution) -> Distribution:
    record = dist.to_record()
    again = Distribution.from_record(record.payload, record.meta)
    assert again == dist
    assert again.json() == dist.json()
    np.testing.assert_array_equal(again.ranges, dist.ranges)
    return again


# ----------------------------------------------------------------------------- from samples


@pytest.mark.parametrize(
    "samples",
    [
        RNG.standard_normal(10_000),
        RNG.standard_normal(1000).astype(np.float32),
        RNG.integers(-50, 50, size=500),
        RNG.integers(0, 255, size=(20, 30), dtype=np.uint8),
        np.array([np.iinfo(np.int64).min, 0, np.iinfo(np.int64).max]),
        [0.5, 1.5, 1.5, 3.0],
        (1, 2, 3),
    ],
    ids=["normal", "float32", "int", "2d-uint8", "int64-extremes", "list", "tuple"],
)
def test_samples_match_np_histogram(samples: object) -> None:
    dist = Distribution(samples)
    assert_matches_numpy(dist, samples)
    round_trip(dist)


def test_bin_count_is_used() -> None:
    samples = RNG.random(300)
    for bins in (1, 7, 512):
        assert_matches_numpy(Distribution(samples, bin_count=bins), samples, bins)
        assert_matches_numpy(Distribution.from_samples(samples, bins), samples, bins)


def test_tensors_and_iterables_are_accepted() -> None:
    samples = RNG.standard_normal(100)
    assert_matches_numpy(Distribution(FakeTensor(samples)), samples)
    assert_matches_numpy(Distribution(ArrayLike(samples)), samples)

    def generate() -> Iterator[float]:
        yield from samples.tolist()

    assert_matches_numpy(Distribution(generate()), samples)


def test_bool_samples_are_counted_as_zero_and_one() -> None:
    dist = Distribution(np.array([True, False, True]), bin_count=2)
    assert dist.weights.tolist() == [1.0, 2.0]


def test_constant_samples_get_a_unit_wide_range() -> None:
    dist = Distribution([3.0, 3.0, 3.0], bin_count=4)
    assert dist.range == [2.5, 3.5]
    assert dist.weights.sum() == 3


@pytest.mark.parametrize("bin_count", [0, -1, 513, 10_000])
def test_bin_count_limits_are_enforced(bin_count: int) -> None:
    with pytest.raises(InvalidObjectError, match="between 1 and 512") as info:
        Distribution([1.0, 2.0], bin_count=bin_count)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("bin_count", [True, 2.0, "8", None])
def test_bin_count_must_be_an_int(bin_count: object) -> None:
    with pytest.raises(UnsupportedValueError, match="bin_count must be an int"):
        Distribution([1.0], bin_count=bin_count)  # type: ignore[arg-type]


def test_numpy_int_bin_count() -> None:
    assert Distribution([1.0, 2.0], bin_count=np.int64(3)).bin_count == 3


# ----------------------------------------------------------------------------- non-finite samples


def test_some_non_finite_samples_are_dropped_with_a_warning() -> None:
    finite = RNG.standard_normal(50)
    samples = np.concatenate([finite, [np.nan, np.inf, -np.inf]])
    with pytest.warns(UserWarning, match=r"dropped 3 non-finite \(NaN/inf\) samples out of 53"):
        dist = Distribution(samples)
    assert_matches_numpy(dist, finite)


def test_warning_points_at_the_caller() -> None:
    with pytest.warns(UserWarning) as caught:
        Distribution([1.0, float("nan")])
    assert caught[0].filename == __file__


def test_all_non_finite_samples_are_an_error() -> None:
    with pytest.raises(InvalidObjectError, match="all 2 Distribution samples are NaN or infinite"):
        Distribution([np.nan, np.inf])


def test_finite_samples_do_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Distribution(RNG.standard_normal(10))


def test_empty_samples_are_an_error() -> None:
    with pytest.raises(InvalidObjectError, match="at least one sample"):
        Distribution([])


@pytest.mark.parametrize(
    "samples",
    ["abc", b"abc", 3.0, object(), ["a", "b"], [1.0, [2.0, 3.0]], np.array([1j, 2j])],
    ids=["str", "bytes", "scalar", "object", "strings", "ragged", "complex"],
)
def test_non_numeric_samples_are_refused(samples: object) -> None:
    with pytest.raises(UnsupportedValueError) as info:
        Distribution(samples)
    assert isinstance(info.value, TypeError)


# ----------------------------------------------------------------------------- from histogram


def test_from_histogram() -> None:
    hist = np.array([1, 4, 2, 0])
    dist = Distribution.from_histogram(hist, bin_range=(-1, 1))
    assert dist.bin_count == 4
    assert dist.range == [-1.0, 1.0]
    assert dist.weights.dtype == np.float64
    np.testing.assert_array_equal(dist.weights, hist)
    np.testing.assert_array_equal(dist.ranges, np.linspace(-1, 1, 5))
    weights, edges = dist.to_np_histogram()
    np.testing.assert_array_equal(weights, hist)
    np.testing.assert_array_equal(edges, np.linspace(-1, 1, 5))
    assert Distribution(hist=hist, bin_range=[-1, 1]) == dist
    round_trip(dist)


def test_hist_is_copied() -> None:
    hist = np.array([1.0, 2.0])
    dist = Distribution(hist=hist, bin_range=(0, 1))
    hist[0] = 100
    assert dist.weights.tolist() == [1.0, 2.0]


def test_weights_are_read_only() -> None:
    for dist in (Distribution([1.0, 2.0]), Distribution(hist=[1, 2], bin_range=(0, 1))):
        with pytest.raises(ValueError, match="read-only"):
            dist.weights[0] = 5


def test_hist_accepts_tensors() -> None:
    dist = Distribution(hist=FakeTensor(np.array([1.0, 2.0])), bin_range=(0, 2))
    assert dist.weights.tolist() == [1.0, 2.0]


@pytest.mark.parametrize(
    ("hist", "bin_range", "message"),
    [
        ([1, 2], None, r"needs bin_range"),
        ([1, 2], (1, 1), r"start < end"),
        ([1, 2], (2, 1), r"start < end"),
        ([1, 2], (0, float("inf")), r"finite"),
        ([1, 2], (0, 1, 2), r"two numbers"),
        ([1, 2], 5, r"two numbers"),
        ([1, 2], ("a", "b"), r"two numbers"),
        ([[1, 2], [3, 4]], (0, 1), r"1-D"),
        ([], (0, 1), r"len\(hist\) must be between 1 and 512"),
        ([1.0] * 513, (0, 1), r"len\(hist\) must be between 1 and 512"),
        ([1.0, float("nan")], (0, 1), r"finite"),
    ],
)
def test_bad_histograms(hist: object, bin_range: object, message: str) -> None:
    with pytest.raises(InvalidObjectError, match=message):
        Distribution(hist=hist, bin_range=bin_range)


def test_samples_and_hist_together_or_neither() -> None:
    with pytest.raises(InvalidObjectError, match="not both"):
        Distribution([1.0], hist=[1], bin_range=(0, 1))
    with pytest.raises(InvalidObjectError, match="needs samples"):
        Distribution()
    with pytest.raises(InvalidObjectError, match="bin_range= is only used with hist="):
        Distribution([1.0], bin_range=(0, 1))


# ----------------------------------------------------------------------------- record


def test_record_is_float64_weights_and_small_meta() -> None:
    dist = Distribution([0.0, 1.0, 1.0, 2.0], bin_count=2)
    record = dist.to_record()
    assert record.payload == np.array([1.0, 3.0], dtype="<f8").tobytes()
    assert record.meta == {"bin_count": 2, "range": [0.0, 2.0]}
    json.dumps(record.meta, allow_nan=False)
    assert dist.json() == {"bin_count": 2, "range": [0.0, 2.0]}


def test_from_record_checks_the_payload_size() -> None:
    with pytest.raises(InvalidObjectError, match="expected 3 float64 weights"):
        Distribution.from_record(b"\x00" * 16, {"bin_count": 3, "range": [0, 1]})
    with pytest.raises(InvalidObjectError, match="'range'"):
        Distribution.from_record(b"\x00" * 8, {"bin_count": 1})


def test_equality_and_repr() -> None:
    dist = Distribution([0.0, 1.0], bin_count=2)
    assert dist == Distribution([0.0, 1.0], bin_count=2)
    assert dist != Distribution([0.0, 1.0, 1.0], bin_count=2)
    assert dist != Distribution([0.0, 2.0], bin_count=2)
    assert dist != [0.0, 1.0]
    assert repr(dist) == "Distribution(bin_count=2, range=[0.0, 1.0])"
