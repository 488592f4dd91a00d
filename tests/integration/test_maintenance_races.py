"""Maintenance commands against live work: a training job that resumes its run over and over, a
compactor in a loop (`compact --include-active`, as cron runs it) and every maintenance command
at random times, each a real process.

Deterministic reproductions first (a resume during `runs mv`, a compaction during `runs cp|mv`,
`gc` racing `runs rm`, a resume during `gc`), then the randomized race: afterwards every point the
job closed is present exactly once wherever the run ended up, nothing deleted came back, every
command either succeeded or refused cleanly naming the holder, and no resume was refused
because of `gc`.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage import gc_repo, list_run_hashes, load_run_meta, read_sequence, verify_repo
from aim_parquet.storage.base.lock import compaction_lock
from aim_parquet.storage.compaction import compactor
from aim_parquet.storage.maintenance import run_ops
from aim_parquet.storage.online import catalogue_scan
from tests.conftest import PYTHON, python_env
from tests.integration.forked_cli import Result, run_forked
from tests.integration.repo_snapshots import QUIET, raw_row_counts

# argv: REPOS(comma-separated) RUN_HASH SESSIONS STOP_FILE FIRST_STEP PAUSE_S. Each session
# resumes the run wherever it is now (a move takes it to the other repository), tracks `loss`
# (value == step) and closes it, then the job pauses (an evaluation job between checkpoints);
# a refused resume (another process holds the run) is retried.
WRITER = r"""
import os, sys, time
import aim_parquet as aim
from aim_parquet.errors import MissingRunError, RunLockedError
repos, run_hash, sessions, stop = sys.argv[1].split(","), sys.argv[2], int(sys.argv[3]), sys.argv[4]
step, pause_s = int(sys.argv[5]), float(sys.argv[6])
for s in range(sessions):
    if os.path.exists(stop):
        break
    deadline = time.monotonic() + 120
    while True:
        try:
            run = None
            for repo in repos:
                try:
                    run = aim.Run(run_hash, repo=repo, system_tracking_interval=None,
                                  capture_terminal_logs=False)
                    break
                except MissingRunError:
                    continue
            if run is None:
                raise MissingRunError("in no repository (being moved)")
            break
        except (RunLockedError, MissingRunError) as exc:
            print("refused", " ".join(str(exc).split()), flush=True)
            if time.monotonic() > deadline:
                raise
            time.sleep(0.005)
    n = 20 + (s * 37) % 120
    for i in range(step, step + n):
        run.track(float(i), name="loss", step=i)
        if i % 40 == 0:
            run.flush()
    run.close()
    step += n
    print("closed", step, flush=True)
    time.sleep(pause_s * (s % 3))
print("done", step, flush=True)
"""

# argv: REPOS STOP_FILE. Compacts every run of each repository, live ones included, until stopped.
COMPACTOR = r"""
import os, sys
from pathlib import Path
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage import compact_repo
repos, stop = sys.argv[1].split(","), sys.argv[2]
while not os.path.exists(stop):
    for repo in repos:
        for r in compact_repo(RepoLayout(Path(repo)), include_active=True, workers=1, rewrite_all=True).runs:
            print(r.status, r.run_hash, " ".join(r.note.split()), flush=True)
