"""LightGBM callback: `lgb.train(..., callbacks=[AimCallback(...)])` tracks the evaluation results.

```
from aim_parquet.lightgbm import AimCallback
lgb.train(params, dtrain, 50, valid_sets=[dvalid], callbacks=[AimCallback(repo=".")])
```

- after each boosting round, each evaluation result is tracked with `step=epoch=iteration` and
  `context={"data_name": <valid set name>}` (Aim's context key); under `lgb.cv` the fold mean
  and standard deviation are tracked as `<metric>-mean` and `<metric>-stdv`;
- the training parameters (`env.params`) go to `run["hparams"]` at the first round;
- the run is closed after the last round; when early stopping ends training sooner, it stays
  open until `callback.close()` or interpreter exit.

LightGBM callbacks are plain callables, but accessing `AimCallback` still checks that LightGBM is
installed, so a missing package is reported where the callback is created.
"""

from __future__ import annotations

import logging
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


def evaluation_points(result: Any) -> list[tuple[str, str, Any]]:
    """(name, data_name, value) to track for one entry of `env.evaluation_result_list`.

    Entries are `(data_name, eval_name, value, is_higher_better[, stdv])`; under `lgb.cv`
    a stdv is present (older LightGBM also names the data `cv_agg` and the metric
    `"<data_name> <eval_name>"`).
    """
    data_name, eval_name, value = result[0], result[1], result[2]
    stdv = result[4] if len(result) > 4 else None
    if stdv is None:
        return [(eval_name, data_name, value)]
    if data_name == "cv_agg" and " " in eval_name:
        data_name, eval_name = eval_name.split(" ", 1)
    return [(f"{eval_name}-mean", data_name, value), (f"{eval_name}-stdv", data_name, stdv)]


def _build_callback() -> Any:
    import_framework("lightgbm", package="lightgbm", what="aim_parquet.lightgbm.AimCallback")

    class AimCallback:
        """A LightGBM callback writing to an aim_parquet `Run` (Aim's `AimCallback`)."""

        def __init__(
            self,
            repo: Any = None,
            experiment: str | None = None,
            system_tracking_interval: float | None = DEFAULT_SYSTEM_TRACKING_INTERVAL,
            log_system_params: bool | None = True,
            capture_terminal_logs: bool | None = True,
        ) -> None:
            self._holder = RunHolder(
                repo=repo,
                experiment=experiment,
                system_tracking_interval=system_tracking_interval,
                log_system_params=log_system_params,
                capture_terminal_logs=capture_terminal_logs,
            )
            # LightGBM's callback protocol: run after the round, before early stopping (order 30).
            self.order = 25
            self.before_iteration = False

        @property
        def experiment(self) -> Any:
            """The `Run` (created, or resumed after the last round, on first use)."""
            return self._holder.run

        def setup(self) -> None:
            """Create the run now (otherwise the first round does)."""
            _ = self._holder.run

        def before_tracking(self, **kwargs: Any) -> None:
            """Hook for subclasses: runs before each round's values are tracked (Aim's API)."""

        def after_tracking(self, **kwargs: Any) -> None:
            """Hook for subclasses: runs after each round's values are tracked (Aim's API)."""

        def __call__(self, env: Any) -> None:
            run = self.experiment
            if env.iteration == env.begin_iteration and env.params:
                run.set("hparams", sanitize_params(dict(env.params)), strict=False)
            self.before_tracking(env=env)
            for result in env.evaluation_result_list or ():
                for name, data_name, value in evaluation_points(result):
                    number = as_number(value)
                    if number is None:
                        continue
                    run.track(
                        number,
                        name=name,
                        step=env.iteration,
                        epoch=env.iteration,
                        context={"data_name": data_name},
                    )
            self.after_tracking(env=env)
            if env.iteration >= env.end_iteration - 1:
                self.close()

        def close(self) -> None:
            self._holder.close()

    AimCallback.__qualname__ = "AimCallback"  # pickle finds it through the module __getattr__
    return AimCallback


_lazy = lazy_classes(globals(), {"AimCallback": _build_callback})


def __getattr__(name: str) -> Any:
    return _lazy(name)
