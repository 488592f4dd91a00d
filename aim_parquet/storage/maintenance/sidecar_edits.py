"""Changing a finished run's sidecar from outside (`aim-parquet runs archive|unarchive|close`).

The sidecar is rewritten atomically under the run's write lock, so a writer can neither be running
(a live one holds the lock: the change is refused with `RunLockedError`) nor resume meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import cast

from aim_parquet.errors import RunLockedError
from aim_parquet.format.meta import RunMeta
from aim_parquet.format.paths import RepoLayout, validate_run_hash
from aim_parquet.format.values import check_text
from aim_parquet.storage.base.lock import extra_writer_holder, held_run_lock
from aim_parquet.storage.base.repo_changes import write_sidecar
from aim_parquet.storage.base.repo_files import writer_ranks
from aim_parquet.storage.maintenance.salvage import last_timestamp
from aim_parquet.storage.online.catalogue_scan import caught_up, edit_writer_catalogue
from aim_parquet.storage.online.run_reader import load_run_meta, load_sidecar


def _edit(
    layout: RepoLayout, run_hash: str, what: str, change: Callable[[RunMeta], RunMeta]
) -> RunMeta:
    validate_run_hash(run_hash)
    load_run_meta(layout, run_hash)  # MissingRunError / CorruptFileError before locking
    with held_run_lock(layout.lock_file(run_hash), run_hash) as who:
        if who is not None:
            raise RunLockedError(
                f"Cannot {what} run {run_hash}: it is being written by {who}. Do it from that "
                "process, or wait until the run is closed."
            )
        meta = load_sidecar(layout, run_hash)  # rank 0's, for a run with several writers
        new = change(meta)
        if new != meta:
            write_sidecar(layout, run_hash, replace(new, updated_at=time.time()).dumps())
        return new


def change_run(
    layout: RepoLayout, run_hash: str, what: str, change: Callable[[RunMeta], RunMeta]
) -> RunMeta:
    """Apply `change` to the sidecar of a run no live process writes, under its lock (what the
    SDK does for a property set on a read-only or closed run); RunLockedError names the writer."""
    return _edit(layout, run_hash, what, change)


def set_archived(layout: RepoLayout, run_hash: str, archived: bool) -> RunMeta:
    """Archive or unarchive a run no live process writes."""
    what = "archive" if archived else "unarchive"
    return _edit(layout, run_hash, what, lambda m: replace(m, archived=archived))


def finish_run(layout: RepoLayout, run_hash: str) -> RunMeta:
    """Mark a crashed run finished: its catalogue is rebuilt from the segments its writer wrote
    after the last sidecar write (and the sequences it never catalogued are added), and
    `end_time` becomes its newest point's timestamp (the last sidecar update when it has no
    point). A run that already has an `end_time` is left as it is. RunLockedError while any
    writer of the run (any rank of a distributed job) is alive."""

    def finish(meta: RunMeta, owner: int | None) -> RunMeta:
        if meta.end_time is not None:
            return meta
        meta = caught_up(layout, meta, owner)
        end = last_timestamp(layout, run_hash, list(meta.sequences))
        if end is None:
            end = meta.updated_at or meta.creation_time
        return replace(meta, end_time=end)

    holder = extra_writer_holder(layout, run_hash)
    if holder is not None:  # a rank of the job still writes it: the run is not over
        raise RunLockedError(
            f"Cannot close run {run_hash}: it is being written by {holder.describe()}. It ends "
            "when its last writer closes; close only a run whose processes all died."
        )
    main = _edit(layout, run_hash, "close", lambda m: finish(m, 0 if m.is_multi_writer else None))
    if not main.is_multi_writer:
        return main
    for rank in writer_ranks(layout, run_hash, "json"):  # each dead rank, under its lock

        def change(_l: RepoLayout, part: RunMeta, owner: int | None) -> tuple[RunMeta, list[str]]:
            return finish(part, owner), []

        edit_writer_catalogue(layout, run_hash, rank, change, True)
    return load_run_meta(layout, run_hash)


_KEEP: object = object()


def edit_run(
    layout: RepoLayout,
    run_hash: str,
    *,
    name: str | None | object = _KEEP,
    description: str | None | object = _KEEP,
    tags: tuple[str, ...] | object = _KEEP,
) -> RunMeta:
    """Change the name, description or tags of a run no live process writes (what is not
    given is kept). Text that is not valid Unicode (a lone surrogate) is refused with
    UnsupportedValueError, as by the SDK's setters."""
    if name is not _KEEP:
        check_text(name, "run name")
    if description is not _KEEP:
        check_text(description, "description")
    for tag in () if tags is _KEEP else cast("tuple[str, ...]", tags):
        check_text(tag, "tag")

    def change(meta: RunMeta) -> RunMeta:
        fields: dict[str, object] = {}
        if name is not _KEEP:
            fields["name"] = name
        if description is not _KEEP:
            fields["description"] = description
        if tags is not _KEEP:
            fields["tags"] = tags
        return replace(meta, **fields)  # type: ignore[arg-type]

    return _edit(layout, run_hash, "edit", change)
