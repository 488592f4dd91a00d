"""Creating and opening repository folders (`.aim/` with its marker file)."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from aim_parquet.errors import AimRepositoryError, RepoNotFoundError, StorageError
from aim_parquet.format.json_records import loads_json_object
from aim_parquet.format.meta import RepoMarker
from aim_parquet.format.paths import AIM_REPO_FILES, RepoLayout, resolve_repo_root, writer_file_rank
from aim_parquet.storage.base.atomic import atomic_write_json
from aim_parquet.storage.base.safe_fs import MAX_JSON_FILE_BYTES, read_regular


def _check_marker(layout: RepoLayout) -> None:
    what = f"repository marker {layout.marker}"
    try:
        raw = read_regular(layout.marker, "repository marker", MAX_JSON_FILE_BYTES)
    except FileNotFoundError:
        return
    RepoMarker.from_json(loads_json_object(raw, what), what)


ALLOW_AIM_REPO_ENV = "AIM_PARQUET_ALLOW_AIM_REPO"


def is_aim_repo(root: Path) -> bool:
    """True when `root/.aim` holds an Aim (RocksDB) repository's files."""
    aim_dir = RepoLayout(root).aim_dir
    return any(os.path.lexists(aim_dir / name) for name in AIM_REPO_FILES)


def _aim_repo_error(layout: RepoLayout, what: str) -> AimRepositoryError:
    return AimRepositoryError(
        f"{layout.aim_dir} is an Aim repository (RocksDB), not an aim_parquet one; {what}. "
        f"Convert it with `aim-parquet convert aim {layout.root} --repo NEW_FOLDER` and use "
        f"NEW_FOLDER (the Aim repository is only read). To write aim_parquet runs into this "
        f"folder anyway, next to Aim's files, set {ALLOW_AIM_REPO_ENV}=1."
    )


def _allows_aim_repo() -> bool:
    return os.environ.get(ALLOW_AIM_REPO_ENV, "") not in ("", "0")


def is_repo(root: Path) -> bool:
    layout = RepoLayout(root)
    return layout.marker.is_file() or layout.runs_dir.is_dir()


def open_repo(repo: str | os.PathLike[str] | None, *, check_marker: bool = True) -> RepoLayout:
    """The layout of an existing repository; RepoNotFoundError when there is none, and (with
    `check_marker`) CorruptFileError or FormatVersionError for a damaged or newer marker."""
    root = resolve_repo_root(repo)
    layout = RepoLayout(root)
    if not is_repo(root):
        if is_aim_repo(root):
            raise _aim_repo_error(layout, "aim_parquet cannot read it")
        raise RepoNotFoundError(
            f"Cannot find an aim_parquet repository at {root} (no {layout.aim_dir}/ with runs). "
            "Create one with `aim-parquet init --repo DIR` or by starting a Run there."
        )
    if check_marker:
        _check_marker(layout)
    return layout


def _make_runs_dir(layout: RepoLayout) -> None:
    """`.aim/runs/` (and the folders above it), or an error that names the path in the way."""
    try:
        layout.runs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        existing = next(p for p in (layout.runs_dir, *layout.runs_dir.parents) if p.exists())
        blocker = None if existing.is_dir() else existing
        why = f"{blocker} is a file, not a folder" if blocker is not None else str(exc)
        raise StorageError(
            f"cannot create the repository at {layout.root}: {why}; pass a folder as the repo."
        ) from exc


def ensure_repo(repo: str | os.PathLike[str] | None) -> RepoLayout:
    """The layout of the repository at `repo`, created if missing (idempotent, race-safe).

    Refuses (AimRepositoryError) to write into a folder whose `.aim/` is an Aim repository,
    unless AIM_PARQUET_ALLOW_AIM_REPO=1 asks for it."""
    root = resolve_repo_root(repo)
    layout = RepoLayout(root)
    if is_aim_repo(root) and not _allows_aim_repo():
        raise _aim_repo_error(layout, "aim_parquet does not write into it")
    if layout.marker.is_file():
        _check_marker(layout)
        _make_runs_dir(layout)
        return layout
    _make_runs_dir(layout)
    with contextlib.suppress(FileExistsError):
        atomic_write_json(layout.marker, RepoMarker(created_at=time.time()).to_json())
    return layout


def writer_ranks(layout: RepoLayout, run_hash: str, suffix: str | None = None) -> list[int]:
    """The ranks (>= 1) with a file in the run's `writers/` folder (`suffix` "json": a part,
    "lock": a lock file; None: either), sorted. A `writers` that is a link holds none."""
    path = os.fspath(layout.writers_dir(run_hash))
    try:
        if os.path.islink(path):
            return []
        names = os.listdir(path)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []  # (a run folder others may not enter: its writers are unknown, as its lock)
    ranks = set()
    for name in names:
        found = writer_file_rank(name)
        if found is not None and (suffix is None or found[1] == suffix):
            ranks.add(found[0])
    return sorted(ranks)
