"""Import and first query in a fresh process, timed from interpreter start (issue #17).

usage: python tools/bench_first_query.py REPO [--before SRC] [--repeat N] [--query Q] [--write N]

REPO is a repo of many runs (`tools/bench_suite/scale_side.py generate`), or, with --write N and
no REPO yet, one written here by the SDK's writers as a sweep writes it (N runs of `Run(...)`,
three params, 5 points of `loss`, `close()`, in two processes). Each sample is a fresh
interpreter running `import aim_parquet as aim` and one `query_runs(Q).iter_runs()`, its wall time
measured from outside (interpreter start included), with the CPU time (user + system) the
process used (less sensitive than the wall time to a loaded machine). Figures, median of N:
  import  `python -c "import aim_parquet"`
  +Repo   `import aim_parquet as aim; aim.Repo`: the SDK loaded (where `import aim_parquet` defers
          it, its cost moves here)
  first   the first query with no index: `.aim/index` removed, so the run index is built from the
          run sidecars (an old repository, or one whose writers left no index rows)
  later   the same query again, the index file present
  firstJ  the first query after writing: only `.aim/index/runs.arrow` removed, the index rows the
          closing writers left (`.aim/index/closed.jsonl`, as REPO had it at the start; only when
          it has one) kept, as the SDK's writers leave a repository (`storage.index.closed_journal`)
With --before SRC (a source tree, e.g. `git archive 7db2c30 | tar -x -C SRC`), the same figures
for SRC's aim_parquet, the samples of both sides interleaved. Byte code is written and reused
(PYTHONDONTWRITEBYTECODE unset), as in an installed package.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUERY = """
import sys
import aim_parquet as aim
print(sum(1 for _ in aim.Repo(sys.argv[1]).query_runs(sys.argv[2]).iter_runs()))
"""


def _env(src: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if src is not None:
        env["PYTHONPATH"] = src
    return env


CPU: dict[tuple[str, str], list[float]] = {}  # CPU seconds (user + system) of each sample


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _time(args: list[str], env: dict[str, str], cwd: str) -> tuple[float, str]:
    t0, c0 = time.perf_counter(), _cpu()
    out = subprocess.run(
        [sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, check=True
    )
    _time.cpu = _cpu() - c0  # type: ignore[attr-defined]
    return time.perf_counter() - t0, out.stdout.strip()


def _write_runs(repo: str, n: int, seed: int) -> None:
    """Write `n` runs as a sweep does."""
    import aim_parquet as aim

    rng = random.Random(seed)
    quiet = {"system_tracking_interval": None, "capture_terminal_logs": False}
    for i in range(n):
        run = aim.Run(repo=repo, experiment=f"exp-{i % 10}", **quiet)  # type: ignore[arg-type]
        lr = rng.choice([2e-5, 1e-4, 3e-4, 1e-3, 3e-3])
        run["hparams"] = {"lr": lr, "seed": rng.randrange(10000), "batch": 256}
        for step in range(5):
            run.track(rng.random(), name="loss", step=step)
        run.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo")
    parser.add_argument("--before", default=None, help="source tree of the 'before' side")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--query", default="run.hparams.lr < 0.0005")
    parser.add_argument("--write", type=int, default=0, help="write REPO first: N runs")
    args = parser.parse_args()
    if args.write and not Path(args.repo).exists():
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(2) as pool:
            half = args.write // 2
            pool.starmap(_write_runs, [(args.repo, half, 0), (args.repo, args.write - half, 1)])
    sides: dict[str, str | None] = {"after": None}
    if args.before:
        sides = {"before": str(Path(args.before).resolve()), "after": None}
    index_dir = Path(args.repo) / ".aim" / "index"
    journal_path = index_dir / "closed.jsonl"
    journal = journal_path.read_bytes() if journal_path.exists() else None
    samples: dict[tuple[str, str], list[float]] = {}
    answers: set[str] = set()
    with tempfile.TemporaryDirectory() as cwd:  # not the checkout: '' on sys.path is cwd
        for src in sides.values():  # warm-up: byte code written, file cache warm
            _time(["-c", QUERY, args.repo, args.query], _env(src), cwd)
        for _ in range(args.repeat):
            for side, src in sides.items():
                env = _env(src)
                seconds, _ = _time(["-c", "import aim_parquet"], env, cwd)
                samples.setdefault((side, "import"), []).append(seconds)
                CPU.setdefault((side, "import"), []).append(_time.cpu)  # type: ignore[attr-defined]
                seconds, _ = _time(["-c", "import aim_parquet as aim; aim.Repo"], env, cwd)
                samples.setdefault((side, "+Repo"), []).append(seconds)
                CPU.setdefault((side, "+Repo"), []).append(_time.cpu)  # type: ignore[attr-defined]
                shutil.rmtree(index_dir, ignore_errors=True)
                for kind in ("first", "later", "firstJ"):
                    if kind == "firstJ":
                        if journal is None:
                            continue
                        (index_dir / "runs.arrow").unlink(missing_ok=True)
                        journal_path.write_bytes(journal)
                    seconds, answer = _time(["-c", QUERY, args.repo, args.query], env, cwd)
                    samples.setdefault((side, kind), []).append(seconds)
                    CPU.setdefault((side, kind), []).append(_time.cpu)  # type: ignore[attr-defined]
                    answers.add(answer)
    if journal is not None:
        journal_path.write_bytes(journal)  # (the repository as it was)
    if len(answers) != 1:
        raise SystemExit(f"the sides disagree: {sorted(answers)}")
    for (side, kind), values in samples.items():
        print(
            f"{side:6} {kind:6} median {statistics.median(values):.3f} s"
            f"  (min {min(values):.3f}, max {max(values):.3f}, n={len(values)})"
            f"  CPU {statistics.median(CPU[side, kind]):.3f} s"
        )
    print(f"runs matched: {answers.pop()}")


if __name__ == "__main__":
    main()
