"""Optuna callback: `study.optimize(objective, callbacks=[AimCallback(...)])` tracks the trials.

```
from aim_parquet.optuna import AimCallback
aim_callback = AimCallback(metric_name="loss", as_multirun=True, repo=".")

@aim_callback.track_in_aim()
def objective(trial):
    x = trial.suggest_float("x", -10, 10)
    aim_callback.experiment.track(x, name="x_seen")  # this trial's run
    return (x - 2) ** 2

study.optimize(objective, n_trials=20, callbacks=[aim_callback])
```

As in Aim:
- `as_multirun=False` (default): one run for the study. At step `trial.number` it tracks the
  objective value(s) and each numeric suggested parameter (a metric named after the parameter).
- `as_multirun=True`: one run per trial, named `trial-<number>`; the suggested parameters go to
  `run["hparams"]`, the objective value(s) to `run[<metric name>]` and the number to
  `run["trial_number"]`; the run is closed when the trial ends.
- Both store `run["study_name"]` and `run["hparams", "direction"]`. With several objectives,
  `metric_name="value"` becomes `value_0`, `value_1`, ...; or pass one name per objective.
- `track_in_aim()` decorates the objective so `callback.experiment` is the trial's run inside it.

Pruned and failed trials have no values: their parameters are still recorded (and, with
`as_multirun=True`, `run["trial_state"]`). Use `study.optimize(n_jobs=1)`: trials are tracked in
the order they finish. Accessing `AimCallback` checks that Optuna is installed.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any

from aim_parquet.integrations_base import (
    DEFAULT_SYSTEM_TRACKING_INTERVAL,
    RunHolder,
    as_number,
    import_framework,
    lazy_classes,
    sanitize_params,
)

log = logging.getLogger(__name__)

__all__ = ["AimCallback"]  # noqa: F822 - built on first access by __getattr__


def metric_names(metric_name: str | Sequence[str], count: int) -> list[str]:
    """One name per objective value (Aim's broadcasting of the default name)."""
    if isinstance(metric_name, str):
        return [metric_name] if count <= 1 else [f"{metric_name}_{i}" for i in range(count)]
    names = list(metric_name)
    if len(names) != count:
        raise ValueError(
            f"The objective returned {count} values but {len(names)} metric names were given "
            f"({names}); pass one name per objective, or one str to number them."
        )
    return names


def _build_callback() -> Any:
    import_framework("optuna", package="optuna", what="aim_parquet.optuna.AimCallback")

    class AimCallback:
        """An Optuna study callback writing to aim_parquet runs (Aim's `AimCallback`)."""

        def __init__(
            self,
            metric_name: str | Sequence[str] = "value",
            as_multirun: bool = False,
            repo: Any = None,
            experiment_name: str | None = None,
            system_tracking_interval: float | None = DEFAULT_SYSTEM_TRACKING_INTERVAL,
            log_system_params: bool | None = True,
            capture_terminal_logs: bool | None = True,
        ) -> None:
            if not isinstance(metric_name, (str, Sequence)):
                raise TypeError(
                    f"metric_name must be a str or a sequence of str, got {type(metric_name)}."
                )
            self._metric_name = metric_name
            self._as_multirun = bool(as_multirun)
            self._holder = RunHolder(
                repo=repo,
                experiment=experiment_name,
                system_tracking_interval=system_tracking_interval,
                log_system_params=log_system_params,
                capture_terminal_logs=capture_terminal_logs,
            )
            self._run_trial: int | None = None

        @property
        def experiment(self) -> Any:
            """The study's run; with `as_multirun=True`, the current trial's run (or None)."""
            if self._as_multirun and not self._holder.is_open:
                return None
            return self._holder.run

        def _trial_run(self, trial_number: int) -> Any:
            """The run of trial `trial_number` (a trial that raised left its run open: close it)."""
            if not self._holder.is_open or self._run_trial != trial_number:
                self._holder.forget()
                self._holder.run.name = f"trial-{trial_number}"
                self._run_trial = trial_number
            return self._holder.run

        def __call__(self, study: Any, trial: Any) -> None:
            values = list(trial.values or ())  # None for pruned and failed trials
            metrics: dict[str, Any] = {}
            if values:
                names = metric_names(self._metric_name, len(values))
                metrics = dict(zip(names, values, strict=True))
            run = self._trial_run(trial.number) if self._as_multirun else self._holder.run
            run.set(("hparams", "direction"), [d.name for d in study.directions], strict=False)
            run.set("study_name", study.study_name, strict=False)
            params = sanitize_params(dict(trial.params))
            if self._as_multirun:
                for key, value in params.items():
                    run.set(("hparams", key), value, strict=False)
                for key, value in metrics.items():
                    run.set(key, value, strict=False)
                run.set("trial_number", trial.number)
                run.set("trial_state", getattr(trial.state, "name", str(trial.state)))
                self._holder.forget()
                return
            for key, value in {**params, **metrics}.items():
                number = as_number(value)
                if number is None:
                    log.debug("AimCallback: %r=%r is not a number; not tracked", key, value)
                    continue
                run.track(number, name=key, step=trial.number)

        def track_in_aim(self) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
            """Decorate the objective so that `self.experiment` is usable inside it."""

            def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
                @functools.wraps(func)
                def wrapper(trial: Any, *args: Any, **kwargs: Any) -> Any:
                    if self._as_multirun:
                        self._trial_run(trial.number)
                    else:
                        _ = self._holder.run
                    return func(trial, *args, **kwargs)

                return wrapper

            return decorator

        def close(self) -> None:
            """Close the current run (call it between two studies in one process)."""
            self._holder.forget()

    AimCallback.__qualname__ = "AimCallback"  # pickle finds it through the module __getattr__
    return AimCallback


_lazy = lazy_classes(globals(), {"AimCallback": _build_callback})


def __getattr__(name: str) -> Any:
    return _lazy(name)
