"""TerminalCapture: output still printed unchanged, recorded line by line, streams restored."""

from __future__ import annotations

import io
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from aim_parquet.system import terminal
from aim_parquet.system.terminal import TerminalCapture, strip_ansi

DEADLINE_S = 10.0


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


class FakeStream(io.StringIO):
    """The "original" console stream: remembers what reached it, looks like a tty."""

    def __init__(self, fileno: int) -> None:
        super().__init__()
        self._fileno = fileno
        self.flushes = 0
        self.custom_attribute = "delegated"

    def fileno(self) -> int:
        return self._fileno

    def isatty(self) -> bool:
        return True

    def flush(self) -> None:
        self.flushes += 1

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "latin-1"


class Lines:
    """A thread-safe on_lines callback."""

    def __init__(self) -> None:
        self.batches: list[list[tuple[int, str]]] = []
        self._lock = threading.Lock()

    def __call__(self, batch: list[tuple[int, str]]) -> None:
        with self._lock:
            self.batches.append(list(batch))

    @property
    def pairs(self) -> list[tuple[int, str]]:
        with self._lock:
            return [pair for batch in self.batches for pair in batch]

    @property
    def texts(self) -> list[str]:
        return [text for _, text in self.pairs]


@pytest.fixture
def consoles(monkeypatch: pytest.MonkeyPatch) -> Callable[[], tuple[FakeStream, FakeStream]]:
    """Installs fake console streams when called from the test body.

    (pytest re-installs its own capture streams between fixture set-up and the test call, so
    replacing them in the fixture itself would not last.)
    """

    def install() -> tuple[FakeStream, FakeStream]:
        out, err = FakeStream(101), FakeStream(102)
        monkeypatch.setattr(sys, "stdout", out)
        monkeypatch.setattr(sys, "stderr", err)
        return out, err

    return install


Consoles = Callable[[], tuple[FakeStream, FakeStream]]


def terminal_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == terminal.THREAD_NAME]


def test_output_reaches_original_streams_and_is_recorded(
    consoles: Consoles,
) -> None:
    out, err = consoles()
    lines = Lines()
    capture = TerminalCapture(lines, flush_interval_s=60)
    capture.start(start_line=7)
    assert sys.stdout is not out and sys.stderr is not err

    print("hello", "world")
    assert sys.stdout.write("two\nlines\n") == len("two\nlines\n")
    sys.stderr.write("warning!\n")
    print("to err", file=sys.stderr)
    sys.stdout.writelines(["a", "b\n"])
    capture.stop()

    assert out.getvalue() == "hello world\ntwo\nlines\nab\n"
    assert err.getvalue() == "warning!\nto err\n"
    assert lines.pairs == [
        (7, "hello world"),
        (8, "two"),
        (9, "lines"),
        (10, "warning!"),
        (11, "to err"),
        (12, "ab"),
    ]
    assert sys.stdout is out and sys.stderr is err
    assert capture.error is None
    assert terminal_threads() == []


def test_tee_behaves_like_the_original_stream(consoles: Consoles) -> None:
    out, _ = consoles()
    capture = TerminalCapture(Lines())
    capture.start()
    try:
        tee: Any = sys.stdout
        assert tee.fileno() == 101
        assert tee.isatty() is True
        assert tee.encoding == "latin-1"
        assert tee.writable() and not tee.readable()
        assert tee.custom_attribute == "delegated"
        assert tee.closed is False
        tee.flush()
        assert out.flushes == 1
        assert tee.getvalue() == ""  # anything else goes to the original
        with pytest.raises(TypeError):
            tee.write(b"bytes")  # refused exactly as the original refuses it
        with pytest.raises(AttributeError):
            _ = tee.no_such_attribute
    finally:
        capture.stop()
    assert capture.error is None


def test_carriage_return_keeps_only_the_final_state(
    consoles: Consoles,
) -> None:
    _, err = consoles()
    lines = Lines()
    capture = TerminalCapture(lines, flush_interval_s=60)
    capture.start()
    for percent in (0, 25, 50, 100):
        sys.stderr.write(f"\r{percent:3d}%|{'#' * (percent // 10):10s}|")
    sys.stderr.write("\n")
    sys.stderr.write("abc\r")  # "\r\n" split across two writes is a plain newline
    sys.stderr.write("\ndef\r\n")
    sys.stderr.write("old text\rnew\n")
    sys.stderr.write("x\r\r\ry\n")
    capture.stop()

    assert lines.texts == ["100%|##########|", "abc", "def", "new", "y"]
    assert err.getvalue().startswith("\r  0%|")  # printed output unchanged


