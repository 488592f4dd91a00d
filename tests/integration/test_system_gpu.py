"""ResourceSampler against a real NVIDIA driver (skipped where NVML cannot start)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from aim_parquet.system import resources
from aim_parquet.system.resources import ResourceSampler

pytestmark = pytest.mark.gpu

GPU_NAMES = {
    "__system__gpu",
    "__system__gpu_memory_percent",
    "__system__gpu_temp",
    "__system__gpu_power_watts",
}


@pytest.fixture
def gpu_count() -> int:
    """Number of NVIDIA GPUs; skips the test when pynvml or the driver is missing."""
    try:
        nvml = resources._import_pynvml()
        nvml.nvmlInit()
    except Exception as exc:
        pytest.skip(f"no NVIDIA driver: {exc!r}")
    try:
        count = int(nvml.nvmlDeviceGetCount())
    finally:
        nvml.nvmlShutdown()
    if count == 0:
        pytest.skip("NVML found no GPU")
    return count


class Recorder:
    def __init__(self) -> None:
        self.values: list[tuple[str, float, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def __call__(self, name: str, value: float, context: dict[str, Any]) -> None:
        with self._lock:
            self.values.append((name, value, context))

    def snapshot(self) -> list[tuple[str, float, dict[str, Any]]]:
        with self._lock:
            return list(self.values)


def check_gpu_values(values: list[tuple[str, float, dict[str, Any]]], count: int) -> None:
    for index in range(count):
        mine = {name: value for name, value, ctx in values if ctx == {"gpu": index}}
        # every field a data-centre GPU supports is present; a field a card lacks may be absent
        assert {"__system__gpu", "__system__gpu_memory_percent"} <= set(mine), index
        assert set(mine) <= GPU_NAMES
        assert 0.0 <= mine["__system__gpu"] <= 100.0
        assert 0.0 <= mine["__system__gpu_memory_percent"] <= 100.0
        if "__system__gpu_temp" in mine:
            assert 0.0 < mine["__system__gpu_temp"] < 130.0
        if "__system__gpu_power_watts" in mine:
            assert 0.0 < mine["__system__gpu_power_watts"] < 2000.0


def test_sample_once_reports_every_gpu(gpu_count: int) -> None:
    emitted = Recorder()
    sampler = ResourceSampler(10, emitted)
    sampler.sample_once()
    sampler.stop()
    check_gpu_values(emitted.snapshot(), gpu_count)


def test_thread_reports_every_gpu_and_stops(gpu_count: int) -> None:
    emitted = Recorder()
    sampler = ResourceSampler(0.1, emitted)
    sampler.start()
    deadline = time.monotonic() + 30.0

    def samples_of_gpu0() -> int:
        return sum(
            1
            for name, _, ctx in emitted.snapshot()
            if name == "__system__gpu" and ctx == {"gpu": 0}
        )

    while samples_of_gpu0() < 3:
        assert time.monotonic() < deadline, "no GPU samples within 30 s"
        time.sleep(0.01)
    sampler.stop()
    assert not sampler.is_running
    assert sampler.error is None
    check_gpu_values(emitted.snapshot(), gpu_count)


def test_run_records_gpu_sequences_end_to_end(tmp_path: Any, gpu_count: int) -> None:
    """A real Run with a short interval writes per-GPU sequences that plain pyarrow reads."""
    import aim_parquet as aim
    from tests.conftest import raw_points

    run = aim.Run(repo=tmp_path, system_tracking_interval=0.2, capture_terminal_logs=False)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        run.flush()
        names = {name for name, _ in raw_points(tmp_path, run.hash)}
        if "__system__gpu" in names:
            break
        time.sleep(0.1)
    run.close()
    points = raw_points(tmp_path, run.hash)
    for index in range(gpu_count):
        rows = points[("__system__gpu", f'{{"gpu":{index}}}')]
        assert rows and all(0.0 <= r["value"] <= 100.0 for r in rows)
        memory = points[("__system__gpu_memory_percent", f'{{"gpu":{index}}}')]
        assert all(0.0 <= r["value"] <= 100.0 for r in memory)
