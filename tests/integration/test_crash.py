"""SIGKILL a real writer process at random moments; what it flushed must survive intact."""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage import discover_sequences, load_run_meta, read_sequence
from tests.conftest import PYTHON, python_env, raw_points

WRITER = str(Path(__file__).with_name("writer_proc.py"))
FLUSH_INTERVAL_S = 1.0


def start_writer(repo: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PYTHON, WRITER, str(repo), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=python_env(),
    )


def read_hash(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("hash "), (line, proc.stderr.read() if proc.stderr else "")
    return line.split()[1]


def kill_after(proc: subprocess.Popen[str], delay_s: float) -> list[tuple[int, float]]:
    """Collect progress lines for delay_s, SIGKILL, and return the (step, time) reported."""
    assert proc.stdout is not None
    stdout = proc.stdout
    reported: list[tuple[int, float]] = []

    def pump() -> None:
        for line in stdout:
            fields = line.split()
            if len(fields) == 3 and fields[0] == "step":  # a kill may cut the last line short
                reported.append((int(fields[1]), float(fields[2])))

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    time.sleep(delay_s)  # the moment of the kill is the random variable under test
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    thread.join(timeout=10)
    close_pipes(proc)
    return reported


def close_pipes(proc: subprocess.Popen[str]) -> None:
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


def check_after_kill(
    repo: Path, run_hash: str, reported: list[tuple[int, float]], killed_at: float
) -> int:
    """The run reads, has a hole-free prefix of steps with the right values, and every step
    reported more than one flush interval before the kill is there. Returns the point count."""
    layout = RepoLayout(repo)
    meta = load_run_meta(layout, run_hash)
    infos = [i for i in discover_sequences(layout, run_hash, meta) if i.name == "m"]
    if not infos:
        assert not any(ts < killed_at - FLUSH_INTERVAL_S - 0.5 for _, ts in reported)
        return 0
    table = read_sequence(layout, run_hash, infos[0])
    steps = table.column("step").to_pylist()
    values = table.column("value").to_pylist()
    assert steps == list(range(len(steps))), "holes or duplicates"
    assert values == [float(s) for s in steps], "garbage values"
    must_have = [s for s, ts in reported if ts < killed_at - FLUSH_INTERVAL_S - 0.5]
    if must_have:
        assert max(must_have) < len(steps), (max(must_have), len(steps))
    # the independent reader agrees
    raw = raw_points(repo, run_hash)[("m", '{"subset":"train"}')]
    assert [p["step"] for p in raw] == steps
    return len(steps)


def one_trial(repo: Path, rng: random.Random) -> None:
    proc = start_writer(repo, "new")
    run_hash = read_hash(proc)
    reported = kill_after(proc, rng.uniform(0.0, 2.5))
    killed_at = time.time()
    n = check_after_kill(repo, run_hash, reported, killed_at)
    # resumes at once by hash (the dead writer's lock is taken over) and continues the steps
    with aim.Run(
        run_hash, repo=repo, system_tracking_interval=None, capture_terminal_logs=False
    ) as run:
        run.track(float(n), name="m", context={"subset": "train"})
    layout = RepoLayout(repo)
    info = next(i for i in load_run_meta(layout, run_hash).sequences if i.name == "m")
    assert read_sequence(layout, run_hash, info).column("step").to_pylist() == list(range(n + 1))


@pytest.mark.crash
@pytest.mark.parametrize("seed", range(4))
def test_sigkill_writer_then_read_and_resume(tmp_path: Path, seed: int) -> None:
    one_trial(tmp_path, random.Random(seed))


@pytest.mark.crash
@pytest.mark.slow
def test_sigkill_writer_randomized_trials(tmp_path: Path) -> None:
    rng = random.Random(1234)
    for trial in range(50):
        one_trial(tmp_path / f"t{trial}", rng)


@pytest.mark.crash
def test_sigkill_during_resume_and_close(tmp_path: Path) -> None:
    proc = start_writer(tmp_path, "new", "-", "3000")
    run_hash = read_hash(proc)
    assert proc.wait(timeout=60) == 0
    close_pipes(proc)
    for delay in (0.0, 0.05, 0.2, 0.6):
        proc = start_writer(tmp_path, "resume", run_hash, "2000")
        reported = kill_after(proc, delay)
        check_after_kill(tmp_path, run_hash, reported, time.time())


def test_sigterm_flushes_and_sets_end_time(tmp_path: Path) -> None:
    proc = start_writer(tmp_path, "new")
    run_hash = read_hash(proc)
    assert proc.stdout is not None
    while not proc.stdout.readline().startswith("step 1000 "):
        pass
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == -signal.SIGTERM
    close_pipes(proc)
    run = aim.Run(run_hash, repo=tmp_path, read_only=True)
    assert run.end_time is not None and not run.active
    steps = [p["step"] for p in raw_points(tmp_path, run_hash)[("m", '{"subset":"train"}')]]
    assert steps == list(range(len(steps))) and len(steps) > 1000


def test_keyboard_interrupt_flushes_at_exit(tmp_path: Path) -> None:
    code = (
        "import aim_parquet as aim\n"
        f"run = aim.Run(repo={str(tmp_path)!r}, system_tracking_interval=None, capture_terminal_logs=False)\n"
        "print(run.hash, flush=True)\n"
        "for i in range(100): run.track(float(i), name='m')\n"
        "raise KeyboardInterrupt\n"
    )
    proc = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, env=python_env())
    assert proc.returncode != 0 and "KeyboardInterrupt" in proc.stderr
    run_hash = proc.stdout.split()[0]
    run = aim.Run(run_hash, repo=tmp_path, read_only=True)
    assert run.end_time is not None
    assert len(raw_points(tmp_path, run_hash)[("m", "{}")]) == 100


