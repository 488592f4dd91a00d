"""System resource sampling: CPU, memory, disk and NVIDIA GPU usage, as Aim's `__system__*` metrics.

A :class:`ResourceSampler` owns one daemon thread (``aim_parquet-system``) that samples once right after
:meth:`ResourceSampler.start` and then every ``interval_s`` seconds, handing each value to an ``emit``
callback as ``emit(name, value, context)``. It never writes anything itself.

Metric names, contexts and units match Aim 3.x (``aim/ext/resource/stat.py``):

========================================  ============  ==========================================
name                                      context       value
========================================  ============  ==========================================
``__system__cpu``                         ``{}``        this process's CPU %, can exceed 100
``__system__memory_percent``              ``{}``        system memory in use, %
``__system__p_memory_percent``            ``{}``        this process's resident memory, % of total
``__system__disk_percent``                ``{}``        ``disk_usage('/')``, %
``__system__gpu``                         ``{"gpu": i}`` GPU utilisation, %
``__system__gpu_memory_percent``          ``{"gpu": i}`` GPU memory used / total, %
``__system__gpu_temp``                    ``{"gpu": i}`` GPU temperature, °C
``__system__gpu_power_watts``             ``{"gpu": i}`` GPU power draw, W
========================================  ============  ==========================================

Unlike Aim, NVML is initialised once per sampler (not once per sample) and shut down by
:meth:`ResourceSampler.stop`; a field a GPU reports as not supported is never asked for again.
psutil and pynvml are imported lazily, so importing this module has no side effects. After
``os.fork()`` the sampler thread does not exist in the child: the owner calls
:meth:`ResourceSampler.disown_after_fork` there, which samples nothing more and never shuts down
the parent's NVML session.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

from aim_parquet.system.threads import start_thread

__all__ = [
    "DEFAULT_INTERVAL_S",
    "MAX_INTERVAL_S",
    "MIN_INTERVAL_S",
    "ResourceSampler",
    "validate_interval",
]

logger = logging.getLogger(__name__)

MIN_INTERVAL_S = 0.1
MAX_INTERVAL_S = 86400.0
DEFAULT_INTERVAL_S = 10.0

THREAD_NAME = "aim_parquet-system"

# The first CPU value covers at least this long after priming, otherwise psutil's 10 ms tick
# resolution makes it either 0 or a few hundred percent.
_MIN_CPU_WINDOW_S = 0.1
# How long stop() waits for the sampler thread (a hung NVML call must not hang close() forever).
_JOIN_TIMEOUT_S = 30.0
_NVML_NOT_SUPPORTED = 3  # NVML_ERROR_NOT_SUPPORTED, for NVML look-alikes that do not define it

Emit = Callable[[str, float, dict[str, Any]], None]


def validate_interval(interval: float | int | None) -> float | None:
    """Check a ``system_tracking_interval``: ``None`` disables tracking, else seconds as a float.

    Accepts an ``int`` or ``float`` (not ``bool``) between 0.1 and 86400 inclusive. Aim silently
    disables tracking for anything else; we refuse it instead so a typo does not go unnoticed.
    """
    if interval is None:
        return None
    if (
        isinstance(interval, bool)
        or not isinstance(interval, int | float)
        or not math.isfinite(interval)
        or not MIN_INTERVAL_S <= interval <= MAX_INTERVAL_S
    ):
        raise ValueError(
            f"system_tracking_interval must be a number of seconds between {MIN_INTERVAL_S:g} "
            f"and {MAX_INTERVAL_S:g} (got {interval!r}); pass None to disable system resource "
            "tracking."
        )
    return float(interval)


def _import_pynvml() -> Any:
    """Import pynvml, silencing the FutureWarning its deprecated PyPI shim raises on import."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import pynvml

    return pynvml


class _Gpu:
    """One NVIDIA device: its NVML handle and the fields it does not support."""

    __slots__ = ("context", "handle", "index", "unsupported")

    def __init__(self, index: int, handle: Any) -> None:
        self.index = index
        self.handle = handle
        self.context: dict[str, Any] = {"gpu": index}
        self.unsupported: set[str] = set()


