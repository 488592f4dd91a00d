"""Lightning logger: `Trainer(logger=AimLogger(...))` tracks every `self.log(...)` into a Run.

```
from aim_parquet.pytorch_lightning import AimLogger
trainer = lightning.Trainer(logger=AimLogger(repo=".", experiment="mnist"))
```

- hyperparameters (`self.save_hyperparameters()`, `logger.log_hyperparams`) go to `run["hparams"]`;
- metric name prefixes map to contexts: `train_loss` -> `loss` with `{"subset": "train"}` (also
  `val_`, `test_`; configurable, see `context_prefixes` / `context_postfixes`);
- the `epoch` Lightning adds to each metrics dict becomes the points' `epoch`;
- `finalize()` (end of `fit`/`test`) closes the run; logging again (a `test` after `fit`)
  resumes the same run; `AimLogger(run_hash=...)` resumes an earlier run;
- under DDP (`strategy="ddp"`, torchrun, SLURM) rank 0 logs as above; every other rank opens the
  job's run as its own writer with system tracking only (system metrics with `{"rank": r,
  "host": h}`) from the start of `fit` to `finalize()`: no metric or param is written twice.

The class subclasses Lightning's `Logger`, so it is created on first access of `AimLogger` (module
`__getattr__`): importing this module does not import Lightning. Works with the `lightning`
package (preferred) and with the older standalone `pytorch_lightning`.
"""

from __future__ import annotations

import logging
from argparse import Namespace
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from aim_parquet.format.run_fields import experiment_or_default
from aim_parquet.integrations_base import (
    DEFAULT_SYSTEM_TRACKING_INTERVAL,
    ContextAffixes,
    RunHolder,
    as_epoch,
    as_number,
    import_framework,
    lazy_classes,
    sanitize_params,
)

log = logging.getLogger(__name__)

__all__ = ["AimLogger"]  # noqa: F822 - built on first access by __getattr__

_WHAT = "aim_parquet.pytorch_lightning.AimLogger"
_Method = TypeVar("_Method", bound=Callable[..., Any])


def _lightning_modules() -> tuple[Any, Any]:
    """The modules holding `Logger` and `rank_zero_only`: lightning, else pytorch_lightning."""
    try:
        loggers = import_framework(
            ("lightning", "lightning.pytorch.loggers.logger"), package="lightning", what=_WHAT
        )
        utils = import_framework("lightning.pytorch.utilities", package="lightning", what=_WHAT)
    except ImportError as exc:
        try:
            loggers = import_framework(
                ("pytorch_lightning", "pytorch_lightning.loggers.logger"),
                package="lightning",
                what=_WHAT,
            )
            utils = import_framework("pytorch_lightning.utilities", package="lightning", what=_WHAT)
        except ImportError:
            raise exc from None
    return loggers, utils


def context_affixes(
    *,
    train_metric_prefix: str | None,
    val_metric_prefix: str | None,
    test_metric_prefix: str | None,
    context_prefixes: Mapping[str, Mapping[str, str]] | None,
    context_postfixes: Mapping[str, Mapping[str, str]] | None,
) -> ContextAffixes:
    """The name->context mapping from AimLogger's arguments (Aim's rules).

    Without `context_prefixes`, the three `*_metric_prefix` arguments give the `subset` context;
    with it, they must stay at their defaults (the mapping replaces them).
    """
    subset_args = {
        "train": train_metric_prefix,
        "val": val_metric_prefix,
        "test": test_metric_prefix,
    }
    if context_prefixes is None:
        prefixes: Mapping[str, Mapping[str, str]] = {
            "subset": {subset: p for subset, p in subset_args.items() if p}
        }
    else:
        defaults = {"train": "train_", "val": "val_", "test": "test_"}
        changed = [f"{s}_metric_prefix" for s, p in subset_args.items() if p != defaults[s]]
        if changed:
            raise ValueError(
                f"AimLogger got both context_prefixes and {', '.join(changed)}; put the subset "
                "prefixes into context_prefixes, e.g. {'subset': {'train': 'train/'}}."
            )
        prefixes = context_prefixes
    for label, mapping in (
        ("context_prefixes", prefixes),
        ("context_postfixes", context_postfixes),
    ):
        for key, values in (mapping or {}).items():
            if not isinstance(values, Mapping) or not all(
                isinstance(a, str) for a in values.values()
            ):
                raise ValueError(
                    f"{label}[{key!r}] must map context values to str affixes, e.g. "
                    "{'subset': {'train': 'train_', 'val': 'val_'}}."
                )
    return ContextAffixes(prefixes=prefixes, postfixes=context_postfixes or {})


