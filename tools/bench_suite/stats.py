"""Pure helpers of the benchmark suite: measurements, medians, ratios and Markdown formatting.

Nothing here runs a workload or touches a file, so `tests/unit/test_bench_tools.py` checks it all.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# Units a `Measure` may carry; `fmt_value` knows how to print each.
UNITS = ("s", "points/s", "B/point", "MiB", "files/run", "runs", "frames", "KiB/run")


@dataclass(frozen=True)
class Measure:
    """The repetitions of one figure (`values`, in `unit`); shown as their median.

    `extrapolated` marks a figure computed from a smaller measured workload, never measured.
    """

    values: tuple[float, ...]
    unit: str
    extrapolated: bool = False

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError("a Measure needs at least one value")
        if self.unit not in UNITS:
            raise ValueError(f"unknown unit {self.unit!r}; one of {UNITS}")

    @property
    def median(self) -> float:
        return median(self.values)

    def scaled(self, factor: float) -> Measure:
        """The same repetitions times `factor`, marked as extrapolated."""
        return Measure(tuple(v * factor for v in self.values), self.unit, extrapolated=True)


@dataclass(frozen=True)
class Row:
    """One line of a results table: aim_parquet's and Aim's figure (either may be missing)."""

    label: str
    ours: Measure | None
    aim: Measure | None = None
    is_lower_better: bool = True
    note: str = ""

    @property
    def advantage(self) -> float | None:
        if self.ours is None or self.aim is None:
            return None
        return advantage(self.ours.median, self.aim.median, is_lower_better=self.is_lower_better)


def measure(values: Iterable[float], unit: str) -> Measure:
    return Measure(tuple(float(v) for v in values), unit)


def median(values: Sequence[float]) -> float:
    """The median; a clear error for no values."""
    if not values:
        raise ValueError("median of no values")
    return float(statistics.median(values))


def advantage(ours: float, theirs: float, *, is_lower_better: bool = True) -> float | None:
    """How many times better aim_parquet's figure is than Aim's: Aim ÷ ours for times and sizes,
    ours ÷ Aim for rates. None when the quotient is undefined (a zero or negative figure)."""
    if ours <= 0 or theirs <= 0:
        return None
    return theirs / ours if is_lower_better else ours / theirs


def fmt_seconds(seconds: float) -> str:
    """`0.00000105` -> `1.05 µs`, `0.0123` -> `12.3 ms`, `75.2` -> `75.2 s`."""
    if seconds == 0:
        return "0 s"
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns")):
        if abs(seconds) >= scale or unit == "ns":
            return f"{_sig3(seconds / scale)} {unit}"
    raise AssertionError("unreachable")


def _sig3(x: float) -> str:
    """Three significant figures without exponent notation: 1.05, 12.3, 123, 1234."""
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def fmt_rate(points_per_s: float) -> str:
    """`12_300_000` -> `12.3 M points/s`, `95_000` -> `95.0 k points/s`."""
    if points_per_s >= 1e6:
        return f"{_sig3(points_per_s / 1e6)} M points/s"
    if points_per_s >= 1e3:
        return f"{_sig3(points_per_s / 1e3)} k points/s"
    return f"{_sig3(points_per_s)} points/s"


def fmt_value(value: float, unit: str) -> str:
    if unit == "s":
        return fmt_seconds(value)
    if unit == "points/s":
        return fmt_rate(value)
    if unit == "B/point":
        return f"{_sig3(value)} B"
    if unit == "MiB":
        return f"{_sig3(value)} MiB"
    if unit == "KiB/run":
        return f"{_sig3(value)} KiB"
    if unit == "files/run":
        return f"{value:,.1f}"
    if unit in ("runs", "frames"):
        return f"{value:,.0f}"
    raise ValueError(f"unknown unit {unit!r}")


def fmt_measure(m: Measure | None) -> str:
    """Median, and the range of the repetitions when there are several:
    `1.05 µs (1.02–1.10)`; `~75.2 s` for an extrapolation; `—` when missing."""
    if m is None:
        return "—"
    text = fmt_value(m.median, m.unit)
    if m.extrapolated:
        text = "~" + text + " (extrapolated)"
    elif len(m.values) > 1:
        low, high = min(m.values), max(m.values)
        text += f" ({_short(low, m.unit)}–{_short(high, m.unit)})"
    return text


def _short(value: float, unit: str) -> str:
    """A range endpoint: the number of `fmt_value` without its unit word."""
    return fmt_value(value, unit).split(" ")[0]


def fmt_ratio(ratio: float | None) -> str:
    """`97.4` -> `97x`, `3.14` -> `3.1x`, `0.5` -> `0.50x`, None -> `—`."""
    if ratio is None:
        return "—"
    if ratio >= 10:
        return f"{ratio:,.0f}x"
    if ratio >= 1:
        return f"{ratio:.1f}x"
    return f"{ratio:.2f}x"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub Markdown table, columns padded to equal width; `|` in cells escaped."""
    cells = [[c.replace("|", "\\|") for c in row] for row in rows]
    if any(len(row) != len(headers) for row in cells):
        raise ValueError("every row needs one cell per header")
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    out = [line(headers), "| " + " | ".join("-" * w for w in widths) + " |"]
    out += [line(r) for r in cells]
    return "\n".join(out)


def rows_table(rows: Sequence[Row], aim_label: str) -> str:
    """The results table of one workload group."""
    headers = ["Measurement", "aim_parquet", aim_label, "aim_parquet advantage", "Notes"]
    body = [
        [r.label, fmt_measure(r.ours), fmt_measure(r.aim), fmt_ratio(r.advantage), r.note]
        for r in rows
    ]
    return markdown_table(headers, body)
