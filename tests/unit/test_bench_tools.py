"""The benchmark suite's pure helpers (tools/bench_suite): medians, ratios, formatting, tables,
target checks and argument parsing. Nothing here runs a workload or Aim."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[2] / "tools"
sys.path.insert(0, str(TOOLS))

from bench_suite import config, report, stats  # noqa: E402
from bench_suite.stats import Measure, Row  # noqa: E402


def test_median_odd_even_and_empty() -> None:
    assert stats.median([3.0, 1.0, 2.0]) == 2.0
    assert stats.median([4.0, 1.0, 2.0, 3.0]) == 2.5
    with pytest.raises(ValueError, match="no values"):
        stats.median([])


def test_measure_validates_and_scales() -> None:
    m = stats.measure([3, 1, 2], "s")
    assert m.median == 2.0 and m.values == (3.0, 1.0, 2.0)
    scaled = m.scaled(50)
    assert scaled.median == 100.0 and scaled.extrapolated and not m.extrapolated
    with pytest.raises(ValueError):
        Measure((), "s")
    with pytest.raises(ValueError, match="unknown unit"):
        Measure((1.0,), "parsecs")


def test_advantage_direction_and_undefined() -> None:
    assert stats.advantage(2.0, 100.0) == 50.0  # times: Aim / ours
    assert stats.advantage(10e6, 1e5, is_lower_better=False) == 100.0  # rates: ours / Aim
    assert stats.advantage(0.0, 1.0) is None
    assert stats.advantage(1.0, -1.0) is None
    row = Row("x", stats.measure([1, 3], "s"), stats.measure([40], "s"))
    assert row.advantage == 20.0
    assert Row("x", stats.measure([1], "s"), None).advantage is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (1.05e-6, "1.05 µs"),
        (0.0123, "12.3 ms"),
        (75.24, "75.2 s"),
        (0.25, "250 ms"),
        (3.28e-7, "328 ns"),
        (1234.0, "1,234 s"),
        (0.0, "0 s"),
    ],
)
def test_fmt_seconds(seconds: float, text: str) -> None:
    assert stats.fmt_seconds(seconds) == text


def test_fmt_value_units() -> None:
    assert stats.fmt_value(12_300_000, "points/s") == "12.3 M points/s"
    assert stats.fmt_value(95_000, "points/s") == "95.0 k points/s"
    assert stats.fmt_value(33.21, "B/point") == "33.2 B"
    assert stats.fmt_value(129.2, "MiB") == "129 MiB"
    assert stats.fmt_value(5, "files/run") == "5.0"
    assert stats.fmt_value(10_000, "runs") == "10,000"
    with pytest.raises(ValueError):
        stats.fmt_value(1, "furlongs")


def test_fmt_measure_median_range_extrapolation_missing() -> None:
    assert (
        stats.fmt_measure(stats.measure([1.02e-6, 1.05e-6, 1.10e-6], "s")) == "1.05 µs (1.02–1.10)"
    )
    assert stats.fmt_measure(stats.measure([0.2], "s")) == "200 ms"
    assert stats.fmt_measure(stats.measure([0.02], "s").scaled(50)) == "~1.00 s (extrapolated)"
    assert stats.fmt_measure(None) == "—"


@pytest.mark.parametrize(
    ("ratio", "text"),
    [(97.4, "97x"), (1234.0, "1,234x"), (3.14, "3.1x"), (0.5, "0.50x"), (None, "—")],
)
def test_fmt_ratio(ratio: float | None, text: str) -> None:
    assert stats.fmt_ratio(ratio) == text


def test_markdown_table_pads_and_escapes() -> None:
    table = stats.markdown_table(["a", "bb"], [["x|y", "1"], ["z", "22"]])
    lines = table.splitlines()
    assert lines[0] == "| a    | bb |"
    assert lines[1] == "| ---- | -- |"
    assert lines[2] == "| x\\|y | 1  |"
    assert len({len(line) for line in lines}) == 1
    with pytest.raises(ValueError):
        stats.markdown_table(["a"], [["1", "2"]])


def test_rows_table_has_both_sides_and_ratio() -> None:
    rows = [Row("track", stats.measure([1e-6], "s"), stats.measure([1e-4], "s"), note="n")]
    table = stats.rows_table(rows, "Aim 3.29.1")
    assert "| track " in table and "1.00 µs" in table and "100 µs" in table and "100x" in table
    assert table.splitlines()[0].startswith("| Measurement")


def test_targets_met_missed_and_unmeasured() -> None:
    named = {
        "track": Row("t", stats.measure([1.0e-6], "s"), stats.measure([100e-6], "s")),
        "bare": Row("b", stats.measure([0.3e-6], "s")),
        "bpp_after": Row("b", stats.measure([13.0], "B/point"), None),
    }
    by_label = {
        t.label: t for t in report.targets(named, {}, many_runs=10_000, long_points=10_000_000)
    }
    assert by_label["`run.track` <= 1.5 µs per call incl. `close()` (issue 2)"].is_met is True
    assert by_label["`run.track` >= 40x faster than Aim (issue 2)"].is_met is True
    assert by_label["`run.track` within 5x of a bare Python method call (issue 2)"].is_met is True
    assert by_label["<= 12 bytes per point compacted (issue 5)"].is_met is False
    assert by_label["<= 12 bytes per point compacted (issue 5)"].measured == "13.0 B"
    assert by_label["<= 40 bytes per point uncompacted (issue 2)"].is_met is None
    assert "**MISSED**" in report.targets_table(
        report.targets(named, {}, many_runs=10, long_points=10)
    )


def test_parse_args_full_quick_and_overrides(tmp_path: Path) -> None:
    full = config.parse_args([])
    assert not full.is_quick and full.reps == 3 and full.calls == 1_000_000
    assert (full.runs, full.metrics, full.steps) == (100, 10, 1_000)
    assert full.long_points == 10_000_000 and full.many_runs == 10_000
    assert full.output.name == "BENCHMARKS.md" and full.max_wait_min == 25
    quick = config.parse_args(["--quick"])
    assert (
        quick.is_quick and quick.calls == 100_000 and quick.runs == 10 and quick.max_wait_min == 0
    )
    assert quick.output.name == "BENCHMARKS-quick.md"
    custom = config.parse_args(
        ["--quick", "--reps", "2", "--runs", "7", "--output", str(tmp_path / "b.md")]
    )
    assert custom.reps == 2 and custom.runs == 7 and custom.output == tmp_path / "b.md"
    with pytest.raises(SystemExit):
        config.parse_args(["--reps", "0"])
    with pytest.raises(SystemExit):
        config.parse_args(["--no-such-flag"])


def test_marked_sections_are_replaced_and_carried_over() -> None:
    first = report.replace_marked_section("# Benchmarks\n\ntable\n", "bench-convert", "## C\nA")
    assert first.endswith("<!-- bench-convert:begin -->\n## C\nA\n<!-- bench-convert:end -->\n")
    second = report.replace_marked_section(first, "bench-convert", "## C\nB")
    assert second.count("bench-convert:begin") == 1 and "\nB\n" in second and "\nA\n" not in second
    regenerated = report.carry_marked_sections(second, "# Benchmarks\n\nnew table\n")
    assert regenerated.startswith("# Benchmarks\n\nnew table\n\n<!-- bench-convert:begin -->")
    assert "\nB\n" in regenerated
    assert report.carry_marked_sections(second, second) == second


def test_only_ui_splices_its_section_and_keeps_the_rest() -> None:
    doc = "# B\n\n## Reads\n\nold reads\n\n## Targets from the issues\n\n| t |\n"
    ui = "## Web UI\n\nfirst\n"
    once = report.splice_section(doc, ui)
    assert once.index("## Web UI") < once.index("## Targets from the issues")
    assert "old reads" in once and once.count("## Web UI") == 1
    twice = report.splice_section(once, "## Web UI\n\nsecond\n")
    assert "second" in twice and "first" not in twice and twice.count("## Web UI") == 1
    assert twice.replace("second", "first") == once
    assert config.parse_args(["--only", "ui"]).only == "ui"


def test_ui_targets_read_the_ui_rows() -> None:
    named = {
        "ui_metrics_100": Row("metrics explorer, 100 runs x ...", stats.measure([0.3], "s")),
        "ui_metrics_big": Row("10M", stats.measure([2.5], "s")),
        "ui_metrics_big_bytes": Row("bytes", stats.measure([1.5], "MiB")),
        "ui_scroll": Row("scroll", stats.measure([0.02], "s")),
    }
    checked = {t.label.split(" (issue")[0]: t.is_met for t in report.ui_targets(named)}
    assert checked["metrics explorer, 100 runs x loss x 1,000 steps <= 0.5 s"] is True
    assert checked["metrics explorer, 10M points <= 2 s"] is False
    assert checked["  ... <= 3 MB sent"] is True
    assert checked["live: a flushed point on screen <= 2 s"] is None
    assert report.ui_targets({}) == []
    assert stats.fmt_value(3, "frames") == "3"
