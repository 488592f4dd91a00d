"""What a run's close pays for leaving its index row in `.aim/index/closed.jsonl` (issue #17).

usage: python tools/bench_close_journal.py [--runs N]

Writes N runs (5 points of one metric, three params) with the SDK into a temporary repository,
timing each `Run(...)` + track + `close()`; then times `closed_journal.append_closed` alone for
each of those runs (what the close adds: one stat, one sidecar read and decode, one appended
line). Prints the medians and the share of a close the append is.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage.index.closed_journal import append_closed

QUIET: dict[str, Any] = {
    "system_tracking_interval": None,
    "capture_terminal_logs": False,
    "log_system_params": False,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = str(Path(tmp) / "repo")
        runs, hashes = [], []
        for i in range(args.runs):
            t0 = time.perf_counter()
            run = aim.Run(repo=repo, **QUIET)
            run["hparams"] = {"lr": 1e-3, "seed": i, "batch": 256}
            for step in range(5):
                run.track(0.5 / (step + 1), name="loss", step=step)
            run.close()
            runs.append(time.perf_counter() - t0)
            hashes.append(run.hash)
        layout = RepoLayout(Path(repo))
        appends = []
        for run_hash in hashes:
            t0 = time.perf_counter()
            append_closed(layout, run_hash)
            appends.append(time.perf_counter() - t0)
    run_ms, append_ms = statistics.median(runs) * 1e3, statistics.median(appends) * 1e3
    print(f"run (create, 5 points, close) median {run_ms:.2f} ms over {args.runs} runs")
    print(f"append_closed alone           median {append_ms:.3f} ms ({append_ms / run_ms:.1%})")


if __name__ == "__main__":
    main()
