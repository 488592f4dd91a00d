"""Opening a writer of a run with several writers (`storage.online.writer_parts` has the layout).

Rank 0 opens the run as a single writer does (`lock`, `run.json`) and marks its sidecar format
version 2; an extra writer (rank r >= 1) takes `writers/<r>.lock` (through the attach gate,
`writer_gate`) and writes only `writers/<r>.json`. Either one resumes its own catalogue as
writer rule 8 says, limited to its own sequences (`catalogue_scan.resume_catalogue(owner=
rank)`): after a rank was killed, its restart continues its auto-steps after its real last step, whatever the other ranks did.
"""

from __future__ import annotations

import time
from dataclasses import replace

from aim_parquet.errors import RunLockedError
from aim_parquet.format.meta import MULTI_WRITER_FORMAT_VERSION, RunMeta
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage.base.lock import RunLock
from aim_parquet.storage.online.catalogue_scan import resume_catalogue
from aim_parquet.storage.online.run_reader import load_sidecar
from aim_parquet.storage.online.run_writer import RunWriter
from aim_parquet.storage.online.writer_gate import attaching
from aim_parquet.storage.online.writer_parts import load_writer_part

# How long an extra writer waits for rank 0 to mark a single-writer run as multi-writer (the
# run was resumed with an explicit run_hash by every rank of a job, and rank 0 is late).
UPGRADE_WAIT_S = 120.0


def _wait_multi_writer(layout: RepoLayout, run_hash: str, wait_s: float) -> RunMeta:
    deadline = time.monotonic() + wait_s
    while True:
        main = load_sidecar(layout, run_hash)
        if main.is_multi_writer:
            return main
        if time.monotonic() >= deadline:
            raise RunLockedError(
                f"Run {run_hash} was written by a single process; an extra writer can attach "
                "only once its rank 0 has opened it in the same distributed job (waited "
                f"{wait_s:.0f} s). Start rank 0 too, or open the run without a distributed "
                "launch (WORLD_SIZE unset)."
            )
        time.sleep(0.2)


def open_extra_writer(
    layout: RepoLayout,
    run_hash: str,
    rank: int,
    *,
    force: bool = False,
    wait_s: float = UPGRADE_WAIT_S,
) -> RunWriter:
    """The writer of rank `rank` (>= 1) of a run whose folder exists: its lock taken, its
    catalogue resumed and its part written. RunLockedError when another live process is that
    rank's writer."""
    _wait_multi_writer(layout, run_hash, wait_s)
    path = layout.writer_part(run_hash, rank)
    lock = RunLock(layout.writer_lock(run_hash, rank), run_hash)
    with attaching(layout, run_hash, rank):  # not while `runs rm|cp|mv` works on the run
        lock.acquire(force=force)
    try:
        part = load_writer_part(layout, run_hash, rank)
        if part is None:  # new, or killed before its first part write: its points are found
            part = RunMeta(
                hash=run_hash,
                creation_time=time.time(),
                format_version=MULTI_WRITER_FORMAT_VERSION,
            )
        infos = resume_catalogue(layout, run_hash, part, owner=rank)
        part = replace(part, end_time=None, sequences=infos)
        writer = RunWriter(layout, part, lock, sidecar_path=path)
        writer.update_meta()
    except BaseException:
        lock.release()
        raise
    return writer


def main_writer_meta(layout: RepoLayout, run_hash: str, meta: RunMeta) -> RunMeta:
    """Rank 0's sidecar as it resumes a run in a distributed launch (under its lock): its own
    catalogue resumed, marked format version 2 (several writers)."""
    infos = resume_catalogue(layout, run_hash, meta, owner=0)
    return replace(meta, end_time=None, sequences=infos, format_version=MULTI_WRITER_FORMAT_VERSION)
