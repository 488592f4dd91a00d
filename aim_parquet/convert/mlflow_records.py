"""What the two MLflow store readers (`mlflow_files`, `mlflow_sqlite`) hand the converter
(`mlflow`): one run's record, its metric points, and the store protocol."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from aim_parquet.convert.sink import CountingSink

STATUS_NAMES = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}

# one metric point: (timestamp in ms, value, step)
Point = tuple[int, float, int]


@dataclass
class RunRecord:
    """What a store says about one run, before its metrics are read."""

    run_id: str
    experiment_id: str
    experiment_name: str
    info: dict[str, Any]  # name, status, start_time, end_time (ms), user_id, artifact_uri, ...
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


class Store(Protocol):
    location: str

    def fingerprint(self, record: RunRecord) -> str: ...

    def metric_histories(
        self, record: RunRecord, sink: CountingSink
    ) -> Iterator[tuple[str, list[Point]]]: ...
