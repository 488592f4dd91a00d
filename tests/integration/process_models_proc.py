"""Training-script stand-ins for tests/integration/test_process_models.py (one process each).

usage: process_models_proc.py SCENARIO REPO [ARGS...]

Every scenario opens quiet runs (no system sampler, no terminal capture) unless it says
otherwise, prints `hash <h>` first and reports with flushed lines; the test reads the files.
"""

from __future__ import annotations

import gc
import json
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from typing import Any

import aim_parquet as aim

QUIET: dict[str, Any] = {"system_tracking_interval": None, "capture_terminal_logs": False}
ALIVE: list[Any] = []  # runs kept alive until exit, as a training script's global `run` is


def say(*parts: object) -> None:
    print(*parts, flush=True)


def wait_for(line: str) -> None:
    got = sys.stdin.readline().strip()
    if got != line:
        raise SystemExit(f"expected {line!r} on stdin, got {got!r}")


def square(x: int) -> int:
    return x * x


# -- fork -------------------------------------------------------------------------------------
def fork_exit(repo: str, how: str) -> None:
    """Fork a child that exits (sys.exit, SIGTERM, or tracks first); the parent goes on."""
    run = aim.Run(repo=repo, **QUIET)
    ALIVE.append(run)
    say("hash", run.hash)
    run["before"] = 1
    for i in range(1000):
        run.track(float(i), name="m", step=i)
    pid = os.fork()
    if pid == 0:
        if how == "track":  # a child that tracks into the inherited run: dropped, warned
            run.track(-1.0, name="m", step=10**6)
            run.track(-1.0, name="child_only")
            try:
                run["child"] = 1
            except aim.RunClosedError as exc:
                print("child param refused:", exc, file=sys.stderr, flush=True)
            sys.exit(0)
        if how == "sigterm":
            while True:
                time.sleep(0.01)  # until the parent's SIGTERM
        sys.exit(0)
    if how == "sigterm":
        time.sleep(0.05)  # let the child reach its loop: the signal must land in user code
        os.kill(pid, signal.SIGTERM)
    _, status = os.waitpid(pid, 0)
    say("child", status)
    with open(os.path.join(repo, ".aim", "runs", run.hash, "lock")) as f:
        say("lock", json.dumps(f.read()))
    wait_for("go")  # the test checks that nobody else can write the run now
    run["after"] = 2
    for i in range(1000, 3000):
        run.track(float(i), name="m", step=i)
    run.close()
    say("done")


def pool_epochs(repo: str, epochs: str) -> None:
    """`with multiprocessing.Pool()` once per epoch (fork start method, all defaults)."""
    ctx = multiprocessing.get_context("fork")
    run = aim.Run(repo=repo, **QUIET)
    say("hash", run.hash)
    step = 0
    for epoch in range(int(epochs)):
        for _ in range(200):
            run.track(float(step), name="m", step=step)
            step += 1
        run["epoch"] = epoch
        with ctx.Pool(2) as pool:
            assert pool.map(square, range(20)) == [x * x for x in range(20)]
        say("epoch", epoch)
    run.close()
    say("done", step)


def _daemon_worker(run: Any, tracked: Any, stop_after_s: float) -> None:
    run.track(-1.0, name="from_worker")  # dropped with a warning: a fork never writes the run
    tracked.put(os.getpid())
    deadline = time.monotonic() + stop_after_s
    while time.monotonic() < deadline:
        time.sleep(0.01)  # like an idle DataLoader worker, until the parent's exit ends it


def daemon_workers(repo: str) -> None:
    """Daemonic fork workers (DataLoader-style) alive at interpreter exit; no close()."""
    ctx = multiprocessing.get_context("fork")
    run = aim.Run(repo=repo, **QUIET)
    say("hash", run.hash)
    for i in range(500):
        run.track(float(i), name="m", step=i)
    tracked = ctx.Queue()
    workers = [
        ctx.Process(target=_daemon_worker, args=(run, tracked, 60.0), daemon=True) for _ in range(2)
    ]
    for w in workers:
        w.start()
    run["hparams"] = {"set_after_fork": True}  # must survive the workers' exit
    for i in range(500, 1000):
        run.track(float(i), name="m", step=i)
    assert sorted(tracked.get(timeout=30) for _ in workers) == sorted(w.pid for w in workers)
    say("pids", *[w.pid for w in workers])
    # falls off the end: multiprocessing terminates the daemons, atexit closes the run


