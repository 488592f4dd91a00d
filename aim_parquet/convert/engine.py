"""Converting source runs into a repository, once: the `__source` param, `--dry-run`,
`--update` and the report.

Every converted run carries `run["__source"] = {"tracker", "id", "fingerprint", "complete",
"converted_at"}`. `id` names the source run (an MLflow run id, an Aim hash, a TensorBoard run
folder); `fingerprint` changes when the source run gains data. A source run already converted with
the same fingerprint is left alone ("up to date"); one converted before it changed is reported
and left alone unless `update=True`, which converts it again and then deletes the earlier
conversion. `complete` turns true only after every point is on disk, so a conversion that was
interrupted (or could not write) is redone by the next one, which deletes it; of a source run
that keeps failing only the latest attempt is kept.

One conversion per tracker writes into a repository at a time: `convert_runs` holds
`.aim/convert-<tracker>.lock` (an flock with the holder's identity, as a run's write lock), so two
conversions of the same source started together cannot both convert it.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from aim_parquet.convert.sink import CountingSink, RunCounts, RunSink
from aim_parquet.errors import RunLockedError
from aim_parquet.format.paths import RepoLayout
from aim_parquet.format.values import valid_text
from aim_parquet.sdk.repo import Repo
from aim_parquet.sdk.run_import import ImportRun
from aim_parquet.storage.base.lock import RunLock, read_holder
from aim_parquet.storage.base.repo_files import ensure_repo

log = logging.getLogger(__name__)

SOURCE_PARAM = "__source"

# statuses of one source run in the report
CONVERTED = "converted"
REPLACED = "replaced"
UP_TO_DATE = "up to date"
CHANGED = "changed"
WOULD_CONVERT = "would convert"
WOULD_REPLACE = "would replace"
PARTIAL = "partial"
FAILED = "failed"

Progress = Callable[[int, int, str], None]


class SourceRun(ABC):
    """One run of a source tracker, readable into a sink."""

    tracker: ClassVar[str]

    def __init__(self, source_id: str, label: str, experiment: str) -> None:
        self.source_id = source_id
        self.label = label
        self.experiment = experiment

    @abstractmethod
    def fingerprint(self) -> str:
        """A short string that changes when the source run gains or loses data."""

    @abstractmethod
    def read(self, sink: CountingSink) -> None:
        """Everything of the run: props, params, metric points, objects; what cannot be
        converted goes to `sink.skip(reason)`."""


@dataclass
class FoundRuns:
    """What a converter found in a source: its runs, and what it could not look at (reported
    and counted as skipped)."""

    runs: list[SourceRun]
    problems: list[str] = field(default_factory=list)


@dataclass
class RunResult:
    label: str
    status: str
    counts: RunCounts = field(default_factory=RunCounts)
    run_hash: str | None = None
    message: str | None = None  # why it failed, was left alone, ...

    @property
    def has_loss(self) -> bool:
        """Something of this source run is not in the repository."""
        return self.status in (CHANGED, PARTIAL, FAILED) or self.counts.skipped_total > 0


@dataclass
class ConversionReport:
    tracker: str
    source: str
    repo_root: Path
    is_dry_run: bool
    runs: list[RunResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # source-level, e.g. ignored folders

    @property
    def totals(self) -> RunCounts:
        total = RunCounts()
        for result in self.runs:
            total.add(result.counts)
        return total

    @property
    def has_loss(self) -> bool:
        return bool(self.problems) or any(r.has_loss for r in self.runs)


@dataclass(frozen=True)
class _Prior:
    run_hash: str
    fingerprint: str
    is_complete: bool


def _prior_conversions(repo_root: Path, tracker: str) -> dict[str, list[_Prior]]:
    """Runs of the repository converted from `tracker` before, by source id."""
    if not Repo.exists(repo_root):
        return {}
    found: dict[str, list[_Prior]] = {}
    for run in Repo(repo_root).iter_runs():
        source = run.get(SOURCE_PARAM)
        if not isinstance(source, dict) or source.get("tracker") != tracker:
            continue
        found.setdefault(str(source.get("id")), []).append(
            _Prior(run.hash, str(source.get("fingerprint")), source.get("complete") is True)
        )
    return found


def convert_runs(
    tracker: str,
    source: str,
    runs: Sequence[SourceRun],
    repo_root: Path,
    *,
    is_dry_run: bool = False,
    update: bool = False,
    progress: Progress | None = None,
) -> ConversionReport:
    """Convert each source run not converted yet; see the module docstring."""
    report = ConversionReport(tracker, source, repo_root, is_dry_run)
    lock = None if is_dry_run else _take_lock(repo_root, tracker)
    try:
        prior = _prior_conversions(repo_root, tracker)
        for index, source_run in enumerate(runs):
            if progress is not None:
                progress(index, len(runs), source_run.label)
            report.runs.append(
                _convert_one(
                    source_run, prior.get(source_run.source_id, []), repo_root, is_dry_run, update
                )
            )
            if lock is not None:
                lock.heartbeat()
        if progress is not None:
            progress(len(runs), len(runs), "")
    finally:
        if lock is not None:
            lock.release()
    return report


def lock_path(repo_root: Path, tracker: str) -> Path:
    return RepoLayout(repo_root).aim_dir / f"convert-{tracker}.lock"


def _take_lock(repo_root: Path, tracker: str) -> RunLock:
    """The conversion lock of `tracker` in the repository (created if missing), or
    RunLockedError naming the conversion that holds it."""
    ensure_repo(repo_root)
    path = lock_path(repo_root, tracker)
    lock = RunLock(path, f"convert-{tracker}")
    try:
        lock.acquire()
    except RunLockedError:
        holder = read_holder(path)
        who = holder.describe() if holder is not None else "another process"
        raise RunLockedError(
            f"another `aim-parquet convert {tracker}` ({who}) is converting into "
            f"{repo_root / '.aim'}; run this again once it has finished (it adds nothing twice)"
        ) from None
    return lock


def _convert_one(
    source_run: SourceRun, prior: list[_Prior], repo_root: Path, is_dry_run: bool, update: bool
) -> RunResult:
    label = source_run.label
    try:
        fingerprint = source_run.fingerprint()
    except Exception as exc:  # an unreadable file, a locked database, ...: this run only
        return RunResult(label, FAILED, message=f"cannot read the source run: {_describe(exc)}")
    complete = [p for p in prior if p.is_complete]
    same = [p for p in complete if p.fingerprint == fingerprint]
    if same:
        return RunResult(label, UP_TO_DATE, run_hash=same[0].run_hash)
    if complete and not update:
        return RunResult(
            label,
            CHANGED,
            run_hash=complete[0].run_hash,
            message=f"the source changed since it was converted to run {complete[0].run_hash}; "
            "pass --update to convert it again (the earlier conversion is then deleted)",
        )
    if is_dry_run:
        sink = CountingSink()
        status = WOULD_REPLACE if complete else WOULD_CONVERT
        try:
            source_run.read(sink)
            sink.finish()
        except Exception as exc:
            return RunResult(label, FAILED, sink.counts, message=_describe(exc))
        return RunResult(label, status, sink.counts)
    marker: dict[str, Any] = {
        "tracker": source_run.tracker,
        "id": source_run.source_id,
        "fingerprint": fingerprint,
        "complete": False,
        "converted_at": time.time(),
    }
    # The marker is in the run's first sidecar: a run killed at any moment is known as this
    # source's and redone. Its name is the label until the source's own name is read.
    run = ImportRun(
        repo=repo_root,
        experiment=valid_text(source_run.experiment),
        name=valid_text(label),  # (a folder name that is not UTF-8: U+FFFD where it is not)
        params={SOURCE_PARAM: marker},
    )
    run_sink = RunSink(run)
    error: str | None = None
    try:
        source_run.read(run_sink)
        run_sink.finish()
        run.complete(SOURCE_PARAM, {**marker, "complete": True})
    except Exception as exc:
        error = _describe(exc)
        log.debug("converting %s failed", label, exc_info=True)
    try:
        run.close()
    except Exception:  # once complete() returned, every point and the marker are on disk
        log.warning("closing the conversion of %s failed", label, exc_info=True)
    repo = Repo(repo_root)
    if error is not None:
        for stale in prior:  # earlier attempts that did not complete either
            if not stale.is_complete:
                repo.delete_run(stale.run_hash)
        return RunResult(
            label,
            PARTIAL,
            run_sink.counts,
            run.hash,
            f"{error}; what was read before is in run {run.hash} (the next conversion redoes it)",
        )
    for stale in prior:
        repo.delete_run(stale.run_hash)
    return RunResult(label, REPLACED if complete else CONVERTED, run_sink.counts, run.hash)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, OSError | ValueError) else f"{type(exc).__name__}: {text}"
