"""Side-by-side benchmark suite: aim_parquet vs Aim 3.29 on identical seeded workloads.

    .venv/bin/python tools/bench.py            # full suite (make bench), writes BENCHMARKS.md
    .venv/bin/python tools/bench.py --quick    # small sizes, < 2 minutes (make bench-quick)

Installs Aim (`aim==3.29.1`, plus pandas for its `dataframe()`) into its own virtualenv
`.venv-aim` the first time and reuses it afterwards. Every measurement runs in a fresh process:
aim_parquet's workloads (`bench_suite/ap_side.py`) with this interpreter, Aim's
(`bench_suite/aim_side.py`) with `.venv-aim/bin/python`; repetitions of the two alternate, so the
ratios compare figures taken side by side in this one run. The full run first waits (up to
`--max-wait-min`) for the machine's 1-minute load average to fall below `--max-load`. The report
states the machine, the command, the date, the duration and the load; the raw results of every
process go to `.bench/results-{full,quick}.json`. Run `--help` for the workload sizes.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_suite import (  # noqa: E402
    env,
    read_workloads,
    report,
    runs_workloads,
    scale_workloads,
    ui_pages_workloads,
    ui_workloads,
    write_workloads,
)
from bench_suite.config import AIM_VERSION, ROOT, Config, parse_args  # noqa: E402
from bench_suite.suite import Suite  # noqa: E402

STEPS = [
    write_workloads.tracking,
    write_workloads.objects,
    write_workloads.write_and_storage,
    write_workloads.compaction_and_storage,
    read_workloads.reads,
    read_workloads.long_metric,
    runs_workloads.many_runs,
    scale_workloads.many_runs_scale,
    scale_workloads.analyst,
    read_workloads.compaction_and_export,
    ui_workloads.ui,
    ui_pages_workloads.ui_pages,
]
ONLY = {
    "ui": [ui_workloads.ui, ui_pages_workloads.ui_pages],
    "ui-pages": [ui_pages_workloads.ui_pages],
    "scale": [scale_workloads.many_runs_scale, scale_workloads.analyst],
}


def command_line(argv: Sequence[str]) -> str:
    """The command as a user would type it from the repository root."""
    python = Path(sys.executable)
    try:
        shown = str(python.relative_to(ROOT)) if python.is_absolute() else str(python)
    except ValueError:
        shown = "python"
    return " ".join([shown, "tools/bench.py", *argv])


def method_notes(cfg: Config, suite: Suite) -> list[str]:
    track = suite.named.get("track")
    per_call = track.aim.median if track is not None and track.aim is not None else 100e-6
    aim_sizes = (
        f"Aim's tracking workloads make {cfg.aim_calls:,} calls per repetition instead of "
        f"{cfg.calls:,}: each Aim call is a RocksDB write, so its per-call cost does not depend on "
        f"the count, and {cfg.calls:,} calls x {cfg.reps} repetition(s) x 2 variants would take "
        f"Aim about {cfg.calls * cfg.reps * 2 * per_call / 60:.0f} minutes here."
    )
    return [
        f"Repetitions: {cfg.reps} per measurement (Aim's write workload: {cfg.aim_write_reps}), "
        "each a fresh process; the two systems' repetitions alternate.",
        aim_sizes,
        "Both sides import nothing of each other: aim_parquet runs in `.venv`, Aim 3.29.1 in "
        "`.venv-aim` (installed from PyPI by the suite). Both track the same seeded values, names, "
        "contexts and params (`tools/bench_suite/common.py`).",
        "Runs are created with system tracking, terminal capture and system params off "
        "(`system_tracking_interval=None, capture_terminal_logs=False, log_system_params=False`) "
        "unless a row says otherwise.",
        "Aim's SDK queries only see runs after they are indexed; the suite runs Aim's own "
        "re-index (`Repo._recreate_index()`, what `aim storage reindex -y` does) after writing, "
        "timed apart and never inside a read figure. Aim queries run with "
        "`report_mode=QueryReportMode.DISABLED` (no progress bar).",
        "Fresh-process reads are timed inside the process after the library's import (the import "
        "has a row of its own) with a warm page cache and byte code cached, as in an installed "
        'package; the "first query" row is the whole process\'s wall time.',
        "Extrapolated figures (marked ~) are computed, never measured, and say from what.",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg = parse_args(argv)
    aim_python = env.ensure_aim_venv(cfg.aim_venv, AIM_VERSION)
    waited_s, load_start = 0.0, env.load_1min()
    if cfg.max_wait_min > 0:
        waited_s, load_start = env.wait_for_quiet(cfg.max_load, cfg.max_wait_min * 60)
    work = cfg.workdir or Path(tempfile.mkdtemp(prefix="aim_parquet-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    fingerprint = env.source_fingerprint(ROOT / "aim_parquet")
    started = time.perf_counter()
    suite = Suite(cfg, aim_python, work)
    try:
        for step in ONLY[cfg.only] if cfg.only else STEPS:
            try:
                step(suite)
            except Exception:
                suite.errors.append(
                    f"{step.__name__}: {traceback.format_exc().strip().splitlines()[-1]}"
                )
                env.log(traceback.format_exc())
    finally:
        if not cfg.is_keep and cfg.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    duration = time.perf_counter() - started
    load_end = env.load_1min()
    load_note = (
        f"{load_start:.2f} at start (after waiting {waited_s / 60:.1f} min for < {cfg.max_load:g}), "
        f"{load_end:.2f} at the end"
    )
    if load_start >= cfg.max_load:
        load_note += " (the machine never got quiet: other processes shared the CPUs)"
    source = f"sha256 of `aim_parquet/**/*.py`: `{fingerprint}`"
    if env.source_fingerprint(ROOT / "aim_parquet") != fingerprint:
        source += " (**changed while the suite ran**: figures mix two versions; run it again)"
        env.log("warning: aim_parquet's source changed during the run")
    meta = {
        "Command": f"`{command_line(argv)}`"
        + (" (`make bench-quick`)" if cfg.is_quick else " (`make bench`)"),
        "Mode": "quick (development sizes)" if cfg.is_quick else "full",
        "Date": date,
        "Duration": f"{duration / 60:.1f} min ({duration:.0f} s, after the one-time Aim install)",
        "1-minute load average": load_note,
        "aim_parquet source": source,
    }
    text = report.render(
        meta=meta,
        machine=env.machine_info(aim_python),
        sections=suite.sections,
        named=suite.named,
        extra=suite.extra,
        aim_label=f"Aim {AIM_VERSION}",
        method=method_notes(cfg, suite),
        errors=suite.errors,
        many_runs=cfg.many_runs,
        long_points=cfg.long_points,
        calls=cfg.calls,
    )
    cfg.output.parent.mkdir(parents=True, exist_ok=True)
    if cfg.only and cfg.output.exists():
        text = cfg.output.read_text(encoding="utf-8")
        for title, intro, rows in suite.sections:
            section = report.render_section(
                title, intro, rows, suite.extra, f"Aim {AIM_VERSION}",
                command=f"`{command_line(argv)}`", date=f"{date} (1-minute load average {load_note})",
            )  # fmt: skip
            text = report.splice_section(text, section)
    elif cfg.output.exists():  # keep what other tools wrote (tools/bench_convert.py --write)
        text = report.carry_marked_sections(cfg.output.read_text(encoding="utf-8"), text)
    cfg.output.write_text(text.rstrip("\n") + "\n", encoding="utf-8")
    raw_path = ROOT / ".bench" / f"results-{'quick' if cfg.is_quick else 'full'}.json"
    raw_path.parent.mkdir(parents=True, exist_ok=True)
    raw_path.write_text(json.dumps(suite.raw, indent=1, default=str), encoding="utf-8")
    env.log(f"wrote {cfg.output} and {raw_path} in {duration:.0f} s")
    sys.stdout.write(report.headlines(suite.named) + "\n")
    return 1 if suite.errors else 0


if __name__ == "__main__":
    sys.exit(main())
