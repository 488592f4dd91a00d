"""Deleting, copying and moving whole run folders, crash-safely.

- **Delete**: take the run's write lock (so no writer can be running or start meanwhile), rename
  `runs/<hash>` to `.aim/trash/<hash>-<random>` (one atomic `rename`: the run disappears from every
  reader at once and a crash never leaves a half-deleted run that looks corrupt), release the lock,
  then remove the trash folder. Leftovers of an earlier crash in `trash/` are removed too.
- **Copy**: refuse a run with a live writer; copy the folder (without its lock file and without
  temp files) to `runs/.tmp-<hash>-<random>` of the destination, which readers ignore, then rename
  it to `runs/<hash>`. A crash leaves only an ignored temp folder.
- **Move**: copy, then delete the source.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from pathlib import Path

from aim_parquet.errors import MissingRunError, RunLockedError
from aim_parquet.format.paths import LOCK_FILENAME, TEMP_PREFIX, RepoLayout, validate_run_hash
from aim_parquet.storage.lock import RunLock, is_run_locked
from aim_parquet.storage.repo_changes import note_change
from aim_parquet.storage.run_reader import load_run_meta

log = logging.getLogger(__name__)


def _require_run(layout: RepoLayout, run_hash: str) -> Path:
    run_dir = layout.run_dir(validate_run_hash(run_hash))
    if not run_dir.is_dir():
        raise MissingRunError(f"No run {run_hash!r} in repository {layout.root}.")
    return run_dir


def _locked_error(run_hash: str, what: str, who: str) -> RunLockedError:
    return RunLockedError(
        f"Cannot {what} run {run_hash}: it is still being written by {who}. Close the run "
        "(run.close()) or wait for its process to finish, then try again."
    )


def empty_trash(layout: RepoLayout) -> None:
    """Remove whatever an interrupted delete left in `.aim/trash/`."""
    try:
        names = os.listdir(layout.trash_dir)
    except FileNotFoundError:
        return
    for name in names:
        shutil.rmtree(layout.trash_dir / name, ignore_errors=True)


def delete_run_folder(layout: RepoLayout, run_hash: str) -> None:
    """Delete one run (see module doc). Raises MissingRunError or RunLockedError."""
    run_dir = _require_run(layout, run_hash)
    lock = RunLock(layout.lock_file(run_hash), run_hash)
    try:
        lock.acquire()
    except RunLockedError as exc:
        holder = is_run_locked(layout.lock_file(run_hash))
        who = holder.describe() if holder else "another process"
        raise _locked_error(run_hash, "delete", who) from exc
    except FileNotFoundError:
        raise MissingRunError(f"No run {run_hash!r} in repository {layout.root}.") from None
    layout.trash_dir.mkdir(parents=True, exist_ok=True)
    target = layout.trash_dir / f"{run_hash}-{secrets.token_hex(4)}"
    try:
        os.rename(run_dir, target)
    finally:
        lock.release()
    note_change(layout)
    shutil.rmtree(target, ignore_errors=True)
    empty_trash(layout)


def _ignore_for_copy(folder: str, names: list[str]) -> set[str]:
    return {n for n in names if n.startswith(TEMP_PREFIX) or n == LOCK_FILENAME}


def copy_run_folder(src: RepoLayout, dest: RepoLayout, run_hash: str) -> None:
    """Copy one finished run into `dest` (see module doc).

    Raises MissingRunError, RunLockedError (live writer) or FileExistsError (the destination
    already has a run with this hash).
    """
    run_dir = _require_run(src, run_hash)
    holder = is_run_locked(src.lock_file(run_hash))
    if holder is not None and load_run_meta(src, run_hash).end_time is None:
        raise _locked_error(run_hash, "copy", holder.describe())
    target = dest.runs_dir / run_hash
    if target.exists():
        raise FileExistsError(f"run {run_hash} already exists in repository {dest.root}")
    dest.runs_dir.mkdir(parents=True, exist_ok=True)
    tmp = dest.runs_dir / f"{TEMP_PREFIX}{run_hash}-{secrets.token_hex(4)}"
    try:
        shutil.copytree(run_dir, tmp, ignore=_ignore_for_copy)
        if target.exists():
            raise FileExistsError(f"run {run_hash} already exists in repository {dest.root}")
        os.rename(tmp, target)
        note_change(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
