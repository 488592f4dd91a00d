"""The write path under real process models: fork, pools, signals, simultaneous resumes, threads,
collected runs and clocks stepped back (issue 21).

Each test runs the training script in a real process (tests/integration/process_models_proc.py)
under a time limit, then checks with independent readers that nothing hung, exactly one writer
held the run, and every point tracked was read back exactly once. The looped trials are `slow`.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage import compact_run
from aim_parquet.storage.base.lock import RunLock, read_holder
from aim_parquet.storage.online.run_reader import load_manifest
from tests.conftest import PYTHON, python_env, raw_points, sidecar
from tests.integration.test_crash import close_pipes, read_hash, start_writer

SCRIPT = str(Path(__file__).with_name("process_models_proc.py"))
LIMIT_S = 60.0  # no scenario takes more than a few seconds; a hang fails at this limit
QUIET: dict[str, Any] = {"system_tracking_interval": None, "capture_terminal_logs": False}


class Child:
    """A scenario process whose stdout lines arrive on a queue (reads never block the test)."""

    def __init__(self, scenario: str, repo: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [PYTHON, SCRIPT, scenario, str(repo), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=python_env(),
            start_new_session=True,  # its own process group: a hang is killed with its workers
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._stderr: list[str] = []
        self._stdout_thread = threading.Thread(target=self._pump_stdout, daemon=True)
        self._stdout_thread.start()
        self._stderr_thread = threading.Thread(target=self._pump_stderr, daemon=True)
        self._stderr_thread.start()

    def _pump_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _pump_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)

    def expect(self, prefix: str, timeout_s: float = LIMIT_S) -> list[str]:
        """The fields of the next line starting with `prefix` (earlier lines are kept in seen)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                pytest.fail(f"no {prefix!r} line within {timeout_s} s; stderr: {self.stderr}")
            if line is None:
                self.proc.wait(timeout=LIMIT_S)
                pytest.fail(f"exited {self.proc.returncode} before {prefix!r}: {self.stderr}")
            self.seen.append(line)
            if line.startswith(prefix):
                return line.split(" ", 1)[1].split() if " " in line else []

    def expect_text(self, prefix: str, timeout_s: float = LIMIT_S) -> str:
        """The rest of the next line starting with `prefix` (after `prefix` and one space)."""
        self.expect(prefix, timeout_s)
        return self.seen[-1][len(prefix) + 1 :]

    def expect_one_of(self, *prefixes: str) -> str:
        """The next whole line that starts with one of `prefixes`."""
        while True:
            self.expect("")
            if self.seen[-1].startswith(prefixes):
                return self.seen[-1]

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def finish(self, timeout_s: float = LIMIT_S) -> int:
        try:
            code = self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"hung: still running after {timeout_s} s; stderr: {self.stderr}")
        self._stderr_thread.join(timeout=LIMIT_S)
        self._stdout_thread.join(timeout=LIMIT_S)  # (closing a pipe it reads raises there)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        return code

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)


def rows(repo: Path, run_hash: str) -> dict[str, list[tuple[int, float]]]:
    """{sequence name: [(step, value), ...]} of every stored row, compacted or not, read with
    plain pyarrow (so a point stored twice shows twice)."""
    out: dict[str, list[tuple[int, float]]] = {}
    for (name, _), points in raw_points(repo, run_hash).items():
        out.setdefault(name, []).extend((p["step"], p["value"]) for p in points)
    manifest = load_manifest(RepoLayout(repo), run_hash)
    for f in manifest.files if manifest else []:
        table = pq.read_table(repo / ".aim" / "runs" / run_hash / f.path)
        for name, step, value in zip(
            table["name"].to_pylist(),
            table["step"].to_pylist(),
            table["value"].to_pylist(),
            strict=True,
        ):
            out.setdefault(name, []).append((step, value))
    return out


def steps_of(repo: Path, run_hash: str, name: str) -> list[int]:
    return sorted(step for step, _ in rows(repo, run_hash).get(name, []))


def assert_closed_and_free(repo: Path, run_hash: str) -> None:
    """end_time is set, the lock names nobody, and exactly one new writer can take it."""
    assert sidecar(repo, run_hash)["end_time"] is not None
    lock = repo / ".aim" / "runs" / run_hash / "lock"
    assert read_holder(lock) is None
    # a second Run() in this process would share the writer (#20): take the lock directly
    with aim.Run(run_hash, repo=repo, **QUIET), pytest.raises(aim.RunLockedError):
        RunLock(lock, run_hash).acquire()


