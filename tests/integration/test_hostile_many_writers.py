"""Hostile tests of one run written by many processes (#19 part 1): real processes launched like
torchrun and SLURM, started in odd orders, killed, restarted, and meddled with by a process that
is not part of the job. Every point tracked is read back exactly once, through the SDK and with
plain pyarrow; every wait has a time limit."""

from __future__ import annotations

import json
import random
import signal
import subprocess
from pathlib import Path

import pyarrow.parquet as pq

import aim_parquet as aim
from tests.conftest import PYTHON, python_env
from tests.integration.hostile_helpers import (
    Proc,
    arrow_points,
    as_sorted,
    catalogue_counts,
    sdk_points,
    slurm_env,
    torchrun_env,
)

WORLD = 4


def _ctx(d: dict) -> str:
    return json.dumps(d, sort_keys=True)


def test_plain_process_resuming_a_finished_job_run_keeps_other_ranks_catalogues(
    tmp_path: Path,
) -> None:
    """A job of 4 ranks closes; a plain process (no launch variables) resumes the run to add an
    evaluation metric; then the job is restarted (same TORCHELASTIC_RUN_ID) and rank 1 goes on.
    The catalogue must say what rank 1 really holds, and every point must be there once."""
    repo = tmp_path / "exp"
    procs = [Proc(repo, torchrun_env(r, WORLD, "job-a")) for r in range(WORLD)]
    try:
        hashes = {p.send("open").split()[1] for p in procs}
        assert len(hashes) == 1
        run_hash = hashes.pop()
        for p in procs:
            p.send("track loss 20")
            p.send("close")
        plain = Proc(repo, None)
        plain.send(f"open {run_hash}")
        plain.send("track eval 5")
        plain.send("close")
        plain.end()
        again = Proc(repo, torchrun_env(1, WORLD, "job-a", attempt=1))
        procs.append(again)
        assert again.send("open").split()[1] == run_hash
        again.send("track loss 10")
        again.send("close")
    finally:
        for p in procs:
            p.end()
    counts = catalogue_counts(repo, run_hash)
    assert counts[("loss", _ctx({"rank": 1}))] == 30
    found = sdk_points(repo, run_hash)
    assert found[("loss", _ctx({"rank": 1}))] == [(s, 1e6 + s) for s in range(30)]
    assert found[("eval", _ctx({}))] == [(s, float(s)) for s in range(5)]
    for r in (0, 2, 3):
        key = ("loss", _ctx({"rank": r} if r else {}))
        assert found[key] == [(s, r * 1e6 + s) for s in range(20)]
    assert as_sorted(arrow_points(repo, run_hash)) == as_sorted(found)


def test_plain_process_cannot_write_a_live_ranks_sequence(tmp_path: Path) -> None:
    """Rank 0 closed first; ranks 1-3 still write. A plain process that resumes the run (it
    takes rank 0's place) must not append to a sequence of a live rank."""
    repo = tmp_path / "exp"
    procs = [Proc(repo, torchrun_env(r, WORLD, "job-b")) for r in range(WORLD)]
    plain = Proc(repo, None)
    try:
        run_hash = {p.send("open").split()[1] for p in procs}.pop()
        for p in procs:
            p.send("track loss 10")
            p.send("flush")
        procs[0].send("close")
        plain.send(f"open {run_hash}")
        reply = plain.send('track loss 3 {"rank": 2}', ok=False)
        procs[2].send("track loss 10")
        for p in procs[1:]:
            p.send("close")
        plain.send("close")
    finally:
        for p in [*procs, plain]:
            p.end()
    assert reply.startswith("err ValueError"), reply
    found = sdk_points(repo, run_hash)
    assert found[("loss", _ctx({"rank": 2}))] == [(s, 2e6 + s) for s in range(20)]
    assert catalogue_counts(repo, run_hash)[("loss", _ctx({"rank": 2}))] == 20
    assert as_sorted(arrow_points(repo, run_hash)) == as_sorted(found)


def _cli(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            PYTHON,
            "-c",
            "import sys; from aim_parquet.cli.main import main; sys.exit(main())",
            "--repo",
            str(repo),
            *args,
        ],
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _expect_all(repo: Path, run_hash: str, n: int, world: int = WORLD) -> None:
    found = sdk_points(repo, run_hash)
    counts = catalogue_counts(repo, run_hash)
    for r in range(world):
        key = ("loss", _ctx({"rank": r} if r else {}))
        assert found[key] == [(s, r * 1e6 + s) for s in range(n)], key
        assert counts[key] == n, key
    assert as_sorted(arrow_points(repo, run_hash)) == as_sorted(found)