def test_ansi_sequences_are_stripped_from_records_only(
    consoles: Consoles,
) -> None:
    out, _ = consoles()
    lines = Lines()
    capture = TerminalCapture(lines, flush_interval_s=60)
    capture.start()
    text = "\x1b[1;32mgreen\x1b[0m \x1b]0;title\x07plain \x1b[2K\x1b[Aup\x1b(B\n"
    sys.stdout.write(text[:8])  # an escape sequence split across writes
    sys.stdout.write(text[8:])
    capture.stop()
    assert out.getvalue() == text
    assert lines.texts == ["green plain up"]


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("no escapes", "no escapes"),
        ("\x1b[31mred\x1b[39m", "red"),
        ("\x1b[38;5;196mx\x1b[0m", "x"),
        ("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link"),
        ("a\x1b7b\x1b8c", "abc"),
        ("\x9b1mcsi8bit", "csi8bit"),
    ],
)
def test_strip_ansi(raw: str, clean: str) -> None:
    assert strip_ansi(raw) == clean


def test_partial_line_is_emitted_on_stop(consoles: Consoles) -> None:
    consoles()
    lines = Lines()
    capture = TerminalCapture(lines, flush_interval_s=60)
    capture.start(start_line=3)
    sys.stdout.write("done\nno newline")
    sys.stderr.write("\x1b[0m")  # only an escape: nothing to emit
    capture.stop()
    assert lines.pairs == [(3, "done"), (4, "no newline")]
    assert capture.next_line == 5


def test_progress_bar_left_on_screen_is_emitted_on_stop(
    consoles: Consoles,
) -> None:
    consoles()
    lines = Lines()
    capture = TerminalCapture(lines, flush_interval_s=60)
    capture.start()
    sys.stderr.write("\r 10%\r 90%\r")
    capture.stop()
    assert lines.texts == [" 90%"]


def test_empty_lines_are_lines(consoles: Consoles) -> None:
    consoles()
    lines = Lines()
    capture = TerminalCapture(lines, flush_interval_s=60)
    capture.start()
    print("a\n\nb")
    capture.stop()
    assert lines.pairs == [(0, "a"), (1, ""), (2, "b")]


def test_stdout_and_stderr_partial_lines_do_not_splice(
    consoles: Consoles,
) -> None:
    consoles()
    lines = Lines()
    capture = TerminalCapture(lines, flush_interval_s=60)
    capture.start()
    sys.stdout.write("abc")
    sys.stderr.write("err\n")
    sys.stdout.write("def\n")
    capture.stop()
    assert lines.texts == ["err", "abcdef"]


def test_lines_are_delivered_in_batches_before_stop(
    consoles: Consoles,
) -> None:
    consoles()
    lines = Lines()
    capture = TerminalCapture(lines, flush_interval_s=0.05)
    capture.start()
    assert [t.daemon for t in terminal_threads()] == [True]
    print("first")
    wait_until(lambda: lines.texts == ["first"], "the first batch")
    print("second")
    print("third")
    wait_until(lambda: lines.texts == ["first", "second", "third"], "the second batch")
    capture.stop()
    assert all(batch for batch in lines.batches)  # never called with an empty batch
    assert terminal_threads() == []


def test_output_of_on_lines_itself_is_not_recorded(
    consoles: Consoles,
) -> None:
    out, _ = consoles()
    lines = Lines()

    def on_lines(batch: list[tuple[int, str]]) -> None:
        print(f"delivered {len(batch)}")
        lines(batch)

    capture = TerminalCapture(on_lines, flush_interval_s=0.05)
    capture.start()
    print("user line")
    wait_until(lambda: lines.texts == ["user line"], "delivery")
    capture.stop()
    assert lines.texts == ["user line"]
    assert "delivered 1\n" in out.getvalue()


