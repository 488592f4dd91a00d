"""The repository-wide part of `verify`: every symbolic link and special file under `.aim/`.

Nothing under `.aim/` is followed out of the repository (FORMAT.md, "Links, special files and
bounds"): readers refuse a link where a file belongs, a run folder that is a link is not a run,
and nothing is written or deleted through one. So `verify` names each link (kind `symlink`, with
its target) and each FIFO, device or socket (kind `special-file`). `--repair` never touches a link
(it may be the user's own; remove or replace it by hand) and moves a special file into
`.aim/quarantine/` (one `rename`: it is never opened). A folder this process may not list is
reported as `permission-denied`, never as damage. `quarantine/` itself is not scanned.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from aim_parquet.format.paths import RepoLayout, is_valid_run_hash
from aim_parquet.storage.base.safe_fs import describe_mode
from aim_parquet.storage.maintenance import salvage
from aim_parquet.storage.maintenance.problems import PERMISSION_DENIED, Problem


def _run_of(layout: RepoLayout, path: Path) -> str | None:
    try:
        parts = path.relative_to(layout.runs_dir).parts
    except ValueError:
        return None
    return parts[0] if parts and is_valid_run_hash(parts[0]) else None


def _link_detail(layout: RepoLayout, path: Path) -> str:
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    resolved = Path(os.path.normpath(path.parent / target))
    where = "inside" if resolved.is_relative_to(layout.aim_dir) else "outside"
    return (
        f"a symbolic link to {target!r} ({where} the repository); aim_parquet never follows links "
        "inside .aim/: nothing is read, written or deleted through it"
    )


def scan_repo(layout: RepoLayout, repair: bool) -> list[Problem]:
    """Problems for every link, special file and unlistable folder under `.aim/` (see module
    doc); with `repair`, special files are moved into quarantine."""
    problems: list[Problem] = []

    def denied(exc: OSError) -> None:
        if isinstance(exc, PermissionError):
            path = Path(exc.filename) if isinstance(exc.filename, str) else layout.aim_dir
            problems.append(
                Problem(
                    _run_of(layout, path),
                    str(path),
                    PERMISSION_DENIED,
                    "cannot list this folder (permission denied); it is not damaged: check it "
                    "as a user who may read it",
                    action="not repaired: not damage" if repair else "",
                )
            )

    quarantine = layout.quarantine_dir
    for dirpath, dirs, names in os.walk(layout.aim_dir, onerror=denied):
        folder = Path(dirpath)
        if folder == layout.aim_dir:
            dirs[:] = [d for d in dirs if folder / d != quarantine]
        for name in sorted([*dirs, *names]):
            path = folder / name
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(mode) or stat.S_ISREG(mode):
                continue
            run_hash = _run_of(layout, path)
            if stat.S_ISLNK(mode):
                action = "not repaired: remove the link (rm it) or replace it by what it points to"
                problems.append(
                    Problem(
                        run_hash,
                        str(path),
                        "symlink",
                        _link_detail(layout, path),
                        action=action if repair else "",
                    )
                )
                continue
            problem = Problem(
                run_hash,
                str(path),
                "special-file",
                f"{describe_mode(mode)} where only folders and regular files belong; never read",
            )
            if repair:
                try:
                    target = salvage.quarantine(layout, path)
                except OSError as exc:
                    problem = Problem(**{**problem.__dict__, "action": f"repair failed: {exc}"})
                else:
                    problem = Problem(
                        **{**problem.__dict__, "repaired": True, "action": f"moved to {target}"}
                    )
            problems.append(problem)
    return problems
