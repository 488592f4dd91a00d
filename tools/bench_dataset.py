"""Analyst dataset cost: full build, refresh after one run changed, refresh with nothing to do,
and the polars recipe's read, on a synthetic repository.

    .venv/bin/python tools/bench_dataset.py --runs 300 --steps 500
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from aim_parquet import Run
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage.maintenance.dataset import refresh_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--steps", type=int, default=500)
    args = parser.parse_args()
    import polars as pl

    root = Path(tempfile.mkdtemp(prefix="bench-dataset-"))
    hashes = []
    for i in range(args.runs):
        run = Run(repo=str(root), system_tracking_interval=None)
        run["hparams"] = {"lr": 0.001 * (i + 1)}
        for step in range(args.steps):
            run.track(step * 0.5, name="loss", step=step, context={"subset": "train"})
        run.close()
        hashes.append(run.hash)
    layout = RepoLayout(root)
    for label, action in (
        ("full build", lambda: refresh_dataset(layout, rebuild=True)),
        ("nothing to do", lambda: refresh_dataset(layout)),
    ):
        started = time.perf_counter()
        action()
        print(f"{label}: {time.perf_counter() - started:.3f} s")
    run = Run(run_hash=hashes[0], repo=str(root), system_tracking_interval=None)
    run.track(1.0, name="loss", step=1, context={"subset": "train"})
    started = time.perf_counter()
    run.close()  # refreshes the dataset
    print(f"close of one resumed run (incl. refresh): {time.perf_counter() - started:.3f} s")
    current = json.loads((root / ".aim/dataset/current.json").read_text())
    files = [str(root / ".aim/dataset" / f) for f in current["metrics"]]
    started = time.perf_counter()
    rows = pl.scan_parquet(files).filter(pl.col("name") == "loss").collect().height
    print(
        f"polars recipe: {rows} rows from {len(files)} files in {time.perf_counter() - started:.3f} s"
    )


if __name__ == "__main__":
    main()
