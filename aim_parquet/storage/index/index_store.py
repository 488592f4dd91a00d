"""Writing the run index file (`storage.index.run_index`): atomically, under the index lock
taken without waiting, never through a link; the writers' journal
(`storage.index.closed_journal`) and a format 4 `runs.jsonl` are removed once it is written."""

from __future__ import annotations

import logging

import pyarrow as pa

from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage.base.atomic import atomic_write
from aim_parquet.storage.base.lock import held_flock
from aim_parquet.storage.base.repo_changes import index_link
from aim_parquet.storage.index.closed_journal import Entry, merged_cells, remove_journal
from aim_parquet.storage.index.index_entries import KEPT_KEY_PREFIX, IndexEntry
from aim_parquet.storage.index.index_file import encode_cells, encode_index

__all__ = ["index_bytes", "store_index"]

log = logging.getLogger(__name__)


def index_bytes(
    entries: dict[str, IndexEntry], base: pa.Table, taken: dict[str, Entry], order: list[str]
) -> bytes:
    """The index file's bytes: the rows of `base` (kept as they are), then the `entries` (read
    from sidecars; a damaged run's last good copy under a key no sidecar has, so the next
    reader reads the damaged sidecar again instead of taking the copy for it). With rows
    `taken` from the writers' journal, those and the entries in `order` (the runs listed)."""
    rows = {
        h: (e.key if e.record is not None else KEPT_KEY_PREFIX + e.key, r)
        for h, e in entries.items()
        if (r := e.stored_record) is not None
    }
    if taken:
        return encode_cells(*merged_cells(order, rows, taken), base)
    return encode_index(list(rows.values()), base)


def store_index(layout: RepoLayout, data: bytes) -> bool | None:
    """Write the index file's bytes: True when written, False when another process holds the
    lock (the caller tries again later), None when it cannot be written (a read-only repository,
    a full disk, a link: the index is only a cache)."""
    path = layout.index_file
    link = index_link(layout)
    if link is not None:  # `verify` names it
        log.debug("aim_parquet: not writing run index %s: %s is a link", path, link)
        return None
    try:
        layout.index_dir.mkdir(parents=True, exist_ok=True)
        with held_flock(layout.index_lock, "run index lock") as held:
            if not held:
                log.debug("aim_parquet: run index %s is busy; not rewriting it", path)
                return False
            atomic_write(path, data, durable=False)
            remove_journal(layout)  # (its rows are in the file)
            layout.old_index_file.unlink(missing_ok=True)  # (format 4 and before)
    except OSError as exc:
        log.debug("aim_parquet: cannot write run index %s (%s)", path, exc)
        return None
    return True
