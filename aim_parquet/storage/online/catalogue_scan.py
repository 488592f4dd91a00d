"""The sequence catalogue as the data says it is: the one place that summarises points into
catalogue entries and decides when the sidecar's catalogue can be trusted.

A writer rewrites the sidecar after the segments it describes, so the catalogue of a run whose
writer is alive lags its segments by at most one flush, and that of a run whose writer died (no
`end_time`, lock not held) may miss the last flush, or sequences created since the last sidecar
write. Everything that needs the true catalogue asks this module:

- `resume_catalogue`: the writer's open path (under the write lock); auto-steps continue after
  the real last step, so nothing the dead writer wrote is replaced.
- `read_catalogue`: readers (`Run.metrics()`, `Sequence` properties, `stats`) and the run index:
  the scanned catalogue when the writer is gone, the sidecar's (plus sequences not catalogued yet)
  otherwise.
- `catch_up_sidecar` (`compact`, before it moves a dead run's segments into Parquet) and
  `caught_up` (`runs close`): a dead run's sidecar rewritten with the scanned catalogue;
  `verify` compares the sidecar with `scan_catalogue(full=True)`, reports `stale-catalogue`,
  and `--repair` writes that.

Cost: each catalogue entry records how far into the segments its summary reaches
(`CatalogueReach`: a segment name and byte offset; segments are append-only and named in write
order), so a scan reads only the points written after the last sidecar write. An entry without a
reach (a sidecar of an earlier release), or whose reach no longer matches the files (the reach
segment was compacted while it could still grow, repaired shorter, quarantined), is summarised
from all of its points: slower, never wrong.

Summaries follow the catalogue's documented meaning (FORMAT.md): every field describes the
visible points (last write wins: `count` counts steps, `min`/`max` ignore replaced values). A
catch-up folds the rows after the reach exactly as the writer does (`seq_buffer.summarize`,
incremental while steps only grow); an entry marked `has_rewrites` (a write went to a step at or
before `last_step`) is recounted from all of its points, deduplicated (`summarize_exact`): by
every scan, by `discover_sequences` for readers of a live run (nothing written), and by the
writer at `close()` (`recount_sequences`), so only a run that rewrites steps pays for it.

This module decides when to scan and what to do with the result; reading the run's files is
`storage.online.catalogue_files`, folding rows into entries `storage.online.catalogue_summary`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Container, Iterable
from dataclasses import replace

from aim_parquet.format.meta import RunMeta, SequenceInfo
from aim_parquet.format.paths import RepoLayout, is_valid_seq_id
from aim_parquet.storage.base.files import list_names
from aim_parquet.storage.base.lock import (
    held_run_lock,
    is_run_locked,
    run_lock_holder,
    writer_lock_holder,
)
from aim_parquet.storage.base.repo_changes import write_sidecar
from aim_parquet.storage.base.repo_files import writer_ranks
from aim_parquet.storage.online.catalogue_files import as_of_one_manifest, recount_once, scan_once
from aim_parquet.storage.online.catalogue_summary import stale_sequences
from aim_parquet.storage.online.run_reader import load_sidecar, manifest_bytes
from aim_parquet.storage.online.writer_parts import load_writer_part, load_writer_parts

__all__ = [
    "ScanCache", "catch_up_sidecar", "caught_up", "discover_sequences", "edit_writer_catalogue",
    "is_writer_gone", "read_catalogue", "recount_sequences", "resume_catalogue", "scan_catalogue",
    "uncatalogued_sequences",
]  # fmt: skip


# -- liveness -------------------------------------------------------------------------------
def is_writer_gone(layout: RepoLayout, meta: RunMeta) -> bool:
    """True when the run was not closed (no `end_time`) and no live process holds its lock
    (any writer's lock, for a run with several): its catalogue may lag its segments, and
    nothing will catch it up but a scan."""
    if meta.end_time is not None:
        return False
    if meta.is_multi_writer:
        return run_lock_holder(layout, meta.hash) is None
    return is_run_locked(layout.lock_file(meta.hash)) is None


# -- scanning -------------------------------------------------------------------------------
def _scan(
    layout: RepoLayout,
    run_hash: str,
    infos: tuple[SequenceInfo, ...],
    known: Container[str] = (),
    *,
    full: bool = False,
    owner: int | None = None,
) -> list[SequenceInfo]:
    """`scan_once` as of one manifest state; starts over when a compaction swapped files."""
    return as_of_one_manifest(
        layout, run_hash, lambda files: scan_once(files, infos, known, full=full, owner=owner)
    )


def recount_sequences(
    layout: RepoLayout, run_hash: str, infos: Iterable[SequenceInfo]
) -> list[SequenceInfo]:
    """`infos` summarised exactly from all of their points (last write wins), each keeping its
    `reach`: the recount of entries marked `has_rewrites`. Writes nothing."""
    todo = tuple(infos)
    if not todo:
        return []
    return as_of_one_manifest(layout, run_hash, lambda files: recount_once(files, todo))


# -- what each caller uses ------------------------------------------------------------------
def scan_catalogue(
    layout: RepoLayout,
    run_hash: str,
    meta: RunMeta,
    *,
    full: bool = False,
    owner: int | None = None,
) -> tuple[SequenceInfo, ...]:
    """Every sequence of the run summarised from its points: the catalogue's entries caught up
    from their reach, then the sequences it lacks. `full`: every entry from all of its points,
    and sequences found only in compacted files too (what `verify` compares with). Every reach
    of the result is sealed: call this only for a run no live writer holds. `owner`: `meta` is
    one writer's part (or rank 0's run.json) of a multi-writer run: only the sequences of that
    rank are added."""
    return tuple(_scan(layout, run_hash, meta.sequences, full=full, owner=owner))


def uncatalogued_sequences(
    layout: RepoLayout, run_hash: str, catalogued: Container[str], owner: int | None = None
) -> list[SequenceInfo]:
    """Sequences with a folder under `seqs/` but no entry in `catalogued` (seq ids), summarised
    from their points: a live writer's new sequences before its next sidecar write."""
    names = list_names(layout.seqs_dir(run_hash))
    if all(n in catalogued or not is_valid_seq_id(n) for n in names):
        return []  # the usual case: no manifest to read
    return _scan(layout, run_hash, (), catalogued, owner=owner)


