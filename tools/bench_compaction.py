"""Benchmark compaction: size per point, files per run, throughput and peak memory.

    .venv/bin/python tools/bench_compaction.py [--runs 4] [--metrics 8] [--steps 200000]

Writes `runs` runs with `metrics` float metrics each through real `Run.track` calls (so timestamps
are those of real calls), shaped like loss curves: a decaying curve plus float64 noise (the
incompressible worst case; `--float32` rounds values to float32 as `tensor.item()` gives them).
Then compacts the repo in a fresh subprocess and prints:

  * bytes per metric point before (Arrow segments) and after (Parquet), and the ratio
  * files per run before and after
  * compaction throughput in points per second (points / wall seconds of `compact_repo`)
  * peak RSS of the compacting process, and its RSS after imports (the baseline)

Targets (issue 5): <= 12 bytes/point after, <= 8 files/run after, >= 5M points/s, memory
bounded by one row group per sequence (not by run size).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout, uninstalled

import aim_parquet as aim  # noqa: E402

COMPACT_SCRIPT = """
import json, sys, time
from pathlib import Path
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage import compact_repo, default_workers
import aim_parquet.storage.maintenance.export  # imported up front so its import is not timed

def hwm_kib():  # VmHWM: this process's peak RSS (ru_maxrss would include the parent's)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0

base = hwm_kib()
workers = int(sys.argv[2]) or default_workers()
t0 = time.perf_counter()
report = compact_repo(RepoLayout(Path(sys.argv[1])), workers=workers)
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "points": report.points, "base_kib": base, "workers": workers,
                  "peak_kib": hwm_kib(), "statuses": [r.status for r in report.runs]}))
"""


def write_runs(repo: Path, runs: int, metrics: int, steps: int, is_float32: bool) -> int:
    rng = np.random.default_rng(0)
    total = 0
    x = np.arange(steps, dtype=np.float64)
    for r in range(runs):
        curves = []
        for k in range(metrics):
            decay = 2.0 * np.exp(-x / (steps / (3 + k))) + 0.05
            noisy = decay * (1 + 0.1 * rng.standard_normal(steps))
            if is_float32:
                noisy = noisy.astype(np.float32).astype(np.float64)
            curves.append(noisy.tolist())
        names = [f"metric_{k}" for k in range(metrics)]
        run = aim.Run(repo=repo, system_tracking_interval=None, capture_terminal_logs=False)
        run["hparams"] = {"lr": 10 ** -(r + 2), "batch_size": 32 * (r + 1)}
        context = {"subset": "train"}
        for step in range(steps):
            epoch = step // 1000
            for k in range(metrics):
                run.track(curves[k][step], name=names[k], step=step, epoch=epoch, context=context)
        run.close()
        total += steps * metrics
    return total


def usage(repo: Path) -> dict[str, tuple[int, int]]:
    """{run hash: (files, bytes of data files)}; data = segments and compacted Parquet."""
    out = {}
    runs_dir = repo / ".aim" / "runs"
    for run_dir in sorted(runs_dir.iterdir()):
        files = data = 0
        for dirpath, _dirs, names in os.walk(run_dir):
            for name in names:
                files += 1
                if name.endswith((".arrows", ".parquet")):
                    data += os.path.getsize(os.path.join(dirpath, name))
        out[run_dir.name] = (files, data)
    return out


def compact(repo: Path, workers: int) -> dict[str, Any]:
    """Compact `repo` in a fresh process (`workers` 0: the default); its JSON result."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", COMPACT_SCRIPT, str(repo), str(workers)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--metrics", type=int, default=8)
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--float32", action="store_true", help="values rounded to float32")
    parser.add_argument("--dir", help="repository folder to use (default: a temp folder)")
    args = parser.parse_args()
    repo = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="bench-compaction-"))
    try:
        t0 = time.perf_counter()
        points = write_runs(repo, args.runs, args.metrics, args.steps, args.float32)
        track_s = time.perf_counter() - t0
        before = usage(repo)
        copy = repo.with_name(repo.name + "-copy")
        shutil.copytree(repo, copy)
        single = compact(copy, 1)
        shutil.rmtree(copy)
        result = compact(repo, 0)
        after = usage(repo)
    finally:
        if not args.dir:
            shutil.rmtree(repo, ignore_errors=True)
    n_runs = len(before)
    b_bytes = sum(v[1] for v in before.values())
    a_bytes = sum(v[1] for v in after.values())
    b_files = max(v[0] for v in before.values())
    a_files = max(v[0] for v in after.values())
    kind = "float32-rounded" if args.float32 else "float64 noise"
    print(
        f"workload: {n_runs} runs x {args.metrics} metrics x {args.steps} steps = {points:,} "
        f"points ({kind}); tracked at {points / track_s:,.0f} points/s"
    )
    print(
        f"bytes/point: before {b_bytes / points:.2f} (segments), after {a_bytes / points:.2f} "
        f"(Parquet), {b_bytes / max(a_bytes, 1):.1f}x smaller"
    )
    print(f"files/run (max over runs): before {b_files}, after {a_files}")
    for r in (single, result):
        print(
            f"compaction, {r['workers']} worker(s) ({os.cpu_count()} CPUs): {r['points']:,} points "
            f"in {r['seconds']:.2f} s = {r['points'] / r['seconds']:,.0f} points/s"
        )
    print(
        f"peak RSS: {result['peak_kib'] / 1024:.0f} MiB (after imports: "
        f"{result['base_kib'] / 1024:.0f} MiB); largest run: "
        f"{points // n_runs:,} points"
    )
    print(f"statuses: {sorted(set(result['statuses']))}")


if __name__ == "__main__":
    main()
