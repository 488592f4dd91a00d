"""`aim-parquet init | version | query | export`: creating a repository and getting data out."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from aim_parquet.cli.common import (
    CliError,
    format_bytes,
    open_layout,
    repo_option,
    repo_root,
    safe_text,
)

OUTPUT_SUFFIXES = (".csv", ".parquet", ".json")


def add_parsers(sub: Any) -> None:
    parent = repo_option()
    p = sub.add_parser(
        "init",
        help="create a repository (.aim folder)",
        epilog="example:\n  aim-parquet init --repo ~/experiments",
        parents=[parent],
    )
    p.set_defaults(func=cmd_init)
    p = sub.add_parser(
        "version",
        help="print the version",
        epilog="example:\n  aim-parquet version",
        parents=[parent],
    )
    p.set_defaults(func=cmd_version)
    p = sub.add_parser(
        "query",
        help="query metrics (AimQL) and print or save them",
        description="Select metrics with an AimQL expression over `run` and `metric` and print "
        "them as a table, or write them to a .csv, .parquet or .json file.",
        epilog="examples:\n  aim-parquet query \"metric.name == 'loss'\"\n"
        "  aim-parquet query \"run.hparams.lr > 0.01 and metric.context.subset == 'val'\" "
        "--output val.parquet",
        parents=[parent],
    )
    p.add_argument("expr", metavar="EXPR", help="AimQL expression ('' selects every metric)")
    p.add_argument(
        "--output",
        metavar="FILE",
        help="write to FILE.csv, FILE.parquet or FILE.json (CSV text cells that a spreadsheet "
        "would run as formulas get a leading ')",
    )
    p.add_argument(
        "--force", action="store_true", help="replace FILE if it exists (default: refuse)"
    )
    p.add_argument(
        "--max-rows",
        type=_positive_int,
        default=60,
        metavar="N",
        help="rows to print (default 60)",
    )
    p.set_defaults(func=cmd_query)
    p = sub.add_parser(
        "export",
        help="write the repository as a self-contained Parquet dataset",
        description="Write runs.parquet (one row per run, params flattened into params.* "
        "columns) and metrics/<run hash>.parquet (every metric point as queries see it, "
        "compacted or not) into DIR, readable by pandas, polars, DuckDB or Spark without "
        "aim_parquet. Also refreshes the analyst dataset .aim/dataset/ and "
        ".aim/index/runs.parquet.",
        epilog="examples:\n  aim-parquet export --output /tmp/dataset\n"
        '  aim-parquet export --output /tmp/lr --query "run.hparams.lr < 0.001" --objects\n'
        "  aim-parquet export --output s3://bucket/experiments/dataset",
        parents=[parent],
    )
    p.add_argument(
        "--output",
        default="aim-export",
        metavar="DIR|URI",
        help="target folder (default ./aim-export), or object storage: s3://bucket/prefix, "
        "gs://bucket/prefix or any fsspec URL (credentials from the environment: AWS_*, "
        "AWS_ENDPOINT_URL, GOOGLE_APPLICATION_CREDENTIALS, ...); a URI export is uploaded "
        "under URI/exports/<id>/ and published by writing URI/aim_parquet_export.json last",
    )
    p.add_argument("--query", metavar="EXPR", help="only the metrics this AimQL query selects")
    p.add_argument(
        "--objects", action="store_true", help="also export images, texts, ... of those runs"
    )
    p.add_argument("-v", "--verbose", action="store_true", help="also print one line per run")
    p.set_defaults(func=cmd_export)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def cmd_init(args: argparse.Namespace) -> int:
    from aim_parquet.storage import ensure_repo, is_repo

    root = repo_root(args)
    if is_repo(root):
        layout = ensure_repo(root)  # checks the marker
        print(f"repository already exists at {layout.aim_dir}")
        return 0
    layout = ensure_repo(root)
    print(f"initialized an empty aim_parquet repository in {layout.aim_dir}")
    return 0


def cmd_version(args: argparse.Namespace) -> int:
    from aim_parquet.format.meta import FORMAT_VERSION
    from aim_parquet.version import __version__

    print(f"aim-parquet {__version__} (on-disk format version {FORMAT_VERSION})")
    return 0


def _repo(args: argparse.Namespace) -> Any:
    from aim_parquet.sdk.repo import Repo

    layout = open_layout(args)
    return Repo(layout.root)


def cmd_query(args: argparse.Namespace) -> int:
    from aim_parquet.cli.output import printable_frame, write_frame

    output = Path(args.output) if args.output else None
    if output is not None and output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise CliError(f"--output must end in {', '.join(OUTPUT_SUFFIXES)}, got {output.name!r}")
    if output is not None and os.path.lexists(output) and not args.force:
        raise CliError(f"{output} already exists; pass --force to replace it")
    repo = _repo(args)
    df = repo.query_metrics(args.expr, report_mode=0).dataframe()
    if df is None:
        print("no metric matches the query" + ("; nothing written" if output else ""))
        return 0
    if output is None:
        import pandas as pd

        shown = printable_frame(df)
        with pd.option_context("display.max_rows", args.max_rows, "display.width", 200):
            print(shown.to_string(index=False, max_rows=args.max_rows))
        print(f"({len(df)} rows)")
        return 0
    write_frame(df, output, force=args.force)
    print(safe_text(f"wrote {len(df)} rows to {output}"))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from aim_parquet.cli.progress import Progress
    from aim_parquet.format.paths import EXPORT_METRICS_DIRNAME, EXPORT_POINTER_FILENAME
    from aim_parquet.storage import export_dataset, refresh_after_change
    from aim_parquet.storage.maintenance.remote import is_remote_target

    is_remote = is_remote_target(args.output)
    repo = _repo(args)
    sequences: dict[str, set[str] | None] | None = None
    if args.query is not None:
        sequences = {}
        for seq in repo.query_metrics(args.query, report_mode=0).iter():
            wanted = sequences.setdefault(seq.run.hash, set())
            assert wanted is not None
            wanted.add(seq.info.seq_id)
    output = args.output if is_remote else Path(args.output)
    bar = Progress("exporting")
    progress = bar.per_run("exported", verbose=args.verbose)
    report = export_dataset(
        repo.layout, output, sequences=sequences, include_objects=args.objects, progress=progress
    )
    bar.finish()
    problem = refresh_after_change(repo.layout)  # (the export itself is complete)
    if problem is not None:
        print(safe_text(f"note: {problem}"))
    print(
        safe_text(
            f"exported {report.runs} run(s), {report.sequences} sequence(s), {report.points} "
            f"metric points, {report.objects} objects to {report.output} "
            f"({report.files} files, {format_bytes(report.bytes)})"
        )
    )
    if is_remote:
        print(safe_text(f"published {report.output}/{EXPORT_POINTER_FILENAME}: it lists the files"))
    elif report.points:
        glob = f"{report.output}/{EXPORT_METRICS_DIRNAME}/*.parquet"
        print(safe_text(f"read it with: duckdb -c \"select * from read_parquet('{glob}')\""))
    return 0