# -- fork ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["exit", "sigterm", "track"])
def test_forked_child_leaves_the_parents_run_alone(tmp_path: Path, how: str) -> None:
    child = Child("fork_exit", tmp_path, how)
    run_hash = child.expect("hash")[0]
    status = int(child.expect("child")[0])
    if how == "sigterm":  # the child dies of the signal at once, closing nothing
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM
    else:
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    lock = json.loads(json.loads(child.expect_text("lock")))
    assert lock["pid"] == child.proc.pid  # the child neither emptied nor released the lock
    with pytest.raises(aim.RunLockedError, match=rf"process {child.proc.pid} on host"):
        aim.Run(run_hash, repo=tmp_path, **QUIET)
    child.send("go")
    child.expect("done")
    assert child.finish() == 0
    assert steps_of(tmp_path, run_hash, "m") == list(range(3000))  # each exactly once
    data = sidecar(tmp_path, run_hash)
    assert data["params"]["before"] == 1 and data["params"]["after"] == 2
    assert "child" not in data["params"] and "child_only" not in rows(tmp_path, run_hash)
    if how == "track":
        assert child.stderr.count("cannot write it, so track(") == 1  # warned once
        assert "child param refused" in child.stderr
    assert_closed_and_free(tmp_path, run_hash)


def check_pool_trial(repo: Path, epochs: int) -> None:
    child = Child("pool_epochs", repo, str(epochs))
    run_hash = child.expect("hash")[0]
    assert child.expect("done") == [str(200 * epochs)]
    assert child.finish() == 0, child.stderr
    assert steps_of(repo, run_hash, "m") == list(range(200 * epochs))
    assert sidecar(repo, run_hash)["params"]["epoch"] == epochs - 1
    assert_closed_and_free(repo, run_hash)


def test_pool_per_epoch_neither_hangs_nor_closes_the_run(tmp_path: Path) -> None:
    check_pool_trial(tmp_path, 4)


@pytest.mark.slow
def test_pool_per_epoch_trials(tmp_path: Path) -> None:
    for trial in range(10):
        check_pool_trial(tmp_path / f"t{trial}", 20)


def test_daemonic_fork_workers_at_interpreter_exit(tmp_path: Path) -> None:
    child = Child("daemon_workers", tmp_path)
    run_hash = child.expect("hash")[0]
    workers = [int(p) for p in child.expect("pids")]
    assert child.finish() == 0, child.stderr
    for pid in workers:  # multiprocessing ended them at exit; none is left behind
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert steps_of(tmp_path, run_hash, "m") == list(range(1000))
    assert "from_worker" not in rows(tmp_path, run_hash)
    assert child.stderr.count("cannot write it, so track(") == 2  # once per worker
    assert sidecar(tmp_path, run_hash)["params"]["hparams"] == {"set_after_fork": True}
    found = aim.Repo(tmp_path).query_metrics("run.hparams.set_after_fork == True")
    assert [m.name for m in found] == ["m"]
    assert_closed_and_free(tmp_path, run_hash)


def test_forked_child_keeps_no_terminal_lines(tmp_path: Path) -> None:
    child = Child("capture_fork", tmp_path, "20000")
    run_hash = child.expect("hash")[0]
    report = json.loads(child.expect_text("report"))
    assert report == {"tee": False, "pending": 0, "recording": False, "extensions": 0}
    child.expect("done")
    assert child.finish() == 0, child.stderr
    logs = aim.Run(run_hash, repo=tmp_path, read_only=True).get_terminal_logs()
    assert logs is not None
    texts = [line.data for line in logs.values.values_list()]
    assert "parent line" in texts and not any("child line" in t for t in texts)


# -- signals ------------------------------------------------------------------------------------
def sigterm_trial(repo: Path, kind: str, rng: random.Random) -> None:
    child = Child("sigterm_loop", repo, kind)
    run_hash = child.expect("hash")[0]
    child.expect("step 0")
    time.sleep(rng.uniform(0.05, 0.6))  # the moment of the signal is the random variable
    reported = [int(line.split()[1]) for line in child.seen if line.startswith("step ")]
    child.proc.send_signal(signal.SIGTERM)
    assert child.finish(timeout_s=30) == -signal.SIGTERM, child.stderr
    names = ["a", "b"] if kind == "dict" else ["m"]
    for name in names:
        steps = steps_of(repo, run_hash, name)
        assert steps == list(range(len(steps))), f"{name}: holes or duplicates"
        assert len(steps) > max(reported)
    assert_closed_and_free(repo, run_hash)


