"""Shared parts of the framework adapters (`aim_parquet.pytorch_lightning`, `.keras`, ...).

- `import_framework` imports a framework on first use and turns a missing one into an
  `OptionalDependencyError` (an `ImportError`) that names the `pip install` command.
- `lazy_classes` builds a module-level `__getattr__` (PEP 562) so that a class subclassing a
  framework base class is created on first access, not when the adapter module is imported.
- `RunHolder` creates the adapter's `Run` lazily, and after `close()` resumes the same run (by
  hash) if the framework logs again (Lightning's test loop after `fit`, a Keras `evaluate`).
  Under a distributed launch (DDP), rank 0 logs as in a single process; on every other rank
  `open_rank_writer` opens the job's run as that rank's writer with system tracking only (its
  system metrics carry `{"rank": r, "host": h}`), so no metric or param is written twice.
- `ContextAffixes` maps metric name prefixes/postfixes (`val_loss`) to a name and a context
  (`loss`, `{"subset": "val"}`).
- `sanitize_params` turns framework config objects into plain params without losing a whole dict
  to `repr()` because one nested value is exotic.
"""

from __future__ import annotations

import enum
import importlib
import logging
import math
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from aim_parquet.errors import AimParquetError
from aim_parquet.format.values import to_python_number
from aim_parquet.objects.base import OptionalDependencyError
from aim_parquet.system.launch import detect_launch

log = logging.getLogger(__name__)

DEFAULT_SYSTEM_TRACKING_INTERVAL = 10
MAX_PARAM_DEPTH = 20


def import_framework(modules: str | tuple[str, ...], *, package: str, what: str) -> ModuleType:
    """Import `modules` in order and return the last; raise a clear error naming `package`.

    `what` names the adapter for the message (`"aim_parquet.xgboost.AimCallback"`).
    """
    names = (modules,) if isinstance(modules, str) else modules
    module: ModuleType | None = None
    for name in names:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise OptionalDependencyError(
                f"{what} needs {package!r}, which could not be imported ({exc}). "
                f"Install it with: pip install {package}"
            ) from exc
    assert module is not None
    return module


def lazy_classes(
    namespace: dict[str, Any], builders: Mapping[str, Callable[[], Any]]
) -> Callable[[str], Any]:
    """A module `__getattr__` that builds `namespace[name]` with `builders[name]()` once."""
    module_name = namespace.get("__name__", "module")

    def __getattr__(name: str) -> Any:
        if name in namespace:
            return namespace[name]
        builder = builders.get(name)
        if builder is None:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        try:
            value = builder()
        except AttributeError as exc:  # would otherwise read as "no attribute {name}"
            raise RuntimeError(f"building {module_name}.{name} failed: {exc}") from exc
        namespace[name] = value
        return value

    return __getattr__


# -- params ---------------------------------------------------------------------------------


