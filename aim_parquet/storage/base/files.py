"""Small file helpers every wing uses: the one copy of each.

- `write_all`: write every byte of a buffer to a descriptor (`os.write` may write less).
- `list_names`: the sorted names in a folder, none when it does not exist (yet, or any more).
- `folder_usage` / `path_size`: what regular files under a folder hold (never following a link).
- `age_s`: seconds since a path was last modified (its own mtime: a link is not followed).

Opening files safely (no link followed, bounded reads) is `storage.base.safe_fs`'s job; atomic
replacement and fsync are `storage.base.atomic`'s.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write all of `data` to `fd`, looping over short writes."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def list_names(folder: str | os.PathLike[str]) -> list[str]:
    """The names in `folder`, sorted; [] when it does not exist."""
    try:
        return sorted(os.listdir(folder))
    except FileNotFoundError:
        return []


def folder_usage(folder: str | os.PathLike[str]) -> tuple[int, int]:
    """(files, bytes) of every file under `folder` (sizes from `lstat`; a file removed meanwhile
    is not counted)."""
    files = size = 0
    for dirpath, _dirs, names in os.walk(folder):  # (never descends into a linked folder)
        for name in names:
            try:
                size += os.lstat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:
                continue
            files += 1
    return files, size


def path_size(path: Path) -> int:
    """The bytes a file, link or folder (every file under it) takes; 0 when it is gone."""
    if path.is_dir() and not path.is_symlink():
        return folder_usage(path)[1]
    try:
        return path.lstat().st_size
    except FileNotFoundError:
        return 0


def age_s(path: str | os.PathLike[str], now: float | None = None) -> float:
    """Seconds from `path`'s last modification to `now` (the current time when None); 0 when
    it is gone."""
    now = time.time() if now is None else now
    try:
        return now - os.lstat(path).st_mtime
    except FileNotFoundError:
        return 0.0
