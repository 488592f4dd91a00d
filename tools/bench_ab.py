"""Before/after of `make bench`'s aim_parquet workloads (`bench_suite/ap_side.py`): two checkouts
side by side, every repetition of every workload run by both in turn (fresh process each), so
both see the same machine load. For a change that must leave the figures alone (issue #16).

    git archive <base-rev> aim_parquet tools | tar -x -C /tmp/base
    .venv/bin/python tools/bench_ab.py --base /tmp/base --work /tmp/ab --reps 5

The base checkout runs with this checkout's virtual environment and `PYTHONPATH=<base>` (its
`aim_parquet` shadows the editable install). Prints a Markdown table of medians (min–max) and
the after/before ratio of the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SEED = 20241101


def _side(root: Path, work: Path, workload: str, params: dict[str, Any]) -> dict[str, Any]:
    """One workload in a fresh process of `root`'s `ap_side.py`; its JSON result."""
    script = root / "tools" / "bench_suite" / "ap_side.py"
    env = dict(os.environ, PYTHONPATH=str(root))
    done = subprocess.run(
        [sys.executable, str(script), workload, json.dumps(params)],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(script.parent),
    )
    if done.returncode:
        raise SystemExit(f"{root} {workload} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


class AB:
    def __init__(self, base: Path, work: Path, reps: int, calls: int) -> None:
        self.sides = {"before": base, "after": HERE.parent}
        self.work, self.reps, self.calls = work, reps, calls
        self.rows: list[tuple[str, str, list[float], list[float]]] = []

    def repo(self, side: str, name: str) -> str:
        return str(self.work / side / name)

    def fresh(self, side: str, name: str) -> str:
        path = Path(self.repo(side, name))
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return str(path)

    def measure(self, label: str, unit: str, workload: str, key: str, make: Any) -> None:
        """`reps` rounds; in each, `before` then `after` (order alternates per round)."""
        got: dict[str, list[float]] = {"before": [], "after": []}
        for rep in range(self.reps):
            order = ("before", "after") if rep % 2 == 0 else ("after", "before")
            for side in order:
                result = _side(self.sides[side], self.work, workload, make(side))
                got[side].append(float(result[key]))
        self.rows.append((label, unit, got["before"], got["after"]))
        print(f"{label}: before {got['before']} after {got['after']}", file=sys.stderr)

    def run_all(self) -> None:
        def track(side: str) -> dict[str, Any]:
            return {"repo": self.fresh(side, "track"), "calls": self.calls}

        self.measure("`run.track` per call", "µs", "track", "track_us", track)
        self.measure("`run.track` per call incl. `close()`", "µs", "track", "track_close_us", track)

        def write(side: str) -> dict[str, Any]:
            return {
                "repo": self.fresh(side, "write"),
                "runs": 20,
                "metrics": 10,
                "steps": 1000,
                "seed": SEED,
                "float32": False,
            }

        self.measure("write 20 runs × 10 metrics × 1,000 steps", "s", "write", "s", write)
        for kind in ("image", "distribution"):

            def objects(side: str, kind: str = kind) -> dict[str, Any]:
                return {"repo": self.fresh(side, kind), "calls": 1000, "kind": kind, "seed": SEED}

            self.measure(f"`{kind.title()}` per call", "µs", "objects", "per_call_us", objects)

        def read(side: str) -> dict[str, Any]:
            return {"repo": self.repo(side, "write"), "query": "metric.name == 'loss'"}

        self.measure("all `loss` values, fresh process (as written)", "s", "read", "s", read)

        def runs(side: str) -> dict[str, Any]:
            return {"repo": self.repo(side, "write"), "query": "run.hparams.lr > 0", "warm_reps": 5}

        self.measure("first `query_runs`, fresh process", "s", "query_runs", "s", runs)

        for fmt in ("pandas", "polars"):

            def export(side: str, fmt: str = fmt) -> dict[str, Any]:
                return {"repo": self.repo(side, "write"), "fmt": fmt}

            self.measure(f"whole repo to {fmt} (as written)", "s", "export", "s", export)

        def compact(side: str) -> dict[str, Any]:
            source, copy = Path(self.repo(side, "write")), Path(self.repo(side, "compacted"))
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(source, copy)
            return {"repo": str(copy)}

        self.measure("`compact` of the 20 written runs", "s", "compact", "s", compact)

        def read_compacted(side: str) -> dict[str, Any]:
            return dict(read(side), repo=self.repo(side, "compacted"))

        self.measure("all `loss` values, compacted", "s", "read", "s", read_compacted)

    def table(self) -> str:
        lines = [
            "| workload | unit | before | after | after/before |",
            "|---|---|---|---|---|",
        ]
        for label, unit, before, after in self.rows:
            b, a = statistics.median(before), statistics.median(after)
            lines.append(
                f"| {label} | {unit} | {b:.4g} ({min(before):.4g}–{max(before):.4g}) "
                f"| {a:.4g} ({min(after):.4g}–{max(after):.4g}) | {a / b:.2f} |"
            )
        return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, required=True, help="the before checkout")
    parser.add_argument("--work", type=Path, required=True, help="scratch folder for repos")
    parser.add_argument("--reps", type=int, default=5, help="rounds (each side once per round)")
    parser.add_argument("--calls", type=int, default=1_000_000, help="track() calls")
    args = parser.parse_args(argv)
    ab = AB(args.base.resolve(), args.work.resolve(), args.reps, args.calls)
    args.work.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    ab.run_all()
    print(f"1-minute load average {load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end")
    print(ab.table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
