"""Resource faults: the disk fills up mid-run, writes fail half-way, file handles run short.

A full disk is simulated two ways:

- in a subprocess with `resource.setrlimit(RLIMIT_FSIZE)` (and SIGXFSZ ignored): every write
  past the limit fails with EFBIG, exactly as the kernel does it, partial writes included;
- in this process by swapping the `os` module seen by `storage.online.segments` and `storage.base.atomic` for
  a proxy whose `write`/`ftruncate`/`open` fail with ENOSPC at random (randomized trials).

Promises checked: training code is not killed by default (track() keeps returning, the error is
logged at ERROR level and again by close()), data written before the fault stays readable with
plain pyarrow and with `storage.online.run_reader`, data tracked during the fault is written once space
returns, strict mode (AIM_PARQUET_STRICT=1) raises StorageError on the next
track()/flush()/close(), and the open-file count stays bounded.
"""

from __future__ import annotations

import errno
import json
import os
import random
import subprocess
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pyarrow as pa
import pytest

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage import discover_sequences, load_run_meta, read_sequence
from aim_parquet.storage.base import atomic, files
from aim_parquet.storage.online import segments
from aim_parquet.storage.online.segments import FD_CACHE, MAX_OPEN_SEGMENTS
from tests.conftest import PYTHON, python_env, raw_points

# A training script that fills the disk (RLIMIT_FSIZE) part-way through; it prints one
# `RESULT {json}` line with what each call did. argv: REPO SCENARIO
CHILD = r"""
import json, logging, os, resource, signal, sys, time
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
import psutil
import aim_parquet as aim
from aim_parquet.storage.online.segments import FD_CACHE

repo, scenario = sys.argv[1], sys.argv[2]
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
out = {"raised": {}, "scenario": scenario}

def attempt(label, fn):
    try:
        fn()
    except Exception as exc:
        out["raised"][label] = [type(exc).__name__, str(exc)[:300]]

def fill_disk(limit=1):
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))

def free_disk():
    resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))

run = aim.Run(repo=repo, system_tracking_interval=None, capture_terminal_logs=False)
out["hash"] = run.hash
run["hparams"] = {"lr": 0.1, "note": "x" * 2000}  # sidecar larger than any small limit
for i in range(300):
    run.track(float(i), name="m", step=i, context={"subset": "train"})
run.track(aim.Text("before"), name="txt", step=0)
run.flush()

if scenario == "partial":
    from pathlib import Path
    segs = Path(repo, ".aim", "runs", run.hash, "seqs").rglob("*.arrows")
    fill_disk(max(p.stat().st_size for p in segs) + 7)  # the next batch is cut after 7 bytes
else:
    fill_disk()
fds_full = []
for i in range(300, 600):
    attempt("track", lambda: run.track(float(i), name="m", step=i, context={"subset": "train"}))
attempt("track_text", lambda: run.track(aim.Text("during"), name="txt", step=1))
attempt("track_new_seq", lambda: run.track(0.0, name="new_seq"))
if scenario == "strict":
    attempt("flush", run.flush)
    deadline = time.monotonic() + 20  # the background flusher fails within ~1 s
    while run._writer.error is None and time.monotonic() < deadline:
        time.sleep(0.01)
    attempt("track_after_flusher_failed", lambda: run.track(1.0, name="m", context={"subset": "train"}))
    attempt("set_param", lambda: run.__setitem__("late", 1))
else:
    attempt("flush", run.flush)
    attempt("set_param", lambda: run.__setitem__("late", {"k": "v"}))
    attempt("set_name", lambda: setattr(run, "name", "renamed"))
    attempt("add_tag", lambda: run.add_tag("full"))
    for _ in range(3):
        attempt("flush_again", run.flush)
        fds_full.append(psutil.Process().num_fds())
    attempt("track_more", lambda: run.track(600.0, name="m", step=600, context={"subset": "train"}))
if scenario in ("recover", "partial"):
    free_disk()
    attempt("flush_after_free", run.flush)
out["fds_full"] = fds_full
out["dropped"] = run._writer.dropped_points
attempt("close", run.close)
print("RESULT " + json.dumps(out), flush=True)
"""


