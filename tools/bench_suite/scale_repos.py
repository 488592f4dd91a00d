"""Repos for the "many runs" and "analyst" benchmark sections, built fast.

`generate_many_runs` writes what `Run()` would leave after a closed run of `points` `loss` points
(a sidecar with params, an experiment and a one-entry catalogue, and one sealed segment), straight
through pyarrow and `RunMeta` instead of 10,000 `Run()` calls (about 36 ms each here: 6 minutes
for 10,000 runs, an hour for 100,000). The segment's schema is copied from a segment a real `Run`
wrote, so the files are byte-for-byte what the writer makes. `points=0` writes sidecars only (the
run-predicate repo: a predicate never opens a segment). `build_sweep` writes the analyst's sweep
with real `Run()` calls.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

import aim_parquet as aim
from aim_parquet.format.meta import CatalogueReach, RunMeta, SequenceInfo
from aim_parquet.format.paths import (
    RepoLayout,
    generate_run_hash,
    segment_name,
    sequence_id,
)
from aim_parquet.format.schema import META_RUN
from aim_parquet.storage.base.repo_files import ensure_repo
from aim_parquet.storage.online.segments import read_segment

QUIET: dict[str, Any] = {
    "system_tracking_interval": None,
    "capture_terminal_logs": False,
    "log_system_params": False,
}


def run_params(i: int) -> dict[str, Any]:
    return {
        "hparams": {"lr": 10.0 ** -(1 + i % 4) / (1 + i % 7), "seed": i, "batch": 32 << (i % 4)}
    }


def _template_schema() -> pa.Schema:
    """The schema (with its metadata) of a segment written by a real `Run`."""
    with tempfile.TemporaryDirectory() as tmp:
        run = aim.Run(repo=tmp, **QUIET)
        run.track(1.0, name="loss", step=0)
        run.close()
        seg = next(p for p in Path(tmp).rglob("*.arrows"))
        return read_segment(seg).schema


def generate_many_runs(root: str | Path, runs: int, points: int, offset: int = 0) -> None:
    """`runs` closed runs numbered `offset`... (module doc)."""
    layout: RepoLayout = ensure_repo(Path(root))
    schema = _template_schema() if points else None
    seq_id = sequence_id("loss", {})
    now = time.time()
    steps = pa.array(np.arange(points, dtype=np.int64))
    epochs = pa.array(np.zeros(points, dtype=np.int64))
    stamps = pa.array(np.full(points, now))
    for i in range(offset, offset + runs):
        run_hash = generate_run_hash()
        values = 1.0 / (np.arange(points, dtype=np.float64) + 1.0 + (i % 1000) / 100.0)
        run_dir = layout.run_dir(run_hash)
        reach = None
        if schema is not None:
            seg_dir = run_dir / "seqs" / seq_id
            seg_dir.mkdir(parents=True)
            name = segment_name(time.time_ns(), 1)
            meta = dict(schema.metadata or {})
            meta[META_RUN] = run_hash.encode()
            sch = schema.with_metadata(meta)
            batch = pa.record_batch([steps, pa.array(values), epochs, stamps], schema=sch)
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, sch) as writer:
                writer.write_batch(batch)
            data = sink.getvalue().to_pybytes()
            data = data[:-8] if data.endswith(b"\xff\xff\xff\xff\x00\x00\x00\x00") else data
            (seg_dir / name).write_bytes(data)
            reach = CatalogueReach(name, len(data), True)
        else:
            run_dir.mkdir(parents=True)
        info = SequenceInfo(
            seq_id=seq_id,
            name="loss",
            context={},
            kind="float",
            count=points,
            first_step=0 if points else None,
            last_step=points - 1 if points else None,
            first=float(values[0]) if points else None,
            last=float(values[-1]) if points else None,
            min=float(values.min()) if points else None,
            max=float(values.max()) if points else None,
            reach=reach,
        )
        meta_run = RunMeta(
            hash=run_hash,
            creation_time=now + i * 1e-3,
            experiment=f"exp-{i % 10}",
            end_time=now + i * 1e-3 + 1,
            params=run_params(i),
            sequences=(info,) if points else (),
            updated_at=now,
        )
        path = layout.sidecar(run_hash)
        path.write_bytes(meta_run.dumps())
        (run_dir / "lock").touch()
    (layout.root / "index").mkdir(exist_ok=True)
    os.utime(layout.root)


def build_sweep(root: str | Path, runs: int, steps: int, seed: int = 0) -> int:
    """A hyperparameter sweep: `runs` runs with `loss` and `acc` in train (every step) and val
    (every 10th step) contexts, epochs; every 10th run resumed over its last 10% of steps (the
    resumed values win), every 15th archived. Returns the `loss` points a frame must hold."""
    rng = np.random.default_rng(seed)
    loss_rows = 0
    val_every = 10
    for r in range(runs):
        x = np.arange(steps, dtype=np.float64)
        curve = 2.0 * np.exp(-x / (steps / 3)) + 0.05
        noisy = curve * (1.0 + 0.05 * rng.standard_normal(steps))
        run = aim.Run(repo=root, experiment=f"sweep-{r % 3}", **QUIET)
        run["hparams"] = {
            "lr": 10.0 ** -(1 + r % 4),
            "seed": r,
            "optimizer": ["adam", "sgd"][r % 2],
        }
        track = run.track
        for step in range(steps):
            epoch = step // 100
            track(noisy[step], name="loss", step=step, epoch=epoch, context={"subset": "train"})
            track(
                1.0 - noisy[step] / 3,
                name="acc",
                step=step,
                epoch=epoch,
                context={"subset": "train"},
            )
            if step % val_every == 0:
                track(
                    noisy[step] * 1.1,
                    name="loss",
                    step=step,
                    epoch=epoch,
                    context={"subset": "val"},
                )
                track(
                    0.9 - noisy[step] / 3,
                    name="acc",
                    step=step,
                    epoch=epoch,
                    context={"subset": "val"},
                )
        if r % 15 == 0:
            run.archived = True
        run_hash = run.hash
        run.close()
        loss_rows += steps + (steps + val_every - 1) // val_every
        if r % 10 == 0:  # resumed from a checkpoint: the last 10% of steps written again
            again = aim.Run(run_hash=run_hash, repo=root, **QUIET)
            for step in range(steps - steps // 10, steps):
                again.track(noisy[step] * 0.99, name="loss", step=step, context={"subset": "train"})
            again.close()
    return loss_rows
