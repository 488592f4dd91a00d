"""Read/query benchmark of issue 3: `python tools/bench_query.py [--workdir DIR] [--keep]`.

Builds, in a temp folder:

- repo `metrics`: 100 runs x 10 metrics x 1,000 steps, written with the real `aim_parquet.Run`
  (`run.track`), params `hparams.lr` and `hparams.seed` (= run number);
- repo `many`: 10,000 small runs. To keep the set-up short their sidecars are written directly
  (a `RunMeta` with params and a one-entry `loss` catalogue, through `storage.base.atomic.atomic_write`,
  not fsynced), exactly what `Run` would leave after a run with no points left in buffers; the
  run predicate never opens anything else;
- repo `long`: one run with one metric of 10,000,000 points (written with `run.track`).

Then measures (best of `--repeat`; "fresh" = a new `python` process, page cache warm):

1. all `loss` values of all 100 runs, fresh process (`query_metrics("metric.name == 'loss'")`
   and `values.sparse_numpy()` of each);
2. a query whose run predicate matches 10% of the 100 runs, fresh process, with and without
   reading the matching runs' `loss` values;
3. a run predicate over the 10,000 runs: warm (same `Repo`, index in memory), fresh process
   (index file on disk), and the very first query of a repo without an index (it builds it);
4. reading the 10M points of one metric (points/s), warm and fresh.

Fresh-process rows report the time inside the process after `import aim_parquet` and, in
brackets, the whole process wall time including interpreter start and imports. pyarrow imports
pandas (when installed) the first time it builds an array, e.g. in `Schema.empty_table()`; the
"pandas not installed" row shows what that costs a fresh process.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aim_parquet as aim  # noqa: E402
from aim_parquet.format.meta import RunMeta, SequenceInfo  # noqa: E402
from aim_parquet.format.paths import RepoLayout, generate_run_hash, sequence_id  # noqa: E402
from aim_parquet.storage.base.atomic import atomic_write  # noqa: E402
from aim_parquet.storage.base.repo_files import ensure_repo  # noqa: E402

QUIET: dict[str, Any] = {"system_tracking_interval": None, "capture_terminal_logs": False}
METRIC_NAMES = ["loss"] + [f"metric_{i}" for i in range(9)]


def build_metrics_repo(root: Path, runs: int = 100, steps: int = 1000) -> None:
    for r in range(runs):
        run = aim.Run(repo=root, **QUIET)
        run["hparams"] = {"lr": 10.0 ** -(1 + r % 4), "seed": r}
        track = run.track
        for name in METRIC_NAMES:
            for step in range(steps):
                track(1.0 / (step + 1), name=name, step=step)
        run.close()


def build_many_repo(root: Path, runs: int = 10_000) -> None:
    layout: RepoLayout = ensure_repo(root)
    now = time.time()
    for r in range(runs):
        run_hash = generate_run_hash()
        info = SequenceInfo(
            seq_id=sequence_id("loss", {}),
            name="loss",
            context={},
            kind="float",
            count=100,
            first_step=0,
            last_step=99,
            first=1.0,
            last=0.01 * (r % 100),
            min=0.0,
            max=1.0,
        )
        meta = RunMeta(
            hash=run_hash,
            creation_time=now - runs + r,
            experiment=f"exp-{r % 10}",
            end_time=now - runs + r + 0.5,
            params={"hparams": {"lr": 10.0 ** -(1 + r % 4), "seed": r, "batch_size": 32}},
            sequences=(info,),
            updated_at=now,
        )
        layout.run_dir(run_hash).mkdir()
        atomic_write(layout.sidecar(run_hash), meta.dumps(), durable=False)


def build_long_repo(root: Path, points: int) -> None:
    run = aim.Run(repo=root, **QUIET)
    track = run.track
    for step in range(points):
        track(step * 0.5, name="long", step=step)
    run.close()


def fresh(code: str, repeat: int) -> tuple[dict[str, Any], float]:
    """Run `code` (which prints one JSON object) in new processes; best result and wall time."""
    best: dict[str, Any] | None = None
    best_wall = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT
        ).stdout
        wall = time.perf_counter() - started
        result = json.loads(out.strip().splitlines()[-1])
        if best is None or result["s"] < best["s"]:
            best = result
        best_wall = min(best_wall, wall)
    assert best is not None
    return best, best_wall


PRELUDE = """
import json, sys, time
sys.path.insert(0, {root!r})
{block}import aim_parquet as aim
repo = aim.Repo({repo!r})
t = time.perf_counter()
"""


BLOCK_PANDAS = """import importlib.abc
class _NoPandas(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "pandas":
            raise ModuleNotFoundError(name)
sys.meta_path.insert(0, _NoPandas())
"""


def snippet(repo: Path, body: str, *, block_pandas: bool = False) -> str:
    """A fresh-process script; `block_pandas` makes `import pandas` fail, as when it is not
    installed (pyarrow then skips its lazy pandas import)."""
    block = BLOCK_PANDAS if block_pandas else ""
    return PRELUDE.format(root=str(ROOT), repo=str(repo), block=block) + body


def best_of(fn: Any, repeat: int) -> tuple[float, Any]:
    best, value = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - started)
    return best, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the built repositories")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--long-points", type=int, default=10_000_000)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_query-"))
    work.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str]] = []
    try:
        metrics, many, long_ = work / "metrics", work / "many", work / "long"
        for label, build, path in [
            ("100 runs x 10 metrics x 1,000 steps", build_metrics_repo, metrics),
            ("10,000 small runs (sidecars)", build_many_repo, many),
            (
                f"1 run, {args.long_points:,} points",
                lambda p: build_long_repo(p, args.long_points),
                long_,
            ),
        ]:
            started = time.perf_counter()
            build(path)
            print(f"built {label} in {time.perf_counter() - started:.1f} s", flush=True)

        # 1. all loss values, fresh process
        body = """
n = 0
for m in repo.query_metrics("metric.name == 'loss'"):
    steps, values = m.values.sparse_numpy()
    n += len(values)
print(json.dumps({"s": time.perf_counter() - t, "n": n}))
"""
        res, wall = fresh(snippet(metrics, body), args.repeat)
        rows.append(
            (
                "all `loss` values, 100 runs (fresh process)",
                f"{res['s'] * 1e3:.1f} ms [{wall * 1e3:.0f} ms] ({res['n']:,} points)",
            )
        )
        res, wall = fresh(snippet(metrics, body, block_pandas=True), args.repeat)
        rows.append(
            (
                "  ... same, pandas not installed",
                f"{res['s'] * 1e3:.1f} ms [{wall * 1e3:.0f} ms] ({res['n']:,} points)",
            )
        )

        # 2. run predicate matching 10% of runs, fresh process
        body = """
hashes = [c.run.hash for c in repo.query_runs("run.hparams.seed % 10 == 0").iter_runs()]
print(json.dumps({"s": time.perf_counter() - t, "n": len(hashes)}))
"""
        res, wall = fresh(snippet(metrics, body), args.repeat)
        rows.append(
            (
                "query_runs, predicate matches 10% (fresh process)",
                f"{res['s'] * 1e3:.1f} ms [{wall * 1e3:.0f} ms] ({res['n']} runs)",
            )
        )
        body = """
n = 0
for m in repo.query_metrics("run.hparams.seed % 10 == 0 and metric.name == 'loss'"):
    n += len(m.values.values_numpy())
print(json.dumps({"s": time.perf_counter() - t, "n": n}))
"""
        res, wall = fresh(snippet(metrics, body), args.repeat)
        rows.append(
            (
                "  ... and read their `loss` values (fresh process)",
                f"{res['s'] * 1e3:.1f} ms [{wall * 1e3:.0f} ms] ({res['n']:,} points)",
            )
        )

        # 3. run predicate over 10,000 runs
        query = "run.hparams.lr < 0.005 and run.experiment == 'exp-3'"
        count_body = f"""
n = len(list(repo.query_runs({query!r}).iter_runs()))
print(json.dumps({{"s": time.perf_counter() - t, "n": n}}))
"""
        index_file = many / ".aim" / "index" / "runs.arrow"
        index_file.unlink(missing_ok=True)
        res, wall = fresh(snippet(many, count_body), 1)
        rows.append(
            (
                "10,000 runs: first query, no index yet (fresh process)",
                f"{res['s'] * 1e3:.1f} ms [{wall * 1e3:.0f} ms] ({res['n']} runs)",
            )
        )
        res, wall = fresh(snippet(many, count_body), args.repeat)
        rows.append(
            (
                "10,000 runs: run predicate (fresh process)",
                f"{res['s'] * 1e3:.1f} ms [{wall * 1e3:.0f} ms] ({res['n']} runs)",
            )
        )
        repo = aim.Repo(many)
        list(repo.query_runs(query).iter_runs())
        warm, n = best_of(lambda: len(list(repo.query_runs(query).iter_runs())), args.repeat)
        rows.append(("10,000 runs: run predicate (warm)", f"{warm * 1e3:.1f} ms ({n} runs)"))
        warm, n = best_of(lambda: len(list(repo.query_runs("").iter_runs())), args.repeat)
        rows.append(
            ("10,000 runs: empty query, every run (warm)", f"{warm * 1e3:.1f} ms ({n} runs)")
        )

        # 4. 10M points of one metric
        body = """
(m,) = list(repo.query_metrics("metric.name == 'long'"))
steps, values = m.values.sparse_numpy()
print(json.dumps({"s": time.perf_counter() - t, "n": len(values)}))
"""
        res, wall = fresh(snippet(long_, body), args.repeat)
        rows.append(
            (
                "10M points of one metric (fresh process)",
                f"{res['s'] * 1e3:.0f} ms = {res['n'] / res['s'] / 1e6:.1f} M points/s [{wall * 1e3:.0f} ms]",
            )
        )

        def read_long() -> int:
            (m,) = list(aim.Repo(long_).query_metrics("metric.name == 'long'"))
            return len(m.values.sparse_numpy()[1])

        warm, n = best_of(read_long, args.repeat)
        rows.append(
            (
                "10M points of one metric (warm page cache, same process)",
                f"{warm * 1e3:.0f} ms = {n / warm / 1e6:.1f} M points/s",
            )
        )
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    width = max(len(r[0]) for r in rows)
    print()
    for label, value in rows:
        print(f"{label:<{width}}  {value}")


if __name__ == "__main__":
    main()
