"""Before/after of the analyst sweep's frames: `loss` and the whole repo as `dataframe()` and
`to_polars()`, by two checkouts in turn (a fresh process each, `repeat` times), on one sweep
repository (`bench_suite/scale_side.py sweep` builds it; frames only read it), next to the
floor: the same rows saved to one Parquet file and read back by pandas or polars.

    git archive <base-rev> aim_parquet tools | tar -x -C /tmp/base
    .venv/bin/python tools/bench_suite/scale_side.py sweep \
        '{"repo": "/tmp/sweep", "runs": 300, "steps": 2000}'
    .venv/bin/python tools/bench_sweep_ab.py --base /tmp/base --repo /tmp/sweep

After a change to what compaction writes, give the sides their own repositories: `--base-repo`
compacted by the base checkout, `--repo` by this one (two copies of one as-written sweep).

Prints one line per measurement: the median seconds of each side and its ratio to the floor, which
is read in the same rounds as the sides (floor, before and after in turn, `repeat` times), and the
median CPU seconds (user + system of all threads: steadier than the wall time on a shared
machine).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
LOSS = "metric.name == 'loss'"


def run(root: Path, workload: str, params: dict[str, Any]) -> dict[str, Any]:
    """`workload` of this checkout's `scale_side.py` (one harness for both sides) with the
    `aim_parquet` of `root`."""
    done = subprocess.run(
        [sys.executable, str(HERE / "bench_suite" / "scale_side.py"), workload,
         json.dumps(params)],
        capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(root)), check=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", type=Path, required=True, help="the checkout to compare with")
    parser.add_argument("--repo", type=Path, required=True, help="the sweep repository")
    parser.add_argument(
        "--base-repo", type=Path, help="the repository the base reads (default: --repo)"
    )
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sides = {"before": args.base.resolve(), "after": HERE.parent}
    repos = {
        "before": str((args.base_repo or args.repo).resolve()),
        "after": str(args.repo.resolve()),
    }
    print(f"1-minute load average at start: {os.getloadavg()[0]:.2f}", flush=True)
    floors = {}
    for name, query in (("loss", LOSS), ("all", "")):
        floors[name] = str(args.repo.resolve().parent / f"floor-{name}.parquet")
        run(
            HERE.parent,
            "save_floor",
            {"repo": repos["after"], "query": query, "path": floors[name]},
        )
    cases = [
        ("loss dataframe()", {"query": LOSS}, "pandas", "loss"),
        ("loss to_polars()", {"query": LOSS, "fmt": "polars"}, "polars", "loss"),
        ("whole repo dataframe()", {"query": ""}, "pandas", "all"),
        ("whole repo to_polars()", {"query": "", "fmt": "polars"}, "polars", "all"),
    ]
    for label, params, floor, floor_name in cases:
        floor_path = floors[floor_name]
        # the floor is read in the same rounds as the two sides (a shared machine's load moves)
        times: dict[str, list[float]] = {s: [] for s in [*sides, "floor"]}
        cpu: dict[str, list[float]] = {s: [] for s in [*sides, "floor"]}
        rss: dict[str, float] = {}
        for _ in range(args.repeat):
            out = run(HERE.parent, "floor", {"path": floor_path, "engine": floor})
            times["floor"].append(out["s"])
            cpu["floor"].append(out["cpu_s"])
            for side, root in sides.items():
                out = run(root, "frame", dict(params, repo=repos[side]))
                times[side].append(out["s"])
                cpu[side].append(out["cpu_s"])
                rss[side] = max(rss.get(side, 0.0), out.get("peak_rss_mib", 0.0))
        floor_s = statistics.median(times["floor"])
        cells = []
        for side in sides:
            median = statistics.median(times[side])
            ratio = f" ({median / floor_s:.2f}x floor)"
            cells.append(
                f"{side}: {median:.3f}{ratio}, CPU {statistics.median(cpu[side]):.3f}, "
                f"{rss[side]:,.0f} MiB"
            )
        cells.append(f"floor ({floor}): {floor_s:.3f}, CPU {statistics.median(cpu['floor']):.3f}")
        print(f"{label:26s} " + "  ".join(cells), flush=True)
    print(f"1-minute load average at the end: {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
