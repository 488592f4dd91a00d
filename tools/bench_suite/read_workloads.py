"""Read-side workload groups: reads of the written repo, one long metric, run predicates over
many runs, compaction throughput and whole-repo exports."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from typing import Any

from bench_suite.stats import Row, measure
from bench_suite.suite import Suite, pick, rate, walls

LOSS = "metric.name == 'loss'"
TEN_PERCENT = "run.hparams.seed % 10 == 0"
TEN_PERCENT_LOSS = "run.hparams.seed % 10 == 0 and metric.name == 'loss'"


def reads(s: Suite) -> None:
    c = s.cfg
    ours_repo, aim_repo, compacted = (
        s.extra["ap_write"],
        s.extra["aim_write"],
        s.extra["ap_compacted"],
    )
    has_aim = s.extra["aim_reindex"] is not None

    def both(tag: str, workload: str, params: dict[str, Any]) -> tuple[Any, Any, Any]:
        mine, theirs = s.alternate(
            tag,
            lambda i: (workload, dict(params, repo=ours_repo)),
            (lambda i: (workload, dict(params, repo=aim_repo))) if has_aim else None,
        )
        packed, _ = s.alternate(
            tag + " (compacted)", lambda i: (workload, dict(params, repo=compacted)), None
        )
        return mine, theirs, packed

    loss = both("read all loss", "read", {"query": LOSS})
    _, real_steps = s.alternate(
        "read all loss, Aim real steps",
        None,
        (lambda i: ("read", {"repo": aim_repo, "query": LOSS, "real_steps": True}))
        if has_aim
        else None,
    )
    no_pandas, _ = s.alternate(
        "read all loss, pandas blocked",
        lambda i: ("read", {"repo": ours_repo, "query": LOSS, "block_pandas": True}),
        None,
    )
    q10 = both("query_runs 10%", "query_runs", {"query": TEN_PERCENT})
    q10_loss = both("10% + loss", "read", {"query": TEN_PERCENT_LOSS})
    reindex = s.extra["aim_reindex"]
    shape = f"{c.runs} runs x {c.metrics} metrics x {c.steps:,} steps"
    s.section(
        "Reads",
        f"The write workload's repo ({shape}). Each repetition is a fresh process; the time is taken "
        "inside it from opening the repo (`Repo(path)`) to the last value read, after the library's "
        "import (which the import row shows). Reading a metric is `metric.values.sparse_numpy()` on "
        "both sides (aim_parquet returns the real steps and the values; Aim 3.29 hashed keys and the "
        "values; the real steps cost Aim more, see the diagnostic row). aim_parquet is read as "
        "written and after compaction; Aim's figure is the same in both rows.",
        [
            s.add(
                "read_loss",
                Row(
                    f"all `loss` values of all {c.runs} runs (`{LOSS}`)",
                    pick(loss[0], "s", "s"),
                    pick(loss[1], "s", "s"),
                    note=f"{c.runs * c.steps:,} points",
                ),
            ),
            s.add(
                "read_loss_c",
                Row(
                    "  ... aim_parquet compacted", pick(loss[2], "s", "s"), pick(loss[1], "s", "s")
                ),
            ),
            s.add(
                "read_loss_np",
                Row(
                    "  ... aim_parquet as written, pandas not importable (diagnostic)",
                    pick(no_pandas, "s", "s"),
                    pick(loss[1], "s", "s"),
                    note="`import pandas` made to fail, as when it is not installed: shows "
                    "whether a pandas import (pyarrow loads it lazily) is on the read path",
                ),
            ),
            Row(
                "  ... Aim with real steps, `metric.data.view(['val']).numpy()` (diagnostic)",
                pick(loss[0], "s", "s"),
                pick(real_steps, "s", "s"),
                note="what the real steps aim_parquet returns cost in Aim",
            ),
            s.add(
                "q10",
                Row(
                    f'`query_runs("{TEN_PERCENT}")`: run predicate matching 10% of runs',
                    pick(q10[0], "s", "s"),
                    pick(q10[1], "s", "s"),
                ),
            ),
            s.add(
                "q10_c",
                Row("  ... aim_parquet compacted", pick(q10[2], "s", "s"), pick(q10[1], "s", "s")),
            ),
            s.add(
                "q10_loss",
                Row(
                    "10% run predicate and read those runs' `loss` (`query_metrics`)",
                    pick(q10_loss[0], "s", "s"),
                    pick(q10_loss[1], "s", "s"),
                ),
            ),
            Row(
                "  ... aim_parquet compacted",
                pick(q10_loss[2], "s", "s"),
                pick(q10_loss[1], "s", "s"),
            ),
            s.add(
                "first_query",
                Row(
                    "first query in a fresh process: start Python, import, open repo, 10% "
                    "`query_runs` (process wall time)",
                    walls(q10[0]),
                    walls(q10[1]),
                ),
            ),
            Row(
                "`import aim_parquet` / `import aim`",
                pick(loss[0] + q10[0], "import_s", "s"),
                pick(loss[1] + q10[1], "import_s", "s"),
                note="all read processes of this table",
            ),
            Row(
                "make closed runs visible to queries",
                None,
                pick([reindex], "s", "s") if reindex else None,
                note="Aim: `aim storage reindex` of the write repo, timed once; aim_parquet needs no step",
            ),
        ],
    )


def long_metric(s: Suite) -> None:
    c = s.cfg
    built = s.ours(
        "track",
        {"repo": s.repo("ap-long"), "calls": c.long_points, "system_tracking_interval": None},
        f"track {c.long_points:,} points (one metric)",
    )
    aim_repo, aim_points = s.extra["aim_long_repo"], s.extra["aim_long_points"]
    has_aim = s.aim("reindex", {"repo": aim_repo}, "Aim reindex (long repo)") is not None
    mine, theirs = s.alternate(
        "read long metric",
        lambda i: ("read", {"repo": s.repo("ap-long"), "query": LOSS}),
        (lambda i: ("read", {"repo": aim_repo, "query": LOSS})) if has_aim else None,
    )
    compactions = []
    for i in range(c.reps):
        target = s.work / f"ap-long-c{i}"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(s.work / "ap-long", target)
        r = s.ours("compact", {"repo": str(target)}, f"compact long run {i + 1}/{c.reps}")
        if r is not None:
            compactions.append(r)
        if i < c.reps - 1:
            shutil.rmtree(target)
    last = s.repo(f"ap-long-c{c.reps - 1}")
    packed, _ = s.alternate(
        "read long metric (compacted)", lambda i: ("read", {"repo": last, "query": LOSS}), None
    )
    s.drop("ap-long", f"ap-long-c{c.reps - 1}", aim_repo.rsplit("/", 1)[-1])
    s.extra["compact_long"] = rate(compactions)
    s.extra["rss_long"] = pick([built], "rss_growth_mib", "MiB") if built else None
    s.extra["track_long"] = pick([built], "track_close_us", "s", 1e-6) if built else None
    aim_note = f"aim_parquet {c.long_points:,} points; Aim {aim_points:,} points (its tracking workload's repo)"
    s.section(
        "One long metric",
        f"A run with one metric of {c.long_points:,} points written by `run.track` (Aim: the "
        f"{aim_points:,} points of its tracking workload; writing {c.long_points:,} points into Aim "
        "would take it far longer than this whole suite). Fresh process per read, steps and values.",
        [
            s.add(
                "long_rate",
                Row(
                    "read one metric: points per second",
                    rate(mine),
                    rate(theirs),
                    is_lower_better=False,
                    note=aim_note,
                ),
            ),
            s.add(
                "long_rate_c",
                Row(
                    "  ... aim_parquet compacted", rate(packed), rate(theirs), is_lower_better=False
                ),
            ),
            Row(
                f"`run.track` per call over {c.long_points:,} calls, including `close()`",
                s.extra["track_long"],
                None,
                note="aim_parquet only, 1 repetition (this repo's build)",
            ),
            Row(
                f"writer RSS growth while tracking {c.long_points:,} points",
                s.extra["rss_long"],
                None,
                note="aim_parquet only; issue 2's target: < 64 MB for 10M points",
            ),
        ],
    )


def compaction_and_export(s: Suite) -> None:
    c = s.cfg
    ours_repo, aim_repo = s.extra["ap_write"], s.extra["aim_write"]
    has_aim = s.extra["aim_reindex"] is not None
    pandas = s.alternate(
        "export pandas",
        lambda i: ("export", {"repo": ours_repo, "fmt": "pandas"}),
        (lambda i: ("export", {"repo": aim_repo, "fmt": "pandas"})) if has_aim else None,
    )
    polars, _ = s.alternate(
        "export polars", lambda i: ("export", {"repo": ours_repo, "fmt": "polars"}), None
    )
    cli = []
    for i in range(c.reps):
        out = s.work / f"export-{i}"
        started = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "aim_parquet",
                "export",
                "--repo",
                ours_repo,
                "--output",
                str(out),
            ],
            capture_output=True,
            text=True,
            cwd=s.work,
        )
        if proc.returncode == 0:
            cli.append(time.perf_counter() - started)
        else:
            last = (proc.stderr.strip().splitlines() or ["(no stderr)"])[-1]
            s.errors.append(f"aim-parquet export exited {proc.returncode}: {last}")
        shutil.rmtree(out, ignore_errors=True)
    rows = c.runs * c.metrics * c.steps
    s.section(
        "Compaction and export",
        f"Compaction (aim_parquet only: Aim has no such step) of copies of the write workload's repo "
        f"and of the long run, `compact_repo` timed inside a fresh process. Exports turn the whole "
        f'write repo ({rows:,} points) into one DataFrame: `repo.query_metrics("").dataframe()` on both '
        "sides, and aim_parquet's `.to_polars()` (Aim has none; compared with its pandas export).",
        [
            s.add(
                "compact_rate",
                Row(
                    f"compaction throughput, {c.runs} runs x {c.metrics} x {c.steps:,}",
                    s.extra.get("compact_write"),
                    None,
                    is_lower_better=False,
                ),
            ),
            s.add(
                "compact_rate_long",
                Row(
                    f"compaction throughput, one run of {c.long_points:,} points",
                    s.extra.get("compact_long"),
                    None,
                    is_lower_better=False,
                ),
            ),
            s.add(
                "export_pandas",
                Row(
                    "whole repo to a pandas DataFrame (`.dataframe()`)",
                    pick(pandas[0], "s", "s"),
                    pick(pandas[1], "s", "s"),
                ),
            ),
            s.add(
                "export_polars",
                Row(
                    "whole repo to a polars DataFrame (`.to_polars()`; Aim: `.dataframe()`)",
                    pick(polars, "s", "s"),
                    pick(pandas[1], "s", "s"),
                ),
            ),
            Row(
                "`python -m aim_parquet export --output DIR` (Parquet dataset, process wall time)",
                measure(cli, "s") if cli else None,
                None,
            ),
        ],
    )
