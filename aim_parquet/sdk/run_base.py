"""Properties shared by writable and read-only runs (Aim's structured run fields)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from aim_parquet.format.meta import RunMeta
from aim_parquet.format.paths import RepoLayout
from aim_parquet.format.values import check_text
from aim_parquet.sdk.run_read import RunSequencesMixin
from aim_parquet.storage.base.lock import run_lock_holder
from aim_parquet.storage.base.repo_files import ensure_repo, open_repo


def layout_for(repo: Any, *, create: bool) -> RepoLayout:
    """Accept a path, None (nearest `.aim` upward, else cwd) or a Repo-like object."""
    layout = getattr(repo, "layout", None)
    if isinstance(layout, RepoLayout):
        return layout
    return ensure_repo(repo) if create else open_repo(repo)


class RunPropsMixin:
    """Aim's run properties over `self._meta` (a RunMeta); setters go through `_set_props`."""

    hash: str
    _layout: RepoLayout

    @property
    def _meta(self) -> RunMeta:
        raise NotImplementedError

    def _set_props(self, **changes: Any) -> None:
        raise NotImplementedError

    @property
    def repo_path(self) -> str:
        return str(self._layout.root)

    @property
    def repo(self) -> Any:
        """The `Repo` holding this run (as Aim's `run.repo`)."""
        from aim_parquet.sdk.repo import Repo

        return Repo.from_path(self._layout.root)

    def __eq__(self, other: object) -> bool:
        """Two runs are equal when they are the same run of the same repository (as in Aim),
        whether opened for writing or read-only."""
        if not isinstance(other, RunPropsMixin):
            return NotImplemented
        return self.hash == other.hash and self._layout.root == other._layout.root

    def __hash__(self) -> int:
        return hash((self.hash, str(self._layout.root)))

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
        self._set_props(experiment=str(value) if value else "default")

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
        return datetime.fromtimestamp(self._meta.creation_time, UTC).replace(tzinfo=None)

    @property
    def end_time(self) -> float | None:
        return self._meta.end_time

    @property
    def finalized_at(self) -> datetime | None:
        end = self._meta.end_time
        return None if end is None else datetime.fromtimestamp(end, UTC).replace(tzinfo=None)

    @property
    def active(self) -> bool:
        """True while a live process writes the run (a crashed writer's run is not active)."""
        if self._meta.end_time is not None:
            return False
        return run_lock_holder(self._layout, self.hash) is not None

    @property
    def duration(self) -> float:
        end = self._meta.end_time
        return (end if end is not None else time.time()) - self._meta.creation_time

    @property
    def props(self) -> RunMeta:
        return self._meta


class RunReadMixin(RunPropsMixin, RunSequencesMixin):
    """Everything a read-only run offers: properties plus sequence access."""