def run_child(repo: Path, scenario: str, *, strict: bool = False) -> tuple[dict[str, Any], str]:
    env = python_env()
    env.pop("AIM_PARQUET_STRICT", None)
    if strict:
        env["AIM_PARQUET_STRICT"] = "1"
    proc = subprocess.run(
        [PYTHON, "-c", CHILD, str(repo), scenario],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr  # training code was not killed
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :]), proc.stderr


def metric_steps(repo: Path, run_hash: str, name: str = "m") -> tuple[list[int], list[int]]:
    """Steps of a metric read by our reader and, independently, by plain pyarrow."""
    layout = RepoLayout(repo)
    infos = discover_sequences(layout, run_hash, load_run_meta(layout, run_hash))
    info = next(i for i in infos if i.name == name)
    table = read_sequence(layout, run_hash, info)
    assert table.column("value").to_pylist() == [float(s) for s in table.column("step").to_pylist()]
    ours = table.column("step").to_pylist()
    ctx = json.dumps(info.context, sort_keys=True, separators=(",", ":"))
    raw = raw_points(repo, run_hash)[(name, ctx)]
    return ours, sorted(p["step"] for p in raw)


def strict_json(path: Path) -> Any:
    """The file parsed as strict UTF-8 JSON (what a non-Python reader requires)."""
    return json.loads(path.read_bytes().decode("utf-8"))


def assert_no_temp_files(repo: Path) -> None:
    left = [p for p in (repo / ".aim").rglob(".tmp-*")]
    assert left == [], left


def test_disk_full_mid_run_keeps_training_alive_and_earlier_data(tmp_path: Path) -> None:
    out, stderr = run_child(tmp_path, "default")
    assert out["raised"] == {}, "training code saw an exception without strict mode"
    # logged loudly, once when it happened and again by close()
    assert "ERROR aim_parquet.storage.online.run_writer: aim_parquet: writing run" in stderr
    assert "File too large" in stderr
    assert "closed after a write error" in stderr and "AIM_PARQUET_STRICT" in stderr
    run_hash = out["hash"]
    # every point flushed before the fault is intact, exactly once, for both readers
    ours, raw = metric_steps(tmp_path, run_hash)
    assert ours == raw == list(range(300))
    sidecar = strict_json(tmp_path / ".aim" / "runs" / run_hash / "run.json")
    assert sidecar["params"]["hparams"]["lr"] == 0.1
    assert_no_temp_files(tmp_path)
    # the run is not left locked and resumes by hash at once, continuing the steps
    with aim.Run(
        run_hash, repo=tmp_path, system_tracking_interval=None, capture_terminal_logs=False
    ) as run:
        run.track(300.0, name="m", context={"subset": "train"})
    ours, raw = metric_steps(tmp_path, run_hash)
    assert ours == raw == list(range(301))


def test_disk_freed_again_writes_everything_tracked_meanwhile(tmp_path: Path) -> None:
    out, stderr = run_child(tmp_path, "recover")
    assert out["raised"] == {}
    assert "File too large" in stderr  # the outage was reported when it happened
    assert out["dropped"] == 0
    assert "closed after a write error" not in stderr  # nothing was lost in the end
    run_hash = out["hash"]
    ours, raw = metric_steps(tmp_path, run_hash)
    assert ours == raw == list(range(601))
    ours, raw = metric_steps(tmp_path, run_hash, "new_seq")
    assert ours == raw == [0]
    ro = aim.Run(run_hash, repo=tmp_path, read_only=True)
    assert ro["late"] == {"k": "v"} and ro.name == "renamed" and ro.tags == ["full"]
    assert ro.end_time is not None and not ro.active
    texts = raw_points(tmp_path, run_hash)[("txt", "{}")]
    assert [(t["step"], t["payload"]) for t in texts] == [(0, b"before"), (1, b"during")]
    assert_no_temp_files(tmp_path)


