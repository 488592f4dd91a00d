"""`aim-parquet convert tensorboard | mlflow | aim`: bring other trackers' runs in, offline."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

from aim_parquet.cli.common import (
    CliError,
    print_table,
    repo_option,
    repo_root,
    safe_text,
)
from aim_parquet.cli.progress import Progress

COMMON_EPILOG = """
Each source run becomes one run here, with run["__source"] naming it: converting again adds
nothing (a source run that changed since is reported; --update converts it again). --dry-run
reads everything and prints the counts without writing. Exit status: 0 when everything was
converted, 1 when anything was skipped (the summary says what and why) or the source could not be
read."""

SKIP_LINES = 30


def add_parser(sub: Any) -> None:
    parent = repo_option()
    p = sub.add_parser(
        "convert",
        help="bring in runs from TensorBoard, MLflow or Aim (offline)",
        description="Convert another tracker's runs into this repository: TensorBoard event "
        "files, an MLflow file store or SQLite database, or an Aim 3.x repository. Nothing "
        "needs the network.",
        epilog="examples:\n  aim-parquet convert tensorboard ./runs --experiment baseline\n"
        "  aim-parquet convert mlflow ./mlruns\n"
        "  aim-parquet convert aim ~/old-project --dry-run",
        parents=[parent],
    )
    kinds = p.add_subparsers(dest="source_kind", metavar="SOURCE", required=True)
    t = kinds.add_parser(
        "tensorboard",
        help="TensorBoard event files (no TensorFlow needed)",
        description="Convert every event file under LOGDIR. Each folder holding event files is "
        "a run (as in TensorBoard's run list); a folder named train, validation, val, eval, "
        "test, ... joins its parent's run as the context {'subset': NAME}. Scalars become "
        "metrics, histograms Distributions, images Images, text Texts, audio Audios, hparams "
        "params; every point keeps its wall time.",
        epilog="example:\n  aim-parquet convert tensorboard ./runs --experiment resnet --repo ~/exp"
        + "\n"
        + COMMON_EPILOG,
        parents=[parent],
    )
    t.add_argument("logdir", metavar="LOGDIR", help="the folder you pass to tensorboard --logdir")
    t.add_argument(
        "--experiment", metavar="NAME", help="experiment of the new runs (default: LOGDIR's name)"
    )
    _common_options(t)
    t.set_defaults(func=cmd_tensorboard)
    m = kinds.add_parser(
        "mlflow",
        help="an MLflow file store (mlruns/) or SQLite database (no mlflow needed)",
        description="Convert the runs of an MLflow tracking store, read directly: an mlruns/ "
        "folder or a SQLite database (mlflow.db, or a sqlite:/// URI). Experiments become "
        "experiments, run names names, params run['params'], tags run['tags'] (MLflow's own "
        "mlflow.* tags under run['mlflow']), the note the description, and every point of every "
        "metric history keeps its step and timestamp. Deleted runs are left out.",
        epilog="examples:\n  aim-parquet convert mlflow ./mlruns\n"
        "  aim-parquet convert mlflow sqlite:///mlflow.db --experiment fine-tuning"
        + "\n"
        + COMMON_EPILOG,
        parents=[parent],
    )
    m.add_argument("source", metavar="PATH_OR_URI", help="mlruns folder, mlflow.db, or a URI")
    m.add_argument("--experiment", metavar="NAME", help="only this MLflow experiment (name or id)")
    _common_options(m)
    m.set_defaults(func=cmd_mlflow)
    a = kinds.add_parser(
        "aim",
        help="an Aim 3.x repository (pip install 'aim_parquet[aim]')",
        description="Convert every run of an Aim 3.x repository through Aim's own SDK (install "
        "it with pip install 'aim_parquet[aim]'): params, name, description, experiment, tags, "
        "times, every sequence of every kind and context with its real steps, epochs and "
        "timestamps, terminal logs and log records. The Aim repository is only read.",
        epilog="example:\n  aim-parquet convert aim ~/old-project --repo ~/new-project"
        + "\n"
        + COMMON_EPILOG,
        parents=[parent],
    )
    a.add_argument("source", metavar="REPO", help="the folder holding the Aim .aim repository")
    _common_options(a)
    a.set_defaults(func=cmd_aim)


def _common_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dry-run", action="store_true", help="read everything, print the counts, write nothing"
    )
    p.add_argument(
        "--update",
        action="store_true",
        help="convert again the source runs that changed since their conversion",
    )
    p.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also print one line per source run as it is converted, and every run's row in the "
        "summary (without it: only the runs with something to report)",
    )


def cmd_tensorboard(args: argparse.Namespace) -> int:
    from aim_parquet.convert.tensorboard import find_runs

    found = find_runs(Path(args.logdir), args.experiment)
    return _convert(args, "tensorboard", args.logdir, found.runs, found.problems)


def cmd_mlflow(args: argparse.Namespace) -> int:
    from aim_parquet.convert.mlflow import find_runs

    found = find_runs(args.source, args.experiment)
    return _convert(args, "mlflow", args.source, found.runs, found.problems)


def cmd_aim(args: argparse.Namespace) -> int:
    from aim_parquet.convert.aim_repo import find_runs

    found = find_runs(Path(args.source))
    return _convert(args, "aim", args.source, found.runs, found.problems)


def _convert(
    args: argparse.Namespace, tracker: str, source: str, runs: list[Any], problems: list[str]
) -> int:
    from aim_parquet.convert.engine import convert_runs

    root = repo_root(args)
    _check_target(root)
    out = sys.stdout
    bar = Progress(f"converting {tracker}", sys.stderr)

    def progress(done: int, total: int, label: str) -> None:
        bar(done, total, label)
        if args.verbose and done < total:  # (called before each run, with the runs done so far)
            bar.finish()
            print(safe_text(f"[{done + 1}/{total}] {label}"), flush=True)  # (a source's name)

    try:
        report = convert_runs(
            tracker,
            source,
            runs,
            root,
            is_dry_run=args.dry_run,
            update=args.update,
            progress=progress,
        )
    finally:
        bar.finish()
    report.problems.extend(problems)
    print_summary(report, out, verbose=args.verbose)
    return 1 if report.has_loss else 0


def _check_target(root: Path) -> None:
    """Refuse to write into a `.aim` folder that is not ours (an Aim repository)."""
    from aim_parquet.format.paths import RepoLayout
    from aim_parquet.storage import is_repo

    aim_dir = RepoLayout(root).aim_dir
    for folder in (root, aim_dir):
        if folder.exists() and not folder.is_dir():
            raise CliError(f"{folder} is a file, not a folder; pass a folder with --repo DIR")
    if aim_dir.is_dir() and not is_repo(root) and any(aim_dir.iterdir()):
        raise CliError(
            f"{aim_dir} is not an aim_parquet repository (an Aim repository?); convert into "
            "another folder with --repo DIR"
        )


_PLAIN_STATUSES = frozenset(
    {"converted", "replaced", "up to date", "would convert", "would replace"}
)


def _is_noteworthy(run: Any) -> bool:
    """A source run the summary lists without --verbose: one not converted as it is."""
    return run.status not in _PLAIN_STATUSES or bool(run.message or run.counts.skipped)


def print_summary(report: Any, out: TextIO, *, verbose: bool = True) -> None:
    """The table (every source run with `verbose`, else those with something to report, and
    the totals), the count of runs per status, what was not converted and where it went."""
    from aim_parquet.format.paths import RepoLayout

    rows = []
    for r in report.runs:
        if not (verbose or _is_noteworthy(r)):
            continue
        c = r.counts
        rows.append(
            {
                "source run": r.label,
                "status": r.status,
                "run": r.run_hash or "-",
                "sequences": c.sequences,
                "points": c.points,
                "objects": c.objects,
                "params": c.params,
                "skipped": c.skipped_total,
            }
        )
    t = report.totals
    rows.append(
        {
            "source run": f"total ({len(report.runs)} runs)",
            "status": "",
            "run": "",
            "sequences": t.sequences,
            "points": t.points,
            "objects": t.objects,
            "params": t.params,
            "skipped": t.skipped_total,
        }
    )
    columns = ["source run", "status", "run", "sequences", "points", "objects", "params", "skipped"]
    print_table(rows, columns, out)
    statuses = Counter(r.status for r in report.runs)
    if statuses:
        out.write("source runs: " + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())))
        out.write("\n")
    lines = [f"{problem}" for problem in report.problems]
    for r in report.runs:
        if r.message:
            lines.append(f"{r.label}: {r.status}: {r.message}")
        for reason, count in sorted(r.counts.skipped.items()):
            lines.append(f"{r.label}: skipped {count} x {reason}")
    if lines:
        out.write("\nnot converted:\n")
        for line in lines[:SKIP_LINES]:
            out.write(f"  {safe_text(line)}\n")  # (names and paths from the source)
        if len(lines) > SKIP_LINES:
            out.write(f"  ... and {len(lines) - SKIP_LINES} more\n")
    where = RepoLayout(report.repo_root).aim_dir
    if report.is_dry_run:
        out.write(f"\ndry run: nothing was written to {where}\n")
    else:
        done = sum(1 for r in report.runs if r.status in ("converted", "replaced"))
        out.write(f"\n{done} run(s) converted into {where}\n")
