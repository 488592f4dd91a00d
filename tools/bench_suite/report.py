"""BENCHMARKS.md: the machine, the command, the tables, the issues' targets and the headlines."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench_suite.stats import (
    Measure,
    Row,
    fmt_measure,
    fmt_ratio,
    fmt_value,
    markdown_table,
    rows_table,
)


@dataclass(frozen=True)
class Target:
    """One performance target of the issues, with the measured figure and whether it is met."""

    label: str
    measured: str
    is_met: bool | None  # None: not measured


def _m(row: Row | None, side: str = "ours") -> Measure | None:
    if row is None:
        return None
    return row.ours if side == "ours" else row.aim


def _check(label: str, m: Measure | None, limit: float, *, is_max: bool, extra: str = "") -> Target:
    if m is None:
        return Target(label, "not measured", None)
    value = m.median
    text = fmt_value(value, m.unit) + extra
    return Target(label, text, value <= limit if is_max else value >= limit)


def _ratio_check(label: str, row: Row | None, limit: float) -> Target:
    if row is None or row.advantage is None:
        return Target(label, "not measured", None)
    text = f"{fmt_ratio(row.advantage)} ({fmt_measure(row.ours)} vs {fmt_measure(row.aim)})"
    return Target(label, text, row.advantage >= limit)


def _relative(label: str, ours: Row | None, base: Row | None, limit: float) -> Target:
    if ours is None or base is None or ours.ours is None or base.ours is None:
        return Target(label, "not measured", None)
    r = ours.ours.median / base.ours.median
    text = f"{r:.2f}x ({fmt_measure(ours.ours)} vs {fmt_measure(base.ours)})"
    return Target(label, text, r <= limit)


def targets(
    named: dict[str, Row],
    extra: dict[str, Any],
    *,
    many_runs: int,
    long_points: int,
    calls: int = 1_000_000,
) -> list[Target]:
    """The issues' performance targets; labels name the sizes measured where they may differ
    from the issue's (the quick mode's smaller workloads)."""
    g = named.get
    many = "" if many_runs == 10_000 else f" (measured: {many_runs:,} runs)"
    long_ = "" if long_points == 10_000_000 else f" (measured: {long_points:,} points)"
    calls_ = "" if calls == 1_000_000 else f" (measured: {calls:,} calls)"
    long_rss = extra.get("rss_long")
    return [
        _check(
            "`run.track` <= 1.5 µs per call incl. `close()` (issue 2)" + calls_,
            _m(g("track")),
            1.5e-6,
            is_max=True,
        ),
        _ratio_check("`run.track` >= 40x faster than Aim (issue 2)", g("track"), 40),
        _relative(
            "`run.track` within 5x of a bare Python method call (issue 2)", g("track"), g("bare"), 5
        ),
        _check(
            "writer RSS growth < 64 MB tracking 10M points (issue 2)" + long_,
            long_rss,
            64 / 1.048576,
            is_max=True,
        ),
        _check("<= 40 bytes per point uncompacted (issue 2)", _m(g("bpp_before")), 40, is_max=True),
        _check("<= 12 bytes per point compacted (issue 5)", _m(g("bpp_after")), 12, is_max=True),
        _check("<= 8 files per run compacted (issue 5)", _m(g("files_after")), 8, is_max=True),
        _relative(
            "Image 64x64 RGB <= Pillow PNG encode + 10% (issue 4)", g("image"), g("image_raw"), 1.1
        ),
        _relative(
            "Distribution(10,000) <= np.histogram + 10% (issue 4)",
            g("distribution"),
            g("distribution_raw"),
            1.1,
        ),
        _ratio_check(
            "all `loss` values, fresh process >= 30x faster than Aim (issue 3)", g("read_loss"), 30
        ),
        _ratio_check("  ... compacted", g("read_loss_c"), 30),
        _ratio_check("10% run predicate >= 20x faster than Aim (issue 3)", g("q10"), 20),
        _ratio_check("  ... compacted", g("q10_c"), 20),
        _check(
            "run predicate over 10,000 runs <= 100 ms warm (issue 3)" + many,
            _m(g("many_warm")),
            0.1,
            is_max=True,
        ),
        _check(
            "run predicate over 10,000 runs <= 1 s fresh (issue 3)" + many,
            _m(g("many_fresh")),
            1.0,
            is_max=True,
        ),
        _check(
            ">= 10M points/s reading 10M points of one metric (issue 3)" + long_,
            _m(g("long_rate")),
            10e6,
            is_max=False,
        ),
        _check("  ... compacted", _m(g("long_rate_c")), 10e6, is_max=False),
        _check(
            ">= 5M points/s compaction (issue 5), 100-run repo",
            _m(g("compact_rate")),
            5e6,
            is_max=False,
        ),
        _check("  ... one long run", _m(g("compact_rate_long")), 5e6, is_max=False),
    ]


def ui_targets(named: dict[str, Row]) -> list[Target]:
    """Issue 14's targets for the web UI (shown under the UI section, which `--only ui` can
    replace alone)."""
    g = named.get
    if g("ui_metrics_100") is None:
        return []
    small = g("ui_metrics_100")
    size = "" if small is not None and "100 runs" in small.label else " (quick sizes)"
    return [
        _check("metrics explorer, 100 runs x loss x 1,000 steps <= 0.5 s (issue 14)" + size,
               _m(small), 0.5, is_max=True),
        _check("metrics explorer, 10M points <= 2 s (issue 14)" + size,
               _m(g("ui_metrics_big")), 2.0, is_max=True),
        _check("  ... <= 3 MB sent (issue 14)", _m(g("ui_metrics_big_bytes")), 3e6 / 1048576,
               is_max=True),
        _check("runs explorer, 10,000 runs <= 1.5 s (issue 14)" + size, _m(g("ui_runs")), 1.5,
               is_max=True),
        _check("  ... scrolling: no frame over 50 ms (issue 14)", _m(g("ui_scroll")), 0.05,
               is_max=True),
        _check("live: a flushed point on screen <= 2 s (issue 14)", _m(g("ui_live")), 2.0,
               is_max=True),
    ]  # fmt: skip


def targets_table(items: Sequence[Target]) -> str:
    status = {True: "met", False: "**MISSED**", None: "not measured"}
    return markdown_table(
        ["Target", "Measured (median)", "Status"],
        [[t.label, t.measured, status[t.is_met]] for t in items],
    )


HEADLINES = [
    ("track", "`run.track` per call"),
    ("track_sys", "`run.track` with system tracking on"),
    ("read_loss", "all `loss` values of all runs, fresh process"),
    ("read_loss_c", "  ... compacted"),
    ("q10", "run predicate matching 10% of runs, fresh process"),
    ("first_query", "first query of a fresh process (wall)"),
    ("bpp_before", "bytes per point as written"),
    ("bpp_after", "bytes per point compacted (Aim: after reindex)"),
    ("image", "`Image` per call"),
    ("distribution", "`Distribution` per call"),
    ("write_rate", "write throughput"),
    ("export_pandas", "whole repo to pandas"),
]


def headlines(named: dict[str, Row]) -> str:
    lines = []
    for key, label in HEADLINES:
        row = named.get(key)
        if row is None or row.advantage is None:
            continue
        lines.append(
            f"- {label}: **{fmt_ratio(row.advantage)}** "
            f"({fmt_measure(row.ours)} vs Aim {fmt_measure(row.aim)})"
        )
    return "\n".join(lines)


def render(
    *,
    meta: dict[str, str],
    machine: dict[str, str],
    sections: Sequence[tuple[str, str, Sequence[Row]]],
    named: dict[str, Row],
    extra: dict[str, Any],
    aim_label: str,
    method: Sequence[str],
    errors: Sequence[str],
    many_runs: int,
    long_points: int,
    calls: int,
) -> str:
    out = [
        "# Benchmarks: aim_parquet vs Aim 3.29",
        "",
        "Generated by `tools/bench.py` (`make bench`); do not edit by hand. Every figure is the "
        "median of the repetitions (range in brackets), each repetition a fresh process; "
        '"advantage" is how many times faster (or smaller) aim_parquet is than Aim, from figures '
        "of this same run.",
        "",
        markdown_table(["", ""], [[k, v] for k, v in {**meta, **machine}.items()]),
        "",
        "## Headline ratios",
        "",
        headlines(named) or "(none measured)",
        "",
    ]
    for title, intro, rows in sections:
        out += [f"## {title}", "", intro, "", rows_table(rows, aim_label), ""]
        outro = extra.get(f"outro:{title}")
        if outro:
            out += [outro, ""]
    checked = targets(named, extra, many_runs=many_runs, long_points=long_points, calls=calls)
    out += ["## Targets from the issues", "", targets_table(checked), ""]
    out += ["## Method", ""] + [f"- {m}" for m in method] + [""]
    if errors:
        out += ["## Failures", ""] + [f"- {_failure(e)}" for e in errors] + [""]
    return "\n".join(out)


def _failure(error: str) -> str:
    """First and last line of a failure (the workload, the exception), as inline code."""
    lines = [line.strip() for line in error.strip().splitlines() if line.strip()]
    shown = lines[0] if len(lines) < 2 else f"{lines[0]} ... {lines[-1]}"
    return "`" + shown.replace("`", "'") + "`"


# Sections other tools keep in BENCHMARKS.md (tools/bench_convert.py --write), between
# `<!-- NAME:begin -->` and `<!-- NAME:end -->`; `make bench` carries them over when it rewrites
# the file.
_MARKED = re.compile(r"<!-- ([\w-]+):begin -->.*?<!-- \1:end -->\n?", re.S)


def replace_marked_section(text: str, name: str, body: str) -> str:
    """`text` with the section `name` replaced by `body` (appended when it is not there)."""
    block = f"<!-- {name}:begin -->\n{body.strip()}\n<!-- {name}:end -->\n"
    for match in _MARKED.finditer(text):
        if match.group(1) == name:
            return text[: match.start()] + block + text[match.end() :]
    return text.rstrip("\n") + "\n\n" + block


def carry_marked_sections(old: str, new: str) -> str:
    """`new` plus the marked sections of `old` that `new` does not have."""
    have = {m.group(1) for m in _MARKED.finditer(new)}
    for match in _MARKED.finditer(old):
        if match.group(1) not in have:
            new = new.rstrip("\n") + "\n\n" + match.group(0)
    return new


def render_section(
    title: str,
    intro: str,
    rows: Sequence[Row],
    extra: dict[str, Any],
    aim_label: str,
    *,
    command: str,
    date: str,
) -> str:
    """One section alone, saying which command measured it and when (for `--only`)."""
    out = [f"## {title}", "", f"{intro} Measured by {command} on {date}.", ""]
    out += [rows_table(rows, aim_label), ""]
    outro = extra.get(f"outro:{title}")
    if outro:
        out += [outro, ""]
    return "\n".join(out)


def splice_section(document: str, section: str) -> str:
    """`document` with the `## ` section of the same title as `section` replaced by it (or
    inserted before the targets when it has none): what `tools/bench.py --only` writes."""
    title = section.splitlines()[0]
    lines = document.splitlines()
    if title in lines:
        start = lines.index(title)
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
    else:
        marker = "## Targets from the issues"
        start = end = lines.index(marker) if marker in lines else len(lines)
    return "\n".join([*lines[:start], *section.rstrip("\n").splitlines(), "", *lines[end:]]) + "\n"
