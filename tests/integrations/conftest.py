"""Shared set-up for the framework tests (`pytest -m integrations tests/integrations`).

Everything runs offline on the CPU: no hub downloads, Keras on its torch backend, no CUDA.
`stored_runs` reads back what an adapter wrote, through the storage reader (an independent path
from the adapters, which only write through `Run`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

# Before any framework is imported (collection imports the test modules).
os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")

# `filterwarnings = error` stays in force for aim_parquet and the tests; warnings that the
# frameworks raise about themselves or each other (deprecations between torch and lightning, no
# GPU, few dataloader workers, pynvml's own deprecation) are ignored here.
NOT_OURS = r"(?!aim_parquet|tests)"
THIRD_PARTY_WARNINGS = [
    f"ignore::{category}:{NOT_OURS}"
    for category in ("DeprecationWarning", "PendingDeprecationWarning", "FutureWarning", "UserWarning")
] + ["ignore:The pynvml package is deprecated:FutureWarning"]


def pytest_configure(config: pytest.Config) -> None:
    for line in THIRD_PARTY_WARNINGS:
        config.addinivalue_line("filterwarnings", line)


@dataclass
class StoredRun:
    """One run as stored: its sidecar fields and its metric points."""

    hash: str
    name: str
    experiment: str
    params: dict[str, Any]
    end_time: float | None
    # (name, sorted context items) -> [(step, value, epoch), ...] sorted by step
    metrics: dict[tuple[str, tuple[tuple[str, Any], ...]], list[tuple[int, float, int | None]]] = (
        field(default_factory=dict)
    )
    objects: dict[tuple[str, tuple[tuple[str, Any], ...]], str] = field(default_factory=dict)

    def metric(self, name: str, **context: Any) -> list[tuple[int, float, int | None]]:
        key = (name, tuple(sorted(context.items())))
        assert key in self.metrics, f"no metric {key}; have {sorted(self.metrics)}"
        return self.metrics[key]

    def names(self, **context: Any) -> set[str]:
        ctx = tuple(sorted(context.items()))
        return {name for name, c in self.metrics if c == ctx}


def stored_runs(root: Path) -> list[StoredRun]:
    """Every run under `root` (the folder holding `.aim`), in creation order."""
    from aim_parquet.format.paths import RepoLayout
    from aim_parquet.storage.run_reader import (
        discover_sequences,
        list_run_hashes,
        load_run_meta,
        read_sequence,
    )

    layout = RepoLayout(Path(root))
    runs = []
    for run_hash in list_run_hashes(layout):
        meta = load_run_meta(layout, run_hash)
        stored = StoredRun(
            hash=run_hash,
            name=meta.display_name,
            experiment=meta.experiment,
            params=meta.params,
            end_time=meta.end_time,
        )
        for info in discover_sequences(layout, run_hash, meta):
            key = (info.name, tuple(sorted(info.context.items())))
            if not info.is_metric:
                stored.objects[key] = info.kind
                continue
            table = read_sequence(layout, run_hash, info).to_pydict()
            stored.metrics[key] = list(
                zip(table["step"], table["value"], table["epoch"], strict=True)
            )
        runs.append((meta.creation_time, stored))
    return [r for _, r in sorted(runs, key=lambda t: t[0])]


def only_run(root: Path) -> StoredRun:
    runs = stored_runs(root)
    assert len(runs) == 1, f"expected one run, found {len(runs)}"
    return runs[0]


QUIET = {"system_tracking_interval": None, "log_system_params": False, "capture_terminal_logs": False}
