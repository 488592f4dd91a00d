"""Run the slow reliability trials and print the figures the README quotes.

    .venv/bin/python tools/fault_report.py            # everything (several minutes)
    .venv/bin/python tools/fault_report.py --quick    # a few trials of each kind (~1 minute)

Figures: trials run, faults injected (ENOSPC/EFBIG write failures, SIGKILLs, SIGTERMs and Ctrl-Cs),
inputs tried (bad input corpus, Hypothesis examples, hostile path strings) and data lost: points
that were written (flushed, or tracked while the disk was full and then freed) but missing or
doubled afterwards, or a trial that failed (a hang, two writers, a point read back twice). The
trials are the ones the test suite runs (tests/integration, tests/property), called directly.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402  (after the sys.path set-up: the trials live in tests/)

from tests.integration import (  # noqa: E402
    test_bad_input,
    test_concurrency,
    test_hostile_maintenance_links,
    test_hostile_repo,
    test_maintenance_races,
    test_paths_security,
    test_resource_faults,
    test_shared_repo,
)


@dataclass
class Tally:
    name: str
    trials: int = 0
    faults: int = 0
    inputs: int = 0
    points: int = 0
    lost: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0


@contextlib.contextmanager
def timed(tally: Tally) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        tally.seconds += time.perf_counter() - started


def attempt(tally: Tally, what: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except (AssertionError, Exception, pytest.fail.Exception) as exc:  # a figure, not a crash
        text = str(exc)  # an assertion's message may be a whole log: its end says what failed
        shown = text if len(text) <= 700 else f"{text[:200]} [...] {text[-500:]}"
        tally.failures.append(f"{what}: {type(exc).__name__}: {shown}")
        return None


def run_pytest(*args: str) -> int:
    """Run pytest on some of the suite in a child process; its exit status."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, check=False).returncode


def enospc_trials(n: int, base: Path) -> Tally:
    tally = Tally("random ENOSPC faults (in process)")
    rng = random.Random(2024)
    with timed(tally), pytest.MonkeyPatch.context() as mp:
        for i in range(n):
            result = attempt(
                tally,
                f"trial {i}",
                lambda i=i: test_resource_faults.fault_trial(base / f"enospc{i}", rng, mp),
            )
            tally.trials += 1
            if result is None:
                tally.lost += 1  # counted as a failure; see the listed reason
                continue
            tally.faults += result.faults
            tally.points += result.points
            tally.lost += result.lost + result.doubled
    return tally


def disk_full_scenarios(base: Path) -> Tally:
    tally = Tally("disk full mid-run (subprocess, RLIMIT_FSIZE)")
    with timed(tally):
        for scenario, strict, before in (
            ("default", False, 300),
            ("recover", False, 601),
            ("partial", False, 601),
            ("strict", True, 300),
        ):
            repo = base / f"fsize-{scenario}"
            out = attempt(
                tally,
                scenario,
                lambda r=repo, s=scenario, t=strict: test_resource_faults.run_child(r, s, strict=t),
            )
            tally.trials += 1
            if out is None:
                continue
            tally.faults += 1
            tally.points += before
            steps = attempt(
                tally,
                scenario,
                lambda r=repo, h=out[0]["hash"]: test_resource_faults.metric_steps(r, h),
            )
            if steps is not None:
                ours, raw = steps
                tally.lost += before - len(set(ours) & set(range(before)))
                tally.lost += len(raw) - len(set(raw))
    return tally


def crash_trials(n: int, base: Path) -> Tally:
    tally = Tally("SIGKILL at random moments (subprocess)")
    from tests.integration import test_crash

    rng = random.Random(1234)
    with timed(tally):
        for i in range(n):
            attempt(tally, f"trial {i}", lambda i=i: test_crash.one_trial(base / f"crash{i}", rng))
            tally.trials += 1
            tally.faults += 1
    tally.lost = len(tally.failures)  # one_trial asserts that nothing flushed was lost
    return tally


def catalogue_kill_trials(kills: int, base: Path) -> Tally:
    """The crash matrix of the catalogue: each run gets several writer processes, each SIGKILLed
    at one moment (before its first flush, between a flush's segment write and its sidecar
    write, at a random time, inside close() before its last sidecar write), resumed by the next
    with auto-steps and explicit steps; readers' statistics checked after every kill, every
    point of every process checked at the end."""
    tally = Tally("SIGKILL at set moments + resume (catalogue)")
    from aim_parquet.storage.index import run_index
    from tests.integration import test_catalogue_kill

    rng = random.Random(20240613)
    moments: dict[str, int] = {}
    with timed(tally), pytest.MonkeyPatch.context() as mp:
        mp.setattr(run_index, "FULL_CHECK_S", 0.0)  # a kept index re-checks every run
        run = 0
        while tally.faults < kills:
            planned = [rng.choice(test_catalogue_kill.MOMENTS) for _ in range(rng.randrange(3, 8))]
            history = attempt(
                tally,
                f"run {run} ({', '.join(planned)})",
                lambda r=run, m=planned: test_catalogue_kill.kill_trial(base / f"cat{r}", rng, m),
            )
            tally.trials += 1
            tally.faults += len(planned)
            run += 1
            if history is not None:
                tally.points += sum(sum(d.values()) for d in history.durable)
                for moment, n in history.moments.items():
                    moments[moment] = moments.get(moment, 0) + n
    if moments:
        print(
            "catalogue kills by moment:", ", ".join(f"{m} {n}" for m, n in sorted(moments.items()))
        )
    tally.lost = len(tally.failures)  # kill_trial asserts every durable point is there once
    return tally


