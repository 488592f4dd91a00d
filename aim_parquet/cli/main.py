"""The `aim-parquet` command (also `python -m aim_parquet`): argument parsing and error handling.

Every subcommand takes `--repo DIR` (default: the nearest `.aim` upward, else the current
directory) and has an example in its `--help`. Errors are one line on stderr and a non-zero exit
status, never a traceback (set AIM_PARQUET_DEBUG=1 to get one).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from typing import TextIO

from aim_parquet.cli import (
    convert_cmds,
    data_cmds,
    maintenance_cmds,
    report_cmd,
    runs_cmds,
    ui_cmds,
)
from aim_parquet.cli.common import CliError, Parser, one_line, repo_option, safe_text

DEBUG_ENV = "AIM_PARQUET_DEBUG"
EPILOG = """examples:
  aim-parquet init
  aim-parquet runs ls
  aim-parquet compact
  aim-parquet query "metric.name == 'loss'" --output loss.csv
  aim-parquet verify --repair
  aim-parquet convert tensorboard ./runs
  aim-parquet up

run `aim-parquet COMMAND --help` for the options and an example of each command."""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="aim-parquet",
        description="Manage an aim_parquet repository: runs, compaction, queries, exports, "
        "integrity checks.",
        epilog=EPILOG,
        parents=[repo_option(is_top_level=True)],
    )
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=Parser
    )
    data_cmds.add_parsers(sub)
    runs_cmds.add_parser(sub)
    maintenance_cmds.add_parsers(sub)
    convert_cmds.add_parser(sub)
    ui_cmds.add_parser(sub)
    report_cmd.add_parser(sub)
    return parser


class _OneLineWarnings:
    """Show warnings (e.g. a damaged run skipped by a query) as one line on stderr."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __call__(
        self,
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        self.stream.write(f"aim-parquet: warning: {safe_text(one_line(str(message)))}\n")


class _SafeFormatter(logging.Formatter):
    """Log records as one line with names and paths made safe to print (`safe_text`)."""

    def format(self, record: logging.LogRecord) -> str:
        return safe_text(one_line(super().format(record)))


def _error(message: str) -> None:
    """One line on stderr, even for a multi-line message (a query error with a caret line)."""
    sys.stderr.write(f"aim-parquet: error: {safe_text(one_line(message))}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line `argv` (default: `sys.argv[1:]`) and return the exit status."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_SafeFormatter("aim-parquet: %(levelname)s: %(message)s"))
    handler.setLevel(logging.WARNING)
    root = logging.getLogger("aim_parquet")
    root.addHandler(handler)
    debug = os.environ.get(DEBUG_ENV, "") not in ("", "0")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = _OneLineWarnings(sys.stderr)
            return _run(argv)
    except CliError as exc:
        _error(str(exc))
        return exc.code
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except SystemExit as exc:  # --help and --version exit through argparse
        return exc.code if isinstance(exc.code, int) else 0
    except Exception as exc:
        if debug:
            raise
        text = str(exc) or type(exc).__name__
        _error(text if _is_ours(exc) else f"{type(exc).__name__}: {text}")
        return 1
    finally:
        root.removeHandler(handler)


def _is_ours(exc: BaseException) -> bool:
    from aim_parquet.errors import AimParquetError

    return isinstance(exc, (AimParquetError, OSError))


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