def test_tools_during_a_job_whose_rank_0_finished_first(tmp_path: Path) -> None:
    """Rank 0 closes first; while ranks 1-3 still write, every maintenance command runs. None
    may take the run for finished, lose or duplicate a point, or touch a live rank's files."""
    repo = tmp_path / "exp"
    procs = [Proc(repo, torchrun_env(r, WORLD, "job-c")) for r in range(WORLD)]
    try:
        run_hash = {p.send("open").split()[1] for p in procs}.pop()
        for p in procs:
            p.send("track loss 50")
            p.send("flush")
        procs[0].send("close")
        repo_view = aim.Repo(str(repo))
        run = repo_view.get_run(run_hash)
        assert run is not None and run.active and run.end_time is None
        for args in (
            ("compact",),
            ("compact", "--include-active"),
            ("verify",),
            ("verify", "--repair"),
            ("gc", "--grace-s", "0"),
            ("export", "--output", str(tmp_path / "export-during")),
            ("query", "metric.name == 'loss'", "--output", str(tmp_path / "q.csv")),
        ):
            done = _cli(repo, *args)
            assert done.returncode == 0, (args, done.stdout, done.stderr)
        assert "quarantine" not in _cli(repo, "verify").stdout
        for args in (
            ("runs", "close", run_hash),
            ("runs", "rm", "-y", run_hash),
            ("runs", "cp", "--destination", str(tmp_path / "other"), run_hash),
            ("runs", "mv", "--destination", str(tmp_path / "other2"), run_hash),
        ):
            done = _cli(repo, *args)
            assert done.returncode != 0, (args, done.stdout, done.stderr)
        # a Repo kept open sees the live ranks' new points and sequences
        for p in procs[1:]:
            p.send("track loss 50")
            p.send("track late 3")
            p.send("flush")
        names = {
            (m.name, m.context.get("rank"))
            for m in repo_view.query_metrics("metric.name == 'late'")
        }
        assert names == {("late", r) for r in (1, 2, 3)}
        for p in procs[1:]:
            p.send("close")
        procs[0].p.stdin.close()
        assert procs[0].p.wait(60) == 0
    finally:
        for p in procs:
            p.end()
    # rank 0 tracked 50, the others 100
    found = sdk_points(repo, run_hash)
    assert found[("loss", _ctx({}))] == [(s, float(s)) for s in range(50)]
    for r in (1, 2, 3):
        assert found[("loss", _ctx({"rank": r}))] == [(s, r * 1e6 + s) for s in range(100)]
        assert catalogue_counts(repo, run_hash)[("loss", _ctx({"rank": r}))] == 100
    run = aim.Repo(str(repo)).get_run(run_hash)
    assert run is not None and not run.active and run.end_time is not None
    assert as_sorted(arrow_points(repo, run_hash)) == as_sorted(found)
    done = _cli(repo, "verify")
    assert done.returncode == 0, done.stdout + done.stderr
    assert _cli(repo, "compact").returncode == 0
    assert sdk_points(repo, run_hash) == found
    assert as_sorted(arrow_points(repo, run_hash)) == as_sorted(found)
    out = tmp_path / "export-after"
    assert _cli(repo, "export", "--output", str(out)).returncode == 0
    table = pq.read_table(out / "metrics" / f"{run_hash}.parquet")
    assert table.num_rows == sum(len(v) for v in found.values())


def test_fork_worker_inside_a_rank_and_a_duplicate_rank(tmp_path: Path) -> None:
    """A forked DataLoader-like worker of rank 1 leaves through sys.exit (atexit handlers run in
    it): it must not close, unlock or write rank 1's part. A second process claiming rank 1 of
    the same job is refused: exactly one writer per rank."""
    repo = tmp_path / "exp"
    procs = [Proc(repo, torchrun_env(r, 2, "job-d")) for r in range(2)]
    dup = Proc(repo, torchrun_env(1, 2, "job-d"))
    try:
        run_hash = {p.send("open").split()[1] for p in procs}.pop()
        procs[1].send("track loss 5")
        assert procs[1].send("fork-exit") == "ok 0"
        run = aim.Repo(str(repo)).get_run(run_hash)
        assert run is not None and run.active
        part = json.loads((repo / ".aim/runs" / run_hash / "writers/1.json").read_text())
        assert part["end_time"] is None
        assert dup.send("open", ok=False).startswith("err RunLockedError")
        procs[0].send("close")
        assert aim.Repo(str(repo)).get_run(run_hash).active  # rank 1 still holds its lock
        assert dup.send("open", ok=False).startswith("err RunLockedError")
        procs[1].send("track loss 5")
        procs[1].send("close")
    finally:
        for p in [*procs, dup]:
            p.end()
    found = sdk_points(repo, run_hash)
    assert found == {("loss", _ctx({"rank": 1})): [(s, 1e6 + s) for s in range(10)]}
    assert as_sorted(arrow_points(repo, run_hash)) == as_sorted(found)


