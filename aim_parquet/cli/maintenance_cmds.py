"""`aim-parquet compact | verify | gc | stats`: keeping a repository small and healthy."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from aim_parquet.cli.common import (
    format_bytes,
    open_layout,
    print_json,
    print_table,
    repo_option,
    resolve_hashes,
    safe_text,
)
from aim_parquet.cli.progress import Progress


def add_parsers(sub: Any) -> None:
    parent = repo_option()
    p = sub.add_parser(
        "compact",
        help="merge finished runs' segments into Parquet",
        description="Merge the sealed segments of finished runs (and, with --include-active, of "
        "runs still being written, leaving their open segment alone) into Parquet files, then "
        "refresh the analyst dataset .aim/dataset/ (creating it) and .aim/index/runs.parquet. "
        "A run is rewritten only when its Parquet files and manifest leave it no more files and "
        "folders AND fewer bytes than the segments (their folders, older Parquet files) they "
        "replace: a small run (say one "
        "metric of a few points in one segment) is kept as written, and compaction never grows "
        "a run; its points are in the analyst dataset all the same. A kept run is passed by "
        "until it is written again. Safe to interrupt and to rerun; queries see the same "
        "data before, during and after.",
        epilog="examples:\n  aim-parquet compact\n  aim-parquet compact --run 3f2a9c 77d0\n"
        "  aim-parquet compact --include-active",
        parents=[parent],
    )
    p.add_argument("--run", nargs="+", metavar="HASH", help="only these runs (hash prefixes)")
    p.add_argument(
        "--include-active", action="store_true", help="also compact sealed segments of live runs"
    )
    p.add_argument(
        "--rewrite-all",
        action="store_true",
        help="rewrite every run's sealed segments into Parquet, even where that makes it bigger",
    )
    p.add_argument(
        "-v", "--verbose", action="store_true", help="also print one line per run (or file)"
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_compact)
    p = sub.add_parser(
        "verify",
        help="check every file; --repair fixes damage",
        description="Read every sidecar, segment and compacted file and name each damaged run "
        "and file, and each catalogue that disagrees with its data (stale-catalogue: a writer "
        "killed after writing points its sidecar does not describe), and every symbolic link "
        "and special file under .aim/ (never followed or opened); exits with status 1 when "
        "damage is found (and, with --repair, left). A file you may not read is reported as "
        "permission-denied, not damage. --repair drops torn tails, quarantines unreadable files "
        "and FIFOs into .aim/quarantine/, rebuilds broken sidecars, catalogues and manifests and "
        "the run index, keeping every readable point; it never touches a link.",
        epilog="examples:\n  aim-parquet verify\n  aim-parquet verify --repair",
        parents=[parent],
    )
    p.add_argument("--repair", action="store_true", help="fix what can be fixed")
    p.add_argument(
        "-v", "--verbose", action="store_true", help="also print one line per run (or file)"
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_verify)
    p = sub.add_parser(
        "gc",
        help="remove superseded segments, leftovers and temp files",
        description="Remove segments and Parquet files compaction superseded, what interrupted "
        "deletes left in .aim/trash/, and temp files, once older than the grace period (temp "
        "files: and at least a minute, as a younger one may be a write in progress). Runs "
        "being compacted are skipped; gc never takes a run's write lock, so training can "
        "resume any run meanwhile. Nothing is deleted through a symbolic link.",
        epilog="examples:\n  aim-parquet gc\n  aim-parquet gc --grace-s 0   # nothing reads the repo now",
        parents=[parent],
    )
    p.add_argument(
        "--grace-s",
        type=_grace_seconds,
        default=600.0,
        metavar="SECONDS",
        help="keep files younger than this (default 600: readers may still use them)",
    )
    p.add_argument(
        "-v", "--verbose", action="store_true", help="also print one line per run (or file)"
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_gc)
    p = sub.add_parser(
        "stats",
        help="runs, sequences, points, files and bytes",
        epilog="example:\n  aim-parquet stats --repo ~/experiments",
        parents=[parent],
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_stats)


def _grace_seconds(text: str) -> float:
    from aim_parquet.storage import check_grace

    try:
        return check_grace(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of seconds >= 0 (e.g. 600 or 0), got {text!r}"
        ) from None


def cmd_compact(args: argparse.Namespace) -> int:
    from aim_parquet.storage import compact_repo

    layout = open_layout(args)
    hashes = resolve_hashes(layout, args.run) if args.run else None
    progress = Progress("compacting")
    report = compact_repo(
        layout,
        hashes,
        include_active=args.include_active,
        progress=progress,
        rewrite_all=args.rewrite_all,
    )
    progress.finish()
    if args.json:
        print_json(
            {
                "runs": [r.__dict__ for r in report.runs],
                "points": report.points,
                "bytes_before": report.bytes_before,
                "bytes_after": report.bytes_after,
                "files_before": report.files_before,
                "files_after": report.files_after,
                "seconds": report.seconds,
                "notes": list(report.notes),
            },
            sys.stdout,
        )
        return 1 if report.has_failures else 0
    rows = [
        {
            "hash": r.run_hash,
            "status": r.status,
            "points": r.points,
            "files": f"{r.files_before} -> {r.files_after}",
            "size": f"{format_bytes(r.bytes_before)} -> {format_bytes(r.bytes_after)}",
            "note": r.note,
        }
        for r in report.runs
        # a note: something to know (that a run was kept as written is in the summary)
        if args.verbose or r.status == "failed" or (r.note and r.status != "kept")
    ]
    if rows:
        print_table(rows, ["hash", "status", "points", "files", "size", "note"], sys.stdout)
    print(report.summary())
    for note in report.notes:
        print(safe_text(f"note: {note}"))
    return 1 if report.has_failures else 0


def cmd_verify(args: argparse.Namespace) -> int:
    from aim_parquet.storage import open_repo, verify_repo

    layout = open_repo(args.repo, check_marker=False)  # verify reports (and repairs) the marker
    bar = Progress("verifying")
    progress = bar.per_run("checked", verbose=args.verbose)
    report = verify_repo(layout, repair=args.repair, progress=progress)
    bar.finish()
    if args.json:
        print_json(
            {
                "healthy": report.is_healthy,
                "runs": report.runs,
                "segments": report.segments,
                "compacted_files": report.compacted_files,
                "damaged_runs": list(report.damaged_runs),
                "problems": [p.__dict__ for p in report.problems],
                "unreadable": [p.path for p in report.unreadable],
                "notes": list(report.notes),
            },
            sys.stdout,
        )
        return 0 if report.is_healthy else 1
    for p in report.problems:
        where = f"run {p.run_hash}" if p.run_hash else "repository"
        print(safe_text(f"{p.kind}: {where}: {p.path}: {p.detail}"))
        if p.action:
            print(safe_text(f"  -> {p.action}"))
    for note in report.notes:
        print(safe_text(f"note: {note}"))
    checked = (
        f"checked {report.runs} run(s), {report.segments} segment(s), "
        f"{report.compacted_files} compacted file(s)"
    )
    if report.unreadable:
        checked += (
            f" ({len(report.unreadable)} file(s) or folder(s) not readable by you were not "
            "checked: permission denied, not damage)"
        )
    damage = report.damage
    if not damage:
        print(f"{checked}: no damage found")
        return 0
    left = [p for p in damage if not p.repaired]
    damaged = ", ".join(report.damaged_runs) or "-"
    if left:
        hint = "" if args.repair else "; run `aim-parquet verify --repair` to fix it"
        print(f"{checked}: {len(left)} problem(s) in run(s) {damaged}{hint}")
        return 1
    print(f"{checked}: repaired {len(damage)} problem(s) in run(s) {damaged}")
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    from aim_parquet.storage import gc_repo

    layout = open_layout(args)
    progress = Progress("collecting")
    report = gc_repo(layout, grace_s=args.grace_s, progress=progress)
    progress.finish()
    if args.json:
        print_json(
            {
                "bytes_freed": report.bytes_freed,
                "removed": [r.__dict__ for r in report.removed],
                "notes": list(report.notes),
            },
            sys.stdout,
        )
        return 0
    if args.verbose:
        for r in report.removed:
            print(safe_text(f"removed {r.kind}: {r.path}"))
    for kind, (n, size) in sorted(report.by_kind().items()):
        print(f"{kind}: removed {n} ({format_bytes(size)})")
    for note in report.notes:
        print(safe_text(f"note: {note}"))
    print(f"freed {format_bytes(report.bytes_freed)} ({len(report.removed)} entries)")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from aim_parquet.storage import repo_stats

    layout = open_layout(args)
    s = repo_stats(layout)
    if args.json:
        print_json(
            {**s.__dict__, "total_bytes": s.total_bytes, "total_files": s.total_files}, sys.stdout
        )
        return 0
    print(
        f"runs: {s.runs} ({s.active_runs} active, {s.archived_runs} archived, "
        f"{s.compacted_runs} compacted, {s.damaged_runs} damaged"
        + (
            f", {s.unreadable_runs} not readable by you: permission denied"
            if s.unreadable_runs
            else ""
        )
        + ")"
    )
    print(f"sequences: {s.metric_sequences} metric, {s.object_sequences} object")
    print(f"points: {s.metric_points} metric, {s.object_points} object")
    rows = [
        {"kind": k, "files": s.files[k], "bytes": format_bytes(s.bytes.get(k, 0))}
        for k in sorted(s.files)
    ]
    rows.append({"kind": "total", "files": s.total_files, "bytes": format_bytes(s.total_bytes)})
    print_table(rows, ["kind", "files", "bytes"], sys.stdout)
    return 0
