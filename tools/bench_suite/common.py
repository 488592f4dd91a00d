"""Shared by both side scripts (`ap_side.py`, `aim_side.py`): the seeded workload data, memory
readings from /proc and the one-JSON-line protocol.

Standard library and numpy only: this module runs inside aim_parquet's `.venv` and inside Aim's
`.venv-aim`, so both systems track exactly the same values, names, contexts and params.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

CONTEXT = {"subset": "train"}
Workload = Callable[[dict[str, Any]], dict[str, Any]]


def metric_names(count: int) -> list[str]:
    """`loss` and `metric_1` ... `metric_<count-1>`."""
    return ["loss"] + [f"metric_{k}" for k in range(1, count)]


def hparams(run_index: int) -> dict[str, Any]:
    """Params of run number `run_index`: `seed` is the run number, so `seed % 10 == 0` is 10%."""
    return {
        "lr": 10.0 ** -(1 + run_index % 4),
        "seed": run_index,
        "batch_size": 32 * (1 + run_index % 4),
    }


def loss_curves(
    seed: int, run_index: int, metrics: int, steps: int, *, is_float32: bool
) -> list[list[float]]:
    """Realistic training curves, one per metric: a decaying loss with 10% multiplicative noise.

    `is_float32` rounds each value to float32, as `loss.item()` of a float32 tensor gives it;
    otherwise the values carry full float64 noise (the incompressible worst case).
    """
    rng = np.random.default_rng([seed, run_index])
    x = np.arange(steps, dtype=np.float64)
    curves = []
    for k in range(metrics):
        decay = 2.0 * np.exp(-x / (steps / (3 + k))) + 0.05
        noisy = decay * (1.0 + 0.1 * rng.standard_normal(steps))
        if is_float32:
            noisy = noisy.astype(np.float32).astype(np.float64)
        curves.append(noisy.tolist())
    return curves


def image_pool(seed: int, count: int = 16) -> list[np.ndarray]:
    """`count` random 64x64 RGB uint8 images (noise: the costly case for PNG)."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8) for _ in range(count)]


def sample_pool(seed: int, count: int = 16, size: int = 10_000) -> list[np.ndarray]:
    """`count` arrays of `size` standard-normal float64 samples."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(size) for _ in range(count)]


def status_kib(field: str) -> int:
    """A `/proc/self/status` field in KiB (`VmRSS`: now, `VmHWM`: this process's peak RSS)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def per_call_us(seconds: float, calls: int) -> float:
    return seconds / max(calls, 1) * 1e6


def serve(workloads: dict[str, Workload], import_s: float) -> None:
    """`python side.py WORKLOAD JSON_PARAMS`: run one workload, print its result as one JSON line
    (with `import_s`, the library's import time in this process). Exit 1 with the traceback on
    stderr when it fails."""
    name, params = sys.argv[1], json.loads(sys.argv[2])
    started = time.perf_counter()
    try:
        result = workloads[name](params)
    except Exception:
        traceback.print_exc()
        sys.exit(1)
    result["import_s"] = import_s
    result["workload_s"] = time.perf_counter() - started
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
