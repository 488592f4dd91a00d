"""The repository's change marker, `.aim/index/changed`, and the one way to write a sidecar.

Every change a query could see (a sidecar written, a run created, deleted, copied or moved) ends
with `note_change`, which sets the marker's mtime to the current time in nanoseconds, exactly
(`os.utime(ns=...)`, not the filesystem's coarse clock). A process that has already read every
sidecar can then answer its next query after two `stat` calls (the marker and `runs/`) instead of
one per run, while they are unchanged (`storage.index.run_index` documents the rule).

The marker is only a hint: failing to touch it (a read-only or foreign-owned repository) loses no
data, and readers still stat every sidecar at least every few seconds.

`index_link` says whether `.aim/index/` is a symbolic link: nothing is then read or written in it
(the marker, the run index, the runs table); readers work from the sidecars alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path

from aim_parquet.format.paths import RepoLayout, is_params_file_name
from aim_parquet.storage.base.atomic import atomic_write
from aim_parquet.storage.base.safe_fs import first_link, open_regular

log = logging.getLogger(__name__)

MarkerKey = tuple[int, int] | None


def index_link(layout: RepoLayout) -> Path | None:
    """The link among `.aim/index` (and the folders above it below `.aim`), None when it is a
    real folder or missing: a linked index folder is never read or written through."""
    return first_link(layout.aim_dir, layout.index_dir)


def note_change(layout: RepoLayout) -> None:
    """Set the marker's mtime to now (ns), creating it if needed; errors are only logged."""
    if index_link(layout) is not None:
        return
    path = os.fspath(layout.change_marker)
    now = time.time_ns()
    try:
        os.utime(path, ns=(now, now), follow_symlinks=False)  # (a link: its own mtime only)
        return
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.debug("aim_parquet: cannot touch change marker %s (%s)", path, exc)
        return
    try:
        os.makedirs(os.fspath(layout.index_dir), exist_ok=True)
        os.close(open_regular(path, "change marker", os.O_WRONLY | os.O_CREAT))
        os.utime(path, ns=(now, now), follow_symlinks=False)
    except OSError as exc:
        log.debug("aim_parquet: cannot create change marker %s (%s)", path, exc)


def marker_key(layout: RepoLayout) -> MarkerKey:
    """(mtime_ns, inode) of the marker, None when there is none."""
    if index_link(layout) is not None:
        return None
    try:
        st = os.stat(os.fspath(layout.change_marker))
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_ino)


def write_sidecar(
    layout: RepoLayout,
    run_hash: str,
    data: bytes,
    *,
    durable: bool = True,
    path: Path | None = None,
    has_inline_params: bool = True,
) -> None:
    """Replace a run's sidecar (or, with `path`, an extra writer's part) atomically, then note
    the change. A run.json with `has_inline_params` (every writer but the run's own, which
    keeps large params in a params file: `storage.online.params_file`) leaves every params
    file of the run unnamed: they are removed."""
    atomic_write(layout.sidecar(run_hash) if path is None else path, data, durable=durable)
    if path is None and has_inline_params:
        run_dir = layout.run_dir(run_hash)
        for name in os.listdir(run_dir):
            if is_params_file_name(name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(run_dir / name)
    note_change(layout)
