"""Driving hostile_rank_proc.py processes: launch-like environments, commands with a time limit,
and reading a run back through the SDK and through plain pyarrow."""

from __future__ import annotations

import glob
import json
import select
import signal
import subprocess
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

import aim_parquet as aim
from tests.conftest import PYTHON, python_env

WORKER = str(Path(__file__).with_name("hostile_rank_proc.py"))
REPLY_TIMEOUT_S = 60.0
LAUNCH_KEYS = (
    "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "TORCHELASTIC_RUN_ID",
    "TORCHELASTIC_RESTART_COUNT", "MASTER_ADDR", "MASTER_PORT", "SLURM_JOB_ID", "SLURM_STEP_ID",
    "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID",
)  # fmt: skip


def torchrun_env(rank: int, world: int, job: str, attempt: int = 0) -> dict[str, str]:
    return {
        "RANK": str(rank),
        "WORLD_SIZE": str(world),
        "LOCAL_RANK": str(rank),
        "LOCAL_WORLD_SIZE": str(world),
        "TORCHELASTIC_RUN_ID": job,
        "TORCHELASTIC_RESTART_COUNT": str(attempt),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29500",
    }


def slurm_env(rank: int, world: int, job: str, step: str = "0") -> dict[str, str]:
    return {
        "SLURM_JOB_ID": job,
        "SLURM_STEP_ID": step,
        "SLURM_PROCID": str(rank),
        "SLURM_NTASKS": str(world),
        "SLURM_LOCALID": str(rank),
    }


class Proc:
    """One driven process; every command waits for its reply line, never forever."""

    def __init__(self, repo: Path, launch: dict[str, str] | None) -> None:
        env = {k: v for k, v in python_env().items() if k not in LAUNCH_KEYS}
        env.update(launch or {})
        self.p = subprocess.Popen(
            [PYTHON, WORKER, str(repo)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def send(self, line: str, *, ok: bool = True) -> str:
        self.write(line)
        return self.reply(line, ok=ok)

    def write(self, line: str) -> None:
        assert self.p.stdin is not None
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def reply(self, line: str, *, ok: bool = True) -> str:
        assert self.p.stdout is not None
        ready, _, _ = select.select([self.p.stdout], [], [], REPLY_TIMEOUT_S)
        assert ready, f"no reply to {line!r} within {REPLY_TIMEOUT_S} s"
        reply = self.p.stdout.readline().strip()
        if not reply:
            err = self.p.stderr.read() if self.p.stderr else ""
            raise AssertionError(f"process died on {line!r}: rc {self.p.wait(10)} {err[-2000:]}")
        if ok:
            assert reply.startswith("ok"), f"{line!r} -> {reply}"
        return reply

    def kill(self, sig: int = signal.SIGKILL) -> int:
        self.p.send_signal(sig)
        return self.p.wait(REPLY_TIMEOUT_S)

    def end(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait(REPLY_TIMEOUT_S)
        for pipe in (self.p.stdin, self.p.stdout, self.p.stderr):
            if pipe is not None:
                pipe.close()


def sdk_points(repo: Path, run_hash: str) -> dict[tuple[str, str], list[tuple[int, float]]]:
    run = aim.Repo(str(repo)).get_run(run_hash)
    assert run is not None
    out = {}
    for metric in run.metrics():
        steps, values = metric.values.sparse_numpy()
        key = (metric.name, json.dumps(metric.context.to_dict(), sort_keys=True))
        assert key not in out, f"{key} listed twice"
        out[key] = list(zip(steps.tolist(), values.tolist(), strict=True))
    return out


def catalogue_counts(repo: Path, run_hash: str) -> dict[tuple[str, str], int]:
    run = aim.Repo(str(repo)).get_run(run_hash)
    assert run is not None
    meta = run._meta
    return {(s.name, json.dumps(s.context, sort_keys=True)): s.count for s in meta.sequences}


def arrow_points(repo: Path, run_hash: str) -> dict[str, list[tuple[int, float]]]:
    """Every metric point of the run by sequence id, read with plain pyarrow: the compacted
    Parquet file (when any) and the segments, as FORMAT.md describes them."""
    run_dir = Path(repo) / ".aim" / "runs" / run_hash
    out: dict[str, list[tuple[int, float]]] = {}
    manifest_path = run_dir / "compacted" / "manifest.json"
    covered: set[str] = set()
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        covered = set(manifest["segments"])
        for f in manifest["files"]:
            if f["kind"] != "metrics":
                continue
            t = pq.read_table(run_dir / f["path"])
            for seq, step, value in zip(
                t["seq_id"].to_pylist(), t["step"].to_pylist(), t["value"].to_pylist(), strict=True
            ):
                out.setdefault(seq, []).append((step, value))
    for path in sorted(glob.glob(str(run_dir / "seqs" / "*" / "*.arrows"))):
        seq, name = Path(path).parent.name, Path(path).name
        if f"{seq}/{name}" in covered:
            continue
        with pa.OSFile(path) as f:
            reader = pa.ipc.open_stream(f)
            batches = []
            try:
                for b in reader:
                    batches.append(b)
            except pa.ArrowInvalid:
                pass  # a torn tail of a killed writer
        if not batches:
            continue
        t = pa.Table.from_batches(batches)
        if "value" not in t.column_names or "step" not in t.column_names:
            continue
        out.setdefault(seq, []).extend(
            zip(t["step"].to_pylist(), t["value"].to_pylist(), strict=True)
        )
    return out


def as_sorted(points: dict[Any, list[tuple[int, float]]]) -> list[list[tuple[int, float]]]:
    return sorted(sorted(v) for v in points.values())
