"""Background threads that never take the process's signals.

A signal sent to a process (a scheduler's or `Pool.terminate()`'s SIGTERM, Ctrl-C's SIGINT) is
delivered by the kernel to any one thread that does not block it. Python runs its handlers only on
the main thread, and when the signal lands on another thread it merely sets a flag: a main thread
blocked in C (a `Pool` worker waiting for its task queue's lock, a `join()`) is not woken, so the
handler never runs and the process never ends (`Pool.__exit__` then waits for that worker
forever). Every thread aim_parquet starts therefore blocks the asynchronous signals: it inherits
the mask from the thread that starts it, which blocks them only for the duration of the start.
"""

from __future__ import annotations

import _thread
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

# Signals raised by the thread's own fault (or that cannot be blocked) stay deliverable to it.
_SYNCHRONOUS = {"SIGKILL", "SIGSTOP", "SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL", "SIGTRAP", "SIGSYS"}
_CAN_MASK = hasattr(signal, "pthread_sigmask")
ASYNC_SIGNALS: frozenset[int] = frozenset(
    sig
    for sig in (signal.valid_signals() if _CAN_MASK else ())
    if not (isinstance(sig, signal.Signals) and sig.name in _SYNCHRONOUS)
)


@contextmanager
def signals_blocked() -> Iterator[None]:
    """Block the asynchronous signals on this thread while threads are started (they inherit the
    mask: wrap a `ThreadPoolExecutor.submit` loop, whose threads start on submit); a signal that
    arrives meanwhile stays pending and is delivered here when the mask comes back."""
    if not _CAN_MASK:
        yield
        return
    try:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, ASYNC_SIGNALS)
    except (OSError, ValueError):  # a platform without per-thread masks
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def start_thread(thread: threading.Thread) -> None:
    """`thread.start()`, with the asynchronous signals blocked in the new thread."""
    with signals_blocked():
        thread.start()


def start_new_thread(function: Callable[..., Any], args: tuple[Any, ...]) -> int:
    """`_thread.start_new_thread` (no `threading` lock taken: safe in a signal handler or a
    garbage-collection callback), with the asynchronous signals blocked in the new thread."""
    with signals_blocked():
        return _thread.start_new_thread(function, args)