def discover_sequences(
    layout: RepoLayout, run_hash: str, meta: RunMeta, owner: int | None = None
) -> list[SequenceInfo]:
    """The sidecar's catalogue plus the sequences it does not list yet (summarised from their
    points). What a reader uses for a run a live writer holds (its entries may lag by one flush)
    and for a closed run (complete: `close()` writes the sidecar after the last segment). An
    entry marked `has_rewrites` is recounted from its points (nothing is written)."""
    infos = {s.seq_id: s for s in meta.sequences}
    rewritten = [i for i in infos.values() if i.has_rewrites]
    for info in recount_sequences(layout, run_hash, rewritten):
        infos[info.seq_id] = info
    return [*infos.values(), *uncatalogued_sequences(layout, run_hash, infos, owner)]


class ScanCache:
    """What `read_catalogue` scanned for a run whose writer is gone, with the state of the files
    it was scanned from; reused while the sidecar, the manifest and every sequence folder are as
    they were (a dead writer appends nothing; compaction, repairs, `runs close` and a resumed
    writer each change one of them). One per reader (`Run` object)."""

    def __init__(self) -> None:
        self.state: tuple[object, ...] | None = None
        self.infos: tuple[SequenceInfo, ...] = ()


def _files_state(layout: RepoLayout, run_hash: str, meta: RunMeta) -> tuple[object, ...]:
    """The sidecar version, the manifest bytes and each sequence folder's mtime (ns)."""
    seqs_dir = os.fspath(layout.seqs_dir(run_hash))
    try:
        seq_ids = sorted(n for n in os.listdir(seqs_dir) if is_valid_seq_id(n))
    except FileNotFoundError:
        seq_ids = []
    folders = []
    for seq_id in seq_ids:
        try:
            folders.append((seq_id, os.stat(f"{seqs_dir}/{seq_id}").st_mtime_ns))
        except FileNotFoundError:
            continue
    manifest = manifest_bytes(os.fspath(layout.manifest(run_hash)))
    return (meta.updated_at, meta.end_time, len(meta.sequences), manifest, tuple(folders))


def read_catalogue(
    layout: RepoLayout, run_hash: str, meta: RunMeta, *, cache: ScanCache | None = None
) -> list[SequenceInfo]:
    """The catalogue readers show: scanned from the segments when the run's writer is gone,
    else `discover_sequences` (a live writer's entries may lag its segments by one flush).
    With `cache`, a dead run whose files did not change is not scanned again (a run with
    thousands of sequences its writer never catalogued costs one `stat` per sequence)."""
    if meta.is_multi_writer and meta.end_time is None:
        return _read_writers_catalogue(layout, run_hash, meta)
    if not is_writer_gone(layout, meta):
        return discover_sequences(layout, run_hash, meta)
    if cache is None:
        return list(scan_catalogue(layout, run_hash, meta))
    state = _files_state(layout, run_hash, meta)
    if cache.state != state:
        cache.infos = scan_catalogue(layout, run_hash, meta)
        cache.state = state
    return list(cache.infos)


