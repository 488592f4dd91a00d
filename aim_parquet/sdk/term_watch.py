"""The safety net under the SIGTERM handler: a SIGTERM the main thread never gets to handle.

Python runs a signal handler only when the main thread comes back to Python code, or when a
blocking call it is in fails with EINTR. A signal that arrives while the main thread is *between*
two waits inside C is lost for Python: the C-level handler sets a flag, the C code waits again,
and no one looks at the flag. Seen as a hang: a `Pool` worker woken from its task queue's
semaphore by a sibling lost the semaphore to the parent (which takes it to terminate the pool),
`Pool.terminate()`'s SIGTERM landed in that window, the worker waited on the semaphore again
and `with Pool(...)` waited for the worker forever (about 1 epoch in 30 on a loaded machine). A
process that kept the default SIGTERM action would have died; ours must not do worse.

Python writes the number of every signal it catches to the "wakeup fd" from the C-level handler
itself, whatever the main thread is doing. A watcher thread reads it: a SIGTERM that our handler
has not started handling within `NUDGE_AFTER_S` is sent again to the main thread alone (a
thread-directed signal interrupts the wait it is in, so the handler runs), every `NUDGE_AFTER_S`;
if the handler still has not run after `GIVE_UP_S` (C code that retries EINTR without looking at
signals), the watcher closes the runs itself and ends the process with status 128 + SIGTERM.

The wakeup fd is the process's only one: the watcher is installed only where no one else (asyncio)
has set one (a signal caught while we looked is passed on to theirs), and stops watching if it is
replaced. Forked children drop it before anything can
write to the parent's pipe.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import signal
import threading
import time
from collections.abc import Callable

from aim_parquet.system.threads import start_new_thread

log = logging.getLogger(__name__)

NUDGE_AFTER_S = 0.5  # a SIGTERM not acted on this long after it arrived is re-sent
GIVE_UP_S = 10.0  # then the watcher closes the runs itself and ends the process


class TermState(enum.Enum):
    """Where this process's SIGTERM close stands."""

    IDLE = "idle"  # the handler has not run
    CLOSING = "closing"  # the close is under way (it re-sends SIGTERM when done)
    CLOSED = "closed"  # done: the next SIGTERM the handler sees ends the process


_pipe: tuple[int, int] | None = None  # (read, write) of this process's watcher
_pipe_pid: int | None = None


def install(
    is_ours: Callable[[], bool], state: Callable[[], TermState], close: Callable[[], None]
) -> None:
    """Watch for SIGTERMs the main thread does not act on (call on the main thread, after our
    handler was installed). `is_ours()`: the SIGTERM handler is still ours; `state()`: where the
    close stands; `close()`: close the runs from the watcher thread, unless a close started."""
    global _pipe, _pipe_pid
    if _pipe_pid == os.getpid() or not hasattr(signal, "pthread_kill"):
        return
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    try:
        previous: int | None = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    except (ValueError, OSError):
        previous = None
    if previous == -1:  # no one else's: ours to watch
        _pipe, _pipe_pid = (read_fd, write_fd), os.getpid()
        main_id = threading.main_thread().ident
        start_new_thread(_watch, (read_fd, main_id, is_ours, state, close))
        return
    if previous is not None:  # someone else's (an asyncio loop): leave it to them
        signal.set_wakeup_fd(previous)
        _hand_over(read_fd, previous)
    os.close(read_fd)
    os.close(write_fd)


def _hand_over(read_fd: int, owner_fd: int) -> None:
    """Pass on to the wakeup fd's owner what the C handler wrote to our pipe while it stood in
    for theirs (a signal that landed between the two `set_wakeup_fd` calls): asyncio runs its
    `add_signal_handler` callbacks only for the signal numbers it reads there."""
    os.set_blocking(read_fd, False)
    with contextlib.suppress(OSError):  # nothing written (BlockingIOError), or theirs is full
        data = os.read(read_fd, 512)
        if data:
            os.write(owner_fd, data)


def after_fork_in_child() -> None:
    """Drop the parent's wakeup fd and pipe (call first in the child's fork hook, while SIGTERM
    is still blocked): a signal caught here must never be written to the parent's watcher."""
    global _pipe, _pipe_pid
    if _pipe is None:
        return
    with contextlib.suppress(ValueError, OSError):
        previous = signal.set_wakeup_fd(-1)
        if previous not in (_pipe[1], -1):  # someone else's since: keep it
            signal.set_wakeup_fd(previous)
    for fd in _pipe:
        with contextlib.suppress(OSError):
            os.close(fd)
    _pipe, _pipe_pid = None, None


def _watch(
    read_fd: int,
    main_id: int | None,
    is_ours: Callable[[], bool],
    state: Callable[[], TermState],
    close: Callable[[], None],
) -> None:
    pid = os.getpid()
    while True:
        try:
            data = os.read(read_fd, 512)
        except InterruptedError:
            continue
        except OSError:
            return
        if not data or os.getpid() != pid:
            return
        if signal.SIGTERM in data and is_ours():
            _see_it_through(main_id, is_ours, state, close)
            return


def _see_it_through(
    main_id: int | None,
    is_ours: Callable[[], bool],
    state: Callable[[], TermState],
    close: Callable[[], None],
) -> None:
    """Re-send SIGTERM to the main thread until the process ends: while the handler has not run
    (IDLE) and once the close is done (CLOSED: the closer's own re-sent signal can be lost the
    same way); wait while it closes. After `GIVE_UP_S` in one state, act without the main thread."""
    since, last = time.monotonic(), state()
    while True:
        time.sleep(NUDGE_AFTER_S)
        if not is_ours():
            return  # the handler gave SIGTERM its default action back (or the program took it)
        now = state()
        if now is not last:
            since, last = time.monotonic(), now
        if now is TermState.CLOSING:
            continue
        if time.monotonic() - since < GIVE_UP_S:
            if main_id is not None:
                with contextlib.suppress(ProcessLookupError, ValueError, OSError):
                    signal.pthread_kill(main_id, signal.SIGTERM)
            continue
        if now is TermState.IDLE:
            log.error(
                "aim_parquet: SIGTERM: the main thread has not handled it for %.0f s (it is "
                "blocked in code that ignores signals); closing the open runs from another "
                "thread and exiting.",
                GIVE_UP_S,
            )
            with contextlib.suppress(BaseException):
                close()
        os._exit(128 + signal.SIGTERM)
