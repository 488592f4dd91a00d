"""`Repo`: Aim's repository object: run lookup, queries, deletion and transfer of runs.

A run is visible to every `Repo` as soon as its folder and sidecar exist; closed runs need no
re-indexing. Repo-wide reads go through the run index (`storage.index.run_index`), which re-reads only
the sidecars that changed since the last call, so a run predicate over 10,000 runs opens no file
when nothing changed. Damaged runs are skipped with a `RuntimeWarning` naming the file in
repo-wide operations and raise `CorruptFileError` when opened directly (`get_run`).

Every run this Repo hands out (`get_run`, `iter_runs`, a query's `.run`) has it as `run.repo`; the
module plugs `Repo` into the run's hook (`RunBase.use_repo_class`) at its bottom, so that the run
module needs no import of this one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar
from weakref import WeakValueDictionary

from aim_parquet.errors import AimParquetError, MissingRunError
from aim_parquet.format.kinds import SEQUENCE_KINDS
from aim_parquet.format.paths import RepoLayout, is_valid_run_hash, resolve_repo_root
from aim_parquet.query.executor import warn_damaged
from aim_parquet.query.planner import plan_query
from aim_parquet.sdk.collections import (
    QueryReportMode,
    QueryRunSequenceCollection,
    QuerySequenceCollection,
)
from aim_parquet.sdk.run import Run
from aim_parquet.sdk.sequence import (
    Audios,
    Distributions,
    Figures,
    Images,
    Metric,
    Sequence,
    Texts,
)
from aim_parquet.storage.base.repo_files import ensure_repo, is_repo, open_repo
from aim_parquet.storage.index.run_index import IndexSnapshot, RunIndex, RunRecord
from aim_parquet.storage.online.run_reader import list_run_hashes
from aim_parquet.storage.online.writer_parts import is_run_active

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]

__all__ = ["QueryReportMode", "Repo"]


def _refresh_after_change(layout: RepoLayout) -> None:
    """Refresh the analyst dataset after a delete/copy/move (logged, never raised); imported
    here so that `import aim_parquet` and a training script never load the dataset code."""
    from aim_parquet.storage import refresh_after_change

    refresh_after_change(layout)


class Repo:
    """An aim_parquet repository: the folder holding `.aim/` (Aim's `aim.Repo`)."""

    _pool: ClassVar[WeakValueDictionary[tuple[str, bool], Repo]] = WeakValueDictionary()

    def __init__(
        self, path: PathLike, *, read_only: bool | None = None, init: bool = False
    ) -> None:
        self.layout: RepoLayout = ensure_repo(path) if init else open_repo(path)
        self.root_path = str(self.layout.root)
        self.path = str(self.layout.aim_dir)
        self.read_only = bool(read_only)
        self._index = RunIndex.shared(self.layout)

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_path(cls, path: PathLike, read_only: bool | None = None, init: bool = False) -> Repo:
        """A shared Repo per path (created with `init=True` when missing)."""
        key = (str(resolve_repo_root(path)), bool(read_only))
        repo = cls._pool.get(key)
        if repo is None:
            repo = cls(path, read_only=read_only, init=init)
            cls._pool[key] = repo
        return repo

    @classmethod
    def default_repo_path(cls) -> str:
        """The nearest folder upward from the current directory holding `.aim`, else the cwd."""
        return str(resolve_repo_root(None))

    @classmethod
    def default_repo(cls, init: bool = False) -> Repo:
        return cls.from_path(cls.default_repo_path(), init=init)

    @classmethod
    def exists(cls, path: PathLike) -> bool:
        return is_repo(resolve_repo_root(path))

    def __repr__(self) -> str:
        return f"<Repo {self.root_path}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Repo) and other.root_path == self.root_path

    def __hash__(self) -> int:
        return hash(self.root_path)

    def close(self) -> None:
        """Drop in-memory caches (a Repo holds no open file)."""
        self._index.invalidate()

    # -- runs ------------------------------------------------------------------------------
    def _snapshot(self) -> IndexSnapshot:
        snapshot = self._index.refresh()
        warn_damaged(snapshot, stacklevel=4)
        return snapshot

    def iter_runs(self) -> Iterator[Run]:
        """A read-only Run for every readable run, newest first."""
        for record in self._snapshot().newest_first:
            yield Run.open_read_only(self.layout, record, repo=self)

    def get_run(self, run_hash: str) -> Run | None:
        """The read-only Run with this hash, or None (also for a malformed hash, and for a run
        whose folder was just created and has no sidecar yet).

        Raises CorruptFileError when the run exists but its sidecar is damaged or missing.
        """
        if not isinstance(run_hash, str) or not is_valid_run_hash(run_hash):
            return None
        if not self.layout.run_dir(run_hash).is_dir():
            return None
        if not self.layout.sidecar(run_hash).exists() and not self._index.is_damaged(run_hash):
            return None  # being created: its sidecar is written right after the folder
        try:
            return Run(run_hash, repo=self, read_only=True)
        except MissingRunError:
            return None

    def run_exists(self, run_hash: str) -> bool:
        return is_valid_run_hash(run_hash) and self.layout.run_dir(run_hash).is_dir()

    def list_all_runs(self) -> list[str]:
        """Hashes of every run folder (damaged runs included), sorted."""
        return list_run_hashes(self.layout)

    def list_active_runs(self) -> list[str]:
        """Hashes of runs a live process is writing now."""
        return [
            h
            for h, record in self._snapshot().records.items()
            if is_run_active(self.layout, record)
        ]

    def list_corrupted_runs(self) -> list[str]:
        """Hashes of runs whose sidecar cannot be read."""
        return sorted(bad.run_hash for bad in self._index.refresh().damaged)

    def total_runs_count(self) -> int:
        return len(self.list_all_runs())

    # -- deletion and transfer -------------------------------------------------------------
    def _check_writable(self, what: str) -> None:
        if self.read_only:
            raise PermissionError(f"Cannot {what}: repository {self.root_path} is read-only.")

    def delete_run(self, run_hash: str) -> bool:
        """Delete a run; False when there is no such run. Raises RunLockedError for a run a
        live process is writing (close it first)."""
        deleted = self._delete_one(run_hash)
        if deleted:
            _refresh_after_change(self.layout)
        return deleted

    def _delete_one(self, run_hash: str) -> bool:
        from aim_parquet.storage.maintenance.run_ops import delete_run_folder  # offline tool

        self._check_writable("delete runs")
        if not self.run_exists(run_hash):
            return False
        try:
            delete_run_folder(self.layout, run_hash)
        except MissingRunError:
            return False
        return True

    def delete_runs(self, run_hashes: Iterable[str]) -> tuple[bool, list[str]]:
        """Delete several runs: `(all_deleted, hashes_not_deleted)`."""
        self._check_writable("delete runs")
        remaining = []
        hashes = list(run_hashes)
        for run_hash in hashes:
            try:
                if not self._delete_one(run_hash):
                    remaining.append(run_hash)
            except (AimParquetError, OSError) as exc:
                log.warning("aim_parquet: cannot delete run %s: %s", run_hash, exc)
                remaining.append(run_hash)
        if len(remaining) < len(hashes):
            _refresh_after_change(self.layout)
        return not remaining, remaining

    def _dest(self, dest_repo: Repo | PathLike) -> Repo:
        repo = dest_repo if isinstance(dest_repo, Repo) else Repo.from_path(dest_repo, init=True)
        repo._check_writable("copy runs into it")
        return repo

    def copy_runs(
        self, run_hashes: Iterable[str], dest_repo: Repo | PathLike
    ) -> tuple[bool, list[str]]:
        """Copy finished runs to `dest_repo`: `(all_copied, hashes_not_copied)`. Runs a live
        process is writing or compacting are refused (they stay in `hashes_not_copied`)."""
        from aim_parquet.storage.maintenance.run_ops import copy_run_folder  # offline tool

        dest = self._dest(dest_repo)
        remaining = []
        hashes = list(run_hashes)
        for run_hash in hashes:
            try:
                copy_run_folder(self.layout, dest.layout, run_hash)
            except (AimParquetError, OSError) as exc:
                log.warning("aim_parquet: cannot copy run %s: %s", run_hash, exc)
                remaining.append(run_hash)
        if len(remaining) < len(hashes):
            _refresh_after_change(dest.layout)
        return not remaining, remaining

    def move_runs(
        self, run_hashes: Iterable[str], dest_repo: Repo | PathLike
    ) -> tuple[bool, list[str]]:
        """Copy, then delete, each run (under its locks: a run being written or compacted is
        refused): `(all_moved, hashes_not_moved)`."""
        from aim_parquet.storage.maintenance.run_ops import move_run_folder  # offline tool

        self._check_writable("move runs")
        dest = self._dest(dest_repo)
        remaining = []
        hashes = list(run_hashes)
        for run_hash in hashes:
            try:
                move_run_folder(self.layout, dest.layout, run_hash)
            except (AimParquetError, OSError) as exc:
                log.warning("aim_parquet: cannot move run %s: %s", run_hash, exc)
                remaining.append(run_hash)
        if len(remaining) < len(hashes):
            _refresh_after_change(dest.layout)
            _refresh_after_change(self.layout)
        return not remaining, remaining

    # -- catalogue -------------------------------------------------------------------------
    def available_sequence_types(self) -> list[str]:
        return sorted(SEQUENCE_KINDS)

    def collect_sequence_info(
        self, sequence_types: str | Iterable[str]
    ) -> dict[str, dict[str, list[dict[str, Any]]]]:
        """`{type: {name: [context, ...]}}` over every run, for types 'metric', 'images', ..."""
        types = [sequence_types] if isinstance(sequence_types, str) else list(sequence_types)
        for seq_type in types:
            if seq_type not in SEQUENCE_KINDS:
                raise ValueError(
                    f"unknown sequence type {seq_type!r}; use one of {sorted(SEQUENCE_KINDS)}"
                )
        out: dict[str, dict[str, list[dict[str, Any]]]] = {t: {} for t in types}
        seen: set[tuple[str, str, str]] = set()
        for record in self._snapshot().records.values():
            for info in record.sequences:
                for seq_type in types:
                    if info.kind not in SEQUENCE_KINDS[seq_type]:
                        continue
                    key = (seq_type, info.name, repr(sorted(info.context.items())))
                    if key not in seen:
                        seen.add(key)
                        out[seq_type].setdefault(info.name, []).append(dict(info.context))
        return out

    def collect_params_info(self) -> dict[str, Any]:
        """The params of every run merged into one tree; leaves are
        `{"__example_type__": "<class 'float'>"}` (as Aim)."""
        merged: dict[str, Any] = {}
        for record in self._snapshot().records.values():
            _merge_params(merged, record.params)
        return merged

    def _open_run(self, layout: RepoLayout, record: RunRecord) -> Run:
        """The read-only run of a query's match, with this Repo as its `run.repo`."""
        return Run.open_read_only(layout, record, repo=self)

    # -- queries ---------------------------------------------------------------------------
    def query_runs(
        self,
        query: str = "",
        paginated: bool = False,
        offset: str | None = None,
        report_mode: QueryReportMode | int = QueryReportMode.PROGRESS_BAR,
    ) -> QueryRunSequenceCollection:
        """Runs matching `query` (an AimQL expression over `run`), newest first; `offset` is the
        hash of the run to resume after. `paginated` is accepted for Aim compatibility."""
        plan = plan_query(query, None)
        return QueryRunSequenceCollection(
            self.layout,
            self._index,
            plan,
            Sequence,
            self._open_run,
            offset=offset,
            report_mode=report_mode,
        )

    def _query(
        self, seq_cls: type[Sequence], query: str, report_mode: QueryReportMode | int
    ) -> QuerySequenceCollection:
        plan = plan_query(query, seq_cls.sequence_name())
        return QuerySequenceCollection(
            self.layout, self._index, plan, seq_cls, self._open_run, report_mode=report_mode
        )

    def query_metrics(
        self, query: str = "", report_mode: QueryReportMode | int = QueryReportMode.PROGRESS_BAR
    ) -> QuerySequenceCollection:
        """Metrics matching `query` (over `run` and `metric`)."""
        return self._query(Metric, query, report_mode)

    def query_images(
        self, query: str = "", report_mode: QueryReportMode | int = QueryReportMode.PROGRESS_BAR
    ) -> QuerySequenceCollection:
        """Image sequences matching `query` (over `run` and `images`)."""
        return self._query(Images, query, report_mode)

    def query_texts(
        self, query: str = "", report_mode: QueryReportMode | int = QueryReportMode.PROGRESS_BAR
    ) -> QuerySequenceCollection:
        """Text sequences matching `query` (over `run` and `texts`)."""
        return self._query(Texts, query, report_mode)

    def query_distributions(
        self, query: str = "", report_mode: QueryReportMode | int = QueryReportMode.PROGRESS_BAR
    ) -> QuerySequenceCollection:
        """Distribution sequences matching `query` (over `run` and `distributions`)."""
        return self._query(Distributions, query, report_mode)

    def query_audios(
        self, query: str = "", report_mode: QueryReportMode | int = QueryReportMode.PROGRESS_BAR
    ) -> QuerySequenceCollection:
        """Audio sequences matching `query` (over `run` and `audios`)."""
        return self._query(Audios, query, report_mode)

    def query_figure_objects(
        self, query: str = "", report_mode: QueryReportMode | int = QueryReportMode.PROGRESS_BAR
    ) -> QuerySequenceCollection:
        """Figure sequences matching `query` (over `run` and `figures`)."""
        return self._query(Figures, query, report_mode)


def _merge_params(into: dict[str, Any], params: dict[str, Any]) -> None:
    for key, value in params.items():
        if isinstance(value, dict):
            node = into.get(key)
            if not isinstance(node, dict) or "__example_type__" in node:
                node = into[key] = {}
            _merge_params(node, value)
        elif key not in into:
            into[key] = {"__example_type__": str(type(value))}


# `run.repo` is a Repo: plug this class into the run's hook (the run module does not import this one).
Run.use_repo_class(Repo)
