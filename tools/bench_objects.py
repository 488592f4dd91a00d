"""Benchmark the object layer against the library calls it wraps.

    .venv/bin/python tools/bench_objects.py [--repeat 2000]

Prints microseconds per call for:
  * ``Image(64x64x3 uint8).to_record()`` vs ``PIL.Image.fromarray(a).save(BytesIO, "PNG")``
  * ``Distribution(10k float64 samples).to_record()`` vs ``np.histogram(samples, bins=64)``
Targets: each object path within 10% of its raw baseline. Timings are the best of several rounds.
"""

from __future__ import annotations

import argparse
import io
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled

from aim_parquet.objects import Distribution, Image  # noqa: E402


def best_pair_us(
    ours: Callable[[], object], base: Callable[[], object], number: int, rounds: int = 9
) -> tuple[float, float]:
    """Best per-call microseconds of ``ours`` and ``base``, timed in alternating rounds."""
    best_ours = best_base = float("inf")
    for _ in range(rounds):
        best_ours = min(best_ours, timeit.timeit(ours, number=number))
        best_base = min(best_base, timeit.timeit(base, number=number))
    return best_ours / number * 1e6, best_base / number * 1e6


def raw_png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    PILImage.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2000, help="calls per timing round")
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    pixels = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    assert Image(pixels).to_record().payload == raw_png(pixels)  # same bytes, same work
    samples = rng.standard_normal(10_000)
    image_us = best_pair_us(lambda: Image(pixels).to_record(), lambda: raw_png(pixels), args.repeat)
    dist_us = best_pair_us(
        lambda: Distribution(samples).to_record(),
        lambda: np.histogram(samples, bins=64),
        args.repeat,
    )
    rows = [
        ("Image(64x64x3 uint8).to_record()", "PIL fromarray + save PNG", *image_us),
        ("Distribution(10k samples).to_record()", "np.histogram(samples, bins=64)", *dist_us),
    ]

    for name, base_name, ours, base in rows:
        print(
            f"{name:40s} {ours:9.1f} us   {base_name:28s} {base:9.1f} us   ratio {ours / base:5.3f}"
        )


if __name__ == "__main__":
    main()
