"""The one atomic-write path: temp file in the same folder, fsync, `os.replace`.

Temp files start with `.tmp-`; every reader ignores such names and `aim-parquet gc` removes old ones.
`replace_folder` publishes a folder built under a temp name in place of an older one (an export):
one atomic exchange of the two names where the kernel offers it (Linux `renameat2`), else two
renames.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

from aim_parquet.format.json_records import json_bytes
from aim_parquet.format.paths import TEMP_PREFIX
from aim_parquet.storage.base.files import write_all


def temp_path_for(path: Path) -> Path:
    return path.with_name(f"{TEMP_PREFIX}{path.name}-{secrets.token_hex(4)}")


def fsync_file(path: str | os.PathLike[str]) -> None:
    """Make a written file durable (opened without following a link); OSError if it cannot."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace `path` with `data` so readers see either the old or the new content, never a mix.

    `durable=True` also fsyncs the file and its folder (survives power loss, not only a crash).
    """
    tmp = temp_path_for(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        try:
            write_all(fd, data)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(path.parent)


def atomic_write_json(path: Path, obj: Any, *, durable: bool = True) -> None:
    atomic_write(path, json_bytes(obj, sort_keys=True, indent=1), durable=durable)


def read_bytes(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError, ImportError):
        return False
    result = renameat2(
        _AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), ctypes.c_uint(_RENAME_EXCHANGE)
    )
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), os.fspath(a))


def replace_folder(new: Path, target: Path) -> None:
    """Put the folder `new` (same parent) at `target`, replacing the folder there: readers see the
    old folder or the new one, never a mix (and, where the kernel exchanges names atomically,
    never no folder). The old content is removed afterwards."""
    if not os.path.lexists(target):
        os.rename(new, target)
    elif _exchange(new, target):
        shutil.rmtree(new, ignore_errors=True)  # `new` now holds the old folder
    else:
        old = temp_path_for(target)
        os.rename(target, old)
        os.rename(new, target)
        shutil.rmtree(old, ignore_errors=True)
    fsync_dir(target.parent)