class ResourceSampler:
    """Samples system and GPU usage on a daemon thread and hands each value to ``emit``.

    ``emit(name, value, context)`` runs on the sampler thread. An exception it raises is stored
    in :attr:`error` and ends the thread, so the owner can re-raise it on its next call. Failures
    of psutil or NVML themselves are logged at debug level and that value is skipped.

    ``nvml`` replaces the ``pynvml`` module (tests pass a fake); by default pynvml is imported
    when sampling begins. A machine without an NVIDIA driver simply yields no GPU metrics.
    """

    def __init__(self, interval_s: float, emit: Emit, *, nvml: Any = None) -> None:
        checked = validate_interval(interval_s)
        if checked is None:
            raise ValueError("interval_s must be a number of seconds, not None")
        self.interval_s = checked
        self.error: BaseException | None = None
        self._emit = emit
        self._nvml: Any = nvml
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._sample_lock = threading.Lock()  # one sample at a time; guards the state below
        self._process: Any = None
        self._psutil: Any = None
        self._primed_at = 0.0
        self._gpus: list[_Gpu] | None = None  # None: NVML not tried yet
        self._nvml_initialised = False
        self._nvml_closed = False
        self._logged_failures: set[str] = set()

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the sampler thread: one sample right away, then one every ``interval_s``."""
        if self._thread is not None or self._stop_event.is_set():
            raise RuntimeError("a ResourceSampler starts once; create a new one after stop()")
        with self._sample_lock:
            self._ensure_process()
            if self._nvml is None:
                # Imported here, on the caller's thread: catch_warnings is not thread-safe.
                self._nvml = self._load_nvml()
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        start_thread(self._thread)

    def stop(self) -> None:
        """Stop and join the sampler thread and shut NVML down. Idempotent."""
        self._stop_event.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(_JOIN_TIMEOUT_S)
            if thread.is_alive():
                logger.warning(
                    "system resource sampler did not stop within %.0f s; leaving it behind",
                    _JOIN_TIMEOUT_S,
                )
                return
        with self._sample_lock:
            self._shutdown_nvml()

    def disown_after_fork(self) -> None:
        """In a forked child: the sampler thread did not survive the fork. Sample nothing more
        and never shut NVML down from here (the parent's session); fresh locks and events, since
        a parent thread may have held the old ones at the fork."""
        self._stop_event = threading.Event()
        self._stop_event.set()
        self._sample_lock = threading.Lock()
        self._thread = None
        self._nvml_initialised = False
        self._nvml_closed = True
        self._gpus = []

    @property
    def is_running(self) -> bool:
        """True while the sampler thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        try:
            with self._sample_lock:
                self._ensure_gpus()
            # Let the first CPU value span a meaningful window after priming (stop stays immediate).
            remaining = self._primed_at + _MIN_CPU_WINDOW_S - time.monotonic()
            if remaining > 0 and self._stop_event.wait(remaining):
                return
            while not self._stop_event.is_set():
                self.sample_once()
                if self._stop_event.wait(self.interval_s):
                    break
        except BaseException as exc:  # stored for the owner to re-raise; the thread ends here
            self.error = exc
            logger.debug("system resource sampler stopped by an error", exc_info=True)
        finally:
            with self._sample_lock:
                self._shutdown_nvml()

    # -- sampling --------------------------------------------------------------------------------

    def sample_once(self) -> None:
        """Take one full sample and emit every value. Exceptions raised by ``emit`` propagate."""
        with self._sample_lock:
            values = self._collect()
        emit = self._emit
        for name, value, context in values:
            emit(name, value, context)

    def _collect(self) -> list[tuple[str, float, dict[str, Any]]]:
        values: list[tuple[str, float, dict[str, Any]]] = []
        self._ensure_process()
        process, psutil = self._process, self._psutil
        if process is not None:
            self._read(values, "__system__cpu", {}, lambda: process.cpu_percent(None))
            self._read(
                values, "__system__memory_percent", {}, lambda: psutil.virtual_memory().percent
            )
            self._read(values, "__system__p_memory_percent", {}, process.memory_percent)
            self._read(values, "__system__disk_percent", {}, lambda: psutil.disk_usage("/").percent)
        gpus = self._ensure_gpus()  # may load NVML: read self._nvml only after it
        nvml = self._nvml
        for gpu in gpus:
            for name, read in _GPU_FIELDS:
                if name not in gpu.unsupported:
                    self._read(values, name, gpu.context, partial(read, nvml, gpu.handle), gpu=gpu)
        return values

    def _read(
        self,
        values: list[tuple[str, float, dict[str, Any]]],
        name: str,
        context: dict[str, Any],
        read: Callable[[], float],
        *,
        gpu: _Gpu | None = None,
    ) -> None:
        try:
            value = round(float(read()), 6)
        except Exception as exc:
            key = name if gpu is None else f"{name}[gpu {gpu.index}]"
            if gpu is not None and self._is_not_supported(exc):
                gpu.unsupported.add(name)
                logger.debug("%s is not supported; not asking again", key)
            elif key not in self._logged_failures:
                self._logged_failures.add(key)
                logger.debug("could not read %s; skipping it (%r)", key, exc)
            return
        values.append((name, value, dict(context)))

    def _is_not_supported(self, exc: Exception) -> bool:
        not_supported = getattr(self._nvml, "NVMLError_NotSupported", None)
        if isinstance(not_supported, type) and isinstance(exc, not_supported):
            return True
        code = getattr(self._nvml, "NVML_ERROR_NOT_SUPPORTED", _NVML_NOT_SUPPORTED)
        return getattr(exc, "value", None) == code

    # -- psutil and NVML set-up ------------------------------------------------------------------

    def _ensure_process(self) -> None:
        """Import psutil and prime ``cpu_percent`` once (its first call always returns 0)."""
        if self._process is not None or "psutil" in self._logged_failures:
            return
        try:
            import psutil

            process = psutil.Process()
            process.cpu_percent(None)
        except Exception as exc:
            self._logged_failures.add("psutil")
            logger.debug("psutil unavailable; no CPU, memory or disk metrics (%r)", exc)
            return
        self._psutil, self._process = psutil, process
        self._primed_at = time.monotonic()

    def _load_nvml(self) -> Any:
        try:
            return _import_pynvml()
        except Exception as exc:  # ImportError, or anything a broken install raises
            self._gpus = []
            logger.debug("pynvml unavailable; no GPU metrics (%r)", exc)
            return None

    def _ensure_gpus(self) -> list[_Gpu]:
        """Initialise NVML once and list the devices; ``[]`` when there is no GPU or driver."""
        if self._gpus is not None:
            return self._gpus
        if self._nvml_closed:
            return []
        self._gpus = []
        if self._nvml is None:
            self._nvml = self._load_nvml()
            if self._nvml is None:
                return self._gpus
        nvml = self._nvml
        try:
            nvml.nvmlInit()
        except Exception as exc:  # NVMLError (no driver, no library), OSError, ...
            logger.debug("NVML unavailable; no GPU metrics (%r)", exc)
            return self._gpus
        self._nvml_initialised = True
        try:
            count = int(nvml.nvmlDeviceGetCount())
        except Exception as exc:
            logger.debug("NVML could not count GPUs; no GPU metrics (%r)", exc)
            return self._gpus
        for index in range(count):
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
            except Exception as exc:
                logger.debug("NVML could not open GPU %d; skipping it (%r)", index, exc)
                continue
            self._gpus.append(_Gpu(index, handle))
        return self._gpus

    def _shutdown_nvml(self) -> None:
        """Shut NVML down if this sampler initialised it; later samples have no GPU metrics."""
        self._nvml_closed = True
        self._gpus = []
        if not self._nvml_initialised:
            return
        self._nvml_initialised = False
        try:
            self._nvml.nvmlShutdown()
        except Exception as exc:
            logger.debug("nvmlShutdown failed (%r)", exc)


def _gpu_utilisation(nvml: Any, handle: Any) -> float:
    return float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)


def _gpu_memory_percent(nvml: Any, handle: Any) -> float:
    info = nvml.nvmlDeviceGetMemoryInfo(handle)
    return float(info.used) / float(info.total) * 100.0


def _gpu_temperature(nvml: Any, handle: Any) -> float:
    return float(nvml.nvmlDeviceGetTemperature(handle, getattr(nvml, "NVML_TEMPERATURE_GPU", 0)))


def _gpu_power_watts(nvml: Any, handle: Any) -> float:
    return float(nvml.nvmlDeviceGetPowerUsage(handle)) / 1000.0


_GPU_FIELDS: tuple[tuple[str, Callable[[Any, Any], float]], ...] = (
    ("__system__gpu", _gpu_utilisation),
    ("__system__gpu_memory_percent", _gpu_memory_percent),
    ("__system__gpu_temp", _gpu_temperature),
    ("__system__gpu_power_watts", _gpu_power_watts),
)
