"""Sequence kinds (Aim's dtypes): the one home of what a kind means.

A sequence's kind is Aim's dtype string, stored in its catalogue entry and in its segments' schema
metadata (FORMAT.md, the sidecar's `kind` field):

- a metric: `int`, `float` or `number` (an `int` metric that meets a value that is not an
  integer becomes `number`; `int` metrics read back as Python/NumPy integers);
- an object: `aim.image`, `aim.text`, `aim.distribution`, `aim.audio`, `aim.figure`,
  `aim.log_line`, `aim.log_record`;
- a list of objects tracked at one step: `list(<object kind>)`.

`SEQUENCE_KINDS` maps Aim's query variables (`metric`, `images`, ...) to the kinds they range over;
the SDK's sequence classes and the query planner both ask it.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

INT_KIND: Final = "int"
FLOAT_KIND: Final = "float"
NUMBER_KIND: Final = "number"  # a metric that holds both integers and other numbers
METRIC_KINDS: Final = frozenset({INT_KIND, FLOAT_KIND, NUMBER_KIND})

IMAGE_KIND: Final = "aim.image"
TEXT_KIND: Final = "aim.text"
DISTRIBUTION_KIND: Final = "aim.distribution"
AUDIO_KIND: Final = "aim.audio"
FIGURE_KIND: Final = "aim.figure"
LOG_LINE_KIND: Final = "aim.log_line"
LOG_RECORD_KIND: Final = "aim.log_record"

_LIST_PREFIX: Final = "list("
_MAX_EXACT_INT: Final = 2**53  # float64 holds every integer up to this exactly


def is_metric_kind(kind: str) -> bool:
    """Whether a sequence of `kind` holds numbers (a metric) rather than objects."""
    return kind in METRIC_KINDS


def list_kind(kind: str) -> str:
    """The kind of a list of `kind` objects tracked at one step: `list(aim.image)`."""
    return f"{_LIST_PREFIX}{kind})"


def is_list_kind(kind: str) -> bool:
    """Whether `kind` is a list of objects (`list(aim.image)`)."""
    return kind.startswith(_LIST_PREFIX)


def element_kind(kind: str) -> str:
    """The kind of one object of a `kind` sequence: `list(aim.image)` -> `aim.image`; any other
    kind is its own."""
    return kind[len(_LIST_PREFIX) : -1] if is_list_kind(kind) else kind


def _with_lists(*kinds: str) -> frozenset[str]:
    return frozenset(kinds) | frozenset(list_kind(k) for k in kinds)


SEQUENCE_KINDS: Final[dict[str, frozenset[str]]] = {
    "metric": METRIC_KINDS,
    "images": _with_lists(IMAGE_KIND),
    "texts": _with_lists(TEXT_KIND),
    "distributions": _with_lists(DISTRIBUTION_KIND),
    "audios": _with_lists(AUDIO_KIND),
    "figures": _with_lists(FIGURE_KIND),
    "logs": frozenset({LOG_LINE_KIND}),
    "log_records": frozenset({LOG_RECORD_KIND}),
}
"""Query variable (Aim's `sequence_name()`) -> the kinds of the sequences it ranges over."""


def metric_value(value: float, kind: str) -> float:
    """One stored value of a `kind` metric as it reads back: an `int` metric's finite whole
    float values are `int`; every other value is returned as given."""
    if kind == INT_KIND and isinstance(value, float) and value.is_integer():  # (not inf, nan)
        return int(value)
    return value


def metric_values(values: npt.NDArray[np.float64], kind: str) -> npt.NDArray[np.generic]:
    """Stored float64 values of a `kind` metric as they read back: int64 for an `int` metric
    whose every value is an exact integer, else the values as given."""
    if kind != INT_KIND:
        return values
    if values.size == 0:
        return values.astype(np.int64)
    if np.all(np.isfinite(values)) and np.all(np.abs(values) <= _MAX_EXACT_INT):
        ints = values.astype(np.int64)
        if np.array_equal(ints, values):
            return ints
    return values
