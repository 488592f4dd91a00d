"""What `verify` reports: a `Problem` (one damaged file) and the `Fix` `--repair` applies to it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

TEMP_GRACE_S = 600.0  # a temp file this old is a leftover even in a run that is being written
PERMISSION_DENIED = "permission-denied"  # a problem kind that is not damage


@dataclass(frozen=True)
class Problem:
    """One damaged file. `action` says what `--repair` did (empty when it was not asked)."""

    run_hash: str | None  # None for repository-level files
    path: str
    kind: str  # invalid-sidecar, missing-sidecar, future-format, invalid-manifest, ...
    detail: str
    repaired: bool = False
    action: str = ""


Fix = Callable[[], str]
