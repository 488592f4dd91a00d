"""`aim-parquet report`: write one self-contained HTML file with the runs and charts of a query."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from aim_parquet.cli.common import CliError, open_layout, repo_option

DESCRIPTION = (
    "Write one self-contained HTML file with the runs table and the metric charts of an AimQL "
    "metric query (downsampled to the chart width, min and max kept per pixel column), that "
    "anyone can open from a mail attachment: the data, the chart library and the code are "
    "inside the file, which makes no network request. --images adds the last step's images of "
    "the runs as thumbnails. Needs the web UI's extra: pip install 'aim_parquet[ui]'."
)
EPILOG = """examples:
  aim-parquet report --output report.html
  aim-parquet report --query "metric.name in ['loss', 'acc']" --output loss.html
  aim-parquet report --query "metric.name == 'loss'" --runs "run.hparams.lr < 0.01" \\
      --images --title "lr sweep, week 12" --output sweep.html

--runs keeps only the runs matching that run query, in the table and in the charts (the table
then lists them all, with or without metrics); by default the table has the runs the metric query
matched."""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="write a self-contained HTML report (runs table and charts of a query)",
        description=DESCRIPTION,
        epilog=EPILOG,
        parents=[repo_option()],
    )
    p.add_argument(
        "--query", default="", help="AimQL metric query of the charts (default: every metric)"
    )
    p.add_argument(
        "--runs",
        default=None,
        metavar="QUERY",
        help="AimQL run query: only these runs (table and charts)",
    )
    p.add_argument(
        "--output",
        default="report.html",
        help="the HTML file to write (default report.html); an existing file is replaced atomically",
    )
    p.add_argument("--images", action="store_true", help="add the last step's images as thumbnails")
    p.add_argument("--title", default=None, help="the report's title")
    p.add_argument("--width", type=int, default=900, help="chart width in pixels (default 900)")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    layout = open_layout(args)
    if not 200 <= args.width <= 8192:
        raise CliError(f"--width must be 200..8192 pixels, not {args.width}", code=2)
    try:
        from aim_parquet.ui.report import write_report
    except ImportError as exc:
        raise CliError(
            f"the report needs the web UI's optional dependencies ({exc.name} is missing): "
            "pip install 'aim_parquet[ui]'"
        ) from None
    try:
        stats = write_report(
            layout.root,
            args.query,
            args.output,
            runs_query=args.runs,
            images=args.images,
            width=args.width,
            title=args.title,
        )
    except OSError as exc:
        raise CliError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    images = f", {stats.images} images" if args.images else ""
    sys.stdout.write(
        f"wrote {stats.path} ({stats.bytes / 1e6:.2f} MB: {stats.runs} runs, "
        f"{stats.charts} charts, {stats.series} series{images})\n"
    )
    return 0