def test_write_cut_half_way_is_truncated_back_not_left_as_garbage(tmp_path: Path) -> None:
    out, _ = run_child(tmp_path, "partial")
    assert out["raised"] == {}
    run_hash = out["hash"]
    # no segment holds a torn batch in the middle: plain pyarrow reads every message
    for seg in (tmp_path / ".aim" / "runs" / run_hash / "seqs").rglob("*.arrows"):
        with pa.OSFile(str(seg)) as f:
            pa.ipc.open_stream(f).read_all()
    ours, raw = metric_steps(tmp_path, run_hash)
    assert ours == raw == list(range(601))


def test_strict_mode_raises_storage_error_on_next_call(tmp_path: Path) -> None:
    out, _ = run_child(tmp_path, "strict", strict=True)
    raised = out["raised"]
    for call in ("flush", "track_after_flusher_failed", "set_param", "close"):
        assert call in raised, (call, raised)
        assert raised[call][0] == "StorageError", raised[call]
        assert "File too large" in raised[call][1] or "could not write" in raised[call][1]
    assert "track" not in raised  # buffering calls before the failure is known do not raise
    ours, raw = metric_steps(tmp_path, out["hash"])
    assert ours == raw == list(range(300))
    assert issubclass(aim.StorageError, OSError)


# -- in-process ENOSPC injection ---------------------------------------------------------------


class FaultyOs(types.SimpleNamespace):
    """Stands in for the `os` module inside storage.online.segments / storage.base.atomic: delegates
    everything, but while `is_full` is set, writes fail with ENOSPC (some after writing part of
    the data), and truncates/opens of new files sometimes fail too."""

    def __init__(self, rng: random.Random) -> None:
        super().__init__()
        self.rng = rng
        self.is_full = False
        self.faults = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def _fail(self, what: str) -> None:
        self.faults += 1
        raise OSError(errno.ENOSPC, f"No space left on device ({what}, injected)")

    def write(self, fd: int, data: Any) -> int:
        if self.is_full and self.rng.random() < 0.7:
            view = memoryview(data)
            if len(view) > 1 and self.rng.random() < 0.5:
                return os.write(fd, view[: self.rng.randrange(1, len(view))])  # partial write
            self._fail("write")
        return os.write(fd, data)

    def ftruncate(self, fd: int, length: int) -> None:
        if self.is_full and self.rng.random() < 0.2:
            self._fail("ftruncate")
        os.ftruncate(fd, length)

    def open(self, path: Any, flags: int, mode: int = 0o777) -> int:
        if self.is_full and flags & os.O_CREAT and self.rng.random() < 0.3:
            self._fail("open")
        return os.open(path, flags, mode)


@dataclass(frozen=True)
class TrialResult:
    faults: int  # injected write/truncate/open failures
    points: int  # points tracked (metrics and texts)
    lost: int  # tracked points missing afterwards
    doubled: int  # points stored more than once


