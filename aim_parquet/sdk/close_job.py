"""`CloseJob`: a run's close done once, on its own thread, that an interrupt on the waiting thread
cannot cut short (deferred until the close is done; a third one stops waiting), and the work of
closing a run (`close_run_parts`). `sdk.lifecycle` decides when runs are closed.

A Ctrl-C during `close()` (`CloseJob.run_to_end`) is never lost: Python runs the SIGINT handler
at whatever bytecode the main thread reaches next, and when that is inside a garbage collection
(a gc callback, a finalizer, a weakref callback) it prints "Exception ignored" and drops the
KeyboardInterrupt. While the close runs on the main thread, the SIGINT handler (when it is
Python's default) is one that also counts the interrupts, so one dropped that way is raised when
the close is done."""

from __future__ import annotations

import _thread
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from aim_parquet.storage.index.closed_journal import append_closed
from aim_parquet.storage.online.run_writer import RunWriter
from aim_parquet.system.threads import start_new_thread

__all__ = ["INTERRUPTS_TO_ABANDON", "JOBS", "CloseJob", "close_run_parts"]

log = logging.getLogger(__name__)

INTERRUPTS_TO_ABANDON = 3  # Ctrl-Cs while waiting for a close that make the waiter give up

JOBS: set[CloseJob] = set()
"""Closes under way in this process (set.add/discard are atomic): exit waits for them, a forked
child forgets them."""


class CloseJob:
    """Runs `work` once on its own thread; `wait()` returns when it is done (see module doc)."""

    def __init__(
        self, work: Callable[..., None], what: str, *, pending: Callable[[], str] | None = None
    ) -> None:
        self.what = what
        self._pending = pending  # says what is not written yet, for the interrupt messages
        self.error: BaseException | None = None
        self._work: Callable[..., None] | None = work
        self._start_guard = _thread.allocate_lock()
        # One lock per waiter, held until the work is done: a waiter never shares a lock, so an
        # interrupt that lands between its acquire and anything after cannot leave a lock held
        # that another waiter (or the worker) needs.
        self._waiters: list[Any] = []
        self._thread_id: int | None = None
        self.is_done = False

    def start(self, *args: Any) -> None:
        """Start the work (with `args`) unless it was started already. Takes no lock that can
        block: safe in a garbage-collection callback and on any thread."""
        if not self._start_guard.acquire(False):
            return
        JOBS.add(self)
        try:
            start_new_thread(self._run, args)
        except RuntimeError:  # interpreter shutdown: no new threads; close right here
            self._run(*args)

    def _run(self, *args: Any) -> None:
        self._thread_id = _thread.get_ident()
        work, self._work = self._work, None
        try:
            if work is not None:
                work(*args)
        except BaseException as exc:  # reported by whoever waits (or logged, for a finalizer)
            self.error = exc
            log.error("aim_parquet: %s failed: %r", self.what, exc)
        finally:
            self.is_done = True  # before the waiters are read: one that registers later sees it
            for waiter in list(self._waiters):
                waiter.release()
            JOBS.discard(self)

    def run_to_end(self, *args: Any) -> None:
        """`start(*args)`, then `wait()`; a Ctrl-C that Python dropped meanwhile (module doc) is
        raised as KeyboardInterrupt once the work is done."""
        with _counted_interrupts() as seen:
            self.start(*args)
            self.wait()
        if seen:
            raise KeyboardInterrupt

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the work is done (False: `timeout_s` passed first). KeyboardInterrupt and
        SystemExit raised meanwhile are re-raised after it is done; the third one is raised at
        once, leaving the work to finish in the background."""
        if self._thread_id == _thread.get_ident():
            return True  # called from the work itself
        waiter = _thread.allocate_lock()
        waiter.acquire()
        self._waiters.append(waiter)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        deferred: BaseException | None = None
        interrupts = 0
        while not self.is_done:
            try:
                if deadline is None:
                    waiter.acquire()
                elif not waiter.acquire(timeout=max(0.0, deadline - time.monotonic())):
                    return False
            except (KeyboardInterrupt, SystemExit) as exc:
                interrupts += 1
                deferred = deferred or exc
                pending = self._pending() if self._pending is not None else "some data"
                if interrupts >= INTERRUPTS_TO_ABANDON:
                    log.error(
                        "aim_parquet: stopped waiting for %s after %d interrupts with %s not "
                        "written yet; the close goes on in the background but ends with the "
                        "process, and then end_time is not set (`aim-parquet runs close` sets it).",
                        self.what,
                        interrupts,
                        pending,
                    )
                    raise
                log.warning(
                    "aim_parquet: %s is still writing (%s to go); the interrupt takes effect when "
                    "it is done (%d more to stop waiting and lose what is not written yet).",
                    self.what,
                    pending,
                    INTERRUPTS_TO_ABANDON - interrupts,
                )
        if deferred is not None:
            raise deferred
        return True


@contextmanager
def _counted_interrupts() -> Iterator[list[int]]:
    """On the main thread, with Python's default SIGINT handler in force: a handler that does
    the same (KeyboardInterrupt) and counts each SIGINT in the list yielded; elsewhere the list
    stays empty. The default handler is back afterwards (unless someone replaced ours)."""
    seen: list[int] = []

    def counting(signum: int, frame: FrameType | None) -> None:
        seen.append(signum)
        signal.default_int_handler(signum, frame)

    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield seen
        return
    signal.signal(signal.SIGINT, counting)
    try:
        yield seen
    finally:
        _restore_default(counting)


def _restore_default(ours: Callable[[int, FrameType | None], None]) -> None:
    """Put Python's default SIGINT handler back in place of `ours`; `signal.signal` first runs
    a pending handler (ours: KeyboardInterrupt), re-raised once the default is back."""
    interrupted: KeyboardInterrupt | None = None
    while signal.getsignal(signal.SIGINT) is ours:
        try:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        except KeyboardInterrupt as exc:
            interrupted = interrupted or exc
    if interrupted is not None:
        raise interrupted


def close_run_parts(writer: RunWriter, services: list[Any], end_time: float | None = None) -> None:
    """The work of closing a run (its `CloseJob`'s): stop its services (system sampler, terminal
    capture) in reverse start order, then close the writer with `end_time` (default: now)."""
    for ext in reversed(services):
        try:
            ext.stop()
        except Exception as exc:
            log.error("aim_parquet: stopping %r failed: %s", ext, exc)
        ext_error = getattr(ext, "error", None)
        if ext_error is not None and writer.error is None:
            log.error(
                "aim_parquet: %s of run %s failed: %s",
                type(ext).__name__,
                writer.run_hash,
                ext_error,
            )
    services.clear()
    writer.close(end_time=time.time() if end_time is None else end_time)
    if writer.is_closed and writer.error is None and writer.sidecar_path is None:
        append_closed(writer.layout, writer.run_hash)  # (its index row: never fails the close)
