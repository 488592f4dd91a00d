"""Process-exit handling for open runs: an `atexit` hook and a SIGTERM handler.

Both close every open writable run (flushing its data and setting `end_time`). The SIGTERM handler
is installed only when the process still has the default handler, and after closing the runs it
restores the default and re-sends the signal, so the exit status stays "killed by SIGTERM".
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import threading
import weakref
from collections.abc import Callable
from types import FrameType

log = logging.getLogger(__name__)

_closers: weakref.WeakValueDictionary[int, _Closable] = weakref.WeakValueDictionary()
_lock = threading.Lock()
_installed = False


class _Closable:
    """Anything with `close()`; the registry holds it weakly."""

    close: Callable[[], None]


def register(obj: object) -> None:
    """Close `obj` at interpreter exit or SIGTERM (held weakly: collected runs need nothing)."""
    global _installed
    with _lock:
        _closers[id(obj)] = obj  # type: ignore[assignment]
        if _installed:
            return
        _installed = True
    atexit.register(close_all)
    if threading.current_thread() is threading.main_thread():
        with contextlib.suppress(ValueError, OSError):
            if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
                signal.signal(signal.SIGTERM, _on_sigterm)


def unregister(obj: object) -> None:
    with _lock:
        _closers.pop(id(obj), None)


def close_all() -> None:
    with _lock:
        objs = list(_closers.values())
    for obj in objs:
        try:
            obj.close()
        except Exception as exc:  # exiting: report, keep closing the others
            log.error("aim_parquet: closing %r at exit failed: %s", obj, exc)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    close_all()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)
