"""Opening a run's main writer: a new run's folder appears with its sidecar already in it, and
a resumed run's writer takes its lock and catches its catalogue up from the data."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace

from aim_parquet.errors import MissingRunError, StorageError
from aim_parquet.format.meta import MULTI_WRITER_FORMAT_VERSION, RunMeta
from aim_parquet.format.paths import SIDECAR_FILENAME, TEMP_PREFIX, RepoLayout, generate_run_hash
from aim_parquet.storage.base.atomic import atomic_write
from aim_parquet.storage.base.lock import RunLock
from aim_parquet.storage.base.repo_changes import note_change
from aim_parquet.storage.online.catalogue_scan import resume_catalogue
from aim_parquet.storage.online.extra_writer import main_writer_meta
from aim_parquet.storage.online.run_reader import load_sidecar
from aim_parquet.storage.online.run_writer import RunWriter


def create_run_folder(layout: RepoLayout, meta: RunMeta, *, is_multi_writer: bool = False) -> None:
    """Make `runs/<hash>/` appear with its sidecar `meta` already in it (built under a temp
    name, then renamed), so no reader ever sees a run folder without a sidecar.
    `is_multi_writer`: the run of a distributed job (format version 2); another rank may create
    it first."""
    run_hash = meta.hash
    tmp = layout.runs_dir / f"{TEMP_PREFIX}{run_hash}-{os.getpid()}-{generate_run_hash()}"
    tmp.mkdir()
    try:
        if is_multi_writer:
            meta = replace(meta, format_version=MULTI_WRITER_FORMAT_VERSION)
        atomic_write(tmp / SIDECAR_FILENAME, meta.dumps(), durable=True)
        try:
            os.rename(tmp, layout.run_dir(run_hash))
        except OSError as exc:  # another rank created it first (ENOTEMPTY / EEXIST)
            if not is_multi_writer or not layout.run_dir(run_hash).is_dir():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
            del exc
            return
        note_change(layout)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise StorageError(f"creating run {run_hash} in {layout.root} failed: {exc}") from exc
        raise


def open_main_writer(
    layout: RepoLayout,
    run_hash: str,
    *,
    new_meta: RunMeta | None,
    experiment: str | None,
    force: bool,
    is_multi: bool = False,
) -> tuple[RunWriter, bool]:
    """The main writer (rank 0's, or a single process's) of the run, not started yet, and
    whether it writes a distributed job's run (as rank 0). `new_meta`: a new run's sidecar (its
    folder is created here), None to resume the run."""
    is_new = new_meta is not None
    run_dir = layout.run_dir(run_hash)
    if new_meta is not None:
        create_run_folder(layout, new_meta)
    elif not run_dir.is_dir():
        raise MissingRunError(
            f"No run {run_hash!r} in repository {layout.root}; pass run_hash=None to "
            "start a new run."
        )
    lock = RunLock(layout.lock_file(run_hash), run_hash)
    try:
        lock.acquire(force=force)
    except FileNotFoundError:  # moved or deleted since the check above (`runs mv|rm`)
        if is_new:
            raise
        raise MissingRunError(
            f"No run {run_hash!r} in repository {layout.root} (it was moved or deleted "
            "while it was being opened); pass run_hash=None to start a new run."
        ) from None
    except BaseException:
        if is_new:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    try:
        meta = load_sidecar(layout, run_hash)
        is_job = is_multi or meta.is_multi_writer
        if is_job:  # a job's run, resumed by a plain process too: it writes as rank 0
            meta = main_writer_meta(layout, run_hash, meta)
        elif not is_new:  # after a killed writer the catalogue is caught up from the data
            infos = resume_catalogue(layout, run_hash, meta)
            meta = RunMeta(**{**meta.__dict__, "end_time": None, "sequences": infos})
        if experiment:
            meta = RunMeta(**{**meta.__dict__, "experiment": str(experiment)})
        writer = RunWriter(layout, meta, lock)
        writer.update_meta()
    except BaseException:
        lock.release()
        if is_new:  # leave no sidecar-less run folder behind (e.g. the disk is full)
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return writer, is_job