def hparams_dict(params: Any) -> dict[str, Any]:
    """Lightning hyperparameters (dict, Namespace, OmegaConf, AttributeDict) as a plain dict."""
    if params is None:
        return {}
    if isinstance(params, Namespace):
        params = vars(params)
    if type(params).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        params = OmegaConf.to_container(params, resolve=True)
    if not isinstance(params, Mapping):
        raise TypeError(
            f"log_hyperparams() takes a dict or argparse.Namespace, got {type(params).__name__}."
        )
    out: dict[str, Any] = sanitize_params(params)
    return out


def _build_logger() -> Any:
    loggers, utils = _lightning_modules()
    rank_zero: Any = utils.rank_zero_only  # `.rank` is this process's global rank
    rank_zero_experiment: Callable[[_Method], _Method] = loggers.rank_zero_experiment

    class AimLogger(loggers.Logger):  # type: ignore[misc,name-defined]
        """A Lightning `Logger` that writes to an aim_parquet `Run` (Aim's `AimLogger`)."""

        def __init__(
            self,
            repo: Any = None,
            experiment: str | None = None,
            train_metric_prefix: str | None = "train_",
            val_metric_prefix: str | None = "val_",
            test_metric_prefix: str | None = "test_",
            system_tracking_interval: float | None = DEFAULT_SYSTEM_TRACKING_INTERVAL,
            log_system_params: bool | None = True,
            capture_terminal_logs: bool | None = True,
            run_name: str | None = None,
            run_hash: str | None = None,
            context_prefixes: Mapping[str, Mapping[str, str]] | None = None,
            context_postfixes: Mapping[str, Mapping[str, str]] | None = None,
        ) -> None:
            super().__init__()
            self._experiment_name = experiment
            self._repo_path = repo
            self._affixes = context_affixes(
                train_metric_prefix=train_metric_prefix,
                val_metric_prefix=val_metric_prefix,
                test_metric_prefix=test_metric_prefix,
                context_prefixes=context_prefixes,
                context_postfixes=context_postfixes,
            )
            self._holder = RunHolder(
                repo=repo,
                experiment=experiment,
                system_tracking_interval=system_tracking_interval,
                log_system_params=log_system_params,
                capture_terminal_logs=capture_terminal_logs,
                run_hash=run_hash,
                run_name=run_name,
            )

        @property
        @rank_zero_experiment
        def experiment(self) -> Any:
            """The `Run` (created, or resumed after `finalize`, on first use)."""
            return self._holder.run

        def _on_other_rank(self) -> bool:
            """On a rank other than 0 (Lightning calls some hooks on every rank): open this
            rank's system-only writer and say True."""
            rank = int(getattr(rank_zero, "rank", 0) or 0)
            if rank > 0:
                self._holder.open_rank_writer(rank)
            return rank > 0

        def log_graph(self, model: Any, input_array: Any = None) -> None:
            """Called on every rank at the start of `fit`: other ranks attach here."""
            self._on_other_rank()

        def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
            if self._on_other_rank():
                return
            run = self.experiment
            for key, value in hparams_dict(params).items():
                run.set(("hparams", key), value, strict=False)

        def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
            if self._on_other_rank():
                return
            items = dict(metrics)
            epoch = as_epoch(items.pop("epoch", None))
            run = self.experiment
            for key, value in items.items():
                number = as_number(value)
                if number is None:
                    log.debug("AimLogger: skipping non-numeric metric %r=%r", key, value)
                    continue
                name, context = self._affixes.split(key)
                run.track(number, name=name, step=step, epoch=epoch, context=context)

        def finalize(self, status: str = "") -> None:
            super().finalize(status)
            self._holder.close()  # on another rank: its system-only writer

        def close(self) -> None:
            self._holder.close()

        @property
        def save_dir(self) -> str | None:
            return None if self._repo_path is None else str(self._repo_path)

        @property
        def name(self) -> str:
            return experiment_or_default(self._experiment_name)

        @property
        def version(self) -> str:
            """The run hash (Lightning names checkpoint folders after it)."""
            if self._holder.run_hash is None and rank_zero.rank == 0:
                return str(self.experiment.hash)
            return self._holder.run_hash or ""

        @property
        def run_hash(self) -> str | None:
            return self._holder.run_hash

    AimLogger.__qualname__ = "AimLogger"  # pickle finds it through the module __getattr__
    return AimLogger


_lazy = lazy_classes(globals(), {"AimLogger": _build_logger})


def __getattr__(name: str) -> Any:
    return _lazy(name)