@pytest.mark.parametrize("kind", ["param", "flush", "dict", "track"])
def test_sigterm_during_updates_closes_without_hanging(tmp_path: Path, kind: str) -> None:
    sigterm_trial(tmp_path, kind, random.Random(kind))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["param", "flush", "dict", "track"])
def test_sigterm_during_updates_trials(tmp_path: Path, kind: str) -> None:
    rng = random.Random(f"trials-{kind}")
    for trial in range(15):
        sigterm_trial(tmp_path / f"t{trial}", kind, rng)


def long_close_trial(repo: Path, sig: signal.Signals, sequences: int) -> None:
    child = Child("long_close", repo, str(sequences))
    run_hash = child.expect("hash")[0]
    child.expect("closing")
    time.sleep(0.2)  # into the close (it takes seconds: every fsync is slow there)
    child.proc.send_signal(sig)
    time.sleep(0.2)  # the second signal comes a moment later, still during the close
    child.proc.send_signal(sig)
    code = child.finish()
    assert code == -sig, child.stderr  # the close finished first, then the signal ended it
    assert "closed" not in child.seen
    if sig == signal.SIGINT:  # Ctrl-C waits for the close, saying so, then ends the script
        assert "the interrupt takes effect when it is done" in child.stderr
    stored = rows(repo, run_hash)
    assert len(stored) == sequences
    for name, points in stored.items():
        assert sorted(points) == [(s, float(s)) for s in range(5)], name
    assert_closed_and_free(repo, run_hash)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_during_a_long_close(tmp_path: Path, sig: signal.Signals) -> None:
    long_close_trial(tmp_path, sig, 600)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signals_during_a_long_close_trials(tmp_path: Path, sig: signal.Signals) -> None:
    for trial in range(3):
        long_close_trial(tmp_path / f"t{trial}", sig, 3000)


# -- locks --------------------------------------------------------------------------------------
def killed_run(repo: Path) -> str:
    """A run whose writer was SIGKILLed: its lock file still names the dead process."""
    proc = start_writer(repo, "new", "-", "10")
    run_hash = read_hash(proc)
    assert proc.wait(timeout=LIMIT_S) == 0
    close_pipes(proc)
    proc = start_writer(repo, "hold", run_hash)
    assert read_hash(proc) == run_hash
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=LIMIT_S)
    close_pipes(proc)
    return run_hash


def resume_race_trial(repo: Path, n: int) -> None:
    run_hash = killed_run(repo)
    lock_path = repo / ".aim" / "runs" / run_hash / "lock"
    inode = os.stat(lock_path).st_ino
    children = [Child("resume_race", repo, run_hash) for _ in range(n)]
    for c in children:
        c.expect("ready")
    for c in children:
        c.send("go")
    outcomes = [c.expect_one_of("won", "lost") for c in children]
    winners = [c for c, o in zip(children, outcomes, strict=True) if o.startswith("won")]
    assert len(winners) == 1, outcomes  # exactly one writer
    winner = winners[0]
    winner.expect("tracked")
    holder = read_holder(lock_path)
    assert holder is not None and holder.pid == winner.proc.pid
    assert os.stat(lock_path).st_ino == inode  # nobody replaced the lock file
    for c, o in zip(children, outcomes, strict=True):
        if c is not winner:
            assert f"process {winner.proc.pid} on host" in json.loads(o.split(" ", 1)[1])
            assert c.finish() == 0, c.stderr
    winner.send("close")
    winner.expect("done")
    assert winner.finish() == 0, winner.stderr
    stored = rows(repo, run_hash)
    assert sorted(stored[f"w{winner.proc.pid}"]) == [(i, float(i)) for i in range(100)]
    assert [n for n in stored if n.startswith("w")] == [f"w{winner.proc.pid}"]
    assert_closed_and_free(repo, run_hash)


@pytest.mark.parametrize("n", [2, 4])
def test_simultaneous_resumes_of_a_killed_run_have_one_writer(tmp_path: Path, n: int) -> None:
    resume_race_trial(tmp_path, n)


@pytest.mark.slow
@pytest.mark.parametrize("n", [2, 4])
def test_simultaneous_resumes_trials(tmp_path: Path, n: int) -> None:
    for trial in range(12):
        resume_race_trial(tmp_path / f"t{trial}", n)


