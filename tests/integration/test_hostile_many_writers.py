"""Hostile tests of one run written by many processes (#19 part 1): real processes launched like
torchrun and SLURM, started in odd orders, killed, restarted, and meddled with by a process that
is not part of the job. Every point tracked is read back exactly once, through the SDK and with
plain pyarrow; every wait has a time limit."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.hostile_helpers import (
    Proc,
    arrow_points,
    as_sorted,
    catalogue_counts,
    sdk_points,
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
