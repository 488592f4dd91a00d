"""A fork waits for the imports other threads have in progress. Python holds a lock per module
while it runs the module's code; a process forked meanwhile inherits that lock held by a thread
it does not have, so its first import of the same module hangs for ever. The lazy imports of the
libraries we call make this a real hang for `Pool` and `DataLoader` workers forked while another
thread builds a frame (numpy's `np.unique` imports `numpy.ma` on first use, pyarrow and our own
modules import parts on first need). Registered once with `os.register_at_fork` when this module
is imported (by `import aim_parquet`): before each fork, the forking thread waits until no other
thread holds a module's import lock, at most `MAX_WAIT_S` (an import that never ends, or one
waiting for something the forking thread holds, delays the fork by that much, then it goes on as
before). Reads CPython's per-module locks (`importlib._bootstrap._module_locks`); where they are
not what it expects, it does not wait."""

from __future__ import annotations

import importlib._bootstrap as _bootstrap  # (the per-module import locks; no public API)
import os
import threading
import time
import weakref
from typing import Any

__all__ = ["MAX_WAIT_S", "imports_in_progress"]

MAX_WAIT_S = 5.0  # the longest a fork waits for other threads' imports
_registered = False


def imports_in_progress() -> bool:
    """Whether a thread other than this one holds a module's import lock (is running the code
    of a module it imports)."""
    locks = getattr(_bootstrap, "_module_locks", None)
    if not isinstance(locks, dict):
        return False
    me = threading.get_ident()
    for _ in range(3):
        try:
            values: list[Any] = list(locks.values())
            break
        except RuntimeError:  # (changed size while copied)
            continue
    else:
        return False
    for value in values:
        lock = value() if isinstance(value, weakref.ref) else value
        owner = getattr(lock, "owner", None)
        if isinstance(owner, int) and owner not in (0, me):
            return True
    return False


def _before_fork() -> None:
    deadline = time.monotonic() + MAX_WAIT_S
    try:
        while imports_in_progress() and time.monotonic() < deadline:
            time.sleep(0.001)
    except Exception:  # noqa: BLE001 (never stop a fork)
        return


def register() -> None:
    """Install the before-fork wait (once per process; children inherit it)."""
    global _registered
    if not _registered and hasattr(os, "register_at_fork"):
        os.register_at_fork(before=_before_fork)
        _registered = True


register()
