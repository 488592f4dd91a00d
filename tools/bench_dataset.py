"""Analyst dataset cost: full build, refresh with nothing to do, refresh after one run changed,
`Run.close()` of a new and of a resumed run in a repository that has a dataset (close never
refreshes it: its cost must not grow with the repository), and the polars recipe's read.

    .venv/bin/python tools/bench_dataset.py --runs 300 --steps 500
    .venv/bin/python tools/bench_dataset.py --runs 10000 --steps 5 --generate

`--generate` writes the closed runs straight to disk (`bench_suite.scale_repos`, byte-for-byte
what `Run()` leaves) instead of 10,000 `Run()` calls.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_suite, run from a checkout

from bench_suite.scale_repos import QUIET, generate_many_runs  # noqa: E402

from aim_parquet import Run  # noqa: E402
from aim_parquet.format.paths import RepoLayout  # noqa: E402
from aim_parquet.storage import refresh_dataset  # noqa: E402


def _timed(label: str, action: Callable[[], object]) -> None:
    started = time.perf_counter()
    action()
    print(f"{label}: {time.perf_counter() - started:.3f} s")


def _generation(root: Path) -> int:
    return int(json.loads((root / ".aim/dataset/current.json").read_text())["generation"])


def _close_of(
    root: Path, steps: int, run_hash: str | None, context: dict[str, str]
) -> Callable[[], object]:
    """A run (new, or `run_hash` resumed) holding `steps` new points; calling the result closes it."""
    run = Run(run_hash=run_hash, repo=str(root), **QUIET)
    for step in range(steps):
        run.track(step * 0.25, name="loss", step=step, context=context)
    return run.close


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--generate", action="store_true", help="write the runs straight to disk")
    args = parser.parse_args()
    import polars as pl

    root = Path(tempfile.mkdtemp(prefix="bench-dataset-"))
    context = {} if args.generate else {"subset": "train"}  # (the runs' own: no schema change)
    if args.generate:
        generate_many_runs(root, args.runs, args.steps)
    else:
        for i in range(args.runs):
            run = Run(repo=str(root), **QUIET)
            run["hparams"] = {"lr": 0.001 * (i + 1)}
            for step in range(args.steps):
                run.track(step * 0.5, name="loss", step=step, context=context)
            run.close()
    print(f"{args.runs} runs x {args.steps} points ({'generated' if args.generate else 'Run()'})")
    layout = RepoLayout(root)
    _timed("full build", lambda: refresh_dataset(layout, rebuild=True))
    _timed("refresh, nothing to do", lambda: refresh_dataset(layout))
    generation = _generation(root)
    new_close = _close_of(root, args.steps, None, context)
    _timed("close() of a new run", new_close)
    resumed = next(p.name for p in sorted((root / ".aim/runs").iterdir()) if p.is_dir())
    resumed_close = _close_of(root, args.steps, resumed, context)
    _timed("close() of a resumed run", resumed_close)
    assert _generation(root) == generation, "close() refreshed the dataset"
    _timed("refresh after those two closes", lambda: refresh_dataset(layout))
    current = json.loads((root / ".aim/dataset/current.json").read_text())
    files = [str(root / ".aim/dataset" / f) for f in current["metrics"]]
    started = time.perf_counter()
    rows = pl.scan_parquet(files).filter(pl.col("name") == "loss").collect().height
    print(
        f"polars recipe: {rows} rows from {len(files)} files in {time.perf_counter() - started:.3f} s"
    )


if __name__ == "__main__":
    main()
