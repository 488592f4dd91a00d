"""SIGKILL `compact` and `verify --repair` at random moments: the repo always reads the same data,
no point is lost or doubled, and rerunning finishes the job."""

from __future__ import annotations

import glob
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage import compact_repo, list_run_hashes, verify_repo
from tests.conftest import PYTHON, python_env
from tests.integration.repo_snapshots import QUIET, raw_row_counts, snapshot, write_rich_run

pytestmark = pytest.mark.crash

WORKER = """
import sys
from pathlib import Path
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage import compact_repo
from aim_parquet.storage import verify_repo
layout = RepoLayout(Path(sys.argv[2]))
print("ready", flush=True)
sys.stdin.readline()
if sys.argv[1] == "compact":
    compact_repo(layout, workers=1)
else:
    verify_repo(layout, repair=True)
print("done", flush=True)
"""


@dataclass
class Template:
    root: Path
    expected: dict[tuple[str, str], list[dict[str, Any]]]
    raw: dict[str, dict[str, int]]
    seconds: float  # how long the uninterrupted operation takes
    # (the runs compaction rewrites into Parquet; the others are kept as written)
    raw_compacted: dict[str, dict[str, int]] = field(default_factory=dict)


def _grow(root: Path, run_hash: str, seed: int) -> None:
    """Resume a compacted run and add points, so the next compaction merges two generations."""
    with aim.Run(run_hash, repo=root, **QUIET) as run:  # type: ignore[arg-type]
        for i in range(3000):
            run.track(float(i * seed), name="loss", step=i, context={"subset": "train"})
            if i % 700 == 0:
                run.flush()
        run.track(aim.Text("resumed"), name="notes", step=9)


def _small_run(root: Path, seed: int) -> str:
    with aim.Run(repo=root, **QUIET) as run:  # type: ignore[arg-type]
        for i in range(5):
            run.track(float(i * seed), name="loss", step=i)
        return str(run.hash)


def _timed(op: str, root: Path) -> float:
    started = time.perf_counter()
    if op == "compact":
        compact_repo(RepoLayout(root), workers=1)
    else:
        verify_repo(RepoLayout(root), repair=True)
    return time.perf_counter() - started


@pytest.fixture(scope="module")
def compaction_template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    root = tmp_path_factory.mktemp("template")
    hashes = [write_rich_run(root, n=6000, seed=s) for s in range(3)]
    hashes += [_small_run(root, s) for s in range(3)]  # kept as written: Parquet is no smaller
    compact_repo(RepoLayout(root), hashes[:2])
    for seed, run_hash in enumerate(hashes[:2], start=1):
        _grow(root, run_hash, seed)
    probe = root.with_name(root.name + "-probe")
    shutil.copytree(root, probe)
    seconds = _timed("compact", probe)
    raw = {h: raw_row_counts(root, h) for h in hashes}
    return Template(root, snapshot(root), raw, seconds, {h: raw[h] for h in hashes[:3]})