"""

REFUSALS = ("being written by", "compaction of this run is in progress")


def make_run(root: Path, n: int = 100) -> str:
    run = aim.Run(repo=root, **QUIET)  # type: ignore[arg-type]
    for i in range(n):
        run.track(float(i), name="loss", step=i)
    run.close()
    return str(run.hash)


def loss_steps(root: Path, run_hash: str) -> list[int]:
    layout = RepoLayout(root)
    info = next(s for s in load_run_meta(layout, run_hash).sequences if s.name == "loss")
    table = read_sequence(layout, run_hash, info)
    steps: list[int] = table.column("step").to_pylist()
    assert table.column("value").to_pylist() == [float(s) for s in steps]
    return steps


def start(script: str, *args: str, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [PYTHON, "-c", script, *args], stdout=out, stderr=subprocess.STDOUT, env=python_env()
        )


# -- deterministic reproductions ---------------------------------------------------------------


def test_a_resume_during_a_move_is_refused_and_no_point_is_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 1: an evaluation job resumes the run, logs 10 points and closes during the copy of
    `runs mv`. The move holds the run's write lock, so the job is refused (naming the mover)
    and the destination gets every point."""
    src, dest = tmp_path / "src", tmp_path / "dest"
    run_hash = make_run(src)
    job = (
        "import aim_parquet as aim, sys\n"
        f"run = aim.Run({run_hash!r}, repo={str(src)!r}, system_tracking_interval=None,"
        " capture_terminal_logs=False)\n"
        "[run.track(1.0, name='eval') for _ in range(10)]\nrun.close()\n"
    )
    jobs: list[subprocess.CompletedProcess[str]] = []
    real_copy = run_ops.copy_regular

    def copy_while_a_job_resumes(source: str, target: str) -> str:
        if not jobs:
            jobs.append(
                subprocess.run(
                    [PYTHON, "-c", job],
                    capture_output=True,
                    text=True,
                    env=python_env(),
                    timeout=60,
                )  # fmt: skip
            )
        return real_copy(source, target)

    monkeypatch.setattr(run_ops, "copy_regular", copy_while_a_job_resumes)
    run_ops.move_run_folder(RepoLayout(src), RepoLayout(dest), run_hash)
    assert jobs[0].returncode == 1
    assert "RunLockedError" in jobs[0].stderr and f"process {os.getpid()}" in jobs[0].stderr
    assert not (src / ".aim" / "runs" / run_hash).exists()
    assert loss_steps(dest, run_hash) == list(range(100))
    assert verify_repo(RepoLayout(dest)).problems == ()


