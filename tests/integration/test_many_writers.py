"""One run, many writers: 4 processes launched like `torchrun --nproc_per_node 4` (plain
subprocesses with RANK, WORLD_SIZE, LOCAL_RANK, TORCHELASTIC_RUN_ID and MASTER_ADDR set) write
one run; a reader during training sees every rank; one rank is SIGKILLed, the others finish; the
killed rank resumes (same environment) after its real last step; every point of every rank is
there exactly once. Files are checked with plain pyarrow as well as through the SDK."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import aim_parquet as aim
from aim_parquet.errors import RunLockedError
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage.compaction.compactor import compact_run
from aim_parquet.storage.maintenance.verify import verify_repo
from tests.conftest import PYTHON, python_env

WORKER = str(Path(__file__).with_name("rank_proc.py"))
WORLD = 4
STEPS, HALF = 400, 150
LINE_TIMEOUT_S = 60.0


def rank_env(rank: int, job: str = "job-42") -> dict[str, str]:
    env = python_env()
    env.update(
        RANK=str(rank),
        WORLD_SIZE=str(WORLD),
        LOCAL_RANK=str(rank),
        LOCAL_WORLD_SIZE=str(WORLD),
        TORCHELASTIC_RUN_ID=job,
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT="29500",
    )
    return env


def start_rank(repo: Path, rank: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PYTHON, WORKER, str(repo), str(STEPS), str(HALF)],
        env=rank_env(rank),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def finish(procs: list[subprocess.Popen[str]]) -> None:
    """Kill what still runs, reap it and close its pipes."""
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()
        for pipe in (p.stdin, p.stdout):
            if pipe is not None:
                pipe.close()


def read_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, f"rank exited early with {proc.wait(LINE_TIMEOUT_S)}"
    return line.strip()


def points(run: aim.Run) -> dict[tuple[str, str], tuple[list[int], list[float]]]:
    out = {}
    for metric in run.metrics():
        steps, values = metric.values.sparse_numpy()
        ctx = json.dumps(metric.context.to_dict(), sort_keys=True)
        out[(metric.name, ctx)] = (steps.tolist(), values.tolist())
    return out


def expect_rank(found: dict, rank: int, n: int) -> None:
    ctx = json.dumps({"rank": rank} if rank else {}, sort_keys=True)
    acc_ctx = json.dumps({"subset": "train", **({"rank": rank} if rank else {})}, sort_keys=True)
    steps, values = found[("loss", ctx)]
    assert steps == list(range(n))
    assert values == [rank * 1e6 + s for s in range(n)]
    assert found[("acc", acc_ctx)] == (list(range(n)), [float(s) for s in range(n)])


def test_four_ranks_one_run_kill_one_and_resume(tmp_path: Path) -> None:
    repo = tmp_path / "exp"
    started = time.monotonic()
    procs = [start_rank(repo, r) for r in range(WORLD)]
    try:
        hashes = {read_line(p) for p in procs}
        assert len(hashes) == 1, hashes  # every rank opened the same run
        run_hash = hashes.pop().split()[1]

        # a reader during training sees every rank's points, and the run as active
        reader = aim.Repo(str(repo))
        run = reader.get_run(run_hash)
        assert run is not None and run.active and run.end_time is None
        during = points(run)
        for rank in range(WORLD):
            expect_rank(during, rank, HALF)

        # SIGKILL rank 2; the others go on and close
        procs[2].kill()
        procs[2].wait(LINE_TIMEOUT_S)
        for rank in (0, 1, 3):
            assert procs[rank].stdin is not None
            procs[rank].stdin.write("go\n")
            procs[rank].stdin.flush()
            assert read_line(procs[rank]) == "done"
            assert procs[rank].wait(LINE_TIMEOUT_S) == 0
        elapsed = time.monotonic() - started
        print(f"4-rank job (one killed): {elapsed:.2f} s")

        # rank 2 died: the run is neither active nor ended; its points up to the kill are there
        run = aim.Repo(str(repo)).get_run(run_hash)
        assert run is not None and not run.active and run.end_time is None
        after = points(run)
        for rank in (0, 1, 3):
            expect_rank(after, rank, STEPS)
        expect_rank(after, 2, HALF)
        assert run["hparams"] == {"lr": 0.01, "world_size": WORLD}

        # compaction works on the dead rank's data while the others are closed
        compact_run(RepoLayout(repo), run_hash)

        # rank 2 resumes with the same environment: its auto-steps continue after its real
        # last step, nothing another rank wrote is touched
        resumed = start_rank(repo, 2)
        procs.append(resumed)
        assert read_line(resumed) == "done"
        assert resumed.wait(LINE_TIMEOUT_S) == 0
    finally:
        finish(procs)

    run = aim.Repo(str(repo)).get_run(run_hash)
    assert run is not None and not run.active and run.end_time is not None
    final = points(run)
    assert len(final) == 2 * WORLD
    for rank in range(WORLD):
        expect_rank(final, rank, STEPS)
    # every point of every rank exactly once, read with plain pyarrow from the files
    compact_run(RepoLayout(repo), run_hash)
    run_dir = repo / ".aim" / "runs" / run_hash
    manifest = json.loads((run_dir / "compacted" / "manifest.json").read_text())
    metrics_file = next(f["path"] for f in manifest["files"] if f["kind"] == "metrics")
    table = pq.read_table(run_dir / metrics_file)
    rows = table.select(["context", "name", "step"]).to_pylist()
    keys = [(r["name"], r["context"], r["step"]) for r in rows]
    assert len(keys) == len(set(keys)) == 2 * WORLD * STEPS
    assert not [p for p in verify_repo(RepoLayout(repo)).problems if p.kind != "temp-file"]


def test_layout_and_format_version(tmp_path: Path) -> None:
    """The parts: `writers/<rank>.json` and `.lock`; run.json of format version 2."""
    repo = tmp_path / "exp"
    procs = [start_rank(repo, r) for r in range(2)]
    try:
        run_hash = {read_line(p) for p in procs}.pop().split()[1]
        run_dir = repo / ".aim" / "runs" / run_hash
        assert json.loads((run_dir / "run.json").read_text())["format_version"] == 2
        part = json.loads((run_dir / "writers" / "1.json").read_text())
        assert part["format_version"] == 2 and part["hash"] == run_hash
        assert {s["context"].get("rank") for s in part["sequences"]} == {1}
        # a second process of the same rank is refused, as a second writer of a run is
        with pytest.raises(RunLockedError):
            env_keys = rank_env(1)
            old = {k: os.environ.get(k) for k in env_keys}
            os.environ.update(env_keys)
            try:
                aim.Run(repo=str(repo), system_tracking_interval=None)
            finally:
                for k, v in old.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
            assert read_line(p) == "done"
    finally:
        finish(procs)


SYSTEM_RANK = """
import sys, time
import aim_parquet as aim
run = aim.Run(repo=sys.argv[1], system_tracking_interval=0.1, capture_terminal_logs=False)
deadline = time.monotonic() + 60
while time.monotonic() < deadline:  # poll until the sampler delivered a CPU sample
    seqs = run._writer.seqs.values()
    if any(s.info.name == "__system__cpu" and (s.points or s.info.count) for s in seqs):
        break
    time.sleep(0.05)
run.close()
"""


def test_system_metrics_of_every_rank_carry_rank_and_host(tmp_path: Path) -> None:
    repo = tmp_path / "exp"
    procs = [
        subprocess.Popen([PYTHON, "-c", SYSTEM_RANK, str(repo)], env=rank_env(r, "sys-job"))
        for r in range(2)
    ]
    assert [p.wait(LINE_TIMEOUT_S) for p in procs] == [0, 0]
    runs = list(aim.Repo(str(repo)).iter_runs())
    assert len(runs) == 1
    contexts = [m.context.to_dict() for m in runs[0].metrics() if m.name == "__system__cpu"]
    host = os.uname().nodename
    assert sorted(contexts, key=lambda c: c["rank"]) == [
        {"rank": 0, "host": host},
        {"rank": 1, "host": host},
    ]