def concurrency(base: Path, *, heavy: bool) -> Tally:
    tally = Tally("8 writers + reader + compactor at once")
    kwargs = {"writers": 8, "points": 30000 if heavy else 2000, "phases": 6 if heavy else 2}
    with timed(tally):
        stats = attempt(
            tally,
            "run",
            lambda: test_concurrency.run_everything(
                base / "concurrency", pace_s=0.01 if heavy else 0.05, **kwargs
            ),
        )
    tally.trials = 1
    n = kwargs["points"]
    tally.points = kwargs["writers"] * (n + len(range(0, n, 3)))  # loss, and acc every 3rd step
    if stats is not None:
        tally.inputs = stats["reads"] + stats["queries"]  # reads racing writers and compactions
        tally.name += f" ({stats['compactions']} compactions)"
    tally.lost = len(tally.failures)
    return tally


def process_model_trials(base: Path, *, quick: bool) -> list[Tally]:
    """The looped trials of tests/integration/test_process_models.py: signals during updates and
    during a long close, simultaneous resumes, Pools, threads. Each trial asserts that nothing
    hung, one writer held the run and every point was read back once; a failed trial is a loss."""
    from tests.integration import test_child_runs as child_runs
    from tests.integration import test_process_models as pm

    rng = random.Random(21)
    sigterm, sigint = pm.signal.SIGTERM, pm.signal.SIGINT
    # name, (trials, quick trials), signals sent per trial, one trial in a fresh folder
    specs: list[tuple[str, tuple[int, int], int, Callable[[Path], Any]]] = [
        *[
            (f"SIGTERM during {k} updates", (15, 2), 1, lambda r, k=k: pm.sigterm_trial(r, k, rng))
            for k in ("param", "flush", "dict", "track")
        ],
        (
            "SIGTERM twice in a 3,000-sequence close",
            (3, 1),
            2,
            lambda r: pm.long_close_trial(r, sigterm, 3000),
        ),
        (
            "Ctrl-C twice in a 3,000-sequence close",
            (3, 1),
            2,
            lambda r: pm.long_close_trial(r, sigint, 3000),
        ),
        (
            "2 processes resume a killed run at once",
            (12, 2),
            0,
            lambda r: pm.resume_race_trial(r, 2),
        ),
        (
            "4 processes resume a killed run at once",
            (12, 2),
            0,
            lambda r: pm.resume_race_trial(r, 4),
        ),
        ("`with Pool()` per epoch, 20 epochs", (10, 2), 0, lambda r: pm.check_pool_trial(r, 20)),
        (
            "`with Pool(2)` whose workers open runs, terminated (SIGTERM) each epoch, 2 epochs",
            (200, 3),
            4,
            lambda r: child_runs.run_trial(r, "pool", "fork"),
        ),
        ("8 threads start the same 300 sequences", (30, 3), 0, lambda r: pm.check_threads(r, 1)),
        ("track() from 4 threads while close() runs", (10, 2), 0, pm.track_during_close_trial),
    ]
    tallies = []
    for n, (name, counts, signals, trial) in enumerate(specs):
        tally = Tally(name)
        with timed(tally):
            for i in range(counts[1] if quick else counts[0]):
                folder = base / f"process-{n}-{i}"
                attempt(tally, f"trial {i}", lambda t=trial, f=folder: t(f))
                tally.trials += 1
                tally.faults += signals
        tally.lost = len(tally.failures)
        tallies.append(tally)
    return tallies


def hypothesis_runs(quick: bool) -> Tally:
    tally = Tally("Hypothesis round trips + state machine")
    from hypothesis import settings
    from hypothesis.stateful import run_state_machine_as_test

    from tests.property import test_roundtrip, test_stateful

    examples, steps = (20, 25) if quick else (300, 50)
    with timed(tally):
        attempt(
            tally,
            "state machine",
            lambda: run_state_machine_as_test(
                test_stateful.RepoMachine,
                settings=settings(
                    test_stateful.FAST, max_examples=examples, stateful_step_count=steps
                ),
            ),
        )
        marker = "not slow" if quick else "slow"
        code = run_pytest("-m", marker, "tests/property/test_roundtrip.py")
        if code != 0:
            tally.failures.append(f"tests/property/test_roundtrip.py exited {code}")
    tally.trials = examples
    # examples requested: state machine steps, plus 6 fast / 3 slow round-trip tests
    fast, slow = test_roundtrip.FAST.max_examples, test_roundtrip.SLOW.max_examples
    tally.inputs = examples * steps + (6 * fast if quick else 3 * slow)
    tally.lost = len(tally.failures)
    return tally


