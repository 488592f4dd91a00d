"""`aim-parquet runs ...`: list, delete, copy, move, archive, unarchive and close runs."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from aim_parquet.cli.common import (
    CliError,
    confirm,
    format_time,
    one_line,
    open_layout,
    print_json,
    print_table,
    repo_option,
    resolve_hashes,
    safe_text,
)
from aim_parquet.errors import AimParquetError
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage import RunIndex, load_run_meta, refresh_after_change
from aim_parquet.storage.base.lock import run_lock_holder

EXAMPLES = {
    "ls": "example:\n  aim-parquet runs ls --repo ~/experiments\n  aim-parquet runs ls --json",
    "rm": "examples:\n  aim-parquet runs rm 3f2a9c -y\n"
    "  aim-parquet runs rm --query \"run.experiment == 'scratch'\" -y",
    "cp": "example:\n  aim-parquet runs cp 3f2a9c 77d0 --destination /mnt/shared/repo",
    "mv": "example:\n  aim-parquet runs mv 3f2a9c --destination /mnt/archive",
    "archive": "example:\n  aim-parquet runs archive 3f2a9c 77d0",
    "unarchive": "example:\n  aim-parquet runs unarchive 3f2a9c",
    "close": "example (a job was killed and its run never finished):\n"
    "  aim-parquet runs close 3f2a9c",
}


def add_parser(sub: Any) -> None:
    parent = repo_option()
    runs = sub.add_parser(
        "runs",
        help="list, delete, copy, move, archive and close runs",
        description="Manage the runs of a repository. Hashes accept unique prefixes and globs.",
        epilog="examples:\n  aim-parquet runs ls\n  aim-parquet runs rm 3f2a9c -y",
        parents=[parent],
    )
    cmds = runs.add_subparsers(dest="runs_command", metavar="COMMAND", required=True)
    p = cmds.add_parser("ls", help="list runs", epilog=EXAMPLES["ls"], parents=[parent])
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=cmd_ls)
    p = cmds.add_parser("rm", help="delete runs", epilog=EXAMPLES["rm"], parents=[parent])
    p.add_argument("hashes", nargs="*", metavar="HASH", help="run hashes or unique prefixes")
    p.add_argument("--query", metavar="EXPR", help="delete the runs this AimQL run query matches")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=cmd_rm)
    for name, verb in (("cp", "copy"), ("mv", "move")):
        p = cmds.add_parser(
            name, help=f"{verb} runs to another repository", epilog=EXAMPLES[name], parents=[parent]
        )
        p.add_argument("hashes", nargs="+", metavar="HASH", help="run hashes or unique prefixes")
        p.add_argument(
            "--destination",
            required=True,
            metavar="DIR",
            help="target repository (not inside this one's .aim/)",
        )
        p.set_defaults(func=cmd_transfer, verb=verb)
    for name in ("archive", "unarchive"):
        p = cmds.add_parser(name, help=f"{name} runs", epilog=EXAMPLES[name], parents=[parent])
        p.add_argument("hashes", nargs="+", metavar="HASH", help="run hashes or unique prefixes")
        p.set_defaults(func=cmd_archive, archived=name == "archive")
    p = cmds.add_parser(
        "close",
        help="mark crashed runs finished",
        description="Set end_time of runs whose process died without closing them (from their "
        "newest point), after rebuilding their sequence catalogue from the points the process "
        "wrote after its last sidecar write. Refused for a run a live process still writes.",
        epilog=EXAMPLES["close"],
        parents=[parent],
    )
    p.add_argument("hashes", nargs="+", metavar="HASH", help="run hashes or unique prefixes")
    p.set_defaults(func=cmd_close)


def _run_rows(layout: RepoLayout) -> list[dict[str, Any]]:
    metas, damaged = RunIndex(layout).metas()
    rows = []
    for meta in sorted(metas, key=lambda m: (m.creation_time, m.hash)):
        active = meta.end_time is None and run_lock_holder(layout, meta.hash) is not None
        rows.append(
            {
                "hash": meta.hash,
                "experiment": meta.experiment,
                "name": meta.display_name,
                "created": format_time(meta.creation_time),
                "active": active,
                "points": sum(s.count for s in meta.sequences),
                "archived": meta.archived,
                "end_time": meta.end_time,
            }
        )
    for bad in damaged:
        sys.stderr.write(f"aim-parquet: warning: {safe_text(one_line(bad.describe()))}\n")
    return rows


def cmd_ls(args: argparse.Namespace) -> int:
    layout = open_layout(args)
    rows = _run_rows(layout)
    if args.json:
        print_json(rows, sys.stdout)
        return 0
    shown = [{**r, "active": "yes" if r["active"] else "no"} for r in rows]
    print_table(shown, ["hash", "experiment", "name", "created", "active", "points"], sys.stdout)
    return 0


def _repo(args: argparse.Namespace) -> Any:
    from aim_parquet.sdk.repo import Repo

    open_layout(args)
    return Repo(args.repo if args.repo is not None else Repo.default_repo_path())


def cmd_rm(args: argparse.Namespace) -> int:
    from aim_parquet.storage import delete_run_folder

    repo = _repo(args)
    hashes = resolve_hashes(repo.layout, args.hashes) if args.hashes else []
    if args.query is not None:
        for run in repo.query_runs(args.query, report_mode=0).iter_run_objects():
            if run.hash not in hashes:
                hashes.append(run.hash)
    if not hashes:
        if args.query is None:
            raise CliError("give run hashes or --query EXPR (see `aim-parquet runs rm --help`)")
        print("no run matches the query")
        return 0
    if not confirm(f"Delete {len(hashes)} run(s) for good?", assume_yes=args.yes):
        print("nothing deleted")
        return 1
    failed = 0
    for run_hash in hashes:
        try:
            delete_run_folder(repo.layout, run_hash)
        except (AimParquetError, OSError) as exc:
            failed += _report_failure(run_hash, "delete", exc)
            continue
        print(f"deleted {run_hash}")
    if failed < len(hashes):
        refresh_after_change(repo.layout)
    return 1 if failed else 0


def cmd_transfer(args: argparse.Namespace) -> int:
    from aim_parquet.format.paths import resolve_repo_root
    from aim_parquet.storage import copy_run_folder, ensure_repo, move_run_folder
    from aim_parquet.storage.maintenance.run_ops import check_destination

    layout = open_layout(args)
    hashes = resolve_hashes(layout, args.hashes)
    try:  # before the destination repository is created
        check_destination(layout, resolve_repo_root(args.destination))
    except AimParquetError as exc:
        raise CliError(str(exc)) from None
    dest = ensure_repo(args.destination)
    transfer = copy_run_folder if args.verb == "copy" else move_run_folder
    past = "copied" if args.verb == "copy" else "moved"
    failed = 0
    for run_hash in hashes:
        try:
            transfer(layout, dest, run_hash)
        except (AimParquetError, OSError) as exc:
            failed += _report_failure(run_hash, args.verb, exc)
            continue
        print(f"{past} {run_hash} to {safe_text(str(dest.root))}")
    if failed < len(hashes):
        refresh_after_change(dest)
        if args.verb != "copy":
            refresh_after_change(layout)
    return 1 if failed else 0


def _report_failure(run_hash: str, verb: str, exc: BaseException) -> int:
    """One line on stderr saying why `verb` failed for this run; returns 1."""
    text = str(exc) or type(exc).__name__
    if not text.lower().startswith(f"cannot {verb} run"):
        text = f"cannot {verb} run {run_hash}: {text}"
    sys.stderr.write(f"aim-parquet: error: {safe_text(one_line(text))}\n")
    return 1


def cmd_archive(args: argparse.Namespace) -> int:
    from aim_parquet.storage import set_archived

    layout = open_layout(args)
    for run_hash in resolve_hashes(layout, args.hashes):
        set_archived(layout, run_hash, args.archived)
        print(f"{'archived' if args.archived else 'unarchived'} {run_hash}")
    refresh_after_change(layout)
    return 0


def cmd_close(args: argparse.Namespace) -> int:
    from aim_parquet.storage import finish_run

    layout = open_layout(args)
    for run_hash in resolve_hashes(layout, args.hashes):
        before = load_run_meta(layout, run_hash)
        meta = finish_run(layout, run_hash)
        if before.end_time is not None:
            print(f"{run_hash} was already finished (end time {format_time(meta.end_time)})")
        else:
            print(f"closed {run_hash} (end time {format_time(meta.end_time)})")
    refresh_after_change(layout)
    return 0
