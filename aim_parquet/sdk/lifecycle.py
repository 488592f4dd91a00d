"""How open runs meet the process: interpreter exit, SIGTERM, `os.fork()` and garbage collection.

- **Exit.** An `atexit` hook closes every run this process opened (flushing its data and setting
  `end_time`) and waits for closes already under way (a collected run's, a signal's). In a
  multiprocessing child (Pool, ProcessPoolExecutor and DataLoader workers), which ends with
  `os._exit` without running `atexit`, multiprocessing's own exit hook does the same.
- **SIGTERM.** Installed only when the process still has the default handler, by the first run
  opened on the main thread (Python sets handlers only there: a process whose runs are all
  opened on other threads is told, once, that a SIGTERM will not close them). The handler takes no
  lock: it starts a thread that closes the runs. Unless the interrupted code is inside
  aim_parquet, `logging` or `threading` (where it may hold a lock that the close needs), it waits
  for that thread up to `TERM_WAIT_S` and then restores the default action and re-sends the
  signal, so the exit status stays "killed by SIGTERM". Otherwise (or when the close takes longer)
  it returns at once and the closing thread re-sends the signal when it is done; meanwhile the
  program runs on, and what it writes to a closed run is dropped with a warning; a main thread
  that was itself in `close()` ends the process by SIGTERM as soon as the close is done, instead
  of returning to the program. A Run the program opens meanwhile is closed at once
  (`Run._close_while_terminating`). A second SIGTERM during the close changes nothing.
- **Fork.** An `os.register_at_fork` hook runs in every forked child (multiprocessing, DataLoader
  workers): every run the parent had open is disowned there, with its writer, lock descriptor,
  system sampler and terminal capture. The child never flushes, unlocks, writes a sidecar or
  closes anything at exit or on SIGTERM; it takes no lock a parent thread may have held. The
  child gets the default SIGTERM action back: a Python-level handler can be left pending forever
  in a worker blocked in C (a `Pool` worker waiting on a lock its parent holds while it
  terminates the pool), and one the child caught before the hook ran would be lost when the
  default comes back, so the forking thread blocks SIGTERM from just before the fork until the
  hooks are done; a SIGTERM sent meanwhile kills the child then. A child that wants to track
  opens its own run, which installs the handler there.
- **A SIGTERM the main thread never handles** (it arrived between two waits inside C): a
  watcher thread sees it through Python's wakeup fd and re-sends it to the main thread until the
  handler runs (`term_watch`).
- **Threads.** Every thread started here and by the writer blocks the asynchronous signals
  (`system.threads`): a SIGTERM that landed on one would only set Python's flag, and a main
  thread blocked in C would never run the handler.
- **Closing.** `CloseJob` (`sdk.close_job`) runs a close once, on its own thread, so a Ctrl-C (or
  a user's signal handler calling `sys.exit`) on the waiting thread cannot cut it short: the
  interrupt is deferred until the close is done (a third one stops waiting, and the log says what
  was left unwritten). A `Run` collected without `close()` starts its job from a
  `weakref.finalize` callback. Exit waits for every close under way (`close_job.JOBS`).
"""

from __future__ import annotations

import _thread
import atexit
import contextlib
import logging
import os
import signal
import sys
import threading
import time
import weakref
from types import FrameType
from typing import Protocol

from aim_parquet.sdk import close_job, term_watch
from aim_parquet.storage.online.segments import FD_CACHE
from aim_parquet.system.threads import start_new_thread

log = logging.getLogger(__name__)

TERM_WAIT_S = 5.0  # how long the SIGTERM handler waits for the close before returning
MP_EXIT_PRIORITY = 100  # multiprocessing runs finalizers of higher priority first

# Code whose frames may hold a lock the close needs: ours, logging's handlers, threading's.
_LOCKING_PATHS = (
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep,
    os.path.dirname(os.path.abspath(logging.__file__)) + os.sep,
    os.path.abspath(threading.__file__),
)


class OpenRun(Protocol):
    """What the registry needs of a run: close it here, or disown it in a forked child."""

    def close(self) -> None: ...

    def _after_fork_in_child(self) -> None: ...