def sanitize_params(value: Any, _depth: int = 0) -> Any:
    """A plain-Python copy of `value` that `run.set()` accepts: exotic leaves become str/repr.

    Dict keys become str, tuples/sets become lists, enums their value, paths and other objects
    their `str()`; numpy/torch scalars become Python numbers.
    """
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if _depth >= MAX_PARAM_DEPTH:
        return repr(value)
    if isinstance(value, enum.Enum):
        return sanitize_params(value.value, _depth + 1)
    if isinstance(value, Mapping):
        return {str(k): sanitize_params(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [sanitize_params(v, _depth + 1) for v in items]
    number = to_python_number(value)
    if number is not None:
        return number
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        try:
            return sanitize_params(to_dict(), _depth + 1)
        except Exception:  # a framework object whose to_dict() fails: keep its text
            pass
    return str(value)


def as_number(value: Any) -> int | float | None:
    """`value` as a trackable Python number (bool -> int), or None when it is not one."""
    number = to_python_number(value)
    if number is None:
        return None
    if isinstance(number, bool):
        return int(number)
    return number


def as_epoch(value: Any) -> int | None:
    """Frameworks report epochs as floats (Transformers: 1.5); Aim's epoch is an int: floor it."""
    number = to_python_number(value)
    if number is None or isinstance(number, bool):
        return None
    if isinstance(number, float):
        if not math.isfinite(number):
            return None
        return math.floor(number)
    return number


# -- run -------------------------------------------------------------------------------------


def process_rank() -> int:
    """This process's global rank in a distributed job, 0 outside one: torch.distributed's once
    a process group is up (torch is not imported for it), else the launcher's environment."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None:
        try:
            if dist.is_available() and dist.is_initialized():
                return int(dist.get_rank())
        except (RuntimeError, ValueError):  # a group being torn down
            pass
    try:
        launch = detect_launch()
    except ValueError:
        return 0
    return 0 if launch is None else launch.rank


class RunHolder:
    """The `Run` behind an adapter: created on first use, resumed by hash after `close()`."""

    def __init__(
        self,
        *,
        repo: Any = None,
        experiment: str | None = None,
        system_tracking_interval: float | None = DEFAULT_SYSTEM_TRACKING_INTERVAL,
        log_system_params: bool | None = True,
        capture_terminal_logs: bool | None = True,
        run_hash: str | None = None,
        run_name: str | None = None,
    ) -> None:
        self.repo = repo
        self.experiment = experiment
        self.system_tracking_interval = system_tracking_interval
        self.log_system_params = log_system_params
        self.capture_terminal_logs = capture_terminal_logs
        self.run_hash = run_hash
        self.run_name = run_name
        self._run: Any = None
        self._has_warned_rank = False

    @property
    def is_open(self) -> bool:
        return self._run is not None

    @property
    def run(self) -> Any:
        """The open `Run`; a new one, or the earlier one resumed when `run_hash` is known."""
        if self._run is None:
            from aim_parquet.sdk.run import Run

            is_new = self.run_hash is None
            run = Run(
                self.run_hash,
                repo=self.repo,
                experiment=self.experiment,
                system_tracking_interval=self.system_tracking_interval,
                log_system_params=self.log_system_params if is_new else False,
                capture_terminal_logs=self.capture_terminal_logs,
            )
            if self.run_name is not None and is_new:
                run.name = self.run_name
            self.run_hash = run.hash
            self._run = run
        return self._run

    def open_rank_writer(self, rank: int) -> None:
        """On rank `rank` >= 1 of a distributed job: open the job's run as this rank's writer,
        tracking system metrics only (nothing when system tracking is off, or already open). A
        rank that cannot attach (the launcher names no job, or the job is not the run's) warns
        once and trains on: it never makes a run of its own."""
        if rank < 1 or self._run is not None or self.system_tracking_interval is None:
            return
        try:
            launch = detect_launch()
        except ValueError as exc:
            self._warn_rank(rank, str(exc))
            return
        if launch is None or launch.rank != rank:
            self._warn_rank(
                rank,
                "the launcher's environment names no job this process is rank "
                f"{rank} of (RANK/WORLD_SIZE or SLURM_PROCID/SLURM_NTASKS); launch with torchrun, "
                "SLURM or Lightning's ddp strategy",
            )
            return
        from aim_parquet.sdk.run import Run

        try:
            self._run = Run(
                self.run_hash,
                repo=self.repo,
                system_tracking_interval=self.system_tracking_interval,
                log_system_params=False,
                capture_terminal_logs=False,
            )
        except (AimParquetError, OSError, ValueError) as exc:
            self._warn_rank(rank, str(exc))
            return
        self.run_hash = self._run.hash

    def _warn_rank(self, rank: int, why: str) -> None:
        if not self._has_warned_rank:
            self._has_warned_rank = True
            log.warning("aim_parquet: system metrics of rank %d are not tracked: %s", rank, why)

    def close(self) -> None:
        """Close the run (flushed, `end_time` set); a later `.run` resumes it."""
        run, self._run = self._run, None
        if run is not None:
            run.close()

    def forget(self) -> None:
        """Close the run and start a fresh one on the next `.run` (one run per trial)."""
        self.close()
        self.run_hash = None


# -- metric names -> contexts ----------------------------------------------------------------


@dataclass(frozen=True)
class ContextAffixes:
    """`{context_key: {context_value: affix}}` for prefixes and postfixes of metric names.

    For each context key, the longest matching affix wins; it is cut from the name and
    `context[key] = value` is set. A name is never cut to nothing.
    """

    prefixes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    postfixes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def split(self, name: str) -> tuple[str, dict[str, Any]]:
        context: dict[str, Any] = {}
        for key, values in self.prefixes.items():
            for value, affix in sorted(values.items(), key=lambda kv: -len(kv[1])):
                if affix and name.startswith(affix) and len(name) > len(affix):
                    name = name[len(affix) :]
                    context[key] = value
                    break
        for key, values in self.postfixes.items():
            for value, affix in sorted(values.items(), key=lambda kv: -len(kv[1])):
                if affix and name.endswith(affix) and len(name) > len(affix):
                    name = name[: -len(affix)]
                    context[key] = value
                    break
        return name, context


def subset_prefixes(**prefixes: str | None) -> ContextAffixes:
    """`subset_prefixes(train="train_", val="val_")`: the usual `{"subset": ...}` mapping."""
    return ContextAffixes(
        prefixes={"subset": {subset: p for subset, p in prefixes.items() if p}},
    )