def _read_writers_catalogue(
    layout: RepoLayout, run_hash: str, merged: RunMeta
) -> list[SequenceInfo]:
    """The catalogue of a multi-writer run not closed by all its writers, writer by writer:
    the entries of a live or closed writer as they are, those of a writer that died (no
    `end_time`, lock not held) caught up from its segments; then the sequences nobody
    catalogued yet, summarised from their points."""
    trusted: dict[str, SequenceInfo] = {}
    dead: dict[str, SequenceInfo] = {}
    catalogues = [(0, load_sidecar(layout, run_hash))]
    catalogues += sorted(load_writer_parts(layout, run_hash).items())
    for rank, part in catalogues:
        is_gone = part.end_time is None and writer_lock_holder(layout, run_hash, rank) is None
        for info in part.sequences:
            if info.seq_id not in trusted and info.seq_id not in dead:
                (dead if is_gone else trusted)[info.seq_id] = info
    if not dead:
        return discover_sequences(layout, run_hash, replace(merged, sequences=(*trusted.values(),)))
    return [*trusted.values(), *_scan(layout, run_hash, tuple(dead.values()), trusted)]


def resume_catalogue(
    layout: RepoLayout, run_hash: str, meta: RunMeta, owner: int | None = None
) -> tuple[SequenceInfo, ...]:
    """The catalogue a writer resuming the run starts from; the caller holds the write lock.

    After a writer that did not close the run (no `end_time`) it is caught up from the segments
    written after the sidecar's reach; after a clean close the sidecar's is complete. Either way
    every reach is sealed: the new session writes new segments only. `owner`: the writer's rank
    in a multi-writer run (`meta` is its own part): only its own sequences are added.
    """
    if meta.end_time is None:
        return scan_catalogue(layout, run_hash, meta, owner=owner)
    infos = discover_sequences(layout, run_hash, meta, owner)
    return tuple(
        i if i.reach is None else replace(i, reach=replace(i.reach, is_sealed=True)) for i in infos
    )


def caught_up(layout: RepoLayout, meta: RunMeta, owner: int | None = None) -> RunMeta:
    """`meta` with the catalogue of its points; the caller holds the run's write lock (`owner`:
    writer `owner`'s lock, `meta` being its part of a multi-writer run)."""
    return replace(meta, sequences=scan_catalogue(layout, meta.hash, meta, owner=owner))


def catch_up_sidecar(layout: RepoLayout, run_hash: str) -> list[str]:
    """Rewrite the sidecar of a run whose writer is gone with the catalogue of its points (under
    the write lock, taken here); returns the names of the sequences that were stale. Nothing is
    done, and no lock taken, for a closed run; nothing is done for one a live writer holds (that
    writer keeps its catalogue). For a
    run with several writers, each dead writer's catalogue (run.json or its part) is caught up
    under that writer's lock."""
    main = load_sidecar(layout, run_hash)
    ranks = [0, *writer_ranks(layout, run_hash)] if main.is_multi_writer else [0]
    stale: list[str] = []
    for rank in ranks:
        meta = main if rank == 0 else load_writer_part(layout, run_hash, rank)
        if meta is None or meta.end_time is not None:
            # that writer closed: nothing to catch up, and its lock is not taken, so a resume
            # at this instant is never refused (a writer that resumed after this look keeps
            # its own catalogue)
            continue
        stale += edit_writer_catalogue(layout, run_hash, rank, _catch_up, main.is_multi_writer)
    return stale


def _catch_up(layout: RepoLayout, meta: RunMeta, owner: int | None) -> tuple[RunMeta, list[str]]:
    if meta.end_time is not None:
        return meta, []
    new = caught_up(layout, meta, owner)
    return new, stale_sequences(meta.sequences, new.sequences)


def edit_writer_catalogue(
    layout: RepoLayout,
    run_hash: str,
    rank: int,
    change: Callable[[RepoLayout, RunMeta, int | None], tuple[RunMeta, list[str]]],
    is_multi_writer: bool,
) -> list[str]:
    """Apply `change` to writer `rank`'s catalogue (rank 0: run.json; else its part) under that
    writer's lock, and write it when it changed; nothing when the writer is alive or has
    written no part. Returns what `change` reports."""
    if rank == 0:
        path, lock_path = layout.sidecar(run_hash), layout.lock_file(run_hash)
    else:
        path, lock_path = layout.writer_part(run_hash, rank), layout.writer_lock(run_hash, rank)
    try:
        with held_run_lock(lock_path, run_hash) as holder:
            if holder is not None:
                return []  # a live writer keeps its own catalogue
            meta = (
                load_sidecar(layout, run_hash)
                if rank == 0
                else load_writer_part(layout, run_hash, rank)
            )
            if meta is None:
                return []
            new, report = change(layout, meta, rank if is_multi_writer else None)
            if new != meta or any(
                a.reach != b.reach for a, b in zip(new.sequences, meta.sequences, strict=False)
            ):
                data = replace(new, updated_at=time.time()).dumps()
                write_sidecar(layout, run_hash, data, path=path)
            return report
    except FileNotFoundError:
        if os.path.lexists(lock_path.parent):
            raise
        return []  # the run (or its writers/ folder) is gone
