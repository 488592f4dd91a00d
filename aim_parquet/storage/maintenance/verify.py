"""`verify` (and `verify --repair`): check every file of a repository and name each damaged one.

Checked per run: leftover temp files, the compaction manifest and every compacted file it lists
(read in full), every segment the manifest does not cover (read in full: unreadable schema, torn
tail, newer format), the sidecar (missing, invalid JSON or fields, newer format, wrong hash) and
its catalogue against the data (a sequence missing, or fewer points than it counts; and, for a run
no live writer holds whose files could all be read, any figure that disagrees with a summary of
its points: `stale-catalogue`). A live writer's newest segment is never judged (it is being
written). Repository-wide, every symbolic
link and special file under `.aim/` is named (`storage.maintenance.repo_scan`). With `repair=True`, each
problem of a run that no live writer holds is fixed under the run's write lock and compaction
lock (see `storage.maintenance.salvage`), keeping every readable point; the run index is rebuilt afterwards.
Files of a newer format and links are never touched. A file this process may not read is
reported as `permission-denied`: not damage (the report stays healthy), and nothing of that run
is repaired.

`gc_repo` and `repo_stats` live in `storage.maintenance.gc` and are re-exported here.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa

from aim_parquet.errors import AimParquetError, CorruptFileError, FormatVersionError
from aim_parquet.format.json_records import loads_json_object
from aim_parquet.format.meta import RepoMarker
from aim_parquet.format.paths import TEMP_PREFIX, RepoLayout
from aim_parquet.storage.base.atomic import atomic_write_json
from aim_parquet.storage.base.files import age_s, list_names
from aim_parquet.storage.base.lock import hold_run_locks, is_folder_in_use
from aim_parquet.storage.base.repo_changes import index_link
from aim_parquet.storage.base.safe_fs import (
    MAX_JSON_FILE_BYTES,
    first_link,
    read_regular,
    remove_tree,
)
from aim_parquet.storage.index.closed_journal import remove_journal
from aim_parquet.storage.index.points_cache import cache_path
from aim_parquet.storage.index.run_index import RunIndex, index_file_problem
from aim_parquet.storage.maintenance.gc import GcReport, StatsReport, gc_repo, repo_stats
from aim_parquet.storage.maintenance.problems import PERMISSION_DENIED, TEMP_GRACE_S, Fix, Problem
from aim_parquet.storage.maintenance.repo_scan import scan_repo
from aim_parquet.storage.maintenance.run_check import RunCheck
from aim_parquet.storage.online.run_reader import list_run_hashes

__all__ = [
    "GcReport",
    "Problem",
    "StatsReport",
    "VerifyReport",
    "gc_repo",
    "repo_stats",
    "verify_repo",
]


@dataclass(frozen=True)
class VerifyReport:
    runs: int
    segments: int
    compacted_files: int
    problems: tuple[Problem, ...]
    is_repair: bool
    notes: tuple[str, ...] = ()

    @property
    def damage(self) -> tuple[Problem, ...]:
        """The problems that are damage (all but `permission-denied`)."""
        return tuple(p for p in self.problems if p.kind != PERMISSION_DENIED)

    @property
    def unreadable(self) -> tuple[Problem, ...]:
        """Files and folders this process may not read (not checked, not damage)."""
        return tuple(p for p in self.problems if p.kind == PERMISSION_DENIED)

    @property
    def damaged_runs(self) -> tuple[str, ...]:
        return tuple(sorted({p.run_hash for p in self.damage if p.run_hash is not None}))

    @property
    def is_healthy(self) -> bool:
        """True when nothing is (left) damaged (files that could not be read are not damage)."""
        return all(p.repaired for p in self.damage)


def _not_fixable(problem: Problem) -> str:
    if problem.kind == PERMISSION_DENIED:
        return "not repaired: not damage (its owner can check it)"
    return "not repaired: written by a newer aim_parquet; upgrade it"


def _verify_run(layout: RepoLayout, run_hash: str, repair: bool, moved: bool) -> RunCheck:
    check = RunCheck(layout, run_hash, is_sidecar_moved=moved)
    check.run()
    if check.found:
        # a live run may change under an unlocked look (an append, a compaction committing):
        # only what a second look finds too is a problem (a repair then looks again, locked)
        again = RunCheck(layout, run_hash, is_sidecar_moved=moved)
        again.run()
        seen = {(p.path, p.kind) for p, _fix in again.found}
        check.found = [(p, fix) for p, fix in check.found if (p.path, p.kind) in seen]
    if not repair or all(fix is None for _p, fix in check.found):
        if repair:
            check.found = [(replace(p, action=_not_fixable(p)), fix) for p, fix in check.found]
        return check
    # damaged: take both locks (so no writer or compactor runs meanwhile), look again, fix
    try:
        with hold_run_locks(layout, run_hash) as busy:
            check = RunCheck(layout, run_hash, is_exclusive=busy is None)
            check.run()
            if busy is None and check.is_denied:
                busy = "part of this run cannot be read by you (permission denied): repair it as its owner"
            elif busy is None and check.is_partial:
                busy = (
                    "a link or special file (named above) holds part of its data: remove it first"
                )
            _apply_fixes(check, busy)
    except FileNotFoundError:
        check.found = []  # deleted meanwhile
    except OSError as exc:  # cannot take its locks: another user's run, a link as a lock file
        _apply_fixes(check, f"its locks cannot be taken ({exc})")
    return check


def _apply_fixes(check: RunCheck, busy: str | None) -> None:
    fixed: list[tuple[Problem, Fix | None]] = []
    for problem, fix in check.found:
        if fix is None:
            action, ok = _not_fixable(problem), False
        elif busy is not None:
            action, ok = f"not repaired: {busy}; retry when it is done", False
        else:
            try:
                action, ok = fix(), True
            except (OSError, pa.ArrowException, ValueError, AimParquetError) as exc:
                action, ok = f"repair failed: {exc}", False
        fixed.append((replace(problem, repaired=ok, action=action), fix))
    check.found = fixed


def _check_repo_files(layout: RepoLayout, repair: bool) -> tuple[list[Problem], bool]:
    """Marker and repository-level temp entries; returns problems and whether to go on."""
    problems = []
    what = f"repository marker {layout.marker}"
    try:
        raw = read_regular(layout.marker, "repository marker", MAX_JSON_FILE_BYTES)
        RepoMarker.from_json(loads_json_object(raw, what), what)
    except FileNotFoundError:
        pass
    except FormatVersionError as exc:
        return [Problem(None, str(layout.marker), "future-format", str(exc))], False
    except (ValueError, CorruptFileError, AttributeError, TypeError) as exc:
        ok = False
        action = ""
        if repair:
            atomic_write_json(layout.marker, RepoMarker(created_at=time.time()).to_json())
            ok, action = True, "rewritten"
        problems.append(Problem(None, str(layout.marker), "invalid-marker", str(exc), ok, action))
    now = time.time()
    for folder in (layout.aim_dir, layout.runs_dir, layout.index_dir):
        if first_link(layout.root, folder) is not None and folder != layout.aim_dir:
            continue  # a linked folder: named by the scan, nothing is deleted through it
        for name in list_names(folder):
            path = folder / name
            if (
                name.startswith(TEMP_PREFIX)
                and age_s(path, now) > TEMP_GRACE_S
                and not is_folder_in_use(path)  # a copy in progress
            ):
                ok, action = False, ""
                if repair:
                    _remove_tree(path)
                    ok, action = True, "removed"
                problems.append(
                    Problem(None, str(path), "temp-file", "leftover temp entry", ok, action)
                )
    return problems, True


def _remove_tree(path: Path) -> None:
    with contextlib.suppress(OSError):
        remove_tree(path)


def verify_repo(
    layout: RepoLayout,
    *,
    repair: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
) -> VerifyReport:
    """Check every run of the repository (see module doc); with `repair`, fix what can be.
    `progress(done, total, run_hash)` is called after each run."""
    problems, go_on = _check_repo_files(layout, repair)
    if not go_on:
        return VerifyReport(0, 0, 0, tuple(problems), repair)
    scan = scan_repo(layout, repair)  # first: its repair moves special files aside
    problems.extend(scan)
    moved = {
        p.run_hash
        for p in scan
        if p.repaired and p.run_hash and Path(p.path) == layout.sidecar(p.run_hash)
    }
    hashes = list_run_hashes(layout)
    segments = files = 0
    notes: list[str] = []
    for done, run_hash in enumerate(hashes, 1):
        check = _verify_run(layout, run_hash, repair, run_hash in moved)
        if progress is not None:
            progress(done, len(hashes), run_hash)
        seen = {(p.path, p.kind) for p in problems}
        problems.extend(p for p, _fix in check.found if (p.path, p.kind) not in seen)
        notes.extend(check.notes)
        segments += check.segments
        files += check.files
    index_problem = index_file_problem(layout)
    if index_problem is not None:
        problems.append(
            Problem(
                None,
                str(layout.index_file),
                "damaged-index",
                f"{index_problem} (the index is a cache: rebuilding it loses nothing)",
                repair,
                "rebuilt" if repair else "",
            )
        )
    if repair and any(p.repaired for p in problems):
        index = RunIndex(layout)
        index.remove_file()
        _remove_derived(layout)
        index.refresh()
        notes.append("rebuilt the run index")
    return VerifyReport(len(hashes), segments, files, tuple(problems), repair, tuple(notes))


def _remove_derived(layout: RepoLayout) -> None:
    """Delete the writers' journal and the points cache before a repair rebuilds the run index:
    the rebuild reads the sidecars alone (FORMAT.md), and a repair may have changed a run's points
    without replacing its sidecar (the cache's key)."""
    if index_link(layout) is not None:
        return  # (a linked index folder is never written through)
    remove_journal(layout)
    with contextlib.suppress(OSError):
        os.unlink(cache_path(layout))
