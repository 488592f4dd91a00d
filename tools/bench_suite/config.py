"""Command line of `tools/bench.py` and the sizes of every workload, full and `--quick`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
AIM_VERSION = "3.29.1"


@dataclass(frozen=True)
class Config:
    """Workload sizes and run options (defaults: the full suite; `--quick`: the small one)."""

    is_quick: bool
    reps: int  # repetitions of each measurement, each in a fresh process
    calls: int  # aim_parquet's run.track calls per repetition
    aim_calls: int  # Aim's run.track calls per repetition (its per-call cost is flat in N)
    runs: int  # write workload: runs x metrics x steps
    metrics: int
    steps: int
    aim_write_reps: int  # Aim's write workload repetitions (1M points take it minutes)
    object_calls: int  # Image / Distribution track calls per repetition
    long_points: int  # points of the one-metric read workload (aim_parquet)
    many_runs: int  # runs of the run-predicate workload (aim_parquet)
    aim_many_runs: int  # runs Aim creates to extrapolate to `many_runs`
    scale_runs: int  # "many runs" section: runs of 5 points each (generated)
    predicate_runs: int  # "many runs" section: runs of the run-predicate row (sidecars only)
    aim_scale_runs: int  # "many runs" section: runs both systems make with `Run()`
    sweep_runs: int  # "analyst" section: runs of the sweep
    sweep_steps: int  # "analyst" section: steps per run
    warm_reps: int  # warm repetitions of a query inside one process
    system_interval_s: int
    seed: int
    output: Path
    workdir: Path | None
    is_keep: bool
    max_wait_min: float  # wait up to this long for the 1-minute load to drop below `max_load`
    max_load: float
    aim_venv: Path
    only: str | None = None  # one workload group (`--only ui`): its section is spliced in


FULL = {
    "reps": 3,
    "calls": 1_000_000,
    "aim_calls": 200_000,
    "runs": 100,
    "metrics": 10,
    "steps": 1_000,
    "aim_write_reps": 1,
    "object_calls": 1_000,
    "long_points": 10_000_000,
    "many_runs": 10_000,
    "aim_many_runs": 200,
    "scale_runs": 10_000,
    "predicate_runs": 100_000,
    "aim_scale_runs": 1_000,
    "sweep_runs": 300,
    "sweep_steps": 2_000,
    "max_wait_min": 25.0,
}
QUICK = {
    "reps": 1,
    "calls": 100_000,
    "aim_calls": 20_000,
    "runs": 10,
    "metrics": 10,
    "steps": 1_000,
    "aim_write_reps": 1,
    "object_calls": 200,
    "long_points": 1_000_000,
    "many_runs": 1_000,
    "aim_many_runs": 50,
    "scale_runs": 1_000,
    "predicate_runs": 10_000,
    "aim_scale_runs": 100,
    "sweep_runs": 30,
    "sweep_steps": 2_000,
    "max_wait_min": 0.0,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tools/bench.py",
        description=(
            "Side-by-side benchmark of aim_parquet and Aim 3.29 (installed into .venv-aim on first "
            "use) on identical seeded workloads; writes BENCHMARKS.md."
        ),
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 repetition (< 2 min)")
    parser.add_argument("--reps", type=int, help="repetitions per measurement (3 full, 1 quick)")
    parser.add_argument("--calls", type=int, help="aim_parquet track calls (1M; quick 100k)")
    parser.add_argument("--aim-calls", type=int, help="Aim track calls (200k; quick 20k)")
    parser.add_argument("--runs", type=int, help="write workload runs (100; quick 10)")
    parser.add_argument("--metrics", type=int, help="metrics per run (10)")
    parser.add_argument("--steps", type=int, help="steps per metric (1,000)")
    parser.add_argument("--object-calls", type=int, help="Image/Distribution calls (1,000)")
    parser.add_argument("--long-points", type=int, help="one-metric read size (10M; quick 1M)")
    parser.add_argument("--many-runs", type=int, help="run-predicate repo size (10,000)")
    parser.add_argument("--aim-many-runs", type=int, help="runs Aim creates to extrapolate (200)")
    parser.add_argument(
        "--scale-runs", type=int, help="many-runs section size (10,000; quick 1,000)"
    )
    parser.add_argument(
        "--predicate-runs", type=int, help="many-runs predicate size (100,000; quick 10,000)"
    )
    parser.add_argument(
        "--aim-scale-runs", type=int, help="runs both sides make with Run() (1,000; quick 100)"
    )
    parser.add_argument("--sweep-runs", type=int, help="analyst sweep runs (300; quick 30)")
    parser.add_argument("--sweep-steps", type=int, help="analyst sweep steps per run (2,000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, help="report path (BENCHMARKS.md; quick: .bench/)")
    parser.add_argument("--workdir", type=Path, help="where the repos go (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the repos afterwards")
    parser.add_argument(
        "--max-wait-min",
        type=float,
        help="wait up to N minutes for the 1-minute load average to drop below --max-load "
        "before starting (25 full, 0 quick)",
    )
    parser.add_argument("--max-load", type=float, default=1.0)
    parser.add_argument(
        "--only",
        choices=["ui", "ui-pages", "scale"],
        help="run one workload group and replace only its section of the report "
        "(ui: the web UI in headless Chromium, side by side with `aim up`, and its second "
        "part; ui-pages: that second part only: images explorer, run page, static report; "
        "scale: the many-runs and analyst sections)",
    )
    return parser


def parse_args(argv: Sequence[str] | None = None) -> Config:
    args = build_parser().parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    for key in sizes:
        given = getattr(args, key, None)
        if given is not None:
            sizes[key] = given
    for key, value in sizes.items():
        if value < (0 if key == "max_wait_min" else 1):
            raise SystemExit(f"tools/bench.py: --{key.replace('_', '-')} must be positive")
    default_output = ROOT / (".bench/BENCHMARKS-quick.md" if args.quick else "BENCHMARKS.md")
    return Config(
        is_quick=args.quick,
        reps=int(sizes["reps"]),
        calls=int(sizes["calls"]),
        aim_calls=int(sizes["aim_calls"]),
        runs=int(sizes["runs"]),
        metrics=int(sizes["metrics"]),
        steps=int(sizes["steps"]),
        aim_write_reps=int(sizes["aim_write_reps"]),
        object_calls=int(sizes["object_calls"]),
        long_points=int(sizes["long_points"]),
        many_runs=int(sizes["many_runs"]),
        aim_many_runs=int(sizes["aim_many_runs"]),
        scale_runs=int(sizes["scale_runs"]),
        predicate_runs=int(sizes["predicate_runs"]),
        aim_scale_runs=int(sizes["aim_scale_runs"]),
        sweep_runs=int(sizes["sweep_runs"]),
        sweep_steps=int(sizes["sweep_steps"]),
        warm_reps=10,
        system_interval_s=10,
        seed=args.seed,
        output=args.output or default_output,
        workdir=args.workdir,
        is_keep=args.keep,
        max_wait_min=float(sizes["max_wait_min"]),
        max_load=args.max_load,
        aim_venv=ROOT / ".venv-aim",
        only=args.only,
    )
