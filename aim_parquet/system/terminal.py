"""Terminal capture: record what the process prints, line by line, while still printing it.

:class:`TerminalCapture` replaces ``sys.stdout`` and ``sys.stderr`` with tee streams (Python level, as
Aim does; writes to the file descriptors bypass it). Each write goes to the original stream first,
unchanged, and is then recorded:

- lines end at ``"\\n"``; ``"\\r\\n"`` is a plain newline, even when split across two writes;
- a lone ``"\\r"`` (progress bars such as tqdm) means the line is rewritten, so only the text after
  the last ``"\\r"`` is kept;
- ANSI escape sequences (colours, cursor moves, erase-line) are removed from the recorded text;
- stdout and stderr keep separate partial lines, so a progress bar on stderr never splices into a
  half-written stdout line; completed lines share one numbering in the order they complete.

Completed ``(line_number, text)`` pairs reach ``on_lines`` in batches from a daemon thread
(``aim_parquet-terminal``) at most every ``flush_interval_s``, and once more from :meth:`stop`,
which also emits unfinished lines. Captures nest: each one links its tee in front of whatever
``sys.stdout`` was, and on stop unlinks itself from that chain, so stopping captures in any order
never drops another capture's tee. If something foreign has since wrapped our tee, the tee stays in
place as a plain pass-through.

After ``os.fork()`` the child has the tees but not the delivery thread: the owner calls
:meth:`TerminalCapture.disown_after_fork` there, which stops recording (the child keeps no lines in
memory) and unlinks the tees without touching any lock a parent thread may have held.
"""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any

from aim_parquet.system.threads import start_thread

__all__ = ["TerminalCapture", "strip_ansi"]

THREAD_NAME = "aim_parquet-terminal"

OnLines = Callable[[list[tuple[int, str]]], None]

# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ESC \), and two-character escapes (ESC + one byte).
_ANSI_RE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
    r"|\x1b[ -/]*[0-~]"
    r"|\x9b[0-?]*[ -/]*[@-~]"
)
_LINE_BREAK_RE = re.compile(r"(\r|\n)")
_JOIN_TIMEOUT_S = 30.0

# Guards every change to the sys.stdout / sys.stderr chains, across all captures.
_CHAIN_LOCK = threading.Lock()


def strip_ansi(text: str) -> str:
    """Remove ANSI escape sequences from ``text``."""
    return _ANSI_RE.sub("", text) if ("\x1b" in text or "\x9b" in text) else text


class _LineBuffer:
    """The unfinished line of one stream, with carriage-return handling."""

    __slots__ = ("_cr_pending", "_parts")

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._cr_pending = False

    def feed(self, text: str) -> list[str]:
        """Consume ``text``; return the raw lines it completed."""
        done: list[str] = []
        for token in _LINE_BREAK_RE.split(text):
            if token == "\n":
                done.append("".join(self._parts))
                self._parts.clear()
                self._cr_pending = False
            elif token == "\r":
                self._cr_pending = True
            elif token:
                if self._cr_pending:  # a "\r" not followed by "\n": the line is rewritten
                    self._parts.clear()
                    self._cr_pending = False
                self._parts.append(token)
        return done

    def take_partial(self) -> str:
        """Return and forget the unfinished line (what the terminal still shows)."""
        text = "".join(self._parts)
        self._parts.clear()
        self._cr_pending = False
        return text


class _TeeStream:
    """Text stream that writes through to ``target`` and records what was written.

    Everything except the writing methods is delegated to the current target, so ``fileno()``,
    ``isatty()``, ``encoding``, ``buffer`` and friends behave exactly like the original stream.
    """

    def __init__(self, target: Any, capture: TerminalCapture, stream_index: int) -> None:
        self._target = target
        self._capture: TerminalCapture | None = capture
        self._stream_index = stream_index

    def write(self, text: str) -> int:
        result = self._target.write(text)
        capture = self._capture
        if capture is not None:
            capture._record(self._stream_index, text)
        return result if isinstance(result, int) else len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._target.flush()

    def isatty(self) -> bool:
        return bool(self._target.isatty())

    def fileno(self) -> int:
        return int(self._target.fileno())

    def readable(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    @property
    def encoding(self) -> str:
        return str(self._target.encoding)

    @property
    def errors(self) -> str | None:
        return getattr(self._target, "errors", None)

    @property
    def closed(self) -> bool:
        return bool(getattr(self._target, "closed", False))

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes not defined above (buffer, mode, name, reconfigure, ...).
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._target, name)

    def __repr__(self) -> str:
        return f"<aim_parquet tee of {self._target!r}>"


