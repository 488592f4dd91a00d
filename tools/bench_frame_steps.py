"""Where a repo-wide metric frame's time goes: the CPU seconds (user + system, this process) of
each step of `sdk/query_frames.py` and `sdk/frame_tables.py`, in a fresh process per round, the
median of `--repeat` rounds. The steps are wrapped where the frame calls them, so nested steps are
also counted in their callers (`read_metrics_bulk` within `sequence_points`, `_text_views` within
`_polars_views`). A polars frame spreads its run-level columns itself (`frame_tables.Spread`:
`_spread_views` for text, `repeat` for the others); the other formats `repeat` them all.

    env -u PYTHONDONTWRITEBYTECODE .venv/bin/python tools/bench_frame_steps.py \
        --repo /tmp/sm18/sweep --repeat 9 [--fmt polars|pandas|arrow]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

QUERY = "metric.name == 'loss'"


def _one_round(repo: str, fmt: str) -> dict[str, float]:
    import polars  # noqa: F401  (the frame library is loaded before the timing, as in scale_side)
    import pyarrow.parquet  # noqa: F401

    import aim_parquet as aim
    from aim_parquet.sdk import collections as co
    from aim_parquet.sdk import frame_tables as ft
    from aim_parquet.sdk import query_frame_columns as qfc
    from aim_parquet.sdk import query_frames as qf
    from aim_parquet.storage.online import bulk_read as br

    spent: dict[str, float] = defaultdict(float)

    def wrap(module: Any, name: str) -> None:
        inner: Callable[..., Any] = getattr(module, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.process_time()
            try:
                return inner(*args, **kwargs)
            finally:
                spent[name] += time.process_time() - t0

        setattr(module, name, timed)

    def wrap_generator(module: Any, name: str) -> None:
        inner: Callable[..., Iterator[Any]] = getattr(module, name)

        def timed(*args: Any, **kwargs: Any) -> Iterator[Any]:
            items = inner(*args, **kwargs)
            while True:
                t0 = time.process_time()
                try:
                    item = next(items)
                except StopIteration:
                    spent[name] += time.process_time() - t0
                    return
                spent[name] += time.process_time() - t0
                yield item

        setattr(module, name, timed)

    wrap_generator(co, "execute_plan")
    for name in ("sequence_points", "cat", "times", "key_column", "read_metrics_bulk"):
        wrap(qf, name)
    wrap(qfc, "sequence_points")  # the column-wise builder (dataframe()'s path) holds its own name
    for name in ("_run_messages", "batch_columns"):
        wrap(br, name)
    for name in ("_polars_views", "_text_views", "_spread_views", "repeat", "_pandas_column"):
        wrap(ft, name)
    t0 = time.process_time()
    coll = aim.Repo(repo).query_metrics(QUERY)
    if fmt == "polars":
        coll.to_polars()
    elif fmt == "arrow":
        coll.to_arrow()
    else:
        coll.dataframe()
    spent["total"] = time.process_time() - t0
    return dict(spent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repo", required=True)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--fmt", default="polars", choices=("polars", "pandas", "arrow"))
    parser.add_argument("--round", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.round:
        print(json.dumps(_one_round(args.repo, args.fmt)))
        return
    rounds: dict[str, list[float]] = defaultdict(list)
    for _ in range(args.repeat):
        done = subprocess.run(
            [sys.executable, __file__, "--round", "--repo", args.repo, "--fmt", args.fmt],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        for name, seconds in json.loads(done.stdout.strip().splitlines()[-1]).items():
            rounds[name].append(seconds)
    print(f"1-minute load average: {os.getloadavg()[0]:.2f}; CPU ms, median of {args.repeat}")
    for name, values in sorted(rounds.items(), key=lambda kv: -statistics.median(kv[1])):
        low, high = min(values) * 1000, max(values) * 1000
        print(f"{name:20s} {statistics.median(values) * 1000:6.0f}  ({low:.0f}-{high:.0f})")


if __name__ == "__main__":
    main()