def test_atexit_flushes_unclosed_run(tmp_path: Path) -> None:
    code = (
        "import aim_parquet as aim\n"
        f"run = aim.Run(repo={str(tmp_path)!r}, system_tracking_interval=None, capture_terminal_logs=False)\n"
        "print(run.hash)\n"
        "for i in range(10): run.track(float(i), name='m')\n"
    )
    proc = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, env=python_env())
    assert proc.returncode == 0, proc.stderr
    run_hash = proc.stdout.split()[0]
    assert aim.Run(run_hash, repo=tmp_path, read_only=True).end_time is not None
    assert len(raw_points(tmp_path, run_hash)[("m", "{}")]) == 10


def test_resumed_run_closed_at_exit_after_an_error_is_quiet_and_whole(tmp_path: Path) -> None:
    """A resumed run that rewrote a step and is left open by an exception is closed by the exit
    hook, after `threading` has shut down (no module that registers a threading exit hook, such
    as `concurrent.futures.thread` imported by pandas, can be imported then): the close recounts
    the rewritten sequence without importing anything, so stderr has only the program's own
    traceback and every point is there (hx17a)."""
    code = (
        "import sys, aim_parquet as aim\n"
        f"repo = {str(tmp_path)!r}\n"
        "r = aim.Run(repo=repo, system_tracking_interval=None, capture_terminal_logs=False)\n"
        "for i in range(20): r.track(float(i), name='loss', step=i, context={'subset': 'train'})\n"
        "h = r.hash; r.close(); print(h, flush=True)\n"
        "r = aim.Run(run_hash=h, repo=repo, system_tracking_interval=None, capture_terminal_logs=False)\n"
        "r.track(-1.0, name='loss', step=3, epoch=1, context={'subset': 'train'})\n"
        "r.track(-2.0, name='loss', step=-5)\n"  # raises ValueError: the run is left open
    )
    proc = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, env=python_env())
    assert proc.returncode == 1 and proc.stderr.rstrip().endswith("got -5."), proc.stderr
    assert "aim_parquet" not in proc.stderr.split("ValueError: step")[-1], proc.stderr
    assert "atexit" not in proc.stderr, proc.stderr
    run_hash = proc.stdout.split()[0]
    run = aim.Run(run_hash, repo=tmp_path, read_only=True)
    assert run.end_time is not None and not run.active
    (metric,) = aim.Repo(tmp_path).get_run(run_hash).metrics()
    steps, values = metric.values.sparse_numpy()
    expected = [float(i) for i in range(20)]
    expected[3] = -1.0
    assert list(steps) == list(range(20)) and list(values) == expected
    (info,) = load_run_meta(RepoLayout(tmp_path), run_hash).sequences  # the exact recount
    assert (info.count, info.min, info.max, info.last) == (20, -1.0, 19.0, 19.0)


def test_torn_tail_is_skipped(tmp_path: Path, make_run: Any) -> None:
    run = make_run(repo=tmp_path)
    for i in range(5):
        run.track(float(i), name="m")
        run.flush()
    run.close()
    seg = next((tmp_path / ".aim" / "runs" / run.hash / "seqs").rglob("*.arrows"))
    data = seg.read_bytes()
    seg.write_bytes(data[:-7])
    layout = RepoLayout(tmp_path)
    info = load_run_meta(layout, run.hash).sequences[0]
    assert read_sequence(layout, run.hash, info).column("step").to_pylist() == [0, 1, 2, 3]
