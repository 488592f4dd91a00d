"""XGBoost callback: `xgb.train(..., callbacks=[AimCallback(...)])` tracks the evaluation log.

```
from aim_parquet.xgboost import AimCallback
xgb.train(params, dtrain, 50, evals=[(dtrain, "train"), (dvalid, "valid")],
          callbacks=[AimCallback(repo=".", experiment="xgb")])
```

- after each boosting round, each metric of each evaluation set is tracked with
  `step=epoch=round` and `context={"subset": <eval name>, "stdv": False}`; under `xgb.cv` the
  fold standard deviation is tracked too, with `"stdv": True` (Aim uses the `stdv` key alone,
  which mixes the evaluation sets; we add `subset`);
- the booster's training parameters (from `Booster.save_config()`) go to `run["hparams"]`;
- `after_training` closes the run.

The class subclasses `xgboost.callback.TrainingCallback` and is created on first access of
`AimCallback`: importing this module does not import XGBoost.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from aim_parquet.integrations_base import (
    DEFAULT_SYSTEM_TRACKING_INTERVAL,
    RunHolder,
    as_number,
    import_framework,
    lazy_classes,
)

log = logging.getLogger(__name__)

__all__ = ["AimCallback"]  # noqa: F822 - built on first access by __getattr__


def _config_value(text: Any) -> Any:
    """XGBoost's config holds every value as a string: give numbers back their type."""
    if not isinstance(text, str):
        return text
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            continue
    return text


def booster_params(config_json: str) -> dict[str, Any]:
    """The training parameters from `Booster.save_config()`: objective, booster, eta, depth, ..."""
    learner = json.loads(config_json).get("learner", {})
    params: dict[str, Any] = {}
    sections = [learner.get("learner_train_param", {})]
    booster = learner.get("gradient_booster", {})
    if isinstance(booster, Mapping):
        sections.extend(v for k, v in booster.items() if k.endswith("train_param"))
        if isinstance(booster.get("name"), str):
            params["booster"] = booster["name"]
    seed = learner.get("generic_param", {}).get("seed")
    if seed is not None:
        params["seed"] = seed
    for section in sections:
        if isinstance(section, Mapping):
            params.update(section)
    return {k: _config_value(v) for k, v in params.items()}


def _build_callback() -> Any:
    callback = import_framework(
        ("xgboost", "xgboost.callback"), package="xgboost", what="aim_parquet.xgboost.AimCallback"
    )

    class AimCallback(callback.TrainingCallback):  # type: ignore[misc,name-defined]
        """An XGBoost `TrainingCallback` writing to an aim_parquet `Run` (Aim's `AimCallback`)."""

        def __init__(
            self,
            repo: Any = None,
            experiment: str | None = None,
            system_tracking_interval: float | None = DEFAULT_SYSTEM_TRACKING_INTERVAL,
            log_system_params: bool | None = True,
            capture_terminal_logs: bool | None = True,
        ) -> None:
            super().__init__()
            self._holder = RunHolder(
                repo=repo,
                experiment=experiment,
                system_tracking_interval=system_tracking_interval,
                log_system_params=log_system_params,
                capture_terminal_logs=capture_terminal_logs,
            )

        @property
        def experiment(self) -> Any:
            """The `Run` (created on first use)."""
            return self._holder.run

        def setup(self) -> None:
            """Create the run now (otherwise the first round does)."""
            _ = self._holder.run

        def before_training(self, model: Any) -> Any:
            run = self.experiment
            save_config = getattr(model, "save_config", None)  # absent on xgb.cv's packed booster
            if callable(save_config):
                try:
                    run.set("hparams", booster_params(save_config()), strict=False)
                except (ValueError, TypeError) as exc:
                    log.warning("AimCallback: could not read the booster's parameters: %s", exc)
            return model

        def after_iteration(self, model: Any, epoch: int, evals_log: Mapping[str, Any]) -> bool:
            run = self.experiment
            for data, metrics in (evals_log or {}).items():
                for metric_name, history in metrics.items():
                    if not history:
                        continue
                    last = history[-1]
                    score, stdv = (last[0], last[1]) if isinstance(last, tuple) else (last, None)
                    for value, is_stdv in ((score, False), (stdv, True)):
                        number = as_number(value)
                        if number is None:
                            continue
                        context = {"subset": data, "stdv": is_stdv}
                        run.track(
                            number, name=metric_name, step=epoch, epoch=epoch, context=context
                        )
            return False

        def after_training(self, model: Any) -> Any:
            self.close()
            return model

        def close(self) -> None:
            self._holder.close()

    AimCallback.__qualname__ = "AimCallback"  # pickle finds it through the module __getattr__
    return AimCallback


_lazy = lazy_classes(globals(), {"AimCallback": _build_callback})


def __getattr__(name: str) -> Any:
    return _lazy(name)
