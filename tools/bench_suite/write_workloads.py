"""Write-side workload groups: tracking cost, rich objects, write throughput, storage, compaction."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from bench_suite.stats import Row, measure
from bench_suite.suite import Suite, pick, rate, tree_usage


def tracking(s: Suite) -> None:
    c = s.cfg

    def ours(prefix: str, interval: int | None) -> Any:
        return lambda i: (
            "track",
            {
                "repo": s.repo(f"{prefix}-{i}"),
                "calls": c.calls,
                "system_tracking_interval": interval,
            },
        )

    def aim(prefix: str, interval: int | None) -> Any:
        return lambda i: (
            "track",
            {
                "repo": s.repo(f"{prefix}-{i}"),
                "calls": c.aim_calls,
                "system_tracking_interval": interval,
            },
        )

    mine, theirs = s.alternate("track scalar", ours("ap-track", None), aim("aim-track", None))
    s.drop(
        *[f"ap-track-{i}" for i in range(c.reps)], *[f"aim-track-{i}" for i in range(c.reps - 1)]
    )
    s.extra["aim_long_repo"] = s.repo(f"aim-track-{c.reps - 1}")
    s.extra["aim_long_points"] = c.aim_calls
    sys_mine, sys_theirs = s.alternate(
        "track, system tracking on",
        ours("ap-sys", c.system_interval_s),
        aim("aim-sys", c.system_interval_s),
    )
    s.drop(*[f"ap-sys-{i}" for i in range(c.reps)], *[f"aim-sys-{i}" for i in range(c.reps)])
    calls = f"aim_parquet {c.calls:,} calls, Aim {c.aim_calls:,} calls per repetition"
    s.section(
        "Tracking",
        '`run.track(1.0 / (i + 1), name="loss", step=i, context={"subset": "train"})` in a loop, '
        "in a fresh process per repetition, timed from the first call to the end of `run.close()` "
        "(the run is created before the clock starts). System tracking and terminal capture off "
        "unless stated.",
        [
            s.add(
                "track",
                Row(
                    "`run.track` per call, including `close()`",
                    pick(mine, "track_close_us", "s", 1e-6),
                    pick(theirs, "track_close_us", "s", 1e-6),
                    note=calls,
                ),
            ),
            Row(
                "`run.track` per call, excluding `close()`",
                pick(mine, "track_us", "s", 1e-6),
                pick(theirs, "track_us", "s", 1e-6),
            ),
            s.add(
                "track_sys",
                Row(
                    f"the same with system tracking on (every {c.system_interval_s} s)",
                    pick(sys_mine, "track_close_us", "s", 1e-6),
                    pick(sys_theirs, "track_close_us", "s", 1e-6),
                    note=calls,
                ),
            ),
            s.add(
                "bare",
                Row(
                    "bare Python method call with the same arguments (reference)",
                    pick(mine, "bare_us", "s", 1e-6),
                    None,
                    note="an empty `def track(...)`; the issue's target is within 5x",
                ),
            ),
        ],
    )


def objects(s: Suite) -> None:
    c = s.cfg
    rows = []
    for kind, label, raw in [
        (
            "image",
            "`run.track(Image(64x64 RGB uint8 array))` per call",
            "Pillow `fromarray` + PNG save alone",
        ),
        (
            "distribution",
            "`run.track(Distribution(10,000 samples))` per call",
            "`np.histogram(samples, bins=64)` alone",
        ),
    ]:

        def params(i: int, side: str, kind: str = kind) -> tuple[str, dict[str, Any]]:
            return "objects", {
                "repo": s.repo(f"{side}-{kind}-{i}"),
                "kind": kind,
                "calls": c.object_calls,
                "seed": c.seed,
            }

        mine, theirs = s.alternate(
            kind, lambda i, p=params: p(i, "ap"), lambda i, p=params: p(i, "aim")
        )
        s.drop(*[f"{side}-{kind}-{i}" for side in ("ap", "aim") for i in range(c.reps)])
        rows.append(
            s.add(
                kind,
                Row(
                    label,
                    pick(mine, "per_call_us", "s", 1e-6),
                    pick(theirs, "per_call_us", "s", 1e-6),
                    note=f"{c.object_calls:,} calls (16 seeded inputs, cycled), including `close()`",
                ),
            )
        )
        rows.append(
            s.add(
                f"{kind}_raw",
                Row(
                    raw + " (reference)",
                    pick(mine, "raw_us", "s", 1e-6),
                    None,
                    note="issue 4's target: tracking within +10% of this",
                ),
            )
        )
    s.section(
        "Rich objects",
        "Object construction and tracking per call, fresh process per repetition.",
        rows,
    )


def write_and_storage(s: Suite) -> None:
    """Write R x M x S points, keep the last repetition's repo of each side for the reads."""
    c = s.cfg

    def params(i: int, side: str) -> tuple[str, dict[str, Any]]:
        return "write", {
            "repo": s.repo(f"{side}-write-{i}"),
            "runs": c.runs,
            "metrics": c.metrics,
            "steps": c.steps,
            "seed": c.seed,
            "float32": True,
        }

    mine, theirs = s.alternate(
        "write", lambda i: params(i, "ap"), lambda i: params(i, "aim"), aim_reps=c.aim_write_reps
    )
    s.drop(
        *[f"ap-write-{i}" for i in range(c.reps - 1)],
        *[f"aim-write-{i}" for i in range(c.aim_write_reps - 1)],
    )
    s.extra["ap_write"] = s.repo(f"ap-write-{c.reps - 1}")
    s.extra["aim_write"] = s.repo(f"aim-write-{c.aim_write_reps - 1}")
    points = c.runs * c.metrics * c.steps
    s.extra["points"] = points
    shape = f"{c.runs} runs x {c.metrics} metrics x {c.steps:,} steps"
    aim_note = f"; Aim {c.aim_write_reps} repetition(s)" if c.aim_write_reps != c.reps else ""
    s.section(
        "Write throughput and writer memory",
        f"One fresh process writes {shape} = {points:,} points, run after run (params, "
        "`run.track(value, name=, step=, epoch=, context=)`, `close()`), timed from each `Run()` to its "
        "`close()`. Values: seeded loss-like curves rounded to float32 (as `loss.item()` gives them). "
        "Peak RSS is the writing process's `VmHWM`.",
        [
            s.add(
                "write_rate",
                Row(
                    f"write throughput, {shape}",
                    rate(mine),
                    rate(theirs),
                    is_lower_better=False,
                    note=aim_note.lstrip("; "),
                ),
            ),
            s.add(
                "write_rss",
                Row(
                    "writer peak RSS",
                    pick(mine, "peak_rss_mib", "MiB"),
                    pick(theirs, "peak_rss_mib", "MiB"),
                    note="whole process, imports included",
                ),
            ),
            Row(
                "writer RSS growth while writing",
                pick(mine, "rss_growth_mib", "MiB"),
                pick(theirs, "rss_growth_mib", "MiB"),
            ),
        ],
    )
    usage = tree_usage(Path(s.extra["aim_write"]) / ".aim") if theirs else None
    s.extra["aim_usage_written"] = usage
    reindexed = (
        s.aim("reindex", {"repo": s.extra["aim_write"]}, "Aim reindex (write repo)")
        if theirs
        else None
    )
    s.extra["aim_reindex"] = reindexed
    s.extra["aim_usage_indexed"] = (
        tree_usage(Path(s.extra["aim_write"]) / ".aim") if reindexed else None
    )


