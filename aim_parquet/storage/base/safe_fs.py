"""Opening, locking and removing files inside `.aim/` without following anything out of it.

The rule (FORMAT.md, "Links, special files and bounds"): nothing under `.aim/` is followed out of
the repository, and no read is unbounded.

- `open_regular` opens with `O_NOFOLLOW` (a symbolic link is refused, never followed) and
  `O_NONBLOCK` (opening a FIFO does not hang), then requires a regular file (`fstat`): a link,
  FIFO, device, socket or folder raises `UnsafeFileError` naming the file. `read_regular` and
  `map_regular` add a size bound.
- Lock files are opened with `open_regular` too; taking and naming locks (a file's or a
  folder's) is `storage.base.lock`'s job.
- `require_real_dirs` refuses a write or deletion when a folder between `.aim/` and the target is
  a link (`require_real_run_dir`: `.aim/runs/` or a run folder); `remove_tree` never follows one.

Permission errors pass through as `PermissionError`: callers report them as such, never as
damage, and never repair what they cannot read.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import mmap
import os
import shutil
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from aim_parquet.errors import UnsafeFileError

if TYPE_CHECKING:
    import pyarrow as pa

O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_LINK_ERRNOS = frozenset({errno.ELOOP, errno.EMLINK})  # Linux says ELOOP, the BSDs EMLINK

MAX_JSON_FILE_BYTES = 256 << 20  # sidecars, manifests, the run index: far above any real one
MAX_LOCK_FILE_BYTES = 4096  # a lock file holds one small JSON identity


def describe_mode(mode: int) -> str:
    """What kind of file `mode` (an `st_mode`) is, in words."""
    for test, words in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a folder"),
    ):
        if test(mode):
            return words
    return "a special file"


def link_error(path: str | os.PathLike[str], what: str) -> UnsafeFileError:
    target = ""
    with contextlib.suppress(OSError):
        target = f" (to {os.readlink(path)!r})"
    return UnsafeFileError(
        f"{what} {os.fspath(path)} is a symbolic link{target}; aim_parquet never follows links "
        "inside .aim/. Replace it by the file itself or remove it (`aim-parquet verify` lists "
        "every link)."
    )


def not_regular_error(path: str | os.PathLike[str], what: str, mode: int) -> UnsafeFileError:
    return UnsafeFileError(
        f"{what} {os.fspath(path)} is {describe_mode(mode)}, not a regular file; aim_parquet "
        "does not read it. Remove it (`aim-parquet verify` lists such files)."
    )


def open_regular(
    path: str | os.PathLike[str], what: str, flags: int = os.O_RDONLY, mode: int = 0o644
) -> int:
    """A descriptor of the regular file at `path` (see module doc); close it yourself.

    Raises UnsafeFileError for a link or a file that is not regular, and the OSError of `open`
    otherwise (FileNotFoundError, PermissionError, ...).
    """
    return _open_regular_stat(path, what, flags, mode)[0]


def _open_regular_stat(
    path: str | os.PathLike[str], what: str, flags: int = os.O_RDONLY, mode: int = 0o644
) -> tuple[int, os.stat_result]:
    """`open_regular`, and the `fstat` it checked the file with."""
    try:
        fd = os.open(path, flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno in _LINK_ERRNOS and os.path.islink(path):
            raise link_error(path, what) from None
        if exc.errno == errno.ENXIO:  # a FIFO opened for writing with no reader
            raise not_regular_error(path, what, stat.S_IFIFO) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise not_regular_error(path, what, st.st_mode)
        if O_NONBLOCK and flags & (os.O_WRONLY | os.O_RDWR):  # (a regular file ignores it;
            # clear it anyway where we write: some network filesystems honour it)
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def _too_large(path: str | os.PathLike[str], what: str, size: int, limit: int) -> UnsafeFileError:
    return UnsafeFileError(
        f"{what} {os.fspath(path)} is {size:,} bytes, more than the {limit:,} bytes aim_parquet "
        "reads for it; it is not a file aim_parquet wrote. Move it away or run "
        "`aim-parquet verify --repair`."
    )


def read_regular(path: str | os.PathLike[str], what: str, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most `max_bytes` (UnsafeFileError beyond)."""
    fd, st = _open_regular_stat(path, what)
    try:
        size = st.st_size
        if size > max_bytes:
            raise _too_large(path, what, size, max_bytes)
        chunks = []
        total = 0
        while True:  # the file may grow while we read: never read more than the bound
            chunk = os.read(fd, max(1 << 16, size - total + 1))
            if not chunk:
                break
            total += len(chunk)
            if total > max_bytes:
                raise _too_large(path, what, total, max_bytes)
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def map_regular(
    path: str | os.PathLike[str], what: str, *, small_bytes: int, max_bytes: int | None = None
) -> bytes | pa.Buffer:
    """A regular file's content: read into memory up to `small_bytes`, memory-mapped beyond (a
    map costs no memory until read)."""
    fd = open_regular(path, what)
    try:
        size = os.fstat(fd).st_size
        if max_bytes is not None and size > max_bytes:
            raise _too_large(path, what, size, max_bytes)
        if size <= small_bytes:
            chunks = []
            left = size
            while left > 0:
                chunk = os.read(fd, left)
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
            return b"".join(chunks)
        import pyarrow as pa  # only a large file's reader pays for pyarrow

        return pa.py_buffer(mmap.mmap(fd, size, access=mmap.ACCESS_READ))
    finally:
        os.close(fd)


def copy_regular(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> str:
    """Copy a regular file (opened without following a link; a FIFO or device is refused) to a
    new file `dst`, with its times and mode; `shutil.copytree`'s copy function signature."""
    fd = open_regular(src, "file")
    with os.fdopen(fd, "rb") as fsrc, open(dst, "xb") as fdst:
        shutil.copyfileobj(fsrc, fdst, 1 << 20)
        fdst.flush()
        os.fsync(fdst.fileno())
    shutil.copystat(src, dst, follow_symlinks=False)
    return os.fspath(dst)


def first_link(base: Path, path: Path) -> Path | None:
    """The first entry from `base` (excluded) down to `path` (included) that is a symbolic link,
    or None. Missing entries end the walk (nothing below them exists)."""
    try:
        rel = path.relative_to(base)
    except ValueError:
        return None
    current = base
    for part in rel.parts:
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(mode):
            return current
    return None


def require_real_dirs(base: Path, path: Path, what: str | None) -> None:
    """Raise UnsafeFileError when a folder from `base` down to `path` is a symbolic link: a
    write or deletion there would reach outside the repository. `what` (the message starts
    "cannot <what>: ") may be None where the caller names the action itself."""
    link = first_link(base, path)
    if link is not None:
        raise UnsafeFileError(
            ("" if what is None else f"cannot {what}: ")
            + f"{link} is a symbolic link; aim_parquet never writes or deletes through links "
            "inside .aim/. Replace it by a real folder (or remove the link) and retry."
        )


def require_real_run_dir(run_file: Path, what: str) -> None:
    """Raise UnsafeFileError when `.aim/runs` or the run folder holding `run_file` (a file
    directly in `.aim/runs/<hash>/`: its lock, sidecar, ...) is a symbolic link."""
    run_dir = run_file.parent
    require_real_dirs(run_dir.parent.parent, run_dir, what)


def remove_tree(path: Path) -> None:
    """Remove a folder (or a file, or a link itself), never following a link."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        shutil.rmtree(path)  # fd-based where supported: never follows a link inside
    else:
        os.unlink(path)