def _kill_during(op: str, root: Path, delay_s: float) -> bool:
    """Run `op` in a subprocess and SIGKILL it `delay_s` after it starts; True if it finished."""
    proc = subprocess.Popen(
        [PYTHON, "-c", WORKER, op, str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=python_env(),
    )
    assert proc.stdin is not None and proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    proc.stdin.write("go\n")
    proc.stdin.flush()
    time.sleep(delay_s)  # the moment of the kill is the random variable under test
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = proc.stdout.read().strip() == "done"
    proc.stdin.close()
    proc.stdout.close()
    return finished


def _metric_rows_in_glob(root: Path) -> int:
    files = glob.glob(str(root / ".aim" / "runs" / "*" / "compacted" / "metrics-*.parquet"))
    return sum(pq.read_metadata(f).num_rows for f in files)


def compaction_trial(template: Template, trial_dir: Path, rng: random.Random) -> None:
    shutil.copytree(template.root, trial_dir)
    _kill_during("compact", trial_dir, rng.uniform(0.0, template.seconds * 1.2))
    # whatever moment it died at: the same points, none lost, none doubled
    assert snapshot(trial_dir) == template.expected
    for run_hash, counts in template.raw.items():
        assert raw_row_counts(trial_dir, run_hash) == counts
    report = verify_repo(RepoLayout(trial_dir))
    assert {p.kind for p in report.problems} <= {"temp-file"}, report.problems
    # rerunning finishes the job and leaves a healthy, fully compacted repo
    rerun = compact_repo(RepoLayout(trial_dir), workers=1)
    assert {r.status for r in rerun.runs} <= {"compacted", "unchanged", "kept"}
    assert snapshot(trial_dir) == template.expected
    assert verify_repo(RepoLayout(trial_dir)).problems == ()
    layout = RepoLayout(trial_dir)
    left = {p.parts[-4] for p in (trial_dir / ".aim" / "runs").glob("*/seqs/*/*.arrows")}
    assert left == set(template.raw) - set(template.raw_compacted)  # the small runs, as written
    assert {r.status for r in compact_repo(layout).runs} == {"unchanged"}  # nothing left to do
    metric_ids = {
        seq_id
        for (run_hash, seq_id), rows in template.expected.items()
        if rows and "value" in rows[0]
    }
    expected_metric_rows = sum(
        n
        for counts in template.raw_compacted.values()
        for seq_id, n in counts.items()
        if seq_id in metric_ids
    )
    assert _metric_rows_in_glob(trial_dir) == expected_metric_rows  # the open format: no doubles
    assert len(list_run_hashes(layout)) == len(template.raw)


@pytest.mark.parametrize("seed", range(5))
def test_sigkill_during_compaction(
    compaction_template: Template, tmp_path: Path, seed: int
) -> None:
    compaction_trial(compaction_template, tmp_path / "repo", random.Random(seed))


@pytest.mark.slow
def test_sigkill_during_compaction_randomized_trials(
    compaction_template: Template, tmp_path: Path
) -> None:
    rng = random.Random(20240611)
    for trial in range(60):
        compaction_trial(compaction_template, tmp_path / f"t{trial}", rng)


def _damage(root: Path) -> None:
    """Torn tails, a garbage segment, a broken sidecar and a leftover temp file."""
    runs = sorted((root / ".aim" / "runs").iterdir())
    for seg in sorted(runs[0].glob("seqs/*/*.arrows"))[:3]:
        data = seg.read_bytes()
        seg.write_bytes(data[: len(data) - 9])
    seq_dir = next(runs[1].glob("seqs/*"))
    (seq_dir / "0000000000000000-1-aaaaaa-000001.arrows").write_bytes(b"\x00garbage" * 100)
    (runs[1] / "run.json").write_text("{ not json")
    (runs[2] / ".tmp-run.json-deadbeef").write_text("{}")


@pytest.fixture(scope="module")
def repair_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Template]:
    root = tmp_path_factory.mktemp("damaged")
    for seed in range(3):
        write_rich_run(root, n=4000, seed=seed)
    _damage(root)
    repaired = root.with_name(root.name + "-repaired")
    shutil.copytree(root, repaired)
    seconds = _timed("repair", repaired)
    assert verify_repo(RepoLayout(repaired)).problems == ()
    yield Template(root, snapshot(repaired), {}, seconds)


@pytest.mark.parametrize("seed", range(3))
def test_sigkill_during_repair_then_rerun(
    repair_template: Template, tmp_path: Path, seed: int
) -> None:
    trial = tmp_path / "repo"
    shutil.copytree(repair_template.root, trial)
    rng = random.Random(seed)
    _kill_during("repair", trial, rng.uniform(0.0, repair_template.seconds * 1.2))
    report = verify_repo(RepoLayout(trial), repair=True)
    assert report.is_healthy, report.problems
    assert verify_repo(RepoLayout(trial)).problems == ()
    assert snapshot(trial) == repair_template.expected


@pytest.mark.slow
def test_sigkill_during_repair_randomized_trials(repair_template: Template, tmp_path: Path) -> None:
    rng = random.Random(777)
    for n in range(25):
        trial = tmp_path / f"t{n}"
        shutil.copytree(repair_template.root, trial)
        _kill_during("repair", trial, rng.uniform(0.0, repair_template.seconds * 1.2))
        assert verify_repo(RepoLayout(trial), repair=True).is_healthy
        assert snapshot(trial) == repair_template.expected
