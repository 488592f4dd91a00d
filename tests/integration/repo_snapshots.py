"""Helpers of the compaction, maintenance and CLI tests: rich runs and snapshots of what they hold.

`snapshot` is what queries see (our reader: compacted + uncompacted data, last write wins);
`raw_row_counts` counts stored rows per sequence with plain pyarrow (Parquet rows the manifest
lists plus every segment it does not cover), so a point lost or doubled by compaction shows.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage import discover_sequences, list_run_hashes, load_run_meta, read_sequence
from tests.conftest import segment_batches

QUIET = {"system_tracking_interval": None, "capture_terminal_logs": False}


def write_rich_run(repo: Path, *, n: int = 300, seed: int = 0, resume: str | None = None) -> str:
    """A closed run with float/int metrics in several contexts, duplicate and out-of-order steps,
    NaN/inf values, epochs, several flushes (several batches) and object sequences."""
    rng = np.random.default_rng(seed)
    run = aim.Run(resume, repo=repo, **QUIET)  # type: ignore[arg-type]
    run["hparams"] = {"lr": 0.001 * (seed + 1), "layers": [64, 32], "name": f"net{seed}"}
    for i in range(n):
        run.track(float(rng.standard_normal()), name="loss", step=i, context={"subset": "train"})
        if i % 3 == 0:
            run.track(i, name="acc", step=i, epoch=i // 50, context={"subset": "val"})
        if i % 97 == 0:
            run.flush()
    run.track(math.nan, name="loss", step=5, context={"subset": "train"})  # duplicate step
    run.track(math.inf, name="loss", step=2, context={"subset": "train"})  # out of order
    run.track(7, name="acc", step=1, context={"subset": "val"})
    run.track(aim.Text(f"hello {seed}"), name="notes", step=0)
    run.track(aim.Text("again"), name="notes", step=0)  # duplicate object step
    run.track([aim.Text("a"), aim.Text("b")], name="pairs", step=1)
    run.track(aim.Distribution(rng.standard_normal(100)), name="weights", step=3)
    img = aim.Image(rng.integers(0, 255, size=(8, 8, 3), dtype=np.uint8))
    run.track(img, name="samples", step=0, context={"subset": "val"})
    run.close()
    return str(run.hash)


def snapshot(root: Path) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """{(run hash, seq_id): rows} of every sequence of every run, as our reader returns them."""
    layout = RepoLayout(root)
    out = {}
    for run_hash in list_run_hashes(layout):
        meta = load_run_meta(layout, run_hash)
        for info in discover_sequences(layout, run_hash, meta):
            out[(run_hash, info.seq_id)] = rows(read_sequence(layout, run_hash, info))
    return out


def rows(table: pa.Table) -> list[dict[str, Any]]:
    """A table's rows, comparable with == even when values are NaN."""
    return [_comparable(r) for r in table.to_pylist()]


def _comparable(row: dict[str, Any]) -> dict[str, Any]:
    value = row.get("value")
    if isinstance(value, float) and math.isnan(value):
        row["value"] = "nan"  # NaN != NaN; compare a marker
    return row


def raw_row_counts(root: Path, run_hash: str) -> dict[str, int]:
    """{seq_id: stored rows} read with plain pyarrow (see module doc)."""
    run_dir = root / ".aim" / "runs" / run_hash
    manifest_path = run_dir / "compacted" / "manifest.json"
    counts: dict[str, int] = {}
    covered: set[str] = set()
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        covered = set(manifest["segments"])
        for f in manifest["files"]:
            seq_ids = pq.read_table(run_dir / f["path"], columns=["seq_id"]).column("seq_id")
            for seq_id in seq_ids.to_pylist():
                counts[seq_id] = counts.get(seq_id, 0) + 1
    seqs = run_dir / "seqs"
    for seg in sorted(seqs.glob("*/*.arrows")) if seqs.is_dir() else []:
        if f"{seg.parent.name}/{seg.name}" in covered:
            continue
        for batch in segment_batches(seg)[1]:
            counts[seg.parent.name] = counts.get(seg.parent.name, 0) + batch.num_rows
    return counts


def run_files(root: Path, run_hash: str) -> list[str]:
    """Every file of a run folder, relative to it."""
    run_dir = root / ".aim" / "runs" / run_hash
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file())
