"""``Distribution``: a histogram with 1 to 512 equal-width bins, stored as float64 weights.

Built from samples (``np.histogram``) or from ready weights plus ``bin_range``. Non-finite samples
are dropped with a ``UserWarning`` that names how many; if none is finite the constructor raises, so a
histogram is never silently wrong.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Self

import numpy as np

from aim_parquet.errors import UnsupportedValueError

from .base import CustomObject, InvalidObjectError, ObjectRecord, as_ndarray, meta_field

__all__ = ["MAX_BIN_COUNT", "MIN_BIN_COUNT", "Distribution"]

MIN_BIN_COUNT = 1
MAX_BIN_COUNT = 512
_WEIGHT_DTYPE = np.dtype("<f8")

_Weights = np.ndarray[Any, np.dtype[np.float64]]


class Distribution(CustomObject):
    """A histogram: ``bin_count`` weights over equal-width bins spanning ``range``."""

    AIM_NAME = "aim.distribution"

    _weights: _Weights
    _range: tuple[float, float]

    def __init__(
        self,
        samples: Any = None,
        bin_count: int | np.integer[Any] = 64,
        *,
        hist: Any = None,
        bin_range: Any = None,
    ) -> None:
        if samples is not None and hist is not None:
            raise InvalidObjectError(
                "Distribution takes either samples or hist= (with bin_range=), not both"
            )
        if hist is not None:
            self._weights, self._range = _from_histogram(hist, bin_range)
        elif samples is not None:
            if bin_range is not None:
                raise InvalidObjectError(
                    "bin_range= is only used with hist=; samples set their own range"
                )
            self._weights, self._range = _from_samples(samples, bin_count)
        else:
            raise InvalidObjectError("Distribution needs samples, or hist= with bin_range=")

    @classmethod
    def from_samples(cls, samples: Any, bin_count: int | np.integer[Any] = 64) -> Self:
        """A histogram of ``samples`` with ``bin_count`` bins (``np.histogram``)."""
        return cls(samples, bin_count)

    @classmethod
    def from_histogram(cls, hist: Any, bin_range: Any) -> Self:
        """Ready weights ``hist`` over ``len(hist)`` equal bins spanning ``bin_range=(start, end)``."""
        return cls(hist=hist, bin_range=bin_range)

    # ------------------------------------------------------------------ record

    def to_record(self) -> ObjectRecord:
        return ObjectRecord(
            payload=self._weights.tobytes(),
            meta={"bin_count": len(self._weights), "range": [self._range[0], self._range[1]]},
        )

    @classmethod
    def from_record(cls, payload: bytes, meta: Mapping[str, Any]) -> Self:
        bin_count = int(meta_field(meta, "bin_count", cls.AIM_NAME))
        start, end = meta_field(meta, "range", cls.AIM_NAME)
        if len(payload) != bin_count * _WEIGHT_DTYPE.itemsize:
            raise InvalidObjectError(
                f"stored {cls.AIM_NAME} record has {len(payload)} payload bytes, "
                f"expected {bin_count} float64 weights"
            )
        obj = cls.__new__(cls)
        obj._weights = np.frombuffer(bytes(payload), dtype=_WEIGHT_DTYPE)
        obj._range = (float(start), float(end))
        return obj

    # --------------------------------------------------------------- accessors

    @property
    def bin_count(self) -> int:
        return len(self._weights)

    @property
    def range(self) -> list[float]:
        """``[first_edge, last_edge]``."""
        return [self._range[0], self._range[1]]

    @property
    def weights(self) -> _Weights:
        """The ``bin_count`` float64 weights (read-only)."""
        return self._weights

    @property
    def ranges(self) -> _Weights:
        """The ``bin_count + 1`` bin edges."""
        return np.linspace(self._range[0], self._range[1], len(self._weights) + 1)

    def to_np_histogram(self) -> tuple[_Weights, _Weights]:
        """``(weights, edges)``, like ``np.histogram`` returns."""
        return self._weights, self.ranges

    def json(self) -> dict[str, Any]:
        return {"bin_count": self.bin_count, "range": self.range}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Distribution):
            return NotImplemented
        return self._range == other._range and np.array_equal(self._weights, other._weights)

    def __repr__(self) -> str:
        return f"Distribution(bin_count={self.bin_count}, range={self.range})"


# --------------------------------------------------------------------------- construction


def _check_bin_count(bin_count: Any, what: str = "bin_count") -> int:
    if isinstance(bin_count, bool) or not isinstance(bin_count, int | np.integer):
        raise UnsupportedValueError(f"{what} must be an int, not {type(bin_count).__name__}")
    if not MIN_BIN_COUNT <= bin_count <= MAX_BIN_COUNT:
        raise InvalidObjectError(
            f"{what} must be between {MIN_BIN_COUNT} and {MAX_BIN_COUNT}, got {bin_count}"
        )
    return int(bin_count)


def _numeric_array(values: Any, what: str) -> np.ndarray[Any, Any]:
    array = as_ndarray(values)
    if array is None:
        if isinstance(values, str | bytes) or not isinstance(values, Iterable):
            raise UnsupportedValueError(
                f"Distribution {what} must be an array, tensor or iterable of numbers, "
                f"not {type(values).__name__}"
            )
        try:
            array = np.asarray(values if isinstance(values, Sequence) else list(values))
        except ValueError as exc:  # ragged nesting
            raise UnsupportedValueError(f"Distribution {what} are not a flat array: {exc}") from exc
    kind = array.dtype.kind
    if kind == "b":
        return array.astype(np.uint8)
    if kind not in "iuf":
        raise UnsupportedValueError(
            f"Distribution {what} must be real numbers, got dtype {array.dtype}"
        )
    return array


def _from_samples(samples: Any, bin_count: Any) -> tuple[_Weights, tuple[float, float]]:
    bins = _check_bin_count(bin_count)
    array = _numeric_array(samples, "samples")
    if array.size == 0:
        raise InvalidObjectError("Distribution needs at least one sample; got none")
    low, high = array.min(), array.max()
    if array.dtype.kind == "f" and not (math.isfinite(low) and math.isfinite(high)):
        finite = np.isfinite(array)
        kept = int(np.count_nonzero(finite))
        if kept == 0:
            raise InvalidObjectError(
                f"all {array.size} Distribution samples are NaN or infinite; nothing to histogram"
            )
        warnings.warn(
            f"Distribution: dropped {array.size - kept} non-finite (NaN/inf) samples "
            f"out of {array.size}",
            UserWarning,
            stacklevel=3,
        )
        array = array[finite]
        low, high = array.min(), array.max()
    # Passing the range we already know spares np.histogram a second min/max pass.
    counts, edges = np.histogram(array, bins=bins, range=(low, high))
    weights = counts.astype(_WEIGHT_DTYPE)
    weights.flags.writeable = False
    return weights, (float(edges[0]), float(edges[-1]))


def _from_histogram(hist: Any, bin_range: Any) -> tuple[_Weights, tuple[float, float]]:
    if bin_range is None:
        raise InvalidObjectError("hist= needs bin_range=(start, end)")
    array = _numeric_array(hist, "hist weights")
    if array.ndim != 1:
        raise InvalidObjectError(f"hist must be 1-D, got shape {array.shape}")
    _check_bin_count(len(array), "len(hist)")
    weights = np.array(array, dtype=_WEIGHT_DTYPE)  # a copy: later changes to hist do not leak in
    if not np.isfinite(weights).all():
        raise InvalidObjectError("hist weights must be finite (no NaN or inf)")
    weights.flags.writeable = False
    return weights, _bin_range(bin_range)


def _bin_range(bin_range: Any) -> tuple[float, float]:
    try:
        start, end = (float(edge) for edge in bin_range)
    except (TypeError, ValueError) as exc:
        raise InvalidObjectError(
            f"bin_range must be two numbers (start, end), got {bin_range!r}"
        ) from exc
    if not (np.isfinite(start) and np.isfinite(end) and start < end):
        raise InvalidObjectError(f"bin_range must be finite with start < end, got ({start}, {end})")
    return start, end
