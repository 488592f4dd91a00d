"""The first query after writing many runs, when the run index must be built from the sidecars
(issue #17: "first query after writing 10,000 runs ≤ 1 s", interpreter start and import
included), of two checkouts side by side on the same repository.

    .venv/bin/python tools/bench_suite/scale_side.py generate \\
        '{"repo": "/tmp/fq/r10k", "runs": 10000, "points": 5}'
    git archive <base-rev> aim_parquet tools | tar -x -C /tmp/fq/base
    .venv/bin/python tools/bench_index_build.py --repo /tmp/fq/r10k --base /tmp/fq/base

Each round, for each side in turn: the run index file (`.aim/index/runs.jsonl` before
format 5, `runs.arrow` since) is removed, then a fresh process runs
`import aim_parquet as aim; sum(1 for _ in aim.Repo(p).query_runs(q).iter_runs())`; its wall
time (interpreter start to exit), its CPU time (user + system) and, measured inside it, the
import and the query alone. The base side runs with this checkout's virtual environment and
`PYTHONPATH=<base>` (its `aim_parquet` shadows the editable install). Prints one line per
measurement and the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUERY = "run.hparams.lr < 0.0005"
CHILD = """
import json, sys, time
t0 = time.perf_counter()
import aim_parquet as aim
t1 = time.perf_counter()
n = sum(1 for _ in aim.Repo(sys.argv[1]).query_runs(sys.argv[2]).iter_runs())
t2 = time.perf_counter()
print(json.dumps({"runs": n, "import_s": t1 - t0, "query_s": t2 - t1}))
"""
CHILD_SIDECARS = """
import json, os, sys, time
from pathlib import Path
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage.index.sidecar_entries import read_sidecar_entry
layout = RepoLayout(Path(sys.argv[1]))
names = sorted(os.listdir(layout.runs_dir))
t0 = time.perf_counter()
n = sum(read_sidecar_entry(layout, h, "k").record is not None for h in names)
print(json.dumps({"runs": n, "sidecars_s": time.perf_counter() - t0}))
"""


def measure(repo: Path, pythonpath: str | None, query: str, child: str) -> dict[str, float]:
    for name in ("runs.jsonl", "runs.arrow"):  # (the index file before and since format 5)
        (repo / ".aim" / "index" / name).unlink(missing_ok=True)
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", child, str(repo), query],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    result: dict[str, float] = json.loads(out)
    return {**result, "wall_s": wall, "cpu_s": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, required=True)
    parser.add_argument("--base", required=True, help="a checkout of the base (PYTHONPATH)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--query", default=QUERY)
    parser.add_argument("--sidecars", action="store_true", help="time the sidecar reads only")
    args = parser.parse_args()
    child = CHILD_SIDECARS if args.sidecars else CHILD
    sides: dict[str, str | None] = {"before": args.base, "after": str(HERE.parent)}
    results: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
    for i in range(args.rounds):
        order = list(sides) if i % 2 == 0 else list(reversed(sides))
        for side in order:
            row = measure(args.repo, sides[side], args.query, child)
            results[side].append(row)
            print(side, json.dumps({k: round(v, 3) for k, v in row.items()}), flush=True)
    for side, rows in results.items():
        medians = {k: round(statistics.median(r[k] for r in rows), 3) for k in rows[0]}
        print(f"median {side}: {json.dumps(medians)}")


if __name__ == "__main__":
    main()
