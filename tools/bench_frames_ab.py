"""Before/after of the frames and the iteration at scale on repositories made once: `loss` as
`dataframe()` and `to_polars()`, and `values.sparse_numpy()` of every `loss` metric, each by
two checkouts in turn (a fresh process each, `repeat` times, sides interleaved so both see the
same load), on an as-written repository and a compacted copy of it. Unlike
`bench_scale_ab.py`, the repositories are made once and shared by both sides (frames only read
them), so a rerun takes seconds, not minutes.

    git archive <base-rev> aim_parquet tools | tar -x -C /tmp/base
    S=tools/bench_suite/scale_side.py
    .venv/bin/python $S generate '{"repo": "/tmp/many", "runs": 10000, "points": 5}'
    cp -r /tmp/many /tmp/many-c && .venv/bin/python $S compact '{"repo": "/tmp/many-c"}'
    .venv/bin/python tools/bench_frames_ab.py --base /tmp/base --repo /tmp/many \\
        --repo /tmp/many-c --repeat 5

Each repository is read once, untimed, first (its files back in the page cache). Prints one
line per measurement: each side's median seconds and its runs, sorted, and the median CPU
seconds (user + system) of its whole process, imports included (steadier than the seconds on a
shared machine).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
LOSS = "metric.name == 'loss'"
STEPS = [
    ("dataframe() of loss", "frame", {"fmt": "pandas"}),
    ("to_polars() of loss", "frame", {"fmt": "polars"}),
    ("sparse_numpy() of every loss", "sparse", {}),
]


def run(root: Path, workload: str, params: dict[str, Any]) -> tuple[float, float]:
    """(seconds the step took inside the process, CPU seconds of the whole process)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [sys.executable, str(root / "tools" / "bench_suite" / "scale_side.py"), workload,
         json.dumps(params)],
        capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(root)), check=True,
    )  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    seconds: float = json.loads(done.stdout.strip().splitlines()[-1])["s"]
    return seconds, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", type=Path, required=True, help="the checkout to compare with")
    parser.add_argument("--repo", type=Path, action="append", required=True)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sides = {"before": args.base.resolve(), "after": HERE.parent}
    print(f"1-minute load average at start: {os.getloadavg()[0]:.2f}", flush=True)
    for repo in args.repo:
        # one untimed read first: the files' pages and inodes may have left the cache since the
        # repository was made (the first side would pay for bringing them back)
        run(sides["after"], "sparse", {"repo": str(repo.resolve()), "query": LOSS})
        for label, workload, extra in STEPS:
            params = {"repo": str(repo.resolve()), "query": LOSS, **extra}
            times: dict[str, list[tuple[float, float]]] = {side: [] for side in sides}
            for _ in range(args.repeat):
                for side, root in sides.items():
                    times[side].append(run(root, workload, params))
            cells = []
            for side, got in times.items():
                walls = sorted(wall for wall, _cpu in got)
                cpu = statistics.median(c for _wall, c in got)
                runs = ", ".join(f"{x:.2f}" for x in walls)
                cells.append(f"{side}: {statistics.median(walls):.3f} ({runs}) cpu {cpu:.2f}")
            print(f"{repo.name:10s} {label:30s} " + "  ".join(cells), flush=True)
    print(f"1-minute load average at the end: {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
