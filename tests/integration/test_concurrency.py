"""Everything at once: 8 writer processes on distinct runs, a reader querying in a loop and the
compactor (including active runs) running, all on one repository.

While it runs, every read must see, for each run, a hole-free, duplicate-free prefix of the
points (value == step) that never shrinks. Afterwards every point is present exactly once, for
our reader and for plain pyarrow reading the Parquet and segment files, and no process saw an
error (exit status 0, no ERROR log, no failed compaction).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage import discover_sequences
from aim_parquet.storage.online.run_reader import (
    list_run_hashes,
    list_segments,
    load_manifest,
    load_run_meta,
    read_sequence,
)
from tests.conftest import PYTHON, python_env

# argv: REPO N_POINTS PHASES PACE_S. Tracks N points of `loss` (value == step) and every third step
# of `acc`; each phase is one session (new run, then resumes by hash). Small segments force
# rollovers, so an active run always has sealed segments for the compactor to take.
WRITER = r"""
import sys, time
import aim_parquet as aim
repo, n, phases, pace_s = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
run_hash, i = None, 0
for phase in range(phases):
    run = aim.Run(run_hash, repo=repo, system_tracking_interval=None, capture_terminal_logs=False)
    run._writer.segments.max_segment_bytes = 4096  # test knob: roll segments over often
    if run_hash is None:
        run_hash = run.hash
        print("hash", run_hash, flush=True)
        run["hparams"] = {"n": n}
    for _ in range(n // phases):
        run.track(float(i), name="loss", step=i, context={"subset": "train"})
        if i % 3 == 0:
            run.track(i, name="acc", step=i)
        i += 1
        if i % 100 == 0:
            run.flush()
            time.sleep(pace_s)  # a training step's worth of work
    run.close()
print("done", i, flush=True)
"""

# argv: REPO STOP_FILE. Compacts the whole repo (active runs included) until STOP_FILE exists.
COMPACTOR = r"""
import json, sys
from collections import Counter
from pathlib import Path
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage import compact_repo
layout, stop = RepoLayout(Path(sys.argv[1])), Path(sys.argv[2])
statuses, failures, rounds = Counter(), [], 0
while True:
    last = stop.exists()
    report = compact_repo(layout, include_active=True)
    rounds += 1
    statuses.update(r.status for r in report.runs)
    failures += [f"{r.run_hash}: {r.note}" for r in report.runs if r.status == "failed"]
    failures += list(report.notes)
    if last:
        break
print("RESULT " + json.dumps({"rounds": rounds, "statuses": statuses, "failures": failures}))
"""


def _has_compactor() -> bool:
    try:
        from aim_parquet.storage.compaction.compactor import compact_repo  # noqa: F401
    except ImportError:
        return False
    return True


class Reader:
    """Reads every run in a loop; checks each snapshot against what it saw before."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.layout = RepoLayout(repo)
        self.seen: dict[tuple[str, str], int] = {}
        self.reads = 0
        self.queries = 0

    def check_sequence(self, run_hash: str, name: str, steps: list[int], values: list[Any]) -> None:
        every = 3 if name == "acc" else 1
        assert steps == list(range(0, every * len(steps), every)), (run_hash, name, "hole/dup")
        assert values == [float(s) for s in steps], (run_hash, name, "garbage values")
        before = self.seen.get((run_hash, name), 0)
        assert len(steps) >= before, (run_hash, name, "points vanished", before, len(steps))
        self.seen[(run_hash, name)] = len(steps)

    def read_once(self) -> None:
        for run_hash in list_run_hashes(self.layout):
            try:
                meta = load_run_meta(self.layout, run_hash)
            except aim.CorruptFileError as exc:
                # a brand-new run folder whose first sidecar is not written yet (sidecars are
                # replaced atomically, so any other error is real damage)
                if "has no sidecar" not in str(exc):
                    raise
                continue
            for info in discover_sequences(self.layout, run_hash, meta):
                table = read_sequence(self.layout, run_hash, info)
                self.check_sequence(
                    run_hash,
                    info.name,
                    table.column("step").to_pylist(),
                    table.column("value").to_pylist(),
                )
                self.reads += 1

    def query_once(self) -> None:
        repo = aim.Repo(str(self.repo))
        for metric in repo.query_metrics("metric.name == 'loss'").iter():
            steps, values = metric.values.sparse_numpy()
            self.check_sequence(
                metric.run.hash, "loss", [int(s) for s in steps], [float(v) for v in values]
            )
        self.queries += 1


def independent_steps(repo: Path, run_hash: str) -> dict[str, list[int]]:
    """Every stored step per sequence name, with plain pyarrow: the Parquet files the manifest
    lists, plus every segment it does not cover. A doubled point shows up twice."""
    layout = RepoLayout(repo)
    run_dir = layout.run_dir(run_hash)
    out: dict[str, list[int]] = {}
    names: dict[str, str] = {}
    manifest = load_manifest(layout, run_hash)
    covered = manifest.segments if manifest else frozenset()
    seqs_dir = layout.seqs_dir(run_hash)
    for seq_dir in sorted(seqs_dir.iterdir()) if seqs_dir.is_dir() else []:
        for seg in list_segments(seq_dir):
            if f"{seq_dir.name}/{seg.name}" in covered:
                continue
            with pa.OSFile(str(seg)) as f:
                reader = pa.ipc.open_stream(f)
                name = reader.schema.metadata[b"aim_parquet.name"].decode()
                names[seq_dir.name] = name
                out.setdefault(name, []).extend(reader.read_all().column("step").to_pylist())
    meta = json.loads((run_dir / "run.json").read_bytes())
    names.update({s["seq_id"]: s["name"] for s in meta["sequences"]})
    for f in manifest.files if manifest else ():
        table = pq.read_table(run_dir / f.path, columns=["seq_id", "step"])
        for seq_id, step in zip(
            table.column("seq_id").to_pylist(), table.column("step").to_pylist(), strict=True
        ):
            out.setdefault(names[seq_id], []).append(step)
    return out


def run_everything(
    repo: Path, *, writers: int, points: int, phases: int, pace_s: float
) -> dict[str, Any]:
    env = python_env()
    stop = repo / "stop-compactor"
    aim.Repo(str(repo), init=True)
    procs = [
        subprocess.Popen(
            [PYTHON, "-c", WRITER, str(repo), str(points), str(phases), str(pace_s)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(writers)
    ]
    compactor = subprocess.Popen(
        [PYTHON, "-c", COMPACTOR, str(repo), str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    reader = Reader(repo)
    try:
        deadline = time.monotonic() + 600
        while any(p.poll() is None for p in procs):
            assert time.monotonic() < deadline, "writers did not finish"
            reader.read_once()
            reader.query_once()
        stop.touch()
        outputs = [p.communicate(timeout=60) for p in procs]
        comp_out, comp_err = compactor.communicate(timeout=300)
    finally:
        for p in [*procs, compactor]:
            if p.poll() is None:
                p.kill()
                p.communicate()
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
        assert "ERROR" not in err and "Traceback" not in err, err
        assert out.splitlines()[-1] == f"done {points // phases * phases}", out
    assert compactor.returncode == 0, comp_err
    assert "ERROR" not in comp_err, comp_err
    result = json.loads(next(ln for ln in comp_out.splitlines() if ln.startswith("RESULT "))[7:])
    assert result["failures"] == [], result
    hashes = [out.split()[1] for out, _ in outputs]
    assert sorted(hashes) == list_run_hashes(RepoLayout(repo))
    # afterwards: every point exactly once, for both readers
    n = points // phases * phases
    reader.read_once()
    for run_hash in hashes:
        assert reader.seen[(run_hash, "loss")] == n
        assert reader.seen[(run_hash, "acc")] == len(range(0, n, 3))
        raw = independent_steps(repo, run_hash)
        assert sorted(raw["loss"]) == list(range(n)), "lost or doubled (loss)"
        assert sorted(raw["acc"]) == list(range(0, n, 3)), "lost or doubled (acc)"
        assert aim.Run(run_hash, repo=repo, read_only=True)["hparams"] == {"n": points}
    return {
        "reads": reader.reads,
        "queries": reader.queries,
        "compactions": result["statuses"].get("compacted", 0),
        "rounds": result["rounds"],
    }


@pytest.mark.skipif(
    not _has_compactor(), reason="aim_parquet.storage.compaction.compactor not built yet"
)
def test_writers_reader_and_compactor_all_at_once(tmp_path: Path) -> None:
    stats = run_everything(tmp_path, writers=8, points=2000, phases=2, pace_s=0.05)
    assert stats["reads"] > 8 * 2 and stats["queries"] > 0  # more than the final read
    assert stats["compactions"] > 0, stats  # the compactor really worked meanwhile


@pytest.mark.slow
@pytest.mark.skipif(
    not _has_compactor(), reason="aim_parquet.storage.compaction.compactor not built yet"
)
def test_writers_resuming_with_reader_and_compactor_heavy(tmp_path: Path) -> None:
    stats = run_everything(tmp_path, writers=8, points=30000, phases=6, pace_s=0.01)
    assert stats["compactions"] > 0, stats
