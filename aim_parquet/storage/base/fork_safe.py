"""A lock that a forked child gets released. A `threading.Lock` held by one thread when another
forks stays held for ever in the child (the thread that would release it is not there), so a
`Pool` or `DataLoader` worker forked at that moment hangs the first time it takes the lock. Every
`ForkSafeLock` is made anew in the child (`os.register_at_fork`)."""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

__all__ = ["ForkSafeLock"]

_LOCKS: weakref.WeakSet[ForkSafeLock] = weakref.WeakSet()


class ForkSafeLock:
    """A `threading.Lock` (a `threading.RLock` with `reentrant`) for `with` blocks, free again
    in a forked child (module doc)."""

    def __init__(self, *, reentrant: bool = False) -> None:
        self._reentrant = reentrant
        self._lock: Any = threading.RLock() if reentrant else threading.Lock()
        _LOCKS.add(self)

    def __enter__(self) -> bool:
        return bool(self._lock.acquire())

    def __exit__(self, *exc: Any) -> None:
        self._lock.release()

    def locked(self) -> bool:
        """Whether a thread holds it (for a reentrant lock: whether it could not be taken now)."""
        if not self._reentrant:
            return bool(self._lock.locked())
        if self._lock.acquire(blocking=False):
            self._lock.release()
            return False
        return True


def _after_fork_in_child() -> None:
    for lock in list(_LOCKS):
        lock._lock = threading.RLock() if lock._reentrant else threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