@pytest.mark.parametrize("stop_order", ["lifo", "fifo"])
def test_two_captures_stop_in_any_order(consoles: Consoles, stop_order: str) -> None:
    out, err = consoles()
    first, second = Lines(), Lines()
    capture_a = TerminalCapture(first, flush_interval_s=60)
    capture_b = TerminalCapture(second, flush_interval_s=60)
    capture_a.start()
    capture_b.start(start_line=100)
    print("both")
    sys.stderr.write("both err\n")

    stopped_first, still_running = (
        (capture_b, capture_a) if stop_order == "lifo" else (capture_a, capture_b)
    )
    stopped_first.stop()
    assert sys.stdout is not out and sys.stderr is not err  # the other capture is still on
    print("only the survivor")
    still_running.stop()

    assert sys.stdout is out and sys.stderr is err
    assert out.getvalue() == "both\nonly the survivor\n"
    assert err.getvalue() == "both err\n"
    survivor, stopped = (first, second) if stop_order == "lifo" else (second, first)
    assert stopped.texts == ["both", "both err"]
    assert survivor.texts == ["both", "both err", "only the survivor"]
    assert second.pairs[0] == (100, "both")


def test_three_captures_middle_stops_first(consoles: Consoles) -> None:
    out, _ = consoles()
    records = [Lines(), Lines(), Lines()]
    captures = [TerminalCapture(r, flush_interval_s=60) for r in records]
    for capture in captures:
        capture.start()
    captures[1].stop()
    print("after middle stopped")
    captures[2].stop()
    captures[0].stop()
    assert sys.stdout is out
    assert out.getvalue() == "after middle stopped\n"
    assert [r.texts for r in records] == [["after middle stopped"], [], ["after middle stopped"]]


def test_foreign_wrapper_on_top_is_left_in_place(
    consoles: Consoles, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, _ = consoles()

    class Foreign:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def write(self, text: str) -> int:
            return int(self.inner.write(text.upper()))

    lines = Lines()
    capture = TerminalCapture(lines, flush_interval_s=60)
    capture.start()
    foreign = Foreign(sys.stdout)
    monkeypatch.setattr(sys, "stdout", foreign)
    print("recorded")
    capture.stop()
    assert sys.stdout is foreign  # not clobbered
    print("passes through")
    assert out.getvalue() == "RECORDED\nPASSES THROUGH\n"
    assert lines.texts == ["RECORDED"]


def test_on_lines_error_is_stored_and_printing_continues(
    consoles: Consoles,
) -> None:
    out, _ = consoles()
    failure = OSError("disk full")
    calls: list[int] = []

    def on_lines(batch: list[tuple[int, str]]) -> None:
        calls.append(len(batch))
        raise failure

    capture = TerminalCapture(on_lines, flush_interval_s=0.05)
    capture.start()
    print("one")
    wait_until(lambda: capture.error is not None, "the error")
    print("two")  # must not raise
    capture.stop()
    assert capture.error is failure
    assert calls == [1]  # recording ended with the error
    assert out.getvalue() == "one\ntwo\n"
    assert terminal_threads() == []


def test_recording_error_never_breaks_print(
    consoles: Consoles, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, _ = consoles()
    failure = MemoryError("recording failed")

    def broken_feed(self: Any, text: str) -> list[str]:
        raise failure

    lines = Lines()
    capture = TerminalCapture(lines, flush_interval_s=60)
    capture.start()
    monkeypatch.setattr(terminal._LineBuffer, "feed", broken_feed)
    print("still printed")
    capture.stop()
    assert capture.error is failure
    assert out.getvalue() == "still printed\n"
    assert lines.pairs == []


def test_concurrent_writers(consoles: Consoles) -> None:
    consoles()
    lines = Lines()
    capture = TerminalCapture(lines, flush_interval_s=0.01)
    capture.start(start_line=1)
    per_thread = 200

    def writer(tag: str) -> None:
        for i in range(per_thread):
            print(f"{tag}-{i}")

    threads = [threading.Thread(target=writer, args=(f"t{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    capture.stop()
    numbers = [number for number, _ in lines.pairs]
    assert numbers == list(range(1, 1 + 4 * per_thread))
    assert sorted(lines.texts) == sorted(f"t{n}-{i}" for n in range(4) for i in range(per_thread))


def test_lifecycle_errors_and_idempotence(consoles: Consoles) -> None:
    out, _ = consoles()
    with pytest.raises(ValueError):
        TerminalCapture(Lines(), flush_interval_s=0)
    capture = TerminalCapture(Lines())
    capture.stop()  # before start: nothing to do
    capture.start()
    with pytest.raises(RuntimeError):
        capture.start()
    capture.stop()
    capture.stop()
    assert sys.stdout is out


def test_missing_stream_is_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    out = FakeStream(1)
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", None)
    lines = Lines()
    capture = TerminalCapture(lines, flush_interval_s=60)
    capture.start()
    print("x")
    capture.stop()
    assert sys.stderr is None
    assert lines.texts == ["x"]
