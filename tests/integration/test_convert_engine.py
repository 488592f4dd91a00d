"""The conversion engine under failure: a source run that keeps failing, a disk that fills up,
Ctrl-C during the last flush, two conversions started together. In-process sources (no tracker
needed), real repositories, real subprocesses for the CLI."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import aim_parquet as aim
from aim_parquet.convert.engine import (
    CONVERTED,
    PARTIAL,
    SOURCE_PARAM,
    SourceRun,
    _take_lock,
    convert_runs,
)
from aim_parquet.convert.sink import CountingSink
from aim_parquet.errors import RunLockedError
from aim_parquet.storage.online import run_writer, segments
from tests.convert_helpers import CLI_TIMEOUT_S, convert_cli, write_scalar_file


class FakeRun(SourceRun):
    tracker = "fake"

    def __init__(self, name: str, points: int = 300, fail_after: int | None = None) -> None:
        super().__init__(f"id-{name}", name, "fakes")
        self.points = points
        self.fail_after = fail_after

    def fingerprint(self) -> str:
        return f"{self.points}"

    def read(self, sink: CountingSink) -> None:
        series = sink.series("loss")
        for step in range(self.points):
            if self.fail_after is not None and step == self.fail_after:
                sink.finish()  # what was read so far reaches the run
                raise OSError(errno.EIO, "Input/output error (the source disk)")
            series.add(step, step * 0.5, 1000.0 + step)
        sink.set_props(name=self.label)


def _runs(root: Path) -> list[Any]:
    return list(aim.Repo(root).iter_runs())


def test_failing_source_run_keeps_only_its_latest_attempt(tmp_path: Path) -> None:
    for attempt in range(3):
        report = convert_runs("fake", "x", [FakeRun("a", fail_after=100)], tmp_path)
        (result,) = report.runs
        assert result.status == PARTIAL and "Input/output error" in (result.message or "")
        runs = _runs(tmp_path)
        assert [r.hash for r in runs] == [result.run_hash], f"attempt {attempt}"
        assert runs[0].name == "a"  # recognisable while partial
        assert runs[0][SOURCE_PARAM]["complete"] is False
        assert report.has_loss
    report = convert_runs("fake", "x", [FakeRun("a")], tmp_path)
    assert report.runs[0].status == CONVERTED
    (run,) = _runs(tmp_path)
    assert run.hash == report.runs[0].run_hash and run[SOURCE_PARAM]["complete"] is True
    steps, values = run.get_metric("loss").values.sparse_numpy()
    assert steps.tolist() == list(range(300)) and values.tolist() == [s * 0.5 for s in range(300)]


def test_disk_full_while_converting_is_never_marked_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Segment writes fail (the disk is full) while the sidecar still gets written: the run must
    not be marked complete, or the next conversion would call it up to date with points lost."""

    def full_disk(fd: int, data: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device (injected)")

    with monkeypatch.context() as patch:
        patch.setattr(segments, "write_all", full_disk)  # the segments' writes, not the sidecar's
        report = convert_runs("fake", "x", [FakeRun("a")], tmp_path)
    (result,) = report.runs
    assert result.status == PARTIAL, result
    assert "No space left" in (result.message or "")
    (run,) = _runs(tmp_path)
    assert run[SOURCE_PARAM]["complete"] is False
    again = convert_runs("fake", "x", [FakeRun("a")], tmp_path)  # space is back: redone
    assert again.runs[0].status == CONVERTED
    (run,) = _runs(tmp_path)
    assert run[SOURCE_PARAM]["complete"] is True
    assert run.get_metric("loss").values.sparse_numpy()[0].tolist() == list(range(300))


def test_ctrl_c_during_the_last_flush_stops_the_conversion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_flush = run_writer.RunWriter.flush
    calls = {"n": 0}

    def flush(self: Any, *, durable: bool = False, end_time: float | None = None) -> None:
        if durable:  # the final flush of close()
            calls["n"] += 1
            raise KeyboardInterrupt
        real_flush(self, durable=durable, end_time=end_time)

    monkeypatch.setattr(run_writer.RunWriter, "flush", flush)
    with pytest.raises(KeyboardInterrupt):
        convert_runs("fake", "x", [FakeRun("a"), FakeRun("b")], tmp_path)
    assert calls["n"] == 1  # run "b" was not started
    monkeypatch.setattr(run_writer.RunWriter, "flush", real_flush)
    assert [r.name for r in _runs(tmp_path)] == ["a"]


def test_a_second_conversion_meanwhile_is_refused(tmp_path: Path) -> None:
    logdir = tmp_path / "logs"
    write_scalar_file(logdir / "r1" / "events.out.tfevents.1", [(1.0, 0, "loss", 0.5)])
    dest = tmp_path / "dest"
    lock = _take_lock(dest, "tensorboard")
    try:
        with pytest.raises(RunLockedError, match="is converting into"):
            _take_lock(dest, "tensorboard")
        result = convert_cli("tensorboard", str(logdir), "--repo", str(dest))
        assert result.returncode == 1
        (line,) = result.stderr.strip().splitlines()
        assert (
            "another `aim-parquet convert tensorboard`" in line and f"process {os.getpid()}" in line
        )
        assert _runs(dest) == []
        other = convert_cli("mlflow", str(tmp_path / "none"), "--repo", str(dest))
        assert "another" not in other.stderr  # only the same tracker waits
    finally:
        lock.release()
    assert convert_cli("tensorboard", str(logdir), "--repo", str(dest)).returncode == 0
    assert len(_runs(dest)) == 1


def test_two_conversions_started_together_convert_each_run_once(tmp_path: Path) -> None:
    logdir = tmp_path / "logs"
    for r in range(6):
        write_scalar_file(
            logdir / f"r{r}" / "events.out.tfevents.1",
            [(1.0 + s, s, "loss", s * 0.25) for s in range(2000)],
        )
    dest = tmp_path / "dest"
    cmd = [sys.executable, "-m", "aim_parquet", "convert", "tensorboard", str(logdir)]
    procs = [
        subprocess.Popen(
            [*cmd, "--repo", str(dest)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    results = [(p.wait(timeout=CLI_TIMEOUT_S), p.communicate()) for p in procs]
    assert any(code == 0 for code, _ in results), results
    for code, (_, err) in results:
        assert code == 0 or "is converting into" in err, err
    runs = _runs(dest)
    assert sorted(r.name for r in runs) == [f"r{r}" for r in range(6)]
    assert all(r[SOURCE_PARAM]["complete"] for r in runs)


def _interrupt_trial(logdir: Path, dest: Path, delay: float, sig: int) -> tuple[int, list[Any]]:
    """Start a conversion, send `sig` after `delay` seconds, then convert again to the end;
    (exit status of the interrupted one, the runs afterwards)."""
    import signal

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aim_parquet",
            "convert",
            "tensorboard",
            str(logdir),
            "--repo",
            str(dest),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        proc.wait(timeout=delay)
    except subprocess.TimeoutExpired:
        proc.send_signal(sig)
    code = proc.wait(timeout=CLI_TIMEOUT_S)
    again = convert_cli("tensorboard", str(logdir), "--repo", str(dest))
    assert again.returncode == 0, again.stdout + again.stderr
    return code, _runs(dest)


@pytest.mark.slow
def test_conversion_interrupted_at_random_moments_is_redone_exactly(tmp_path: Path) -> None:
    """SIGINT (Ctrl-C) and SIGKILL at random moments of a conversion, then the same command
    again: every source run is converted exactly once, completely. Ctrl-C stops it (status 130)."""
    import random
    import signal

    logdir = tmp_path / "logs"
    n_runs, n_points = 8, 40_000
    for r in range(n_runs):
        write_scalar_file(
            logdir / f"r{r}" / "events.out.tfevents.1",
            [(1.0 + s, s, "loss", s * 0.5) for s in range(n_points)],
        )
    # the moments are drawn within how long a whole conversion takes on this machine, so the
    # trials interrupt conversions in progress however fast or loaded the machine is
    started = time.monotonic()
    full = convert_cli("tensorboard", str(logdir), "--repo", str(tmp_path / "timing"))
    assert full.returncode == 0, full.stdout + full.stderr
    whole_s = time.monotonic() - started
    rng = random.Random(18)
    stopped = 0
    for trial in range(16):
        sig = signal.SIGINT if trial % 2 else signal.SIGKILL
        delay = rng.uniform(0.15, 0.85) * whole_s
        code, runs = _interrupt_trial(logdir, tmp_path / f"d{trial}", delay, sig)
        if code != 0:
            stopped += 1
            # Ctrl-C: 130 once the command runs; killed by SIGINT while Python is still starting
            assert code in ((130, -signal.SIGINT) if sig == signal.SIGINT else (-sig,)), code
        assert sorted(r.name for r in runs) == [f"r{r}" for r in range(n_runs)], trial
        for run in runs:
            assert run[SOURCE_PARAM]["complete"] is True
            steps, values = run.get_metric("loss").values.sparse_numpy()
            assert steps.tolist() == list(range(n_points)), (trial, run.name)
            assert values[-1] == (n_points - 1) * 0.5
    assert stopped >= 8  # most trials did interrupt a conversion in progress


KILLED_AT_BIRTH = """
import os, signal, sys
from pathlib import Path
from aim_parquet.convert.engine import convert_runs
from aim_parquet.storage.online import run_writer
from tests.integration.test_convert_engine import FakeRun

def die(self):  # the run exists (folder and first sidecar), nothing else happened yet
    os.kill(os.getpid(), signal.SIGKILL)

run_writer.RunWriter.start = die
convert_runs("fake", "x", [FakeRun("a")], Path(sys.argv[1]))
"""


def test_conversion_killed_as_its_run_appears_is_redone(tmp_path: Path) -> None:
    """SIGKILL right after the run of a conversion is created: the run already names its source
    (incomplete), so the next conversion replaces it instead of leaving an anonymous run."""
    import signal

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_AT_BIRTH, str(tmp_path)],
        cwd=root,
        timeout=CLI_TIMEOUT_S,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    (orphan,) = _runs(tmp_path)
    assert orphan.name == "a" and orphan[SOURCE_PARAM]["complete"] is False
    report = convert_runs("fake", "x", [FakeRun("a")], tmp_path)
    assert report.runs[0].status == CONVERTED
    (run,) = _runs(tmp_path)
    assert run.hash != orphan.hash and run[SOURCE_PARAM]["complete"] is True


def test_a_real_sigint_during_the_last_flush_stops_the_conversion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, python_sigint: None
) -> None:
    """A real Ctrl-C (SIGINT to the process) while close() writes: the close finishes on its own
    thread, then the interrupt stops the conversion before the next run starts."""
    real_flush = run_writer.RunWriter.flush
    calls = {"n": 0}

    def flush(self: Any, *, durable: bool = False, end_time: float | None = None) -> None:
        if durable and calls["n"] == 0:
            calls["n"] += 1
            os.kill(os.getpid(), signal.SIGINT)
        real_flush(self, durable=durable, end_time=end_time)

    monkeypatch.setattr(run_writer.RunWriter, "flush", flush)
    with pytest.raises(KeyboardInterrupt):
        convert_runs("fake", "x", [FakeRun("a"), FakeRun("b")], tmp_path)
    monkeypatch.setattr(run_writer.RunWriter, "flush", real_flush)
    assert [r.name for r in _runs(tmp_path)] == ["a"]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_sigint_that_python_swallows_in_a_gc_callback_still_stops_the_conversion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, python_sigint: None
) -> None:
    """A real Ctrl-C during the last flush that the main thread handles inside a garbage
    collection (a gc callback or a finalizer that runs while close() starts its thread): Python
    prints "Exception ignored" and drops the KeyboardInterrupt, yet the conversion stops."""
    import gc
    import threading

    from aim_parquet.sdk import close_job

    in_callback, killed = threading.Event(), threading.Event()
    armed = {"on": False}

    def collecting(phase: str, info: dict[str, Any]) -> None:
        if phase == "start" and armed["on"]:
            armed["on"] = False
            in_callback.set()
            killed.wait(CLI_TIMEOUT_S)  # here on the main thread when the SIGINT arrives
            time.sleep(0.05)  # (the interrupt is raised here, and dropped by Python)

    real_start = close_job.start_new_thread

    def start_then_collect(function: Any, args: tuple[Any, ...]) -> int:
        ident = real_start(function, args)
        armed["on"] = True
        gc.collect()  # a collection on the main thread as the close runs
        return ident

    real_flush = run_writer.RunWriter.flush

    def flush(self: Any, *, durable: bool = False, end_time: float | None = None) -> None:
        if durable and not killed.is_set():
            in_callback.wait(CLI_TIMEOUT_S)
            os.kill(os.getpid(), signal.SIGINT)
            killed.set()
        real_flush(self, durable=durable, end_time=end_time)

    monkeypatch.setattr(run_writer.RunWriter, "flush", flush)
    monkeypatch.setattr(close_job, "start_new_thread", start_then_collect)
    gc.callbacks.append(collecting)
    try:
        with pytest.raises(KeyboardInterrupt):
            convert_runs("fake", "x", [FakeRun("a"), FakeRun("b")], tmp_path)
    finally:
        gc.callbacks.remove(collecting)
    monkeypatch.setattr(run_writer.RunWriter, "flush", real_flush)
    assert killed.is_set()
    (run,) = _runs(tmp_path)  # "a", closed with every point; "b" never started
    assert run.name == "a" and run[SOURCE_PARAM]["complete"] is True
    assert run.get_metric("loss").values.sparse_numpy()[0].tolist() == list(range(300))