def corpus() -> Tally:
    tally = Tally("bad input corpus + hostile path strings")
    with timed(tally):
        code = run_pytest(
            "tests/integration/test_bad_input.py", "tests/integration/test_paths_security.py"
        )
    if code != 0:
        tally.failures.append(f"bad input / path tests exited {code}")
    sizes = test_bad_input.corpus_size()
    paths = len(test_paths_security.HOSTILE) + len(test_paths_security.LAYOUT_LIKE)
    tally.inputs = sum(sizes.values()) + paths * 14  # 14 entry points per hostile string
    tally.trials = 1
    tally.lost = len(tally.failures)
    return tally


def hostile_repositories() -> Tally:
    tally = Tally("hostile/shared repositories (links, FIFOs, bombs, formats, users)")
    files = (
        "tests/integration/test_hostile_repo.py",
        "tests/integration/test_shared_repo.py",
        "tests/integration/test_hostile_maintenance_links.py",
    )
    with timed(tally):
        code = run_pytest(*files)
    if code != 0:
        tally.failures.append(f"{' '.join(files)} exited {code}")
    planted = {
        **test_hostile_repo.PLANTED,
        **test_shared_repo.PLANTED,
        **test_hostile_maintenance_links.PLANTED,
    }
    tally.trials = len(planted)  # one repository each (a parametrized test: one per case)
    tally.faults = sum(planted.values())  # hostile files, links and permissions planted
    tally.lost = len(tally.failures)
    return tally


def maintenance_races(n: int, commands: int, base: Path) -> Tally:
    tally = Tally("maintenance commands racing a resuming writer + compactor")
    moves = copies = compactions = 0
    with timed(tally):
        for seed in range(n):
            folder = base / f"race{seed}"
            folder.mkdir()
            figures = attempt(
                tally,
                f"seed {seed}",
                lambda f=folder, s=seed: test_maintenance_races.race(f, seed=s, commands=commands),
            )
            tally.trials += 1
            if figures is None:
                continue
            tally.faults += figures["commands"]
            tally.points += figures["points"]
            moves += figures["moves"]
            copies += figures["copies"]
            compactions += figures["compactions"]
    tally.name += f" ({moves} moves, {copies} copies, {compactions} compactions)"
    tally.lost = len(tally.failures)  # race() asserts every closed point is there exactly once
    return tally


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few trials of each kind")
    parser.add_argument("--crash-trials", type=int, default=None, help="SIGKILL trials (50)")
    parser.add_argument("--enospc-trials", type=int, default=None, help="ENOSPC trials (400)")
    parser.add_argument(
        "--catalogue-kills", type=int, default=None, help="SIGKILLs at set moments (200)"
    )
    parser.add_argument("--race-trials", type=int, default=None, help="maintenance races (5)")
    args = parser.parse_args()
    crash_n = args.crash_trials if args.crash_trials is not None else (5 if args.quick else 50)
    catalogue_n = args.catalogue_kills
    if catalogue_n is None:
        catalogue_n = 10 if args.quick else 200
    enospc_n = args.enospc_trials if args.enospc_trials is not None else (20 if args.quick else 400)
    race_n = args.race_trials if args.race_trials is not None else (1 if args.quick else 5)
    with tempfile.TemporaryDirectory(prefix="aim-parquet-faults-") as tmp:
        base = Path(tmp)
        tallies = [
            crash_trials(crash_n, base),
            catalogue_kill_trials(catalogue_n, base),
            enospc_trials(enospc_n, base),
            disk_full_scenarios(base),
            concurrency(base, heavy=not args.quick),
            *process_model_trials(base, quick=args.quick),
            hypothesis_runs(args.quick),
            corpus(),
            hostile_repositories(),
            maintenance_races(race_n, 40 if args.quick else 150, base),
        ]
    print(f"{'trial kind':58} {'trials':>7} {'faults':>8} {'inputs':>8} {'lost':>5} {'s':>6}")
    for t in tallies:
        print(f"{t.name:58} {t.trials:7d} {t.faults:8d} {t.inputs:8d} {t.lost:5d} {t.seconds:6.0f}")
    total = Tally("total")
    for t in tallies:
        total.trials += t.trials
        total.faults += t.faults
        total.inputs += t.inputs
        total.lost += t.lost
        total.failures += [f"{t.name}: {f}" for f in t.failures]
    print(f"{'TOTAL':58} {total.trials:7d} {total.faults:8d} {total.inputs:8d} {total.lost:5d}")
    print(
        f"\ntrials run: {total.trials}, faults injected: {total.faults}, inputs tried: "
        f"{total.inputs}, data lost: {total.lost}"
    )
    for failure in total.failures:
        print("FAILED", failure)
    return 1 if total.failures or total.lost else 0


if __name__ == "__main__":
    sys.exit(main())
