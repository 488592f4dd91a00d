"""`verify` (and `verify --repair`): check every file of a repository and name each damaged one.

Checked per run: leftover temp files, the compaction manifest and every compacted file it lists
(read in full), every segment the manifest does not cover (read in full: unreadable schema, torn
tail, newer format), the sidecar (missing, invalid JSON or fields, newer format, wrong hash) and
its catalogue against the data. A live writer's newest segment is never judged (it is being
written). With `repair=True`, each problem of a run that no live writer holds is fixed under the
run's write lock and compaction lock (see `storage.salvage`), keeping every readable point; the
run index is rebuilt afterwards. Files of a newer format are never touched.

`gc_repo` and `repo_stats` live in `storage.gc` and are re-exported here.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa

from aim_parquet.errors import AimParquetError, CorruptFileError, FormatVersionError
from aim_parquet.format.meta import RepoMarker
from aim_parquet.format.paths import TEMP_PREFIX, RepoLayout
from aim_parquet.storage.atomic import atomic_write_json
from aim_parquet.storage.gc import GcReport, StatsReport, gc_repo, repo_stats
from aim_parquet.storage.run_check import TEMP_GRACE_S, Fix, Problem, RunCheck, listdir_sorted
from aim_parquet.storage.run_folder import hold_run_locks
from aim_parquet.storage.run_index import INDEX_FILENAME, RunIndex, index_file_problem
from aim_parquet.storage.run_reader import list_run_hashes

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
    def damaged_runs(self) -> tuple[str, ...]:
        return tuple(sorted({p.run_hash for p in self.problems if p.run_hash is not None}))

    @property
    def is_healthy(self) -> bool:
        """True when nothing is (left) damaged."""
        return all(p.repaired for p in self.problems)


def _verify_run(layout: RepoLayout, run_hash: str, repair: bool) -> RunCheck:
    check = RunCheck(layout, run_hash)
    check.run()
    if not repair or not check.found:
        return check
    # damaged: take both locks (so no writer or compactor runs meanwhile), look again, fix
    with hold_run_locks(layout, run_hash) as busy:
        check = RunCheck(layout, run_hash, is_exclusive=busy is None)
        check.run()
        fixed: list[tuple[Problem, Fix | None]] = []
        for problem, fix in check.found:
            if fix is None:
                action, ok = "not repaired: written by a newer aim_parquet; upgrade it", False
            elif busy is not None:
                action, ok = f"not repaired: {busy}; retry when it is done", False
            else:
                try:
                    action, ok = fix(), True
                except (OSError, pa.ArrowException, ValueError, AimParquetError) as exc:
                    action, ok = f"repair failed: {exc}", False
            fixed.append((replace(problem, repaired=ok, action=action), fix))
        check.found = fixed
    return check


def _check_repo_files(layout: RepoLayout, repair: bool) -> tuple[list[Problem], bool]:
    """Marker and repository-level temp entries; returns problems and whether to go on."""
    problems = []
    try:
        data = json.loads(layout.marker.read_bytes())
        RepoMarker.from_json(data, f"repository marker {layout.marker}")
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
        for name in listdir_sorted(folder):
            path = folder / name
            if name.startswith(TEMP_PREFIX) and now - _mtime(path) > TEMP_GRACE_S:
                ok, action = False, ""
                if repair:
                    _remove_tree(path)
                    ok, action = True, "removed"
                problems.append(
                    Problem(None, str(path), "temp-file", "leftover temp entry", ok, action)
                )
    return problems, True


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except FileNotFoundError:
        return time.time()


def _remove_tree(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def verify_repo(layout: RepoLayout, *, repair: bool = False) -> VerifyReport:
    """Check every run of the repository (see module doc); with `repair`, fix what can be."""
    problems, go_on = _check_repo_files(layout, repair)
    if not go_on:
        return VerifyReport(0, 0, 0, tuple(problems), repair)
    hashes = list_run_hashes(layout)
    segments = files = 0
    notes: list[str] = []
    for run_hash in hashes:
        check = _verify_run(layout, run_hash, repair)
        problems.extend(p for p, _fix in check.found)
        notes.extend(check.notes)
        segments += check.segments
        files += check.files
    index_problem = index_file_problem(layout)
    if index_problem is not None:
        problems.append(
            Problem(
                None,
                str(layout.index_dir / INDEX_FILENAME),
                "damaged-index",
                f"{index_problem} (the index is a cache: rebuilding it loses nothing)",
                repair,
                "rebuilt" if repair else "",
            )
        )
    if repair and any(p.repaired for p in problems):
        index = RunIndex(layout)
        index.remove_file()
        index.refresh()
        notes.append("rebuilt the run index")
    return VerifyReport(len(hashes), segments, files, tuple(problems), repair, tuple(notes))