_runs: weakref.WeakValueDictionary[tuple[int, int], OpenRun] = weakref.WeakValueDictionary()
_install_lock = threading.Lock()
_installed_pid: int | None = None  # atexit and fork hooks (inherited by forked children)
_mp_exit_pid: int | None = None  # the process whose multiprocessing exit hook is registered
_warned_sigterm_pid: int | None = None  # the process told that SIGTERM will not close its runs
_sigterm_pid: int | None = None  # the process whose SIGTERM handler is ours
_masks_before_fork: dict[int, set[int | signal.Signals]] = {}  # forking thread -> its signal mask
_term_started = False  # a SIGTERM close is under way or done
_term_done = _thread.allocate_lock()  # held until the SIGTERM close is done
_term_finished = False  # the SIGTERM close is done (a flag: no lock for the handler to misread)
_handler_waits = False  # the handler waits for the close: it ends the process itself when done


def register(run: OpenRun) -> None:
    """Close `run` at interpreter exit or SIGTERM in this process, disown it in forked children
    (held weakly: a collected run closes through its own finalizer)."""
    global _installed_pid, _sigterm_pid, _mp_exit_pid
    pid = os.getpid()
    _runs[(pid, id(run))] = run
    if _installed_pid is not None and _sigterm_pid == pid and _mp_exit_pid == pid:
        return
    with _install_lock:
        if _mp_exit_pid != pid:
            _mp_exit_pid = pid
            _close_at_multiprocessing_exit()
        if _installed_pid is None:
            _installed_pid = pid
            atexit.register(close_all)
            os.register_at_fork(
                before=_before_fork,
                after_in_parent=_restore_signal_mask,
                after_in_child=_after_fork_in_child,
            )
        if _sigterm_pid != pid and threading.current_thread() is threading.main_thread():
            with contextlib.suppress(ValueError, OSError):
                if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
                    signal.signal(signal.SIGTERM, _on_sigterm)
                    _sigterm_pid = pid
                    term_watch.install(_is_our_handler, _term_state, _close_from_watcher)
        elif _sigterm_pid != pid:
            _warn_no_sigterm_handler(pid)


def _warn_no_sigterm_handler(pid: int) -> None:
    """A run opened off the main thread of a process whose SIGTERM action is still the default:
    Python installs signal handlers only from the main thread, so a SIGTERM would end the process
    without closing it. Say so once per process."""
    global _warned_sigterm_pid
    if _warned_sigterm_pid == pid or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return
    _warned_sigterm_pid = pid
    log.warning(
        "aim_parquet: a run was opened outside the main thread, and Python installs signal "
        "handlers only from the main thread: a SIGTERM would end this process without closing "
        "it (its last second of points and its end_time lost, as after a kill -9). Open the "
        "first aim_parquet Run of the process on the main thread, or close the run on SIGTERM "
        "yourself."
    )


def _close_at_multiprocessing_exit() -> None:
    """In a multiprocessing child (a `Pool` or `ProcessPoolExecutor` worker, a DataLoader worker):
    close the runs it opened in multiprocessing's exit hook. A child started by fork or forkserver
    ends with `os._exit` after its target returns, so `atexit` never runs there; multiprocessing
    runs its own finalizers first (in every child, spawned ones included, where the `atexit`
    close that follows then has nothing left to do)."""
    mp = sys.modules.get("multiprocessing")
    if mp is None or mp.parent_process() is None:
        return
    from multiprocessing import util

    util.Finalize(None, close_all, exitpriority=MP_EXIT_PRIORITY)


def unregister(run: OpenRun) -> None:
    _runs.pop((os.getpid(), id(run)), None)


def close_all() -> None:
    """Close every run this process opened and wait for every close under way. A Ctrl-C deferred
    until a close was done is raised once the others are done too (unless it abandoned one)."""
    pid = os.getpid()
    interrupted: BaseException | None = None
    for (owner, _), run in list(_runs.items()):
        if owner != pid:
            continue
        try:
            run.close()
        except (KeyboardInterrupt, SystemExit) as exc:
            if any(not job.is_done for job in list(close_job.JOBS)):
                raise  # a close abandoned (the third interrupt): stop here
            interrupted = interrupted or exc
        except Exception as exc:  # exiting: report, keep closing the others
            log.error("aim_parquet: closing %r at exit failed: %s", run, exc)
    for job in list(close_job.JOBS):
        job.wait()
    if interrupted is not None:
        raise interrupted


def is_terminating() -> bool:
    """True once a SIGTERM started closing this process's runs."""
    return _term_started


