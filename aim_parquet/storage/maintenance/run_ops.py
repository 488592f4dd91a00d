"""Deleting, copying and moving whole run folders, crash-safely.

- **Delete**: take the run's write lock (so no writer can be running or start meanwhile), rename
  `runs/<hash>` to `.aim/trash/<hash>-<random>` (one atomic `rename`: the run disappears from every
  reader at once and a crash never leaves a half-deleted run that looks corrupt), release the lock,
  then remove the trash folder. In a run with several writers the lock taken is every writer's:
  `lock`, the attach gate and each rank's `writers/<r>.lock` (`storage.online.writer_gate`), so
  no rank writes it nor can attach meanwhile. Leftovers of an earlier crash in `trash/` are
  removed too. A `trash/` (or run folder) that is a symbolic link is refused: nothing is deleted
  through a link.
- **Copy**: hold the source run's compaction lock and write lock (every writer's, as for a
  delete) for the whole copy, so neither a compaction nor a resumed writer changes the run
  meanwhile (a busy run is refused, naming the holder); copy its regular files (not its lock
  files, not temp files) to `runs/.tmp-<hash>-<random>` of the destination, which readers ignore
  and whose `flock` the copy holds (so `gc` never removes it however old the copied files are),
  then rename it to
  `runs/<hash>`. A crash leaves only an ignored temp folder. A run holding a symbolic link or a
  special file (FIFO, device) is refused: nothing is copied through a link. From a read-only
  source (its lock files cannot be opened for writing) the copy takes no lock; it is refused if a
  live process writes the run, and discarded if any file of the run changed while it was copied.
- **Move**: copy, then move the source to the trash and delete it, all under the same locks, so a
  run resumed meanwhile either starts after the move (and finds no run) or makes it fail.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

from aim_parquet.errors import AimParquetError, MissingRunError, RunLockedError, UnsafeFileError
from aim_parquet.format.paths import (
    ATTACH_GATE_FILENAME,
    COMPACT_LOCK_FILENAME,
    LOCK_FILENAME,
    TEMP_PREFIX,
    WRITERS_DIRNAME,
    RepoLayout,
    validate_run_hash,
    writer_file_rank,
)
from aim_parquet.storage.base.lock import (
    held_folder,
    held_run_lock,
    hold_run_locks,
    run_lock_holder,
)
from aim_parquet.storage.base.repo_changes import note_change
from aim_parquet.storage.base.safe_fs import (
    copy_regular,
    describe_mode,
    first_link,
    remove_tree,
    require_real_dirs,
)
from aim_parquet.storage.online.writer_gate import every_writer_held

log = logging.getLogger(__name__)

_READ_ONLY_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})


def _require_run(layout: RepoLayout, run_hash: str) -> Path:
    run_dir = layout.run_dir(validate_run_hash(run_hash))
    require_real_dirs(layout.aim_dir, layout.runs_dir, None)  # (callers name the action)
    try:
        mode = os.lstat(run_dir).st_mode
    except FileNotFoundError:
        mode = 0
    if stat.S_ISLNK(mode):
        raise UnsafeFileError(
            f"{run_dir} is a symbolic link, not a run folder; aim_parquet never follows links "
            "inside .aim/. Remove the link itself (`rm`) or replace it by the run folder."
        )
    if not stat.S_ISDIR(mode):
        raise MissingRunError(f"No run {run_hash!r} in repository {layout.root}.")
    return run_dir


def _locked_error(run_hash: str, what: str, who: str) -> RunLockedError:
    return RunLockedError(
        f"Cannot {what} run {run_hash}: it is still being written by {who}. Close the run "
        "(run.close()) or wait for its process to finish, then try again."
    )


def empty_trash(layout: RepoLayout) -> None:
    """Remove whatever an interrupted delete left in `.aim/trash/` (never through a link)."""
    if first_link(layout.aim_dir, layout.trash_dir) is not None:
        return
    try:
        names = os.listdir(layout.trash_dir)
    except (FileNotFoundError, NotADirectoryError):
        return
    for name in names:
        with contextlib.suppress(OSError):
            remove_tree(layout.trash_dir / name)


def _move_to_trash(layout: RepoLayout, run_hash: str) -> Path:
    """Rename the run folder into `.aim/trash/` (the caller holds its write lock)."""
    require_real_dirs(layout.aim_dir, layout.trash_dir, f"delete run {run_hash}")
    layout.trash_dir.mkdir(parents=True, exist_ok=True)
    require_real_dirs(layout.aim_dir, layout.trash_dir, f"delete run {run_hash}")
    target = layout.trash_dir / f"{run_hash}-{secrets.token_hex(4)}"
    os.rename(layout.run_dir(run_hash), target)
    note_change(layout)
    return target


def _finish_delete(layout: RepoLayout, target: Path) -> None:
    with contextlib.suppress(OSError):
        remove_tree(target)
    empty_trash(layout)


def delete_run_folder(layout: RepoLayout, run_hash: str) -> None:
    """Delete one run (see module doc). Raises MissingRunError, RunLockedError or
    UnsafeFileError (a run folder or `trash/` that is a link)."""
    _require_run(layout, run_hash)
    require_real_dirs(layout.aim_dir, layout.trash_dir, f"delete run {run_hash}")
    try:
        with held_run_lock(layout.lock_file(run_hash), run_hash) as who:
            if who is not None:
                raise _locked_error(run_hash, "delete", who)
            with every_writer_held(layout, run_hash, "delete"):
                target = _move_to_trash(layout, run_hash)
    except FileNotFoundError:
        if os.path.lexists(layout.run_dir(run_hash)):
            raise
        raise MissingRunError(f"No run {run_hash!r} in repository {layout.root}.") from None
    _finish_delete(layout, target)


# -- copy and move -----------------------------------------------------------------------------


def _check_copyable(run_dir: Path, run_hash: str) -> None:
    """Refuse a run holding a link or a special file (nothing is copied through a link)."""
    for dirpath, dirs, names in os.walk(run_dir):
        for name in [*dirs, *names]:
            path = Path(dirpath) / name
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                continue
            if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
                raise UnsafeFileError(
                    f"cannot copy run {run_hash}: {path} is {describe_mode(mode)}; aim_parquet "
                    "never copies links or special files. Remove it (`aim-parquet verify` lists "
                    "such files) and retry."
                )


def _ignore_for_copy(folder: str, names: list[str]) -> set[str]:
    """Temp files and lock files (the main `lock`, `compact.lock`, and in `writers/` each
    rank's lock and the attach gate): a copied lock would name this tool, held while it copies."""
    ignored = {
        n for n in names if n.startswith(TEMP_PREFIX) or n in (LOCK_FILENAME, COMPACT_LOCK_FILENAME)
    }
    if os.path.basename(folder) == WRITERS_DIRNAME:
        for name in names:
            found = writer_file_rank(name)
            if name == ATTACH_GATE_FILENAME or (found is not None and found[1] == "lock"):
                ignored.add(name)
    return ignored


def _tree_state(run_dir: Path) -> dict[str, tuple[int, int, int]]:
    """(size, mtime_ns, inode) of every entry a copy takes, to notice a change during it."""
    out = {}
    for dirpath, dirs, names in os.walk(run_dir):
        dirs[:] = [d for d in dirs if not d.startswith(TEMP_PREFIX)]
        for name in names:
            if name in _ignore_for_copy(dirpath, [name]):
                continue
            path = os.path.join(dirpath, name)
            with contextlib.suppress(FileNotFoundError):
                st = os.lstat(path)
                out[os.path.relpath(path, run_dir)] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return out


@contextlib.contextmanager
def _source_held(src: RepoLayout, run_hash: str, what: str) -> Iterator[bool]:
    """Hold the source run's compaction and write locks; yields True, or False when the source
    is read-only for us (its lock files cannot be opened for writing: no lock is taken).
    Raises RunLockedError naming the holder when the run is busy."""
    stack = contextlib.ExitStack()
    busy: str | None = None
    try:
        busy = stack.enter_context(hold_run_locks(src, run_hash))
        is_locked = True
    except FileNotFoundError:
        raise MissingRunError(f"No run {run_hash!r} in repository {src.root}.") from None
    except OSError as exc:
        if exc.errno not in _READ_ONLY_ERRNOS or isinstance(exc, UnsafeFileError):
            raise
        is_locked = False
    with stack:
        if busy is not None:
            raise RunLockedError(
                f"Cannot {what} run {run_hash}: {busy}. Try again when it is done (a run being "
                "written: close it or wait for its process to finish)."
            )
        if is_locked:
            stack.enter_context(every_writer_held(src, run_hash, what))
        else:
            holder = run_lock_holder(src, run_hash)
            if holder is not None:
                raise _locked_error(run_hash, what, holder.describe())
        yield is_locked


def check_destination(src: RepoLayout, dest_root: Path) -> None:
    """Refuse a copy or move into the source repository itself or anywhere inside its `.aim/`
    (a run folder, `trash/`, ...): a move would delete the copy with its source, or `gc`
    would. Checked on resolved paths, before the destination is created."""
    src_aim = Path(os.path.realpath(src.aim_dir))
    dest_aim = Path(os.path.realpath(RepoLayout(dest_root).aim_dir))
    if dest_aim == src_aim:
        raise AimParquetError(f"the destination {dest_root} is this repository")
    if src_aim in dest_aim.parents:
        raise AimParquetError(
            f"the destination {dest_root} lies inside this repository's {src.aim_dir}; choose "
            "a folder outside it."
        )


def _copy_into(src: RepoLayout, dest: RepoLayout, run_hash: str, is_locked: bool) -> None:
    check_destination(src, dest.root)
    run_dir = src.run_dir(run_hash)
    _check_copyable(run_dir, run_hash)
    target = dest.runs_dir / run_hash
    require_real_dirs(dest.root, dest.runs_dir, f"copy run {run_hash} into {dest.root}")
    if os.path.lexists(target):
        raise FileExistsError(f"run {run_hash} already exists in repository {dest.root}")
    dest.runs_dir.mkdir(parents=True, exist_ok=True)
    tmp = dest.runs_dir / f"{TEMP_PREFIX}{run_hash}-{secrets.token_hex(4)}"
    before = None if is_locked else _tree_state(run_dir)
    try:
        tmp.mkdir()
        with held_folder(tmp):  # (copied files keep their old mtimes: gc goes by this lock)
            shutil.copytree(
                run_dir,
                tmp,
                symlinks=True,
                ignore=_ignore_for_copy,
                copy_function=copy_regular,
                dirs_exist_ok=True,
            )
            if before is not None and _tree_state(run_dir) != before:
                raise RunLockedError(
                    f"Cannot copy run {run_hash}: its files changed while they were copied (a "
                    "writer or compactor works on it, and its read-only repository lets no lock "
                    "be taken). Try again when it is done."
                )
            if os.path.lexists(target):
                raise FileExistsError(f"run {run_hash} already exists in repository {dest.root}")
            os.rename(tmp, target)
        note_change(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def copy_run_folder(src: RepoLayout, dest: RepoLayout, run_hash: str) -> None:
    """Copy one run into `dest` (see module doc).

    Raises MissingRunError, RunLockedError (a live writer, a compaction in progress),
    UnsafeFileError (a link or special file in the run) or FileExistsError (the destination
    already has a run with this hash).
    """
    _require_run(src, run_hash)
    with _source_held(src, run_hash, "copy") as is_locked:
        _copy_into(src, dest, run_hash, is_locked)


def move_run_folder(src: RepoLayout, dest: RepoLayout, run_hash: str) -> None:
    """Move one run into `dest`: copy, then delete the source, under the same locks (see module
    doc). Raises as `copy_run_folder`; the source is left as it was when anything fails."""
    _require_run(src, run_hash)
    require_real_dirs(src.aim_dir, src.trash_dir, f"move run {run_hash}")
    with _source_held(src, run_hash, "move") as is_locked:
        if not is_locked:
            raise PermissionError(
                f"Cannot move run {run_hash}: its repository {src.root} is not writable for "
                "you (copy it with `aim-parquet runs cp` instead)."
            )
        _copy_into(src, dest, run_hash, is_locked)
        target = _move_to_trash(src, run_hash)
    _finish_delete(src, target)
