"""Before/after at scale: the "many runs" workloads (`bench_suite/scale_side.py`) of two
checkouts side by side, each on its own generated copy of the same repository, every step run
by both in turn (fresh process each), so both see the same machine load.

    git archive <base-rev> aim_parquet tools | tar -x -C /tmp/base
    .venv/bin/python tools/bench_scale_ab.py --base /tmp/base --runs 10000 --work /tmp/ab

The base checkout runs with this checkout's virtual environment and `PYTHONPATH=<base>` (its
`aim_parquet` shadows the editable install). Prints one line per measurement, in seconds.

    .venv/bin/python tools/bench_scale_ab.py --base /tmp/base --runs 100000 --work /tmp/ab \
        --predicates 3

measures run predicates only (`scale_side.py predicate`, this checkout's workload with each
side's `aim_parquet`) on sidecar-only runs (`points: 0`): per round and side a fresh process
making one query (its whole wall time: interpreter start, import, the query, exit; and the
query's own time), then another process's best of five warm queries (`Repo(path)` made again)
and its query after 6 s idle (the index's `FULL_CHECK_S` passed: every sidecar is stat()ed
again); the sides alternate which goes first.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PREDICATE = "run.hparams.lr < 0.0005 and run.experiment == 'exp-3'"
PREDICATES = (PREDICATE, "run.hparams.batch == 64 or not run.hparams.seed >= 100")
LOSS = "metric.name == 'loss'"


class AB:
    def __init__(self, base: Path, work: Path, runs: int) -> None:
        self.sides = {
            "before": base,
            "after": HERE.parent,
        }
        self.work, self.runs = work, runs

    def repo(self, side: str) -> str:
        return str(self.work / f"many-{side}")

    def one(
        self, side: str, workload: str, params: dict[str, Any], *, own_tools: bool = False
    ) -> dict[str, Any] | None:
        """One workload in a fresh process, with that side's `aim_parquet` and tools (or with
        this checkout's tools: `own_tools`); `wall_s` is the whole process's time."""
        root = self.sides[side]
        script = (HERE if own_tools else root / "tools") / "bench_suite" / "scale_side.py"
        env = dict(os.environ, PYTHONPATH=str(root))
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, str(script), workload, json.dumps(params)],
            capture_output=True,
            text=True,
            env=env,
            cwd=str(self.work),
        )
        if done.returncode:
            print(done.stderr[-2000:], file=sys.stderr)
            return None
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        result["wall_s"] = time.perf_counter() - started
        return result

    def both(
        self,
        label: str,
        workload: str,
        params: dict[str, Any],
        extra: Callable[[dict[str, Any]], str] | None = None,
    ) -> None:
        out = {s: self.one(s, workload, dict(params, repo=self.repo(s))) for s in self.sides}
        cells = [f"{s}: {r['s']:.3f}" if r else f"{s}: failed" for s, r in out.items()]
        line = f"{label:44s} " + "  ".join(cells)
        if extra is not None and all(out.values()):
            line += "  " + extra(out)
        print(line, flush=True)

    def per_run(self, side: str) -> str:
        files = size = 0
        for folder, _dirs, names in os.walk(Path(self.repo(side)) / ".aim" / "runs"):
            for name in names:
                files += 1
                size += os.path.getsize(os.path.join(folder, name))
        return f"{side}: {files / self.runs:.2f} files, {size / self.runs / 1024:.2f} KiB per run"


def _again(out: dict[str, Any]) -> str:
    return "warm again (best of 5): " + "  ".join(
        f"{s}: {min(r['again_s']):.3f}" for s, r in out.items()
    )


def predicates(ab: AB, rounds: int) -> None:
    """The `--predicates` measurements (module doc)."""
    for text in PREDICATES:
        print(f"predicate: {text}", flush=True)
        for side in ab.sides:  # the index written (each side writes its own)
            out = ab.one(side, "predicate", {"repo": ab.repo(side), "query": text}, own_tools=True)
            print(f"  {side:6s} index built: first query {out['s']:.3f}" if out else "failed")
        for r in range(rounds):
            order = list(ab.sides) if r % 2 == 0 else list(reversed(ab.sides))
            for side in order:
                fresh = {"repo": ab.repo(side), "query": text, "reps": 0}
                one = ab.one(side, "predicate", fresh, own_tools=True)
                warm = dict(fresh, reps=5, idle_s=6)
                out = ab.one(side, "predicate", warm, own_tools=True)
                if one is None or out is None:
                    print(f"  {side:6s} failed", flush=True)
                    continue
                print(
                    f"  {side:6s} fresh process: wall {one['wall_s']:.3f} (import "
                    f"{one['import_s']:.3f}, first query {one['s']:.3f})  warm: best of 5 "
                    f"{min(out['again_s']):.3f}, after 6 s idle {out['idle_again_s']:.3f}  "
                    f"runs {out['runs']}  load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", type=Path, required=True, help="the checkout to compare with")
    parser.add_argument("--work", type=Path, required=True, help="folder for the two repos")
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument(
        "--predicates", type=int, metavar="ROUNDS", help="run predicates only (module doc)"
    )
    parser.add_argument("--keep", action="store_true", help="reuse the repos of --work")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    ab = AB(args.base.resolve(), args.work.resolve(), args.runs)
    print(f"1-minute load average at start: {os.getloadavg()[0]:.2f}", flush=True)
    if args.predicates:
        for side in ab.sides:
            if not (args.keep and Path(ab.repo(side)).exists()):
                shutil.rmtree(ab.repo(side), ignore_errors=True)
                params = {"repo": ab.repo(side), "runs": args.runs, "points": 0}
                ab.one("after", "generate", params)
        predicates(ab, args.predicates)
        print(f"1-minute load average at the end: {os.getloadavg()[0]:.2f}", flush=True)
        return
    for side in ab.sides:
        shutil.rmtree(ab.repo(side), ignore_errors=True)
        ab.one("after", "generate", {"repo": ab.repo(side), "runs": args.runs, "points": 5})
    ab.both("first query (index built)", "repo_again", {"query": PREDICATE}, _again)
    for _ in range(2):
        ab.both("first query, index current", "repo_again", {"query": PREDICATE}, _again)
    for _ in range(2):
        ab.both("dataframe() of loss, as written", "frame", {"query": LOSS})
    ab.both("sparse_numpy() of every loss, as written", "sparse", {"query": LOSS})
    ab.both("compact", "compact", {}, lambda out: "; ".join(ab.per_run(s) for s in out))
    for _ in range(2):
        ab.both("compact again, nothing to do", "compact", {})
    for _ in range(2):
        ab.both("dataframe() of loss, compacted", "frame", {"query": LOSS})
    ab.both("sparse_numpy() of every loss, compacted", "sparse", {"query": LOSS})
    ab.both("first query of a fresh process, compacted", "repo_again", {"query": PREDICATE}, _again)
    print(f"1-minute load average at the end: {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    main()
