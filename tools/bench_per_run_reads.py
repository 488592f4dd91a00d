"""What the bulk reader of segments (`storage.online.bulk_read.read_metrics_bulk`) pays per run,
against the floor of the system calls it makes, and whether reading several runs' files from a
few threads overlaps them (`BENCHMARKS.md`, "Per-run reads (io18)").

    .venv/bin/python tools/bench_per_run_reads.py --repo /tmp/io18/r10k \\
        [--root /tmp/io18/base --root .] [--repeat 7]

In one process per `--root` (a checkout; PYTHONPATH), best of `repeat` each, the garbage
collector off (as in a frame's build): `read_metrics_bulk` of every `loss` sequence; the same
files read by the bare calls it makes per run (list the sequence folder, open, fstat, read and
close each segment, lstat the manifest: the floor of a reader in Python); that floor from 2, 4
and 8 threads, one run per task and 64 runs per task. Prints one JSON line per root.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import gc, json, os, sys, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage.online import bulk_read

repo, repeat = sys.argv[1], int(sys.argv[2])
wanted = [(m.run.hash, m.info) for m in aim.Repo(repo).query_metrics("metric.name == 'loss'")]
layout = RepoLayout(Path(repo))
runs = os.fspath(layout.runs_dir)
flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


def bare(item):
    run_hash, info = item
    folder = f"{runs}/{run_hash}/seqs/{info.seq_id}"
    out = []
    for name in sorted(os.listdir(folder)):
        fd = os.open(f"{folder}/{name}", flags)
        try:
            out.append(os.read(fd, os.fstat(fd).st_size + 1))
        finally:
            os.close(fd)
    try:
        os.lstat(f"{runs}/{run_hash}/compacted/manifest.json")
    except FileNotFoundError:
        pass
    return out


def chunk(items):
    return [bare(item) for item in items]


def best(work):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        work()
        times.append(time.perf_counter() - t0)
    return round(min(times), 4)


gc.disable()
report = {"sequences": len(wanted)}
report["read_metrics_bulk"] = best(lambda: bulk_read.read_metrics_bulk(layout, wanted))
report["bare_calls_serial"] = best(lambda: [bare(item) for item in wanted])
chunks = [wanted[i : i + 64] for i in range(0, len(wanted), 64)]
for workers in (2, 4, 8):
    def one_per_task(workers=workers):
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(bare, wanted))
    def chunked(workers=workers):
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(chunk, chunks))
    report[f"bare_calls_{workers}_threads"] = best(one_per_task)
    report[f"bare_calls_{workers}_threads_64_runs_a_task"] = best(chunked)
print(json.dumps(report))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", required=True)
    parser.add_argument("--root", type=Path, action="append", help="checkouts (default: this one)")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    roots = args.root or [Path(__file__).resolve().parent.parent]
    for root in roots:
        env = dict(os.environ, PYTHONPATH=str(root.resolve()))
        done = subprocess.run(
            [sys.executable, "-c", CHILD, args.repo, str(args.repeat)],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        report = json.loads(done.stdout)
        print(json.dumps({"root": str(root), **report}))


if __name__ == "__main__":
    main()
