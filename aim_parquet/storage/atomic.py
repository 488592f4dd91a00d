"""The one atomic-write path: temp file in the same folder, fsync, `os.replace`.

Temp files start with `.tmp-`; every reader ignores such names and `aim-parquet gc` removes old ones.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Any

from aim_parquet.format.meta import json_bytes
from aim_parquet.format.paths import TEMP_PREFIX


def temp_path_for(path: Path) -> Path:
    return path.with_name(f"{TEMP_PREFIX}{path.name}-{secrets.token_hex(4)}")


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
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
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