def test_rank_0_never_starts_and_rank_3_comes_first(tmp_path: Path) -> None:
    """Ranks 3, 2, 1 start in that order under SLURM variables; rank 0 never starts. The run
    reads back exactly; it is not active once they closed, but rank 0's part never ended, so it
    has no end time until `runs close` (README says so), which then ends it."""
    repo = tmp_path / "exp"
    procs = {r: Proc(repo, slurm_env(r, WORLD, "9001")) for r in (3, 2, 1)}
    try:
        hashes = set()
        for r in (3, 2, 1):
            hashes.add(procs[r].send("open").split()[1])
            procs[r].send("track loss 7")
        run_hash = hashes.pop()
        assert not hashes
        for r in (1, 3, 2):
            procs[r].send("close")
    finally:
        for p in procs.values():
            p.end()
    run = aim.Repo(str(repo)).get_run(run_hash)
    assert run is not None and not run.active
    found = sdk_points(repo, run_hash)
    assert found == {
        ("loss", _ctx({"rank": r})): [(s, r * 1e6 + s) for s in range(7)] for r in (1, 2, 3)
    }
    assert as_sorted(arrow_points(repo, run_hash)) == as_sorted(found)
    assert run.end_time is None
    done = _cli(repo, "runs", "close", run_hash)
    assert done.returncode == 0, done.stdout + done.stderr
    run = aim.Repo(str(repo)).get_run(run_hash)
    assert run is not None and run.end_time is not None
    assert sdk_points(repo, run_hash) == found


def test_random_kills_and_elastic_restarts_at_once(tmp_path: Path) -> None:
    """4 torchrun ranks; 4 rounds in which every live rank tracks and flushes, then a random
    rank is SIGKILLed or SIGTERMed and restarted at once as the next elastic attempt (same
    TORCHELASTIC_RUN_ID). Params set on a rank other than 0 are dropped; rank 0's are read by
    every rank. Every flushed point is there exactly once."""
    rng = random.Random(19)
    repo = tmp_path / "exp"
    procs = [Proc(repo, torchrun_env(r, WORLD, "job-e")) for r in range(WORLD)]
    started = list(procs)
    expected = dict.fromkeys(range(WORLD), 0)
    try:
        run_hash = {p.send("open").split()[1] for p in procs}.pop()
        procs[0].send('param hparams {"lr": 0.1}')
        procs[2].send('param hparams {"lr": 99}')
        assert procs[2].send("get hparams") == 'ok {"lr": 0.1}'
        for attempt in range(1, 5):
            for r, p in enumerate(procs):
                p.send("track loss 10")
                p.send("flush")
                expected[r] += 10
            victim = rng.randrange(WORLD)
            sig = rng.choice([signal.SIGKILL, signal.SIGTERM])
            procs[victim].kill(sig)
            procs[victim] = Proc(repo, torchrun_env(victim, WORLD, "job-e", attempt))
            started.append(procs[victim])
            assert procs[victim].send("open").split()[1] == run_hash
            assert aim.Repo(str(repo)).get_run(run_hash).active
        for p in procs:
            p.send("close")
    finally:
        for p in started:
            p.end()
    for r in range(WORLD):
        key = ("loss", _ctx({"rank": r} if r else {}))
        found = sdk_points(repo, run_hash)
        assert found[key] == [(s, r * 1e6 + s) for s in range(expected[r])], key
        assert catalogue_counts(repo, run_hash)[key] == expected[r]
    run = aim.Repo(str(repo)).get_run(run_hash)
    assert run is not None and not run.active and run.end_time is not None
    assert run["hparams"] == {"lr": 0.1}
    assert as_sorted(arrow_points(repo, run_hash)) == as_sorted(sdk_points(repo, run_hash))


def test_v1_run_resumed_by_a_job_whose_rank_1_comes_first(tmp_path: Path) -> None:
    """A run written by a plain process (format version 1) is resumed by a 2-rank SLURM job
    with Run(run_hash=h): rank 1 starts first and waits for rank 0 to mark the run version 2."""
    repo = tmp_path / "exp"
    plain = Proc(repo, None)
    ranks = [Proc(repo, slurm_env(r, 2, "777")) for r in range(2)]
    try:
        run_hash = plain.send("open").split()[1]
        plain.send("track loss 5")
        plain.send("close")
        ranks[1].write(f"open {run_hash}")
        ranks[0].send(f"open {run_hash}")
        ranks[1].reply("open")
        for p in ranks:
            p.send("track loss 5")
            p.send("close")
    finally:
        for p in [plain, *ranks]:
            p.end()
    found = sdk_points(repo, run_hash)
    assert found == {
        ("loss", _ctx({})): [(s, float(s)) for s in range(10)],
        ("loss", _ctx({"rank": 1})): [(s, 1e6 + s) for s in range(5)],
    }
    assert as_sorted(arrow_points(repo, run_hash)) == as_sorted(found)
    sidecar = json.loads((repo / ".aim/runs" / run_hash / "run.json").read_text())
    assert sidecar["format_version"] == 2