def _ap_files_per_run(repo: str) -> float:
    runs = [p for p in (Path(repo) / ".aim" / "runs").iterdir() if p.is_dir()]
    return sum(tree_usage(p)[0] for p in runs) / max(1, len(runs))


def compaction_and_storage(s: Suite) -> None:
    """Compact copies of the written repo (throughput), then the storage rows before/after."""
    c = s.cfg
    source = s.extra["ap_write"]
    points = s.extra["points"]
    before = tree_usage(Path(source) / ".aim")
    files_before = _ap_files_per_run(source)
    results = []
    for i in range(c.reps):
        target = s.work / f"ap-compacted-{i}"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target)
        r = s.ours("compact", {"repo": str(target)}, f"compact write repo {i + 1}/{c.reps}")
        if r is not None:
            results.append(r)
        if i < c.reps - 1:
            shutil.rmtree(target)
    compacted = str(s.work / f"ap-compacted-{c.reps - 1}")
    s.extra["ap_compacted"] = compacted
    after = tree_usage(Path(compacted) / ".aim")
    files_after = _ap_files_per_run(compacted)
    s.extra["compact_write"] = rate(results)
    # the float64-noise variant (aim_parquet only): the incompressible worst case for values
    f64_runs = min(10, c.runs)
    f64 = s.ours(
        "write",
        {
            "repo": s.repo("ap-f64"),
            "runs": f64_runs,
            "metrics": c.metrics,
            "steps": c.steps,
            "seed": c.seed,
            "float32": False,
        },
        "write float64-noise variant",
    )
    f64_points = f64_runs * c.metrics * c.steps
    f64_before = tree_usage(s.work / "ap-f64" / ".aim")[1] / f64_points if f64 else None
    f64c = (
        s.ours("compact", {"repo": s.repo("ap-f64")}, "compact float64-noise variant")
        if f64
        else None
    )
    f64_after = tree_usage(s.work / "ap-f64" / ".aim")[1] / f64_points if f64c else None
    s.drop("ap-f64")

    aim_written, aim_indexed = s.extra["aim_usage_written"], s.extra["aim_usage_indexed"]
    aim_bpp = measure([aim_written[1] / points], "B/point") if aim_written else None
    aim_bpp_idx = measure([aim_indexed[1] / points], "B/point") if aim_indexed else None
    aim_files = measure([aim_indexed[0] / c.runs], "files/run") if aim_indexed else None
    s.section(
        "Storage",
        f"Bytes of every file under `.aim/` divided by the {points:,} points of the write workload "
        "(params, sidecars and indexes included), and files per run. aim_parquet before and after "
        "compaction (`compact_repo`, what `aim-parquet compact` runs); Aim has no compaction step: its "
        "column shows the repo as written and, after compaction's row, after `aim storage reindex` "
        "(needed before SDK queries see closed runs).",
        [
            s.add(
                "bpp_before",
                Row(
                    "bytes per point, as written", measure([before[1] / points], "B/point"), aim_bpp
                ),
            ),
            s.add(
                "bpp_after",
                Row(
                    "bytes per point, after `aim-parquet compact` (Aim: after reindex)",
                    measure([after[1] / points], "B/point"),
                    aim_bpp_idx,
                ),
            ),
            Row(
                "bytes per point after compaction, float64 noise in every value",
                measure([f64_after], "B/point") if f64_after else None,
                None,
                note=(
                    f"aim_parquet only, {f64_runs} runs; as written {f64_before:.1f} B"
                    if f64_before
                    else ""
                ),
            ),
            s.add(
                "files_before",
                Row(
                    "files per run, as written",
                    measure([files_before], "files/run"),
                    None,
                    note="Aim's RocksDB files are shared by runs; see next row",
                ),
            ),
            s.add(
                "files_after",
                Row(
                    "files per run, after compaction (Aim: files in `.aim` ÷ runs)",
                    measure([files_after], "files/run"),
                    aim_files,
                ),
            ),
        ],
    )
