"""`RunBase`: what every run has, read-only or writing: its repository layout and hash, its
metadata (decoded from the run index's record or read from the sidecar, on first use), Aim's
structured properties over it and its sequence catalogue.

It sits below the sequence views and collections (which hold a run), so they are typed with it;
`sdk.run_read.ReadableRun` adds the sequence access that returns them, and `sdk.run.Run` the
writing. A writing run overrides `_meta` (its writer's metadata) and `_catalogue` (flushed first).

`run.repo` is a `Repo`, which stands above the run (a Repo hands out Runs): the run depends on it
through a hook, not an import. `RunBase.use_repo_class` is that hook; `sdk/repo.py` plugs `Repo`
into it at the bottom of its module, and `aim_parquet/__init__.py` imports `sdk.repo`, so it is
plugged in before any user code runs.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from aim_parquet.format.meta import RunMeta, SequenceInfo
from aim_parquet.format.paths import RepoLayout
from aim_parquet.format.run_fields import duration_s, experiment_or_default, utc_naive
from aim_parquet.format.values import check_text
from aim_parquet.storage.base.repo_files import ensure_repo, open_repo
from aim_parquet.storage.index.run_records import RunRecord
from aim_parquet.storage.online.catalogue_scan import ScanCache, read_catalogue
from aim_parquet.storage.online.run_reader import load_run_meta
from aim_parquet.storage.online.writer_parts import is_run_active

if TYPE_CHECKING:
    from aim_parquet.sdk.repo import Repo


def layout_for(repo: Any, *, create: bool) -> RepoLayout:
    """Accept a path, None (nearest `.aim` upward, else cwd) or a Repo-like object."""
    layout = getattr(repo, "layout", None)
    if isinstance(layout, RepoLayout):
        return layout
    return ensure_repo(repo) if create else open_repo(repo)


class RunBase:
    """A run's identity, metadata, properties and catalogue (Aim's structured run fields)."""

    hash: str
    _layout: RepoLayout
    _meta_cache: RunMeta | None
    _meta_source: RunRecord | None  # a run index record to decode the metadata from
    _scan_cache: ScanCache
    _repo: Repo | None  # the Repo that made this run (or was passed as `repo=`), if any

    # The class `run.repo` is made with: `Repo`, plugged in by `sdk/repo.py` at import
    # (`use_repo_class`), since the Repo module imports this one and not the other way round.
    _repo_class: ClassVar[type[Repo] | None] = None

    @staticmethod
    def use_repo_class(repo_class: type[Repo]) -> None:
        """Plug in the class `run.repo` returns instances of (called once, by `sdk/repo.py`)."""
        RunBase._repo_class = repo_class

    def _init_run(
        self,
        layout: RepoLayout,
        run_hash: str,
        meta: RunMeta | RunRecord | None = None,
        *,
        repo: object = None,
    ) -> None:
        """The state every run has; `meta`: metadata already read (a RunRecord is decoded only
        when the run's fields are first used), else the sidecar is read on first use; `repo`:
        what the run was opened with (a `Repo` instance is kept and is then `run.repo`)."""
        repo_class = RunBase._repo_class
        self._repo = repo if repo_class is not None and isinstance(repo, repo_class) else None
        self._layout = layout
        self.hash = run_hash
        self._meta_cache = meta if isinstance(meta, RunMeta) else None
        self._meta_source = meta if isinstance(meta, RunRecord) else None
        self._scan_cache = ScanCache()

    # -- metadata --------------------------------------------------------------------------
    @property
    def _meta(self) -> RunMeta:
        """The run's metadata: as given or last read (the sidecar is read on first use)."""
        if self._meta_cache is None:
            source = self._meta_source
            if source is not None:  # a run a query returned: decode what the index holds
                self._meta_cache, self._meta_source = source.run_meta(), None
            else:
                self._meta_cache = load_run_meta(self._layout, self.hash)
        return self._meta_cache

    def _set_props(self, **changes: Any) -> None:
        """Persist changed properties (`sdk.run.Run`: through its writer or a sidecar edit)."""
        raise NotImplementedError

    def _catalogue(self) -> tuple[RunMeta, list[SequenceInfo]]:
        """The run's metadata and every sequence it has, read fresh (one sidecar read), so a
        reader of a live run sees the sequences added since it was opened; the catalogue of a
        run whose writer died is caught up from its segments (`storage.online.catalogue_scan`),
        once per run object while its files stay as they were."""
        meta = load_run_meta(self._layout, self.hash)
        return meta, read_catalogue(self._layout, self.hash, meta, cache=self._scan_cache)

    # -- identity --------------------------------------------------------------------------
    @property
    def repo(self) -> Repo:
        """The `Repo` holding this run (as Aim's `run.repo`): the one that made the run or was
        passed as `repo=`, else the shared Repo of the run's path (`Repo.from_path`)."""
        if self._repo is None:
            repo_class = RunBase._repo_class
            if repo_class is None:
                raise RuntimeError(
                    "internal error: no Repo class is plugged into RunBase.use_repo_class; "
                    "aim_parquet.sdk.repo does it at import (import aim_parquet first)"
                )
            self._repo = repo_class.from_path(self._layout.root)
        return self._repo

    @property
    def repo_path(self) -> str:
        return str(self._layout.root)

    def __eq__(self, other: object) -> bool:
        """Two runs are equal when they are the same run of the same repository (as in Aim),
        whether opened for writing or read-only."""
        if not isinstance(other, RunBase):
            return NotImplemented
        return self.hash == other.hash and self._layout.root == other._layout.root

    def __hash__(self) -> int:
        return hash((self.hash, str(self._layout.root)))

    # -- properties ------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._meta.display_name

    @name.setter
    def name(self, value: str) -> None:
        check_text(value, "run name")
        self._set_props(name=None if value is None else str(value))

    @property
    def description(self) -> str | None:
        return self._meta.description

    @description.setter
    def description(self, value: str | None) -> None:
        check_text(value, "description")
        self._set_props(description=None if value is None else str(value))

    @property
    def experiment(self) -> str:
        return self._meta.experiment

    @experiment.setter
    def experiment(self, value: str) -> None:
        check_text(value, "experiment name")
        self._set_props(experiment=experiment_or_default(value))

    @property
    def archived(self) -> bool:
        return self._meta.archived

    @archived.setter
    def archived(self, value: bool) -> None:
        self._set_props(archived=bool(value))

    @property
    def tags(self) -> list[str]:
        return list(self._meta.tags)

    def add_tag(self, value: str) -> None:
        tag = str(value)
        check_text(tag, "tag")
        if tag in self._meta.tags:
            return
        self._set_props(tags=(*self._meta.tags, tag))

    def remove_tag(self, tag_name: str) -> bool:
        if tag_name not in self._meta.tags:
            return False
        self._set_props(tags=tuple(t for t in self._meta.tags if t != tag_name))
        return True

    @property
    def creation_time(self) -> float:
        return self._meta.creation_time

    @property
    def created_at(self) -> datetime:
        """Naive UTC datetime of creation (as Aim)."""
        created = utc_naive(self._meta.creation_time)
        assert created is not None
        return created

    @property
    def end_time(self) -> float | None:
        return self._meta.end_time

    @property
    def finalized_at(self) -> datetime | None:
        return utc_naive(self._meta.end_time)

    @property
    def active(self) -> bool:
        """True while a live process writes the run (a crashed writer's run is not active)."""
        return is_run_active(self._layout, self._meta)

    @property
    def duration(self) -> float:
        return duration_s(self._meta.creation_time, self._meta.end_time)

    @property
    def props(self) -> RunMeta:
        return self._meta