def test_copy_and_move_refuse_a_run_being_compacted_or_written(tmp_path: Path) -> None:
    """Item 2: the copy took neither the compaction lock nor the write lock. Now both are held
    for the whole copy, and a busy run is refused naming the process that holds it."""
    src, dest = tmp_path / "src", tmp_path / "dest"
    compacted, written = make_run(src), make_run(src)
    holder = subprocess.Popen(
        [PYTHON, "-c",
         "import fcntl, os, sys, time\n"
         "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(600)\n",
         str(src / ".aim" / "runs" / compacted / "compact.lock")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    writer = subprocess.Popen(
        [PYTHON, str(Path(__file__).with_name("writer_proc.py")), str(src), "hold", written],
        stdout=subprocess.PIPE, text=True, env=python_env(),
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        assert writer.stdout is not None
        while writer.stdout.readline() != "locked\n":
            pass
        r = ["--repo", str(src), "--destination", str(dest)]
        results = run_forked(
            [["runs", verb, h, *r] for verb in ("cp", "mv") for h in (compacted, written)]
        )
    finally:
        for proc in (holder, writer):
            proc.kill()
            proc.wait(timeout=60)
            assert proc.stdout is not None
            proc.stdout.close()
    for result, run_hash, pid in zip(
        results, [compacted, written] * 2, [holder.pid, writer.pid] * 2, strict=True
    ):
        assert result.code == 1 and len(result.err.splitlines()) == 1, result.err
        assert f"run {run_hash}" in result.err and f"process {pid}" in result.err
        assert "still being written" not in result.err or run_hash == written
    assert list_run_hashes(RepoLayout(src)) == sorted([compacted, written])
    assert not (dest / ".aim" / "runs").exists() or not os.listdir(dest / ".aim" / "runs")
    assert loss_steps(src, compacted) == list(range(100))


def test_gc_racing_rm_brings_no_deleted_run_back(tmp_path: Path) -> None:
    """Item 3: the lock library created missing folders, so gc re-created all 40 runs `runs rm`
    deleted (and `verify --repair` turned them into empty runs). Locks never create a folder."""
    layout = RepoLayout(tmp_path)
    hashes = [make_run(tmp_path, n=5) for _ in range(40)]
    stop = tmp_path / "stop"
    gc_loop = (  # prints a line as each pass starts
        "import os, sys\nfrom pathlib import Path\nfrom aim_parquet.format.paths import RepoLayout\n"
        "from aim_parquet.storage.maintenance.gc import gc_repo\n"
        "while not os.path.exists(sys.argv[2]):\n"
        "    print('pass', flush=True); gc_repo(RepoLayout(Path(sys.argv[1])), grace_s=0)\n"
    )
    proc = subprocess.Popen(
        [PYTHON, "-c", gc_loop, str(tmp_path), str(stop)],
        stdout=subprocess.PIPE, text=True, env=python_env(),
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        for run_hash in hashes:
            assert proc.stdout.readline() == "pass\n"  # delete while a gc pass runs
            run_ops.delete_run_folder(layout, run_hash)
    finally:
        stop.touch()
        out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0
    gc_repo(layout, grace_s=0)
    assert os.listdir(tmp_path / ".aim" / "runs") == []  # nothing came back
    assert verify_repo(layout, repair=True).runs == 0
    with pytest.raises(FileNotFoundError), compaction_lock(layout, hashes[0]):
        pass
    assert not (tmp_path / ".aim" / "runs" / hashes[0]).exists()


def test_a_resume_never_fails_because_of_gc(tmp_path: Path) -> None:
    """gc took every run's write lock, so a resume during gc failed with RunLockedError."""
    run_hash = make_run(tmp_path, n=5)
    stop = tmp_path / "stop"
    proc = start(
        "import os, sys\nfrom pathlib import Path\nfrom aim_parquet.format.paths import RepoLayout\n"
        "from aim_parquet.storage.maintenance.gc import gc_repo\n"
        "while not os.path.exists(sys.argv[2]):\n"
        "    gc_repo(RepoLayout(Path(sys.argv[1])), grace_s=0)\n",
        str(tmp_path),
        str(stop),
        log=tmp_path / "gc.log",
    )
    try:
        for step in range(5, 45):
            with aim.Run(run_hash, repo=tmp_path, **QUIET) as run:  # type: ignore[arg-type]
                run.track(float(step), name="loss", step=step)
    finally:
        stop.touch()
        proc.wait(timeout=120)
    assert proc.returncode == 0, (tmp_path / "gc.log").read_text()
    assert loss_steps(tmp_path, run_hash) == list(range(45))


def test_a_resume_between_the_compactors_look_and_its_listing_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the randomized race (1 trial in about 60): the compactor decided "no writer"
    and then listed the segments, including one a writer that resumed in between was still
    appending to; it compacted and removed that segment, and the writer's next batch went into a
    deleted file. Segments are now listed first and the writer checked after."""
    run_hash = make_run(tmp_path, n=100)
    job = subprocess.Popen(
        [PYTHON, "-c",
         "import sys, aim_parquet as aim\n"
         f"run = aim.Run({run_hash!r}, repo={str(tmp_path)!r}, system_tracking_interval=None,"
         " capture_terminal_logs=False)\n"
         "[run.track(float(i), name='loss', step=i) for i in range(100, 110)]\nrun.flush()\n"
         "print('flushed', flush=True)\nsys.stdin.readline()\n"
         "[run.track(float(i), name='loss', step=i) for i in range(110, 120)]\nrun.close()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=python_env(),
    )  # fmt: skip
    assert job.stdin is not None and job.stdout is not None
    real = compactor._refuse_future_files

    def resume_after_the_look(*args: Any) -> None:  # (runs after the mode was decided)
        if job.stdout is not None and job.stdout.readline() != "flushed\n":
            raise AssertionError("the job did not resume")
        real(*args)

    monkeypatch.setattr(compactor, "_refuse_future_files", resume_after_the_look)
    try:
        entry = compactor.compact_run(RepoLayout(tmp_path), run_hash, rewrite_all=True)
        job.stdin.write("go on\n")
        job.stdin.flush()
        assert job.wait(timeout=60) == 0
    finally:
        job.kill()
        job.wait(timeout=60)
        job.stdin.close()
        job.stdout.close()
    assert entry.status == "compacted"
    assert loss_steps(tmp_path, run_hash) == list(range(120))
    assert sum(raw_row_counts(tmp_path, run_hash).values()) == 120


# -- the randomized race -----------------------------------------------------------------------


def _maintenance(
    rng: random.Random, run_hash: str, where: Path, other: Path, scratch: Path
) -> list[str]:
    a = ["--repo", str(where)]
    choices = [
        ["verify", *a],
        ["verify", "--repair", *a],
        ["gc", "--grace-s", "0", *a],
        ["runs", "ls", *a],
        ["stats", *a],
        ["query", "metric.name == 'loss'", *a],
        ["export", "--output", str(scratch / "export"), *a],
        ["runs", "archive", run_hash, *a],
        ["runs", "unarchive", run_hash, *a],
        ["runs", "close", run_hash, *a],
        ["runs", "cp", run_hash, "--destination", str(scratch / "copies"), *a],
        ["runs", "mv", run_hash, "--destination", str(other), *a],
    ]
    return rng.choice(choices)


def race(tmp_path: Path, seed: int, commands: int) -> dict[str, Any]:
    """One randomized trial (see module doc); returns its figures."""
    rng = random.Random(seed)
    a, b, scratch = tmp_path / "a", tmp_path / "b", tmp_path / "scratch"
    scratch.mkdir()
    run_hash = make_run(a, n=50)
    aim.Repo(b, init=True)
    stop = tmp_path / "stop"
    repos = f"{a},{b}"
    writer = start(
        WRITER, repos, run_hash, "100000", str(stop), "50", "0.05", log=tmp_path / "writer.log"
    )
    compactor = start(COMPACTOR, repos, str(stop), log=tmp_path / "compactor.log")
    where, other = a, b
    results: list[tuple[list[str], Result]] = []
    copies: list[int] = []
    try:
        for _ in range(commands):
            argv = _maintenance(rng, run_hash, where, other, scratch)
            [result] = run_forked([argv], timeout_s=120)
            results.append((argv, result))
            if argv[:2] == ["runs", "mv"] and result.code == 0:
                where, other = other, where
            if argv[:2] == ["runs", "cp"] and result.code == 0:
                copies.append(len(loss_steps(scratch / "copies", run_hash)))
                assert loss_steps(scratch / "copies", run_hash) == list(range(copies[-1]))
                run_ops.delete_run_folder(RepoLayout(scratch / "copies"), run_hash)
            assert writer.poll() is None, (tmp_path / "writer.log").read_text()
    finally:
        stop.touch()
        writer.wait(timeout=300)
        compactor.wait(timeout=300)
    writer_log = (tmp_path / "writer.log").read_text()
    compactor_log = (tmp_path / "compactor.log").read_text()
    assert writer.returncode == 0 and compactor.returncode == 0, writer_log + compactor_log
    assert "Traceback" not in compactor_log and "failed" not in compactor_log.split(), compactor_log
    total = int(writer_log.split()[-1])  # "done <steps>"
    closed = {int(line.split()[1]) for line in writer_log.splitlines() if line.startswith("closed")}
    for argv, result in results:
        assert "Traceback" not in result.err and "ERROR" not in result.err, (argv, result.err)
        if result.code != 0:  # only a clean refusal: one line naming the holder
            assert any(r in result.err for r in REFUSALS), (argv, result.out, result.err)
            # (the holder is named unless it let go between the refusal and the look)
            assert re.search(r"process \d+|another process", result.err), (argv, result.err)
    gc_pids = {r.pid for argv, r in results if argv[0] == "gc"}
    refused_by = {int(p) for p in re.findall(r"refused .*?process (\d+)", writer_log)}
    assert not gc_pids & refused_by, "a resume was refused because of gc"
    # the run is in exactly one repository, whole, once; nothing else is anywhere
    for root in (a, b):
        gc_repo(RepoLayout(root), grace_s=0)
    holders = [root for root in (a, b) if list_run_hashes(RepoLayout(root))]
    assert holders == [where] and list_run_hashes(RepoLayout(where)) == [run_hash]
    assert os.listdir(where / ".aim" / "runs") == [run_hash]
    assert os.listdir(other / ".aim" / "runs") == []
    assert loss_steps(where, run_hash) == list(range(total))
    assert sum(raw_row_counts(where, run_hash).values()) == total  # no point doubled
    assert all(c == 50 or c in closed for c in copies)  # copies hold whole sessions
    for root in (a, b):
        report = verify_repo(RepoLayout(root))
        assert report.problems == (), report.problems
    return {
        "commands": len(results),
        "refused": sum(1 for _argv, r in results if r.code != 0),
        "moves": sum(1 for argv, r in results if argv[:2] == ["runs", "mv"] and r.code == 0),
        "copies": len(copies),
        "sessions": len(closed),
        "writer_refusals": writer_log.count("refused"),
        "compactions": compactor_log.split().count("compacted"),
        "points": total,
    }


def test_maintenance_races_a_resuming_writer_and_a_compactor(tmp_path: Path) -> None:
    figures = race(tmp_path, seed=1, commands=24)
    assert figures["sessions"] >= 1 and figures["commands"] == 24
    print(figures)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2, 7))
def test_maintenance_races_long(tmp_path: Path, seed: int) -> None:
    figures = race(tmp_path, seed=seed, commands=150)
    assert figures["sessions"] >= 10
    print(figures, file=sys.stderr)
    time.sleep(0)  # (keeps the figures line apart in -s output)


def test_a_writer_resumed_inside_the_check_then_list_window_loses_no_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue #16 item 1: the compactor takes no write lock, so a training script may resume a
    closed run while it works. With the window between the compactor's liveness check and its
    listing of the segments widened, a job resumes the run there and tracks 3,000 points
    (flushing as it goes) while the compaction lists, merges and deletes segments: every one of
    the 3,000 is read back afterwards, and the job was never refused."""
    run_hash = make_run(tmp_path, n=100)
    job = subprocess.Popen(
        [PYTHON, "-c",
         "import sys, aim_parquet as aim\n"
         f"run = aim.Run({run_hash!r}, repo={str(tmp_path)!r}, system_tracking_interval=None,"
         " capture_terminal_logs=False)\n"
         "for i in range(100, 3100):\n"
         "    run.track(float(i), name='loss', step=i)\n"
         "    if i % 100 == 0:\n"
         "        run.flush()\n"
         "    if i == 1100:\n"
         "        print('tracking', flush=True)\n"
         "run.close()\nprint('closed', flush=True)\n"],
        stdout=subprocess.PIPE, text=True, env=python_env(),
    )  # fmt: skip
    assert job.stdout is not None
    real_plan = compactor.plan_run
    calls = []

    def resume_between_the_check_and_the_listing(*args: Any) -> Any:
        if not calls and job.stdout is not None and job.stdout.readline() != "tracking\n":
            raise AssertionError("the job did not resume")
        calls.append(args)
        return real_plan(*args)

    monkeypatch.setattr(compactor, "plan_run", resume_between_the_check_and_the_listing)
    try:
        entry = compactor.compact_run(RepoLayout(tmp_path), run_hash, rewrite_all=True)
        assert job.wait(timeout=120) == 0
        assert job.stdout.read() == "closed\n"
    finally:
        job.kill()
        job.wait(timeout=60)
        job.stdout.close()
    assert entry.status in ("compacted", "unchanged"), entry
    assert calls, "the compactor never listed the segments"
    assert loss_steps(tmp_path, run_hash) == list(range(3100))
    assert sum(raw_row_counts(tmp_path, run_hash).values()) == 3100
    assert (
        compactor.compact_run(RepoLayout(tmp_path), run_hash, rewrite_all=True).status
        == "compacted"
    )
    assert loss_steps(tmp_path, run_hash) == list(range(3100))


def test_a_resume_during_compaction_of_a_closed_run_is_never_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FORMAT.md: `compact` takes the write lock only to catch up the catalogue of a run whose
    writer died. It took it for every run it compacted, so a training script resuming a closed
    run at that instant got RunLockedError. Here a job resumes (and tracks 10 points) each time
    the compactor reads the run's sidecar: none is refused and every point is read back."""
    run_hash = make_run(tmp_path, n=100)
    resume = (
        "import aim_parquet as aim\n"
        f"run = aim.Run({run_hash!r}, repo={str(tmp_path)!r}, system_tracking_interval=None,"
        " capture_terminal_logs=False)\n"
        "[run.track(1.0, name='loss') for i in range(10)]\nrun.close()\n"
    )
    real = catalogue_scan.load_sidecar
    jobs: list[subprocess.CompletedProcess[str]] = []

    def resume_meanwhile(*args: Any) -> Any:
        jobs.append(
            subprocess.run(
                [PYTHON, "-c", resume], capture_output=True, text=True, env=python_env(),
                timeout=120,
            )
        )  # fmt: skip
        return real(*args)

    monkeypatch.setattr(catalogue_scan, "load_sidecar", resume_meanwhile)
    entry = compactor.compact_run(RepoLayout(tmp_path), run_hash, rewrite_all=True)
    assert entry.status == "compacted", entry
    assert jobs, "the compactor never read the sidecar"
    assert [j.returncode for j in jobs] == [0] * len(jobs), [j.stderr for j in jobs]
    layout = RepoLayout(tmp_path)
    info = next(s for s in load_run_meta(layout, run_hash).sequences if s.name == "loss")
    steps = read_sequence(layout, run_hash, info).column("step").to_pylist()
    assert steps == list(range(100 + 10 * len(jobs)))
