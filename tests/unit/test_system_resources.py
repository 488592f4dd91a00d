"""ResourceSampler and validate_interval: fake NVML, real psutil, thread lifecycle, errors."""

from __future__ import annotations

import ast
import logging
import math
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from aim_parquet.system import resources
from aim_parquet.system.resources import ResourceSampler, validate_interval

SYSTEM_NAMES = {
    "__system__cpu",
    "__system__memory_percent",
    "__system__p_memory_percent",
    "__system__disk_percent",
}
GPU_NAMES = {
    "__system__gpu",
    "__system__gpu_memory_percent",
    "__system__gpu_temp",
    "__system__gpu_power_watts",
}
DEADLINE_S = 10.0


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until it holds; fail after DEADLINE_S."""
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


class Recorder:
    """A thread-safe emit callback."""

    def __init__(self) -> None:
        self.values: list[tuple[str, float, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def __call__(self, name: str, value: float, context: dict[str, Any]) -> None:
        with self._lock:
            self.values.append((name, value, context))

    def snapshot(self) -> list[tuple[str, float, dict[str, Any]]]:
        with self._lock:
            return list(self.values)

    def names(self) -> set[str]:
        return {name for name, _, _ in self.snapshot()}

    def gpu(self, index: int) -> dict[str, float]:
        return {name: value for name, value, ctx in self.snapshot() if ctx == {"gpu": index}}


# -- a fake NVML --------------------------------------------------------------------------------


class NVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value


class NVMLError_NotSupported(NVMLError):  # noqa: N801 - pynvml's spelling
    def __init__(self) -> None:
        super().__init__(3)


class FakeNvml:
    """Module-like NVML stand-in: ``gpus`` lists per-device readings; a reading may be an exception."""

    NVMLError = NVMLError
    NVMLError_NotSupported = NVMLError_NotSupported
    NVML_ERROR_NOT_SUPPORTED = 3
    NVML_TEMPERATURE_GPU = 0

    def __init__(self, gpus: list[dict[str, Any]], *, init_error: BaseException | None = None):
        self.gpus = gpus
        self.init_error = init_error
        self.init_calls = 0
        self.shutdown_calls = 0
        self.calls: dict[tuple[str, int], int] = {}

    def _get(self, field: str, handle: int) -> Any:
        self.calls[(field, handle)] = self.calls.get((field, handle), 0) + 1
        value = self.gpus[handle][field]
        if isinstance(value, BaseException):
            raise value
        return value

    def nvmlInit(self) -> None:  # noqa: N802 - NVML's names
        self.init_calls += 1
        if self.init_error is not None:
            raise self.init_error

    def nvmlShutdown(self) -> None:  # noqa: N802
        self.shutdown_calls += 1

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:  # noqa: N802
        return index

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> Any:  # noqa: N802
        return SimpleNamespace(gpu=self._get("util", handle), memory=0)

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any:  # noqa: N802
        used, total = self._get("memory", handle)
        return SimpleNamespace(used=used, total=total, free=total - used)

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:  # noqa: N802
        assert sensor == self.NVML_TEMPERATURE_GPU
        return int(self._get("temp", handle))

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:  # noqa: N802
        return int(self._get("power", handle))


def three_gpus() -> FakeNvml:
    return FakeNvml(
        [
            {"util": 10, "memory": (1, 3), "temp": 40, "power": 123456},
            {"util": 20, "memory": (2, 4), "temp": NVMLError_NotSupported(), "power": 50000},
            {"util": 30, "memory": (0, 8), "temp": 60, "power": 300000},
        ]
    )


# -- validate_interval --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [(0.1, 0.1), (86400, 86400.0), (10, 10.0), (0.5, 0.5), (1, 1.0), (None, None)],
)
def test_validate_interval_accepts(given: float | None, expected: float | None) -> None:
    result = validate_interval(given)
    assert result == expected
    assert result is None or type(result) is float


@pytest.mark.parametrize(
    "given",
    [0.05, 0.099999, 1e6, 86400.5, 0, -1, True, False, "10", math.nan, math.inf, [1], b"1"],
)
def test_validate_interval_refuses(given: Any) -> None:
    with pytest.raises(ValueError, match=r"between 0\.1 and 86400.*None to disable"):
        validate_interval(given)


def test_sampler_refuses_bad_interval() -> None:
    with pytest.raises(ValueError):
        ResourceSampler(0.01, Recorder(), nvml=three_gpus())


# -- fake NVML ----------------------------------------------------------------------------------


def test_gpu_metrics_per_gpu_with_unsupported_field_skipped() -> None:
    nvml = three_gpus()
    emitted = Recorder()
    sampler = ResourceSampler(10, emitted, nvml=nvml)
    sampler.sample_once()
    sampler.sample_once()

    assert nvml.init_calls == 1  # once per sampler, not per sample
    assert emitted.gpu(0) == {
        "__system__gpu": 10.0,
        "__system__gpu_memory_percent": round(100 / 3, 6),
        "__system__gpu_temp": 40.0,
        "__system__gpu_power_watts": 123.456,
    }
    assert emitted.gpu(1) == {
        "__system__gpu": 20.0,
        "__system__gpu_memory_percent": 50.0,
        "__system__gpu_power_watts": 50.0,
    }
    assert set(emitted.gpu(2)) == GPU_NAMES
    assert emitted.names() == SYSTEM_NAMES | GPU_NAMES
    # a field reported NotSupported is not asked for again
    assert nvml.calls[("temp", 1)] == 1
    assert nvml.calls[("temp", 0)] == 2
    per_gpu_counts = [
        sum(1 for name, _, ctx in emitted.snapshot() if ctx == {"gpu": 0} and name == n)
        for n in GPU_NAMES
    ]
    assert per_gpu_counts == [2, 2, 2, 2]
    for _, value, ctx in emitted.snapshot():
        assert type(value) is float
        assert value == round(value, 6)
        assert ctx in ({}, {"gpu": 0}, {"gpu": 1}, {"gpu": 2})

    sampler.stop()
    sampler.stop()
    assert nvml.shutdown_calls == 1


def test_contexts_are_fresh_dicts() -> None:
    emitted = Recorder()
    sampler = ResourceSampler(10, emitted, nvml=three_gpus())
    sampler.sample_once()
    sampler.sample_once()
    contexts = [ctx for _, _, ctx in emitted.snapshot() if ctx]
    contexts[0]["gpu"] = 99  # a consumer mutating one context must not affect the next
    assert {ctx["gpu"] for ctx in contexts[1:]} == {0, 1, 2}


def test_other_nvml_error_skips_that_sample_only(caplog: pytest.LogCaptureFixture) -> None:
    nvml = FakeNvml([{"util": NVMLError(999), "memory": (1, 2), "temp": 50, "power": 1000}])
    emitted = Recorder()
    sampler = ResourceSampler(10, emitted, nvml=nvml)
    caplog.set_level(logging.DEBUG, logger=resources.__name__)
    sampler.sample_once()
    assert "__system__gpu" not in emitted.gpu(0)
    nvml.gpus[0]["util"] = 70
    sampler.sample_once()
    assert emitted.gpu(0)["__system__gpu"] == 70.0
    assert all(r.levelno == logging.DEBUG for r in caplog.records)
    sampler.stop()


@pytest.mark.parametrize(
    "init_error",
    [NVMLError(12), OSError("libnvidia-ml.so.1: cannot open shared object file"), ImportError()],
)
def test_no_driver_means_no_gpu_metrics_and_no_noise(
    init_error: BaseException, caplog: pytest.LogCaptureFixture, recwarn: pytest.WarningsRecorder
) -> None:
    nvml = FakeNvml([{"util": 1, "memory": (1, 2), "temp": 3, "power": 4}], init_error=init_error)
    emitted = Recorder()
    caplog.set_level(logging.DEBUG, logger=resources.__name__)
    sampler = ResourceSampler(10, emitted, nvml=nvml)
    for _ in range(3):
        sampler.sample_once()
    sampler.stop()

    assert emitted.names() == SYSTEM_NAMES
    assert nvml.init_calls == 1
    assert nvml.shutdown_calls == 0  # never initialised, so never shut down
    ours = [r for r in caplog.records if r.name == resources.__name__]
    assert len(ours) <= 1
    assert all(r.levelno == logging.DEBUG for r in ours)
    assert len(recwarn) == 0


def test_pynvml_import_failure_means_no_gpu_metrics(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def fail() -> Any:
        raise ImportError("No module named 'pynvml'")

    monkeypatch.setattr(resources, "_import_pynvml", fail)
    caplog.set_level(logging.DEBUG, logger=resources.__name__)
    emitted = Recorder()
    sampler = ResourceSampler(10, emitted)
    sampler.start()
    wait_until(lambda: emitted.names() >= SYSTEM_NAMES, "the first sample")
    sampler.stop()
    assert emitted.names() == SYSTEM_NAMES
    assert len([r for r in caplog.records if r.name == resources.__name__]) <= 1


def test_psutil_failure_skips_only_that_metric(monkeypatch: pytest.MonkeyPatch) -> None:
    import psutil

    def broken(path: str) -> Any:
        raise PermissionError(path)

    monkeypatch.setattr(psutil, "disk_usage", broken)
    emitted = Recorder()
    sampler = ResourceSampler(10, emitted, nvml=FakeNvml([]))
    sampler.sample_once()
    assert emitted.names() == SYSTEM_NAMES - {"__system__disk_percent"}
    sampler.stop()


def test_zero_gpus() -> None:
    nvml = FakeNvml([])
    emitted = Recorder()
    sampler = ResourceSampler(10, emitted, nvml=nvml)
    sampler.sample_once()
    sampler.stop()
    assert emitted.names() == SYSTEM_NAMES
    assert (nvml.init_calls, nvml.shutdown_calls) == (1, 1)


# -- the thread, with real psutil ---------------------------------------------------------------


def sampler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == resources.THREAD_NAME]


def test_thread_samples_repeatedly_and_stop_joins() -> None:
    emitted = Recorder()
    sampler = ResourceSampler(0.1, emitted)  # real psutil, real (or absent) NVML
    sampler.start()
    assert [t.daemon for t in sampler_threads()] == [True]

    def seen_twice() -> bool:
        names = [name for name, _, _ in emitted.snapshot()]
        return all(names.count(name) >= 2 for name in SYSTEM_NAMES)

    wait_until(seen_twice, "two samples of every system metric")
    sampler.stop()
    assert not sampler.is_running
    assert sampler_threads() == []
    assert sampler.error is None
    for name, value, _ in emitted.snapshot():
        assert value >= 0.0, name
        if name != "__system__cpu":
            assert value <= 100.0, name
    sampler.stop()  # idempotent


def test_first_sample_comes_at_start_and_stop_is_prompt() -> None:
    nvml = three_gpus()
    emitted = Recorder()
    sampler = ResourceSampler(86400, emitted, nvml=nvml)
    sampler.start()
    wait_until(lambda: emitted.names() >= (SYSTEM_NAMES | GPU_NAMES), "the first sample")
    sampler.stop()  # must not wait for the 86400 s interval
    assert sampler_threads() == []
    assert (nvml.init_calls, nvml.shutdown_calls) == (1, 1)


def test_start_twice_refused() -> None:
    sampler = ResourceSampler(86400, Recorder(), nvml=FakeNvml([]))
    sampler.start()
    try:
        with pytest.raises(RuntimeError):
            sampler.start()
    finally:
        sampler.stop()


def test_stop_without_start_is_harmless() -> None:
    nvml = FakeNvml([])
    sampler = ResourceSampler(1, Recorder(), nvml=nvml)
    sampler.stop()
    sampler.stop()
    assert nvml.init_calls == 0


def test_emit_error_is_stored_and_ends_the_thread() -> None:
    failure = RuntimeError("disk full")
    calls: list[str] = []

    def emit(name: str, value: float, context: dict[str, Any]) -> None:
        calls.append(name)
        raise failure

    nvml = three_gpus()
    sampler = ResourceSampler(0.1, emit, nvml=nvml)
    sampler.start()
    wait_until(lambda: not sampler.is_running, "the sampler thread to end")
    assert sampler.error is failure
    assert len(calls) == 1
    assert nvml.shutdown_calls == 1  # the dying thread released NVML
    sampler.stop()
    assert nvml.shutdown_calls == 1
    assert sampler_threads() == []


def test_emit_error_from_sample_once_propagates() -> None:
    def emit(name: str, value: float, context: dict[str, Any]) -> None:
        raise KeyError(name)

    sampler = ResourceSampler(1, emit, nvml=FakeNvml([]))
    with pytest.raises(KeyError):
        sampler.sample_once()
    sampler.stop()


def test_stop_from_inside_emit_does_not_deadlock() -> None:
    holder: list[ResourceSampler] = []

    def emit(name: str, value: float, context: dict[str, Any]) -> None:
        holder[0].stop()

    sampler = ResourceSampler(0.1, emit, nvml=FakeNvml([]))
    holder.append(sampler)
    sampler.start()
    wait_until(lambda: not sampler.is_running, "the sampler thread to end")
    assert sampler.error is None


# -- import hygiene -----------------------------------------------------------------------------

SYSTEM_DIR = Path(resources.__file__).parent


@pytest.mark.parametrize("module", sorted(p.name for p in SYSTEM_DIR.glob("*.py")))
def test_module_level_imports_are_stdlib_or_errors(module: str) -> None:
    tree = ast.parse((SYSTEM_DIR / module).read_text(encoding="utf-8"))
    for node in tree.body:
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            names = [node.module]
        for name in names:
            top = name.split(".")[0]
            allowed = (
                top in sys.stdlib_module_names
                or top == "__future__"
                or name == "aim_parquet.errors"
                or name.startswith("aim_parquet.system")
            )
            assert allowed, f"{module} imports {name} at module level"


def test_import_has_no_side_effects() -> None:
    code = (
        "import sys, threading\n"
        "import aim_parquet.system.resources, aim_parquet.system.terminal, "
        "aim_parquet.system.params\n"
        "assert 'pynvml' not in sys.modules\n"
        "assert [t.name for t in threading.enumerate()] == ['MainThread']\n"
        "assert sys.stdout is sys.__stdout__ and sys.stderr is sys.__stderr__\n"
    )
    root = Path(resources.__file__).parents[2]
    subprocess.run([sys.executable, "-W", "error", "-c", code], cwd=root, check=True, timeout=60)


def test_first_direct_sample_includes_gpus_when_nvml_loads_lazily(monkeypatch: Any) -> None:
    """Regression (seen on an H200): sample_once() before start() must use the NVML module it
    loads in that same call, not the `None` it held before."""
    from aim_parquet.system import resources as res

    fake = FakeNvml([{"util": 7, "memory": (1, 4), "temp": 40, "power": 70_000}])
    monkeypatch.setattr(res.ResourceSampler, "_load_nvml", lambda self: fake)
    out: list[tuple[str, float, dict[str, Any]]] = []
    sampler = res.ResourceSampler(10, lambda n, v, c: out.append((n, v, c)))
    sampler.sample_once()
    sampler.stop()
    assert any(name == "__system__gpu" and ctx == {"gpu": 0} for name, _, ctx in out)
