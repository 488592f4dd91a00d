"""What handing out writable arrays costs (issue #20, item 5): `values.sparse_numpy()` copies the
cached read-only columns. Times the first read (from disk) and repeated reads (a copy of the
cached columns each) of one metric, against the zero-copy internal path.

    .venv/bin/python tools/bench_writable_arrays.py [--points 1000000] [--repeat 20]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import aim_parquet as aim
from aim_parquet.sdk.sequence import ArrayView


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as root:
        with aim.Run(repo=root, system_tracking_interval=None, capture_terminal_logs=False) as run:
            for step in range(args.points):
                run.track(float(step), name="m", step=step)
        metric = aim.Repo(root).get_run(run.hash).get_metric("m")
        start = time.perf_counter()
        metric.values.sparse_numpy()
        first = time.perf_counter() - start
        copies, internal = [], []
        for _ in range(args.repeat):
            start = time.perf_counter()
            metric.values.sparse_numpy()
            copies.append(time.perf_counter() - start)
            start = time.perf_counter()
            view = ArrayView(metric, "value")
            metric._column("value"), view._values_array()
            internal.append(time.perf_counter() - start)
    print(f"points: {args.points:,}")
    print(f"first sparse_numpy() (read from disk + copy): {first * 1e3:.2f} ms")
    print(
        f"sparse_numpy() of cached columns (two copies): {statistics.median(copies) * 1e3:.3f} ms"
    )
    print(f"zero-copy internal access: {statistics.median(internal) * 1e3:.4f} ms")


if __name__ == "__main__":
    main()
