"""Orphaned params files for `gc`: a `params-<digest>.json` of a run folder that its `run.json`
does not name (FORMAT.md, "Large params").

A writer writes a new params file before the sidecar that names it, then removes the file it
superseded (`storage.online.params_file`); a writer killed between the two leaves the superseded
file behind, and nothing else removes it. `gc` removes such a file only when all of these hold:

- it was listed before the run's writer was checked, and that check found no live writer (a
  writer that resumes later only writes files that were not listed);
- it is at least the grace period old, and so is `run.json` (no writer changed the run within the
  grace period: a writer that resumes meanwhile and reuses a file left on disk makes `run.json`
  young, and a file it writes is young);
- `run.json`, read after that check and read again just before each removal (the same bytes),
  names another file or none: the current params file is never removed;
- it is moved aside (renamed to a `.tmp-` name) before it is removed, and the writer and
  `run.json` are checked once more after the move: a writer that resumed in between and set params
  whose file it is (a writer reuses a params file it finds on disk) is live, or has written a
  `run.json` that names it, and the file is put back. (A writer that checks for the file after the
  move writes it again.)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from aim_parquet.errors import AimParquetError
from aim_parquet.format.json_records import loads_json_object
from aim_parquet.format.paths import TEMP_PREFIX, RepoLayout, is_params_file_name
from aim_parquet.storage.base.files import age_s
from aim_parquet.storage.base.lock import WriterState, writer_state
from aim_parquet.storage.base.safe_fs import MAX_JSON_FILE_BYTES, first_link, read_regular


def list_params_files(run_dir: Path) -> list[Path]:
    """The params files of a run folder, listed before its writer is checked."""
    try:
        names = os.listdir(run_dir)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [run_dir / name for name in sorted(names) if is_params_file_name(name)]


def _sidecar(layout: RepoLayout, run_hash: str) -> tuple[bytes, str | None]:
    """`run.json`'s bytes and the params file it names (None: params inline)."""
    path = layout.sidecar(run_hash)
    raw = read_regular(path, "sidecar", MAX_JSON_FILE_BYTES)
    name = loads_json_object(raw, f"sidecar {path}").get("params_file")
    return raw, name if isinstance(name, str) else None


def remove_orphaned_params_files(
    layout: RepoLayout,
    run_hash: str,
    listed: list[Path],
    grace_s: float,
    now: float,
    remove: Callable[[Path, Path], None],
) -> str | None:
    """`remove(moved, path)` each of `listed` gc may remove, once moved aside (see module doc); a
    note when none may be looked at (a live writer is no reason for one: it prunes its own
    files)."""
    if not listed or writer_state(layout, run_hash) is WriterState.LIVE:
        return None
    try:
        raw, current = _sidecar(layout, run_hash)
    except FileNotFoundError:
        return None  # deleted meanwhile, or being created
    except (OSError, AimParquetError) as exc:
        return f"run {run_hash}: params files kept, its run.json cannot be read ({exc})"
    if age_s(layout.sidecar(run_hash), now) < grace_s:
        return None  # written within the grace period: a writer may be at work
    for path in listed:
        if path.name == current or age_s(path, now) < grace_s:
            continue
        try:
            again, _ = _sidecar(layout, run_hash)
        except (OSError, AimParquetError):
            return None
        if again != raw or writer_state(layout, run_hash) is WriterState.LIVE:
            return None  # the run changed, or a writer resumed: left for the next gc
        moved = path.with_name(f"{TEMP_PREFIX}gc-{path.name}")
        if first_link(layout.aim_dir, path.parent) is not None:
            remove(path, path)  # (refused, with a note: nothing is moved through a link)
            continue
        try:
            os.rename(path, moved)
        except FileNotFoundError:
            continue
        if _still_orphaned(layout, run_hash, raw):
            remove(moved, path)
        else:
            os.replace(moved, path)  # a writer resumed onto it: its bytes back (same digest)
            return None
    return None


def _still_orphaned(layout: RepoLayout, run_hash: str, raw: bytes) -> bool:
    """After a move aside: no writer is live now, and `run.json` is still `raw` (checked in this
    order: a writer that let go meanwhile wrote its `run.json` before)."""
    if writer_state(layout, run_hash) is WriterState.LIVE:
        return False
    try:
        again, _ = _sidecar(layout, run_hash)
    except (OSError, AimParquetError):
        return False
    return again == raw
