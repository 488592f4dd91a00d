"""Transformers callback: `Trainer(callbacks=[AimCallback(...)])` tracks the Trainer's logs.

```
from aim_parquet.hugging_face import AimCallback
trainer = Trainer(model=model, args=args, train_dataset=ds, callbacks=[AimCallback(repo=".")])
```

- `TrainingArguments` go to `run["hparams"]` (tokens masked, as `to_dict()` does), the model's
  config to `run["model"]`;
- every numeric value of `on_log` is tracked at `step=state.global_step` and
  `epoch=floor(state.epoch)`. Names with a `train_`/`eval_`/`test_` prefix lose it and get
  `context={"subset": "train"|"eval"|"test"}`; with several evaluation datasets (keys like
  `eval_books_loss`) the dataset name goes to `context["sub_dataset"]`;
- only the world process zero writes; `on_train_end` closes the run, and a later log (a
  `trainer.evaluate()` after training) resumes the same run;
- under DDP (torchrun, Accelerate, SLURM) every other process opens the job's run as its own
  writer with system tracking only (system metrics with `{"rank": r, "host": h}`) from
  `on_train_begin` to `on_train_end`.

The class subclasses `transformers.TrainerCallback` and is created on first access of
`AimCallback`: importing this module does not import Transformers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from aim_parquet.integrations_base import (
    DEFAULT_SYSTEM_TRACKING_INTERVAL,
    RunHolder,
    as_epoch,
    as_number,
    import_framework,
    lazy_classes,
    process_rank,
    sanitize_params,
)

log = logging.getLogger(__name__)

__all__ = ["AimCallback"]  # noqa: F822 - built on first access by __getattr__

SUBSETS = ("train", "eval", "test")
_RUNTIME_SUFFIX = "_runtime"  # every Trainer train/evaluate/predict log has <prefix>_runtime


def split_log_key(key: str, metric_prefixes: Iterable[str] = ()) -> tuple[str, dict[str, Any]]:
    """`eval_loss` -> (`loss`, {"subset": "eval"}); `eval_books_loss` -> (`loss`, {"subset":
    "eval", "sub_dataset": "books"}) when `eval_books` is among `metric_prefixes` (the Trainer's
    `metric_key_prefix` values seen in the same log, found through their `_runtime` keys).
    """
    for prefix in sorted(metric_prefixes, key=len, reverse=True):
        subset, _, sub_dataset = prefix.partition("_")
        if subset in SUBSETS and key.startswith(prefix + "_") and len(key) > len(prefix) + 1:
            context: dict[str, Any] = {"subset": subset}
            if sub_dataset:
                context["sub_dataset"] = sub_dataset
            return key[len(prefix) + 1 :], context
    for subset in SUBSETS:
        if key.startswith(subset + "_") and len(key) > len(subset) + 1:
            return key[len(subset) + 1 :], {"subset": subset}
    return key, {}


def model_params(model: Any) -> dict[str, Any] | None:
    """The model's config as params (with `num_labels` where the model has it)."""
    config = getattr(model, "config", None)
    to_dict = getattr(config, "to_dict", None)
    if not callable(to_dict):
        return None
    params: dict[str, Any] = sanitize_params(to_dict())
    num_labels = getattr(model, "num_labels", None)
    if isinstance(num_labels, int):
        params["num_labels"] = num_labels
    return params


def _build_callback() -> Any:
    transformers = import_framework(
        ("transformers", "transformers.trainer_callback"),
        package="transformers",
        what="aim_parquet.hugging_face.AimCallback",
    )

    class AimCallback(transformers.TrainerCallback):  # type: ignore[misc,name-defined]
        """A Transformers `TrainerCallback` writing to an aim_parquet `Run` (Aim's `AimCallback`)."""

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
            self._has_warned_value = False

        @property
        def experiment(self) -> Any:
            """The `Run` (created, or resumed after `on_train_end`, on first use)."""
            return self._holder.run

        def setup(self, args: Any = None, state: Any = None, model: Any = None) -> None:
            if state is not None and not state.is_world_process_zero:
                return
            run = self.experiment
            if args is not None:
                to_dict = getattr(args, "to_dict", None)
                hparams = to_dict() if callable(to_dict) else vars(args)
                run.set("hparams", sanitize_params(hparams), strict=False)
            if model is not None:
                params = model_params(model)
                if params is not None:
                    run.set("model", params, strict=False)

        def on_train_begin(
            self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any
        ) -> None:
            if state.is_world_process_zero:
                self.setup(args, state, model)
            else:  # another rank of a distributed job: its system metrics only
                rank = getattr(args, "process_index", None)
                self._holder.open_rank_writer(rank if isinstance(rank, int) else process_rank())

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.close()  # on another rank: its system-only writer

        def on_log(
            self,
            args: Any,
            state: Any,
            control: Any,
            model: Any = None,
            logs: Mapping[str, Any] | None = None,
            **kwargs: Any,
        ) -> None:
            if not state.is_world_process_zero or not logs:
                return
            if not self._holder.is_open and self._holder.run_hash is None:
                self.setup(args, state, model)
            run = self.experiment
            prefixes = [k[: -len(_RUNTIME_SUFFIX)] for k in logs if k.endswith(_RUNTIME_SUFFIX)]
            epoch = as_epoch(state.epoch)
            for key, value in logs.items():
                number = as_number(value)
                if number is None:
                    if not self._has_warned_value:
                        self._has_warned_value = True
                        log.warning(
                            "AimCallback: Trainer logged %r=%r (%s), which is not a number; "
                            "such values are skipped.",
                            key,
                            value,
                            type(value).__name__,
                        )
                    continue
                name, context = split_log_key(key, prefixes)
                run.track(number, name=name, step=state.global_step, epoch=epoch, context=context)

        def close(self) -> None:
            """Close the run (a later log resumes it)."""
            self._holder.close()

    AimCallback.__qualname__ = "AimCallback"  # pickle finds it through the module __getattr__
    return AimCallback


_lazy = lazy_classes(globals(), {"AimCallback": _build_callback})


def __getattr__(name: str) -> Any:
    return _lazy(name)
