"""Keras callback: `model.fit(..., callbacks=[AimCallback(...)])` tracks the epoch logs.

```
from aim_parquet.keras import AimCallback
model.fit(x, y, validation_split=0.2, epochs=5, callbacks=[AimCallback(repo=".")])
```

- at the end of each epoch, every numeric log is tracked with `epoch=epoch`: `val_*` names lose
  the prefix and get `context={"subset": "val"}`, the others `{"subset": "train"}`; the
  optimizer's learning rate is tracked as `lr` (subset train). Steps count up per sequence, so
  a second `fit` continues the curves;
- at the start of training, the fit parameters (`epochs`, `steps`) and the optimizer's config
  go to `run["hparams"]`;
- `on_train_end` closes the run; a later `fit` with the same callback resumes it;
- in a distributed launch (torchrun, SLURM: `RANK`/`WORLD_SIZE` set) only rank 0 logs; every
  other rank opens the job's run as its own writer with system tracking only (system metrics
  with `{"rank": r, "host": h}`) for the length of `fit`.

Works with Keras 3 on any backend (`KERAS_BACKEND=torch` needs no TensorFlow). The class subclasses
`keras.callbacks.Callback` and is created on first access of `AimCallback` (or its alias
`AimTracker`): importing this module does not import Keras.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from aim_parquet.integrations_base import (
    DEFAULT_SYSTEM_TRACKING_INTERVAL,
    RunHolder,
    as_number,
    import_framework,
    lazy_classes,
    process_rank,
    sanitize_params,
)

log = logging.getLogger(__name__)

__all__ = ["AimCallback", "AimTracker"]  # noqa: F822 - built on first access by __getattr__

VAL_PREFIX = "val_"


def split_keras_key(key: str) -> tuple[str, dict[str, Any]]:
    """`val_loss` -> (`loss`, {"subset": "val"}); `loss` -> (`loss`, {"subset": "train"})."""
    if key.startswith(VAL_PREFIX) and len(key) > len(VAL_PREFIX):
        return key[len(VAL_PREFIX) :], {"subset": "val"}
    return key, {"subset": "train"}


def learning_rate(optimizer: Any) -> float | None:
    """The optimizer's current learning rate as a float, or None when it has none."""
    value = getattr(optimizer, "learning_rate", None)
    if value is None:
        return None
    if callable(value) and not hasattr(value, "numpy"):  # a schedule: evaluate at current step
        try:
            value = value(optimizer.iterations)
        except Exception:
            return None
    try:
        number = as_number(value)
        if number is None and hasattr(value, "numpy"):
            number = as_number(value.numpy())
    except Exception:
        return None
    return None if number is None else float(number)


def _build_callback() -> Any:
    callbacks = import_framework(
        ("keras", "keras.callbacks"), package="keras", what="aim_parquet.keras.AimCallback"
    )

    class AimCallback(callbacks.Callback):  # type: ignore[misc,name-defined]
        """A Keras `Callback` writing to an aim_parquet `Run` (Aim's `AimCallback`)."""

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
            """The `Run` (created, or resumed after training ended, on first use)."""
            return self._holder.run

        def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
            rank = process_rank()
            if rank > 0:  # another rank of a distributed job: its system metrics only
                self._holder.open_rank_writer(rank)
                return
            run = self.experiment
            params = {k: v for k, v in (self.params or {}).items() if k in ("epochs", "steps")}
            optimizer = getattr(self.model, "optimizer", None)
            get_config = getattr(optimizer, "get_config", None)
            if callable(get_config):
                try:
                    params["optimizer"] = get_config()
                except Exception as exc:  # a custom optimizer without a config
                    log.debug("AimCallback: optimizer.get_config() failed: %s", exc)
            for key, value in sanitize_params(params).items():
                run.set(("hparams", key), value, strict=False)

        def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
            if process_rank() > 0:
                return
            run = self.experiment
            for key, value in (logs or {}).items():
                number = as_number(value)
                if number is None:
                    log.debug("AimCallback: skipping non-numeric log %r=%r", key, value)
                    continue
                name, context = split_keras_key(key)
                run.track(number, name=name, epoch=epoch, context=context)
            lr = learning_rate(getattr(self.model, "optimizer", None))
            if lr is not None:
                run.track(lr, name="lr", epoch=epoch, context={"subset": "train"})

        def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
            self.close()

        def close(self) -> None:
            """Close the run (a later `fit` resumes it)."""
            self._holder.close()

    AimCallback.__qualname__ = "AimCallback"  # pickle finds it through the module __getattr__
    return AimCallback


def _alias() -> Any:
    return __getattr__("AimCallback")


_lazy = lazy_classes(globals(), {"AimCallback": _build_callback, "AimTracker": _alias})


def __getattr__(name: str) -> Any:
    return _lazy(name)
