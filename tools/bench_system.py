"""Benchmark the system tracker: CPU cost of one resource sample and of a captured print.

Usage: python tools/bench_system.py [--samples N] [--lines N]

Reports the CPU time (this thread's, ``time.thread_time``) of ``ResourceSampler.sample_once`` with
real psutil and, where a driver exists, real NVML, and what that costs as a share of one core at
the default 10 s interval. Also reports the extra CPU time ``TerminalCapture`` adds per printed
line. Numbers only; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aim_parquet.system.resources import DEFAULT_INTERVAL_S, ResourceSampler  # noqa: E402
from aim_parquet.system.terminal import TerminalCapture  # noqa: E402


def bench_sampler(samples: int) -> None:
    emitted: list[tuple[str, float, dict[str, Any]]] = []
    sampler = ResourceSampler(DEFAULT_INTERVAL_S, lambda n, v, c: emitted.append((n, v, c)))
    sampler.sample_once()  # warm-up: imports psutil/pynvml, initialises NVML once
    emitted.clear()
    cpu0, wall0 = time.thread_time(), time.perf_counter()
    for _ in range(samples):
        sampler.sample_once()
    cpu = (time.thread_time() - cpu0) / samples
    wall = (time.perf_counter() - wall0) / samples
    sampler.stop()
    per_sample = len(emitted) // samples
    gpus = len({c["gpu"] for _, _, c in emitted if "gpu" in c})
    share = cpu / DEFAULT_INTERVAL_S * 100
    sys.stdout.write(
        f"sample_once: {cpu * 1e6:.1f} us CPU, {wall * 1e6:.1f} us wall per sample "
        f"({per_sample} values, {gpus} GPU(s), {samples} samples)\n"
        f"at the default {DEFAULT_INTERVAL_S:g} s interval: {share:.5f} % of one core\n"
    )


def bench_terminal(lines: int) -> None:
    text = "epoch 3 step 1200 loss=0.123456 acc=0.98 \x1b[32mok\x1b[0m\n"
    original = sys.stdout
    sink = io.StringIO()
    try:
        sys.stdout = sink
        cpu0 = time.thread_time()
        for _ in range(lines):
            sys.stdout.write(text)
        plain = time.thread_time() - cpu0
        received: list[int] = []
        capture = TerminalCapture(lambda batch: received.append(len(batch)), flush_interval_s=1.0)
        capture.start()
        cpu0 = time.thread_time()
        for _ in range(lines):
            sys.stdout.write(text)
        captured = time.thread_time() - cpu0
        capture.stop()
    finally:
        sys.stdout = original
    extra = (captured - plain) / lines
    sys.stdout.write(
        f"terminal capture: +{extra * 1e6:.2f} us CPU per line written "
        f"({lines} lines, {sum(received)} recorded)\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--lines", type=int, default=100_000)
    args = parser.parse_args()
    bench_sampler(args.samples)
    bench_terminal(args.lines)


if __name__ == "__main__":
    main()
