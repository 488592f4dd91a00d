"""Shared set-up for the framework tests (`pytest -m integrations tests/integrations`).

Everything runs offline on the CPU: no hub downloads, Keras on its torch backend.
`stored_runs` reads back what an adapter wrote through the query API (`Repo`), the way a user
would look at it.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

# Before any framework is imported (collection imports the test modules).
os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")

# `filterwarnings = error` stays in force for aim_parquet and the tests; warnings that the
# frameworks raise about themselves or each other (deprecations between torch and lightning, no
# GPU, few dataloader workers, pynvml's own deprecation) are ignored, in this folder's tests only.
NOT_OURS = r"(?!aim_parquet|tests)"
THIRD_PARTY_WARNINGS = [
    f"ignore::{category}:{NOT_OURS}"
    for category in (
        "DeprecationWarning",
        "PendingDeprecationWarning",
        "FutureWarning",
        "UserWarning",
    )
] + ["ignore:The pynvml package is deprecated:FutureWarning"]
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.resolve().parents:
            for line in THIRD_PARTY_WARNINGS:
                item.add_marker(pytest.mark.filterwarnings(line))


def import_or_skip(name: str) -> Any:
    """`pytest.importorskip(name)`, with the framework's own import-time warnings silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pytest.importorskip(name)


@dataclass
class StoredRun:
    """One run as stored: its sidecar fields and its metric points."""

    hash: str
    name: str
    experiment: str
    params: dict[str, Any]
    end_time: float | None
    creation_time: float
    # (name, sorted context items) -> [(step, value, epoch), ...] sorted by step
    metrics: dict[tuple[str, tuple[tuple[str, Any], ...]], list[tuple[int, float, int | None]]] = (
        field(default_factory=dict)
    )
    # (name, sorted context items) -> (kind, [(step, object), ...]) with objects decoded
    objects: dict[tuple[str, tuple[tuple[str, Any], ...]], tuple[str, list[tuple[int, Any]]]] = (
        field(default_factory=dict)
    )

    def metric(self, name: str, **context: Any) -> list[tuple[int, float, int | None]]:
        key = (name, tuple(sorted(context.items())))
        assert key in self.metrics, f"no metric {key}; have {sorted(self.metrics)}"
        return self.metrics[key]

    def names(self, **context: Any) -> set[str]:
        ctx = tuple(sorted(context.items()))
        return {name for name, c in self.metrics if c == ctx}


def stored_runs(root: Path) -> list[StoredRun]:
    """Every run under `root` (the folder holding `.aim`), oldest first, read through `Repo`."""
    from aim_parquet import Repo
    from aim_parquet.sdk.collections import QueryReportMode

    quiet = QueryReportMode.DISABLED
    repo = Repo(str(root))
    runs = {
        run.hash: StoredRun(
            hash=run.hash,
            name=run.name,
            experiment=run.experiment,
            params=run[...],
            end_time=run.end_time,
            creation_time=run.creation_time,
        )
        for run in repo.iter_runs()
    }
    for seq in repo.query_metrics("", report_mode=quiet):
        key = (seq.name, tuple(sorted(seq.context.to_dict().items())))
        steps, values = seq.values.sparse_numpy()
        _, epochs = seq.epochs.sparse_numpy()
        runs[seq.run.hash].metrics[key] = [
            (int(s), float(v), None if e is None or e != e else int(e))  # None epochs read as NaN
            for s, v, e in zip(steps.tolist(), values.tolist(), epochs.tolist(), strict=True)
        ]
    for seq in repo.query_distributions("", report_mode=quiet):
        key = (seq.name, tuple(sorted(seq.context.to_dict().items())))
        steps, objects = seq.values.sparse_list()
        runs[seq.run.hash].objects[key] = (seq.dtype, list(zip(steps, objects, strict=True)))
    return sorted(runs.values(), key=lambda r: r.creation_time)


def query(root: Path, what: str, expression: str) -> list[Any]:
    """`Repo(root).query_<what>(expression)` as a list (sequences; runs for `what="runs"`)."""
    from aim_parquet import Repo
    from aim_parquet.sdk.collections import QueryReportMode

    method = getattr(Repo(str(root)), f"query_{what}")
    collection = method(expression, report_mode=QueryReportMode.DISABLED)
    if what == "runs":
        return [c.run for c in collection.iter_runs()]
    return list(collection)


def only_run(root: Path) -> StoredRun:
    runs = stored_runs(root)
    assert len(runs) == 1, f"expected one run, found {len(runs)}"
    return runs[0]


QUIET = {
    "system_tracking_interval": None,
    "log_system_params": False,
    "capture_terminal_logs": False,
}
