"""Shared pieces of the command line: the `--repo` option, hash prefixes and tables (the
progress bar of long commands is `cli.progress`).

The CLI is the only layer that prints. Errors reach the user as one line on stderr (see `main`).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import sys
import textwrap
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from aim_parquet.errors import AimParquetError
from aim_parquet.format.paths import RepoLayout, is_valid_run_hash, resolve_repo_root
from aim_parquet.storage import list_run_hashes, open_repo


class CliError(AimParquetError):
    """An error the CLI reports as one line and exit status `code`."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors and examples kept verbatim in `--help`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        if kwargs.get("description"):
            kwargs["description"] = textwrap.fill(kwargs["description"], width=88)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> Any:  # argparse's signature is NoReturn
        raise CliError(f"{message} (see `{self.prog} --help`)", code=2)


def repo_option(*, is_top_level: bool = False) -> argparse.ArgumentParser:
    """The `--repo` option every subcommand takes (also accepted before the subcommand)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--repo",
        metavar="DIR",
        default=None if is_top_level else argparse.SUPPRESS,
        help="repository folder (holding .aim); default: the nearest .aim upward, else the "
        "current directory",
    )
    return parent


def repo_root(args: argparse.Namespace) -> Path:
    return resolve_repo_root(args.repo)


def open_layout(args: argparse.Namespace) -> RepoLayout:
    """The layout of the existing repository named by `--repo` (RepoNotFoundError if none)."""
    return open_repo(args.repo)


def resolve_hashes(layout: RepoLayout, patterns: Sequence[str]) -> list[str]:
    """Full run hashes for unique prefixes (or fnmatch globs such as 'ab*' and '*', as Aim)."""
    known = list_run_hashes(layout)
    out: list[str] = []
    for pattern in patterns:
        text = pattern.strip().lower()
        if any(c in text for c in "*?["):
            matches = fnmatch.filter(known, text)
            if not matches:
                raise CliError(f"no run matches {pattern!r}")
        elif is_valid_run_hash(text):
            if text not in known:
                raise CliError(f"no run {text} in {layout.root}")
            matches = [text]
        else:
            if not text or any(c not in "0123456789abcdef" for c in text):
                raise CliError(f"{pattern!r} is not a run hash or hash prefix (hex digits)")
            matches = [h for h in known if h.startswith(text)]
            if not matches:
                raise CliError(f"no run hash starts with {pattern!r} in {layout.root}")
            if len(matches) > 1:
                shown = ", ".join(matches[:5]) + (" ..." if len(matches) > 5 else "")
                raise CliError(
                    f"run hash prefix {pattern!r} is ambiguous ({len(matches)} runs: {shown}); "
                    "type more characters"
                )
        out.extend(h for h in matches if h not in out)
    return out


def format_time(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


# Characters that would let a name rewrite the terminal or fake output lines: C0 and C1 controls
# (ANSI/OSC escape sequences start with ESC or CSI), line and paragraph separators, bidirectional
# overrides ("Trojan source"), and lone surrogates (not text; printing them fails).
_UNSAFE_RE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
# the same in JSON text, less the C0 controls json.dumps already escapes (and its own newlines)
_UNSAFE_JSON_RE = re.compile(
    "[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def safe_text(text: str) -> str:
    """`text` made safe to print: control characters, line separators, bidi overrides and lone
    surrogates become visible escapes (`\\n`, `\\x1b`, `\\u202e`, `\\udc80`)."""
    if text.isprintable():
        return text
    return _UNSAFE_RE.sub(_escape, text)


def one_line(text: str) -> str:
    """A multi-line message (a query error with a caret line) as one line."""
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def print_table(rows: list[dict[str, Any]], columns: Sequence[str], out: TextIO) -> None:
    """A plain aligned text table; every cell goes through `safe_text` (a run name can neither
    fake a row nor send terminal escape sequences)."""
    cells = [[safe_text(str(r.get(c, ""))) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    out.write("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    out.write("\n")
    for row in cells:
        out.write("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() + "\n")


def print_json(data: Any, out: TextIO) -> None:
    """JSON on `out`; characters `safe_text` escapes appear as `\\uXXXX` escapes (they can only
    occur inside strings, where such an escape means the same character)."""
    text = json.dumps(data, indent=1, ensure_ascii=False, default=str)
    out.write(_UNSAFE_JSON_RE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n")


def confirm(question: str, *, assume_yes: bool) -> bool:
    """Ask on the terminal; without one, `-y` is required."""
    if assume_yes:
        return True
    if not sys.stdin.isatty():
        raise CliError("refusing to delete without confirmation: pass -y (no terminal to ask on)")
    answer = input(f"{question} [y/N] ")
    return answer.strip().lower() in ("y", "yes")
