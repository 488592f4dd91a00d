"""Progress of long commands (`compact`, `verify`, `export`, `gc`, `convert`) on stderr.

On a terminal: one line redrawn in place (`\\r`) with a bar, `done/total`, the rate and the time
left. Otherwise (a log file, CI): a plain line every `PLAIN_INTERVAL_S` seconds or every tenth of
the work, whichever comes first, so a log shows that work goes on without a line per item. The
caller prints its own summary line; per-item lines are the caller's (`--verbose`, failures).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from aim_parquet.cli.common import safe_text

PLAIN_INTERVAL_S = 5.0
BAR_WIDTH = 24
REDRAW_S = 0.1  # a terminal line is redrawn at most this often (and at the end)


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds + 0.5))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """A progress callback `progress(done, total, item)`; `finish()` ends a terminal line."""

    def __init__(
        self,
        label: str,
        stream: TextIO | None = None,
        *,
        is_tty: bool | None = None,
        unit: str = "runs",
    ) -> None:
        self.label = label
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.is_tty = self.stream.isatty() if is_tty is None else is_tty
        self._started = time.monotonic()
        self._last_draw = 0.0
        self._last_plain = self._started
        self._last_tenth = 0
        self._is_drawn = False

    def line(self, done: int, total: int) -> str:
        elapsed = time.monotonic() - self._started
        rate = done / elapsed if elapsed > 0 else 0.0
        left = (total - done) / rate if rate > 0 else None
        eta = "--:--" if left is None else _duration(left)
        return f"{done:,}/{total:,} {self.unit}, {rate:,.1f}/s, {_duration(elapsed)} elapsed, ETA {eta}"

    def __call__(self, done: int, total: int, item: str = "") -> None:
        if total <= 0:
            return
        now = time.monotonic()
        if self.is_tty:
            if done < total and now - self._last_draw < REDRAW_S:
                return
            self._last_draw = now
            filled = min(BAR_WIDTH, BAR_WIDTH * done // total)
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            self.stream.write(f"\r{self.label} [{bar}] {self.line(done, total)}\x1b[K")
            self._is_drawn = True
            if done >= total:
                self.finish()
            self.stream.flush()
            return
        tenth = 10 * done // total
        if done >= total or tenth > self._last_tenth or now - self._last_plain >= PLAIN_INTERVAL_S:
            self._last_tenth, self._last_plain = tenth, now
            self.stream.write(f"{self.label}: {self.line(done, total)}\n")
            self.stream.flush()

    def finish(self) -> None:
        """End the terminal line (before the caller prints anything else)."""
        if self._is_drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._is_drawn = False

    def per_run(self, done_verb: str, *, verbose: bool) -> Callable[[int, int, str], None]:
        """A `progress(done, total, run_hash)` callback for a repo-wide command: the bar, plus
        one "<done_verb> run <hash>" line per run with `--verbose`."""

        def progress(done: int, total: int, run_hash: str) -> None:
            self(done, total, run_hash)
            if verbose:
                self.finish()
                print(safe_text(f"{done_verb} run {run_hash}"), flush=True)

        return progress