def fault_trial(repo: Path, rng: random.Random, monkeypatch: pytest.MonkeyPatch) -> TrialResult:
    """Track, flush and set params while the disk fills and frees at random; then free it and
    close. Every point tracked must be there exactly once."""
    fake = FaultyOs(rng)
    with monkeypatch.context() as patch:
        patch.setattr(segments, "os", fake)
        patch.setattr(atomic, "os", fake)
        patch.setattr(files, "os", fake)  # (the write loop of both)
        run = aim.Run(repo=repo, system_tracking_interval=None, capture_terminal_logs=False)
        model: dict[str, list[int]] = {}
        params: dict[str, int] = {}
        for op in range(rng.randrange(20, 60)):
            choice = rng.random()
            if choice < 0.6:
                name = f"m{rng.randrange(4)}"
                for _ in range(rng.randrange(1, 50)):
                    step = len(model.setdefault(name, []))
                    run.track(float(step), name=name, step=step)
                    model[name].append(step)
            elif choice < 0.7:
                step = len(model.setdefault("txt", []))
                run.track(aim.Text(f"text {step}"), name="txt", step=step)
                model["txt"].append(step)
            elif choice < 0.8:
                params[f"p{op}"] = op
                run[f"p{op}"] = op  # never raises without strict mode
            elif choice < 0.9:
                run.flush()  # never raises without strict mode
            else:
                fake.is_full = not fake.is_full
        fake.is_full = False  # space comes back before the end
        run.close()
    raw = raw_points(repo, run.hash)
    stored = {name: [p["step"] for p in raw.get((name, "{}"), [])] for name in model}
    result = TrialResult(
        faults=fake.faults,
        points=sum(len(steps) for steps in model.values()),
        lost=sum(len(set(model[n]) - set(stored[n])) for n in model),
        doubled=sum(len(stored[n]) - len(set(stored[n])) for n in model),
    )
    assert (result.lost, result.doubled) == (0, 0), result
    layout = RepoLayout(repo)
    meta = load_run_meta(layout, run.hash)
    assert meta.end_time is not None
    assert dict(meta.params) == params
    infos = {i.name: i for i in discover_sequences(layout, run.hash, meta)}
    for name, steps in model.items():
        assert stored[name] == steps, "write order changed"
        table = read_sequence(layout, run.hash, infos[name])
        assert table.column("step").to_pylist() == steps, name
    assert_no_temp_files(repo)
    return result


FAST_TRIALS = 12
SLOW_TRIALS = 400


def run_fault_trials(
    root: Path, n: int, seed: int, monkeypatch: pytest.MonkeyPatch
) -> list[TrialResult]:
    rng = random.Random(seed)
    return [fault_trial(root / f"t{trial}", rng, monkeypatch) for trial in range(n)]


def test_random_enospc_faults_lose_and_double_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = run_fault_trials(tmp_path, FAST_TRIALS, 7, monkeypatch)
    assert sum(r.faults for r in results) > 0


@pytest.mark.slow
def test_random_enospc_faults_many_trials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    results = run_fault_trials(tmp_path, SLOW_TRIALS, 2024, monkeypatch)
    assert sum(r.faults for r in results) > SLOW_TRIALS


def test_failed_new_run_leaves_no_half_made_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    aim.Run(repo=tmp_path, system_tracking_interval=None, capture_terminal_logs=False).close()
    fake = FaultyOs(random.Random(0))
    fake.rng = types.SimpleNamespace(random=lambda: 0.0, randrange=lambda *a: 1)  # always fail
    fake.is_full = True
    with monkeypatch.context() as patch:
        patch.setattr(atomic, "os", fake)
        with pytest.raises(aim.StorageError, match="No space left"):
            aim.Run(repo=tmp_path, system_tracking_interval=None, capture_terminal_logs=False)
    assert len(list((tmp_path / ".aim" / "runs").iterdir())) == 1  # no sidecar-less folder
    assert_no_temp_files(tmp_path)


def test_resume_on_a_full_disk_is_a_clear_error_and_the_run_stays_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with aim.Run(repo=tmp_path, system_tracking_interval=None, capture_terminal_logs=False) as run:
        run.track(0.0, name="m")
    fake = FaultyOs(random.Random(0))
    fake.rng = types.SimpleNamespace(random=lambda: 0.0, randrange=lambda *a: 1)  # always fail
    fake.is_full = True
    with monkeypatch.context() as patch:
        patch.setattr(atomic, "os", fake)
        with pytest.raises(aim.StorageError, match="No space left"):
            aim.Run(run.hash, repo=tmp_path, system_tracking_interval=None)
    # the lock was released and nothing was damaged: it resumes as soon as there is space
    with aim.Run(
        run.hash, repo=tmp_path, system_tracking_interval=None, capture_terminal_logs=False
    ) as again:
        again.track(1.0, name="m")
    ours, raw = metric_steps(tmp_path, run.hash)
    assert ours == raw == [0, 1]
    assert_no_temp_files(tmp_path)