def capture_fork(repo: str, lines: str) -> None:
    """A forked child of a run with terminal capture prints a lot; it must keep nothing."""
    from aim_parquet.system.terminal import TerminalCapture, _TeeStream

    run = aim.Run(repo=repo, system_tracking_interval=None, capture_terminal_logs=True)
    say("hash", run.hash)
    say("parent line")
    capture = next(e for e in run._extensions if isinstance(e, TerminalCapture))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        for i in range(int(lines)):
            print("child line", i)
        report = {
            "tee": isinstance(sys.stdout, _TeeStream) or isinstance(sys.stderr, _TeeStream),
            "pending": len(capture._pending),
            "recording": capture._is_recording,
            "extensions": len(run._extensions),
        }
        os.write(w, json.dumps(report).encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        report = f.read()
    os.waitpid(pid, 0)
    say("report", report)
    run.close()
    say("done")


# -- signals ----------------------------------------------------------------------------------
def sigterm_loop(repo: str, kind: str) -> None:
    """Track forever with a param / flush / dict update in the loop until SIGTERM."""
    run = aim.Run(repo=repo, **QUIET)
    say("hash", run.hash)
    i = 0
    while True:
        if kind == "dict":
            run.track({"a": float(i), "b": float(i)}, step=i)
        else:
            run.track(float(i), name="m", step=i)
        if kind == "param" and i % 20 == 0:
            run["p", str(i % 7)] = i
        if kind == "flush" and i % 50 == 0:
            run.flush()
        if i % 200 == 0:
            say("step", i)
        i += 1


def long_close(repo: str, sequences: str) -> None:
    """A close that takes seconds (thousands of unflushed sequences on a slow disk: every fsync
    takes 3 ms more); the test signals during it."""
    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:
        time.sleep(0.003)
        real_fsync(fd)

    os.fsync = slow_fsync
    run = aim.Run(repo=repo, **QUIET)
    say("hash", run.hash)
    run._writer.flush_interval_s = 3600.0  # test knob: everything waits for close()
    for k in range(int(sequences)):
        for step in range(5):
            run.track(float(step), name=f"s{k}", step=step)
    say("closing")
    run.close()
    say("closed")


# -- locks ------------------------------------------------------------------------------------
def resume_race(repo: str, run_hash: str) -> None:
    """Resume `run_hash` the moment the test says go; report whether this process won."""
    say("ready")
    wait_for("go")
    try:
        run = aim.Run(run_hash, repo=repo, **QUIET)
    except aim.RunLockedError as exc:
        say("lost", json.dumps(str(exc)))
        return
    say("won", os.getpid())
    for i in range(100):
        run.track(float(i), name=f"w{os.getpid()}", step=i)
    run.flush()
    say("tracked")
    wait_for("close")
    run.close()
    say("done")


# -- threads ----------------------------------------------------------------------------------
def threads_same_sequences(repo: str, trials: str) -> None:
    """8 threads start the same 300 new sequences at once; every point must land once."""
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    n_threads, n_seqs, rounds = 8, 300, 3
    for _ in range(int(trials)):
        run = aim.Run(repo=repo, **QUIET)
        barrier = threading.Barrier(n_threads)

        def work(t: int, run: Any = run, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            for r in range(rounds):
                for k in range(n_seqs):
                    ctx = {"half": "b"} if k % 2 else None
                    run.track(float(t), name=f"s{k}", step=r * n_threads + t, context=ctx)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        run.close()
        say("hash", run.hash, n_threads * rounds)


def track_during_close(repo: str) -> None:
    """Threads keep tracking while the main thread closes the run, and after it."""
    run = aim.Run(repo=repo, **QUIET)
    say("hash", run.hash)
    tracked = [0] * 4
    stop = threading.Event()
    started = threading.Barrier(5)

    def work(t: int) -> None:
        started.wait()
        step = 0
        while not stop.is_set():
            run.track(float(step), name=f"t{t}", step=step)
            step += 1
            tracked[t] = step  # returned normally
            if step % 64 == 0:
                time.sleep(0)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    started.wait()
    while min(tracked) < 2000:
        time.sleep(0.001)
    run.close()
    after = list(tracked)
    while min(t - a for t, a in zip(tracked, after, strict=True)) < 200:
        time.sleep(0.001)  # every thread tracked at least 200 points after close() returned
    stop.set()
    for th in threads:
        th.join()
    say("result", json.dumps({"tracked": tracked, "late": run._retired.late_points}))


# -- collected runs and clocks ----------------------------------------------------------------
def collected(repo: str) -> None:
    """A run dropped without close(): the finalizer must close it while the process lives."""
    run = aim.Run(repo=repo, **QUIET)
    say("hash", run.hash)
    for i in range(1000):
        run.track(float(i), name="m", step=i)
    del run
    gc.collect()
    say("collected")
    wait_for("exit")


def _step_clock_back(hours: int) -> None:
    """Patch the wall clock source (time.time, time.time_ns) to run `hours` behind."""
    real_time, real_time_ns = _REAL_CLOCK
    time.time = lambda: real_time() - 3600.0 * hours  # type: ignore[assignment]
    time.time_ns = lambda: real_time_ns() - 3600 * 10**9 * hours  # type: ignore[assignment]


_REAL_CLOCK = (time.time, time.time_ns)


def clock_back(repo: str) -> None:
    """Resume a run under a wall clock one hour behind, then step it back another hour while the
    run is open: new values must win, compaction must keep live points, the heartbeat goes on."""
    from aim_parquet.storage.base import lock

    with aim.Run(repo=repo, **QUIET) as run:
        for i in range(100):
            run.track(1.0, name="m", step=i)
    say("hash", run.hash)
    lock.HEARTBEAT_INTERVAL_S = 0.05  # test knob: beat on every flusher wake-up (1 s)
    _step_clock_back(1)
    resumed = aim.Run(run.hash, repo=repo, **QUIET)
    for i in range(50, 150):  # re-track steps 50..99: the new values must win
        resumed.track(2.0, name="m", step=i)
    resumed.flush()  # its segment stays open: compaction must leave it alone
    _step_clock_back(2)
    say("open")
    wait_for("go")  # meanwhile the test watched the heartbeat and compacted the active run
    for i in range(150, 200):
        resumed.track(2.0, name="m", step=i)
    resumed.close()
    say("done")


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # a training script started from a terminal: Ctrl-C raises KeyboardInterrupt, even when the
    # suite itself was started with SIGINT ignored (`cmd &`, nohup) and the child inherits that
    signal.signal(signal.SIGINT, signal.default_int_handler)
    scenario, *args = sys.argv[1:]
    globals()[scenario](*args)


if __name__ == "__main__":
    main()
