"""System tracking for a Run: resource sampler, terminal capture and system params.

Imports only the standard library at import time: psutil and pynvml are imported by the functions
that use them, and no thread starts until ``ResourceSampler.start()``/``TerminalCapture.start()``.
"""

from aim_parquet.system import fork_imports  # noqa: F401  (a fork waits for imports in progress)
from aim_parquet.system.params import collect_system_params
from aim_parquet.system.resources import ResourceSampler, validate_interval
from aim_parquet.system.terminal import TerminalCapture

__all__ = ["ResourceSampler", "TerminalCapture", "collect_system_params", "validate_interval"]
