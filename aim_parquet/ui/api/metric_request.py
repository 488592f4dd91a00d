"""What a `/api/metrics` request asks for: its parameters checked (the x axis, the width, the
`chart_by` fields, a zoomed range, the live cursors) and the chart each series goes to (its key
and title from the `chart_by` fields)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aim_parquet.format.meta import SequenceInfo
from aim_parquet.storage.index.run_records import RunRecord
from aim_parquet.ui.api.errors import BadRequest
from aim_parquet.ui.api.runs import context_label, flatten_params

__all__ = [
    "MAX_CHART_FIELDS", "MAX_CURSORS", "MAX_WIDTH", "X_AXES", "chart_key", "chart_title",
    "field_value", "parse_chart_by", "parse_cursor", "parse_float", "parse_width", "parse_x_axis",
]  # fmt: skip

X_AXES = ("step", "epoch", "relative", "wall")
MAX_WIDTH = 8192
MAX_CHART_FIELDS = 8
MAX_CURSORS = 10_000


# -- request parameters ----------------------------------------------------------------------
def parse_x_axis(value: str | None) -> str:
    x_axis = value or "step"
    if x_axis not in X_AXES:
        raise BadRequest(f"x must be one of {', '.join(X_AXES)}, not {x_axis!r}")
    return x_axis


def parse_width(value: str | None) -> int:
    try:
        width = int(value or 800)
    except ValueError:
        raise BadRequest(f"width must be a whole number of pixels, not {value!r}") from None
    return min(max(width, 16), MAX_WIDTH)


def parse_chart_by(value: str | None) -> list[str]:
    fields = [f.strip() for f in (value if value is not None else "metric.name").split(",")]
    fields = [f for f in fields if f]
    if len(fields) > MAX_CHART_FIELDS:
        raise BadRequest(f"chart_by takes at most {MAX_CHART_FIELDS} fields")
    for field in fields:
        if not (field == "metric.name" or field.startswith(("metric.context", "run."))):
            raise BadRequest(
                f"cannot group charts by {field!r}: use metric.name, metric.context.KEY, "
                "run.hash, run.experiment or run.PARAM"
            )
    return fields


def parse_float(value: str | None, name: str) -> float | None:
    if value in (None, ""):
        return None
    try:
        return float(value)
    except ValueError:
        raise BadRequest(f"{name} must be a number, not {value!r}") from None


def parse_cursor(value: str | None) -> dict[tuple[str, str], int]:
    cursors: dict[tuple[str, str], int] = {}
    for item in (value or "").split(","):
        if not item:
            continue
        parts = item.split(":")
        if len(parts) != 3:
            raise BadRequest(f"cursor items are HASH:SEQUENCE_ID:STEP, not {item!r}")
        try:
            cursors[(parts[0], parts[1])] = int(parts[2])
        except ValueError:
            raise BadRequest(f"cursor step must be an integer in {item!r}") from None
        if len(cursors) > MAX_CURSORS:
            raise BadRequest(f"at most {MAX_CURSORS} cursors per request")
    return cursors


# -- grouping --------------------------------------------------------------------------------
def field_value(field: str, record: RunRecord, info: SequenceInfo) -> Any:
    """The value of a grouping field for one series (None when missing)."""
    if field == "metric.name":
        return info.name
    if field == "metric.context":
        return context_label(info.context)
    if field.startswith("metric.context."):
        return info.context.get(field[len("metric.context.") :])
    path = field[len("run.") :]
    direct = {
        "hash": record.hash,
        "name": record.display_name,
        "experiment": record.experiment,
        "archived": record.archived,
    }
    if path in direct:
        return direct[path]
    head, _, rest = path.partition(".")
    value: Any = record.param(head)
    for part in rest.split(".") if rest else ():
        value = value.get(part) if isinstance(value, dict) else None
    if value is None and rest:  # a key that holds dots ({"dotted.key": 5}), as the table shows
        value = flatten_params(record.params).get(path)
    return value


def chart_key(fields: Sequence[str], record: RunRecord, info: SequenceInfo) -> tuple[Any, ...]:
    return tuple(_hashable(field_value(f, record, info)) for f in fields)


def _hashable(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return repr(value)
    return value


def chart_title(fields: Sequence[str], key: tuple[Any, ...]) -> str:
    parts = []
    for field, value in zip(fields, key, strict=True):
        parts.append(str(value) if field == "metric.name" else f"{field}={value}")
    return " · ".join(parts) if parts else "all metrics"
