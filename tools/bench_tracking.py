"""Write-path benchmark: per-call cost of Run.track, writer memory, bytes per point on disk.

usage: python tools/bench_tracking.py [--calls N] [--memory-points N] [--repeat R]

Each measurement runs in a fresh subprocess (as a training script would), `system_tracking_interval`
off. Prints one line per figure; the median of R repetitions is reported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap

TRACK = textwrap.dedent(
    """
    import json, os, sys, time
    import aim_parquet as aim
    n = int(sys.argv[2])
    class Bare:
        def track(self, value, name=None, step=None, epoch=None, *, context=None):
            pass
    bare = Bare()
    t0 = time.perf_counter()
    for i in range(n):
        bare.track(0.5, name="loss", step=i, context={"subset": "train"})
    bare_s = time.perf_counter() - t0
    run = aim.Run(repo=sys.argv[1], system_tracking_interval=None, capture_terminal_logs=False)
    t0 = time.perf_counter()
    for i in range(n):
        run.track(0.5, name="loss", step=i, context={"subset": "train"})
    calls_s = time.perf_counter() - t0
    run.close()
    total_s = time.perf_counter() - t0
    seg_bytes = sum(
        f.stat().st_size
        for f in (__import__("pathlib").Path(sys.argv[1]) / ".aim" / "runs" / run.hash).rglob("*.arrows")
    )
    print(json.dumps({"bare_us": bare_s / n * 1e6, "track_us": calls_s / n * 1e6,
                      "track_incl_close_us": total_s / n * 1e6, "bytes_per_point": seg_bytes / n}))
    """
)

MEMORY = textwrap.dedent(
    """
    import json, sys, psutil
    import aim_parquet as aim
    n = int(sys.argv[2])
    proc = psutil.Process()
    run = aim.Run(repo=sys.argv[1], system_tracking_interval=None, capture_terminal_logs=False)
    for i in range(1000):
        run.track(float(i), name="loss", context={"subset": "train"})
    run.flush()
    rss0 = proc.memory_info().rss
    peak = rss0
    for i in range(n):
        run.track(i * 1e-6, name="loss", context={"subset": "train"})
        if i % 100_000 == 0:
            peak = max(peak, proc.memory_info().rss)
    run.close()
    peak = max(peak, proc.memory_info().rss)
    print(json.dumps({"rss_growth_mb": (peak - rss0) / 2**20}))
    """
)


def run_script(script: str, n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [sys.executable, "-c", script, tmp, str(n)],
            capture_output=True,
            text=True,
            check=True,
        )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--memory-points", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs = [run_script(TRACK, args.calls) for _ in range(args.repeat)]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"track(float, name, step, context) x {args.calls:,}: {med['track_us']:.3f} us/call")
    print(f"  including close(): {med['track_incl_close_us']:.3f} us/call")
    print(
        f"  bare Python method call: {med['bare_us']:.3f} us/call "
        f"(ratio {med['track_incl_close_us'] / med['bare_us']:.1f}x)"
    )
    print(f"  uncompacted segment bytes per point: {med['bytes_per_point']:.1f}")
    mem = run_script(MEMORY, args.memory_points)
    print(
        f"writer RSS growth tracking {args.memory_points:,} points: {mem['rss_growth_mb']:.1f} MiB"
    )
    print(
        f"(median of {args.repeat}; command: python tools/bench_tracking.py "
        f"--calls {args.calls} --memory-points {args.memory_points} --repeat {args.repeat})"
    )


if __name__ == "__main__":
    main()
