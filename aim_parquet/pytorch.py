"""PyTorch helpers: track per-layer weight/bias histograms of a model as `Distribution`s.

```
from aim_parquet.pytorch import track_gradients_dists, track_params_dists
loss.backward()
track_gradients_dists(model, run)   # before optimizer.zero_grad()
optimizer.step()
track_params_dists(model, run)
```

Each leaf module with a `weight` and/or `bias` is one sequence, named as Aim names it: each
module on the path written `<child name>.<class>`, joined by `__` (`encoder.Sequential__0.Linear`
for `model.encoder[0]`). The context
says what was tracked: `{"type": "data" | "gradients", "params": "weights" | "biases"}`. Steps
count up per sequence (one step per call). Tensors are copied to the CPU; torch is needed only
because the model is a torch model, and is imported when a function is called.

Under DDP the model may be passed wrapped (`DistributedDataParallel`, or anything with a
`.module`): layer names are those of the wrapped model, as in a single process. Its weights and
(all-reduced) gradients are the same on every rank, so by default only rank 0 tracks them
(`rank_zero_only=False` tracks every rank's, each in its rank's context).
"""

from __future__ import annotations

import logging
from typing import Any

from aim_parquet.integrations_base import import_framework, process_rank

log = logging.getLogger(__name__)

__all__ = ["get_model_layers", "track_gradients_dists", "track_params_dists"]

_PARAMS = (("weight", "weights"), ("bias", "biases"))


def _leaf_layers(model: Any, parent: str | None = None) -> list[tuple[str, Any]]:
    """(Aim layer name, module) for every leaf module under `model`, depth first."""
    layers: list[tuple[str, Any]] = []
    for child_name, module in model.named_children():
        name = f"{parent}__{child_name}" if parent else child_name
        name += f".{type(module).__name__}"
        if any(True for _ in module.named_children()):
            layers.extend(_leaf_layers(module, name))
        else:
            layers.append((name, module))
    return layers


def get_model_layers(model: Any, dt: str) -> dict[str, dict[str, Any]]:
    """`{layer name: {"weight": ndarray, "bias": ndarray}}` of each leaf layer's `.data` (dt
    `"data"`) or `.grad` (dt `"grad"`); missing tensors (no bias, no gradient yet) are left out.
    A model without children counts as one layer named after its class.
    """
    import_framework("torch", package="torch", what="aim_parquet.pytorch")
    layers = _leaf_layers(model) or [(type(model).__name__, model)]
    out: dict[str, dict[str, Any]] = {}
    for name, module in layers:
        tensors: dict[str, Any] = {}
        for attr, _ in _PARAMS:
            param = getattr(module, attr, None)
            tensor = getattr(param, dt, None) if param is not None else None
            if tensor is not None and hasattr(tensor, "detach"):
                tensors[attr] = tensor.detach().float().cpu().numpy()
        out[name] = tensors
    return out


def _unwrapped(model: Any) -> Any:
    """The model a DDP / DataParallel wrapper holds (`.module`), else `model`."""
    torch = import_framework("torch", package="torch", what="aim_parquet.pytorch")
    wrappers = (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)
    while isinstance(model, wrappers):
        model = model.module
    return model


def _track_dists(model: Any, run: Any, dt: str, kind: str, rank_zero_only: bool) -> None:
    from aim_parquet.objects import Distribution, InvalidObjectError

    if rank_zero_only and process_rank() > 0:
        return
    model = _unwrapped(model)
    for name, tensors in get_model_layers(model, dt).items():
        for attr, label in _PARAMS:
            values = tensors.get(attr)
            if values is None or values.size == 0:
                continue
            try:
                dist = Distribution(values)
            except InvalidObjectError as exc:  # e.g. every value NaN after a diverged step
                log.warning(
                    "aim_parquet.pytorch: %s %s of %s not tracked: %s", kind, label, name, exc
                )
                continue
            run.track(dist, name=name, context={"type": kind, "params": label})


def track_params_dists(model: Any, run: Any, *, rank_zero_only: bool = True) -> None:
    """Track a histogram of each layer's weights and biases (context type `data`). In a
    distributed job only rank 0 tracks, unless `rank_zero_only=False`."""
    _track_dists(model, run, "data", "data", rank_zero_only)


def track_gradients_dists(model: Any, run: Any, *, rank_zero_only: bool = True) -> None:
    """Track a histogram of each layer's weight and bias gradients (context type `gradients`);
    call it after `backward()` and before `zero_grad()`. In a distributed job only rank 0
    tracks, unless `rank_zero_only=False`.
    """
    _track_dists(model, run, "grad", "gradients", rank_zero_only)