class TerminalCapture:
    """Tee ``sys.stdout``/``sys.stderr`` and deliver their lines to ``on_lines`` in batches.

    ``on_lines`` receives ``[(line_number, text), ...]``; numbers start at ``start_line`` and grow by
    one per line. It runs on the flush thread, and from :meth:`stop` for the last batch. Anything
    it prints is passed through but not recorded (no feedback loops). An exception raised while
    recording or by ``on_lines`` is stored in :attr:`error` and recording ends; printing is never
    affected.
    """

    _STREAM_NAMES = ("stdout", "stderr")

    def __init__(self, on_lines: OnLines, *, flush_interval_s: float = 1.0) -> None:
        if isinstance(flush_interval_s, bool) or not flush_interval_s > 0:
            raise ValueError(
                f"flush_interval_s must be a positive number (got {flush_interval_s!r})"
            )
        self.flush_interval_s = float(flush_interval_s)
        self.error: BaseException | None = None
        self._on_lines = on_lines
        self._lock = threading.Lock()  # guards the buffers, pending lines and counter
        self._buffers = (_LineBuffer(), _LineBuffer())
        self._pending: list[tuple[int, str]] = []
        self._next_line = 0
        self._is_recording = False
        self._tees: list[_TeeStream | None] = [None, None]
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = False
        self._stopped = False

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self, start_line: int = 0) -> None:
        """Start teeing ``sys.stdout`` and ``sys.stderr``; lines are numbered from ``start_line``."""
        if self._started:
            raise RuntimeError("a TerminalCapture starts once; create a new one after stop()")
        self._started = True
        self._next_line = int(start_line)
        self._is_recording = True
        with _CHAIN_LOCK:
            for index, name in enumerate(self._STREAM_NAMES):
                current = getattr(sys, name)
                if current is None:  # no console (pythonw): nothing to tee
                    continue
                tee = _TeeStream(current, self, index)
                self._tees[index] = tee
                setattr(sys, name, tee)
        self._thread = threading.Thread(target=self._flush_loop, name=THREAD_NAME, daemon=True)
        start_thread(self._thread)

    def stop(self) -> None:
        """Restore the streams, join the flush thread and deliver every remaining line. Idempotent."""
        if not self._started or self._stopped:
            return
        self._stopped = True
        with _CHAIN_LOCK:
            for index, name in enumerate(self._STREAM_NAMES):
                tee = self._tees[index]
                if tee is not None:
                    _unlink(name, tee)
                    self._tees[index] = None
        self._stop_event.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(_JOIN_TIMEOUT_S)
        with self._lock:
            self._is_recording = False
            for buffer in self._buffers:
                text = strip_ansi(buffer.take_partial())
                if text:
                    self._pending.append((self._next_line, text))
                    self._next_line += 1
        self._deliver()

    def disown_after_fork(self) -> None:
        """In a forked child: record nothing more, keep nothing, and unlink the tees, using fresh
        locks (a parent thread may have held the old ones at the fork). Delivers nothing: the
        parent's capture delivers the lines printed before the fork."""
        global _CHAIN_LOCK
        _CHAIN_LOCK = threading.Lock()
        self._lock = threading.Lock()
        self._stop_event = threading.Event()
        self._stop_event.set()
        self._thread = None
        self._is_recording = False
        self._pending = []
        self._buffers = (_LineBuffer(), _LineBuffer())
        self._started = self._stopped = True
        for index, name in enumerate(self._STREAM_NAMES):
            tee = self._tees[index]
            if tee is not None:
                _unlink(name, tee)
                self._tees[index] = None

    @property
    def next_line(self) -> int:
        """The number the next completed line will get."""
        return self._next_line

    # -- recording and delivery ------------------------------------------------------------------

    def _record(self, stream_index: int, text: str) -> None:
        """Called by a tee after a successful write; never raises."""
        if not self._is_recording or threading.current_thread() is self._thread:
            return
        try:
            if not isinstance(text, str):
                return
            with self._lock:
                if not self._is_recording:
                    return
                for line in self._buffers[stream_index].feed(text):
                    self._pending.append((self._next_line, strip_ansi(line)))
                    self._next_line += 1
        except Exception as exc:
            self._fail(exc)

    def _flush_loop(self) -> None:
        while not self._stop_event.wait(self.flush_interval_s):
            if not self._deliver():
                return

    def _deliver(self) -> bool:
        """Hand pending lines to ``on_lines``; False once an error has ended recording."""
        with self._lock:
            if self.error is not None:
                return False
            batch, self._pending = self._pending, []
        if not batch:
            return True
        try:
            self._on_lines(batch)
        except Exception as exc:
            self._fail(exc)
            return False
        return True

    def _fail(self, exc: BaseException) -> None:
        with self._lock:
            if self.error is None:
                self.error = exc
            self._is_recording = False
            self._pending.clear()


def _unlink(name: str, tee: _TeeStream) -> None:
    """Remove ``tee`` from the chain that starts at ``sys.<name>``, wherever it sits.

    Walks our own tees from the top; a foreign wrapper stops the walk, in which case ``tee`` stays
    in place as a pure pass-through (its capture link is cut).
    """
    tee._capture = None
    current: Any = getattr(sys, name)
    if current is tee:
        setattr(sys, name, tee._target)
        return
    while isinstance(current, _TeeStream):
        if current._target is tee:
            current._target = tee._target
            return
        current = current._target