# -- threads ------------------------------------------------------------------------------------
def check_threads(repo: Path, trials: int) -> None:
    child = Child("threads_same_sequences", repo, str(trials))
    results = [child.expect("hash") for _ in range(trials)]
    assert child.finish() == 0, child.stderr
    for run_hash, per_seq in results:
        stored = rows(repo, run_hash)
        assert sorted(stored) == sorted(f"s{k}" for k in range(300))
        for name, points in stored.items():
            assert sorted(points) == [(s, float(s % 8)) for s in range(int(per_seq))], name


def test_threads_creating_the_same_sequences_lose_nothing(tmp_path: Path) -> None:
    check_threads(tmp_path, 2)


@pytest.mark.slow
def test_threads_creating_the_same_sequences_trials(tmp_path: Path) -> None:
    check_threads(tmp_path, 30)


def track_during_close_trial(repo: Path) -> None:
    child = Child("track_during_close", repo)
    run_hash = child.expect("hash")[0]
    result = json.loads(child.expect_text("result"))
    assert child.finish() == 0, child.stderr
    stored = rows(repo, run_hash)
    written = 0
    for t, tracked in enumerate(result["tracked"]):
        steps = sorted(step for step, _ in stored[f"t{t}"])
        assert steps == list(range(len(steps))) and len(steps) <= tracked
        written += len(steps)
    # every point whose track() returned is written or counted as dropped, never both
    assert written + result["late"] == sum(result["tracked"]) and result["late"] >= 800
    assert child.stderr.count("after close() is dropped") == 1  # one warning, never silent
    assert_closed_and_free(repo, run_hash)


def test_track_from_threads_while_close_runs(tmp_path: Path) -> None:
    track_during_close_trial(tmp_path)


@pytest.mark.slow
def test_track_from_threads_while_close_runs_trials(tmp_path: Path) -> None:
    for trial in range(10):
        track_during_close_trial(tmp_path / f"t{trial}")


# -- collected runs and clocks ------------------------------------------------------------------
def test_collected_run_is_closed_while_the_process_lives(tmp_path: Path) -> None:
    child = Child("collected", tmp_path)
    run_hash = child.expect("hash")[0]
    child.expect("collected")
    deadline = time.monotonic() + LIMIT_S
    lock_path = tmp_path / ".aim" / "runs" / run_hash / "lock"
    while sidecar(tmp_path, run_hash)["end_time"] is None or read_holder(lock_path) is not None:
        assert time.monotonic() < deadline, "the collected run was never closed"
        time.sleep(0.02)  # polling another process's files
    assert child.proc.poll() is None  # closed by the finalizer, not by the exit
    assert steps_of(tmp_path, run_hash, "m") == list(range(1000))
    with aim.Run(run_hash, repo=tmp_path, **QUIET):  # no longer locked
        pass
    child.send("exit")
    assert child.finish() == 0, child.stderr


def test_clock_stepped_back(tmp_path: Path) -> None:
    child = Child("clock_back", tmp_path)
    run_hash = child.expect("hash")[0]
    child.expect("open")
    lock_path = tmp_path / ".aim" / "runs" / run_hash / "lock"
    beat = os.stat(lock_path).st_mtime_ns
    deadline = time.monotonic() + 15
    while os.stat(lock_path).st_mtime_ns == beat:  # the heartbeat goes on after the step back
        assert time.monotonic() < deadline, "no heartbeat after the clock stepped back"
        time.sleep(0.05)
    report = compact_run(RepoLayout(tmp_path), run_hash, include_active=True, rewrite_all=True)
    assert report.status == "compacted", report
    child.send("go")
    child.expect("done")
    assert child.finish() == 0, child.stderr
    expected = Counter(
        [(s, 1.0) for s in range(100)] + [(s, 2.0) for s in range(50, 200)]
    )  # every row written, once
    assert Counter(rows(tmp_path, run_hash)["m"]) == expected
    metric = aim.Run(run_hash, repo=tmp_path, read_only=True).get_metric("m")
    assert metric is not None
    steps, values = metric.values.sparse_numpy()
    assert steps.tolist() == list(range(200))  # the newer writes win, though the clock was behind
    assert values.tolist() == [1.0] * 50 + [2.0] * 150
    assert_closed_and_free(tmp_path, run_hash)