# -- file handles ------------------------------------------------------------------------------


@pytest.fixture
def quiet_runs(tmp_path: Path) -> Iterator[list[Any]]:
    runs: list[Any] = []
    yield runs
    for run in runs:
        run.close()


def test_open_files_stay_bounded_with_many_sequences_and_runs(
    tmp_path: Path, quiet_runs: list[Any]
) -> None:
    proc = psutil.Process()
    baseline = proc.num_fds()
    for _ in range(3):
        quiet_runs.append(
            aim.Run(repo=tmp_path, system_tracking_interval=None, capture_terminal_logs=False)
        )
    big, *small = quiet_runs
    peak = 0
    for step in range(4):
        for s in range(500):
            big.track(float(step), name=f"seq{s}", step=step, context={"i": s % 7})
        for run in small:
            for s in range(120):
                run.track(float(step), name=f"seq{s}", step=step)
        for run in quiet_runs:
            run.flush()
            peak = max(peak, proc.num_fds())
    assert FD_CACHE.open_count() <= MAX_OPEN_SEGMENTS
    # the segment cache, one lock per run, and a few transient descriptors
    assert peak - baseline <= MAX_OPEN_SEGMENTS + len(quiet_runs) + 8, (peak, baseline)
    for run in quiet_runs:
        run.close()
    assert proc.num_fds() - baseline <= MAX_OPEN_SEGMENTS
    layout = RepoLayout(tmp_path)
    meta = load_run_meta(layout, big.hash)
    assert len(meta.sequences) == 500
    info = next(i for i in meta.sequences if i.name == "seq499")
    assert read_sequence(layout, big.hash, info).column("step").to_pylist() == [0, 1, 2, 3]


NOFILE_CHILD = r"""
import resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (160, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
import aim_parquet as aim
runs = [aim.Run(repo=sys.argv[1], system_tracking_interval=None, capture_terminal_logs=False)
        for _ in range(6)]
for step in range(3):
    for k, run in enumerate(runs):
        for s in range(400):
            run.track(float(step), name=f"s{s}", step=step)
        run.flush()
for run in runs:
    run.close()
print("ok", " ".join(r.hash for r in runs), flush=True)
"""


def test_too_many_open_files_never_happens(tmp_path: Path) -> None:
    """6 runs x 400 sequences under a 160-descriptor limit: no EMFILE, nothing lost."""
    proc = subprocess.run(
        [PYTHON, "-c", NOFILE_CHILD, str(tmp_path)],
        capture_output=True,
        text=True,
        env=python_env(),
        timeout=120,
    )
    assert proc.returncode == 0 and "ERROR" not in proc.stderr, proc.stderr
    hashes = proc.stdout.split()[1:]
    assert len(hashes) == 6
    points = raw_points(tmp_path, hashes[-1])
    assert len(points) == 400 and all(len(rows) == 3 for rows in points.values())


def test_flushes_from_many_runs_in_threads_never_cross_write(tmp_path: Path) -> None:
    """Regression: the shared descriptor cache once closed a descriptor another run's flusher
    was writing through; the number was reused and batches landed in the wrong file."""
    import sys
    import threading

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        runs = [
            aim.Run(repo=tmp_path, system_tracking_interval=None, capture_terminal_logs=False)
            for _ in range(3)
        ]

        def work(k: int, run: Any) -> None:
            for rnd in range(25):
                for s in range(80):
                    run.track(float(k * 10**6 + s * 1000 + rnd), name=f"s{s}", step=rnd)
                run.flush()

        threads = [threading.Thread(target=work, args=(k, r)) for k, r in enumerate(runs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for run in runs:
            run.close()
    finally:
        sys.setswitchinterval(old)
    for k, run in enumerate(runs):
        points = raw_points(tmp_path, run.hash)
        for s in range(80):
            values = [p["value"] for p in points[(f"s{s}", "{}")]]
            assert values == [float(k * 10**6 + s * 1000 + r) for r in range(25)], (k, s)