def _before_fork() -> None:
    if _sigterm_pid == os.getpid():
        with contextlib.suppress(ValueError, OSError):
            mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
            _masks_before_fork[_thread.get_ident()] = mask


def _restore_signal_mask() -> None:
    mask = _masks_before_fork.pop(_thread.get_ident(), None)
    if mask is not None:
        with contextlib.suppress(ValueError, OSError):
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _after_fork_in_child() -> None:
    global _install_lock, _term_started, _term_done, _term_finished, _sigterm_pid, _handler_waits
    term_watch.after_fork_in_child()
    _handler_waits = False
    _install_lock = threading.Lock()
    _term_started = False
    _term_finished = False
    _term_done = _thread.allocate_lock()
    if _sigterm_pid is not None:
        _sigterm_pid = None
        with contextlib.suppress(ValueError, OSError):
            if signal.getsignal(signal.SIGTERM) is _on_sigterm:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
    runs = list(_runs.values())
    _runs.clear()
    close_job.JOBS.clear()
    try:
        for run in runs:
            run._after_fork_in_child()
        FD_CACHE.after_fork_in_child()
    finally:
        _restore_signal_mask()  # a SIGTERM that came during the fork acts now, by default


def _is_our_handler() -> bool:
    return signal.getsignal(signal.SIGTERM) is _on_sigterm


def _term_state() -> term_watch.TermState:
    if not _term_started:
        return term_watch.TermState.IDLE
    return term_watch.TermState.CLOSED if _term_finished else term_watch.TermState.CLOSING


def _close_from_watcher() -> None:
    """The watcher's close, when the main thread never ran the handler (`term_watch`)."""
    global _term_started, _term_finished
    if _term_started:
        return
    _term_started = True  # (`_term_done` is only for a handler that waits: none does here)
    try:
        close_all()
    finally:
        _term_finished = True


def _close_on_sigterm() -> None:
    global _term_finished
    try:
        if _runs:
            log.warning("aim_parquet: SIGTERM: closing the open runs before exiting.")
        close_all()
    finally:
        # Re-send only when no handler waits: a waiting one ends the process itself, and a
        # re-sent signal would run the process's current handler (a user's that chains to ours)
        # a second time. Read before the release: once released, the handler stops waiting.
        resend = not _handler_waits
        _term_finished = True
        _term_done.release()
    if resend:
        os.kill(os.getpid(), signal.SIGTERM)  # the handler sees the close done and exits


def end_after_sigterm_close() -> None:
    """Called by `Run.close()` after its close is done. On the main thread of a process whose
    runs a SIGTERM is closing, end the process by SIGTERM as soon as they are all closed, rather
    than return to the program: the handler deferred the signal only so that the close could
    finish (the closing thread re-sends it too, but the program could otherwise run on, or exit
    normally, before it lands)."""
    if (
        not _term_started
        or _sigterm_pid != os.getpid()
        or threading.current_thread() is not threading.main_thread()
    ):
        return
    deadline = time.monotonic() + TERM_WAIT_S
    while not _term_finished and time.monotonic() < deadline:
        time.sleep(0.01)
    if _term_finished:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)


def _is_inside_locking_code(frame: FrameType | None) -> bool:
    """Whether the interrupted thread may hold a lock the close needs."""
    while frame is not None:
        raw = frame.f_code.co_filename
        if raw.startswith("<frozen importlib"):  # holds a module import lock
            return True
        if os.path.abspath(raw).startswith(_LOCKING_PATHS):
            return True
        frame = frame.f_back
    return False


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    """No lock on this thread: start the close elsewhere, wait for it only if that is safe."""
    global _term_started, _handler_waits
    if os.getpid() != _sigterm_pid:
        pass  # a forked child before the fork hook ran: it has no runs; act as the default
    elif not _term_started:
        _term_started = True
        _term_done.acquire()  # free until now: never blocks
        start_new_thread(_close_on_sigterm, ())
        if _is_inside_locking_code(frame):
            return  # let the interrupted code release its locks; the closer re-sends SIGTERM
        _handler_waits = True
        try:
            is_done = _term_done.acquire(timeout=TERM_WAIT_S)
        finally:  # (a wait that ends without the close: the watcher re-sends SIGTERM later)
            _handler_waits = False
        if not is_done:
            return  # (once acquired it is never needed again: nothing to release)
    elif not _term_finished:
        return  # a second SIGTERM while closing: the closer re-sends it when done
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)
