"""The last-write-wins summary of a sequence, computed the slow and obvious way, for the tests that
check the stored summaries (count, first/last step and value, min/max of the visible points)."""

from __future__ import annotations

import math
from typing import Any

SUMMARY_KEYS = ("count", "first_step", "last_step", "first", "last", "min", "max")


def reference(visible: dict[int, float]) -> dict[str, Any]:
    """The summary of the visible points ({step: value}, the last write of each step)."""
    finite = [v for v in visible.values() if not math.isnan(v)]
    lo, hi = min(visible), max(visible)
    return {
        "count": len(visible),
        "first_step": lo,
        "last_step": hi,
        "first": visible[lo],
        "last": visible[hi],
        "min": min(finite) if finite else None,
        "max": max(finite) if finite else None,
    }


def stats(info: Any) -> dict[str, Any]:
    """The same fields as stored in a catalogue entry."""
    return {k: getattr(info, k) for k in SUMMARY_KEYS}
