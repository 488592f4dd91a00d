"""MLflow's SQL store in SQLite (`mlflow.db`), read with the standard library, read-only.

Tables used (MLflow 1.x to 3.x): `experiments` (experiment_id, name, lifecycle_stage), `runs`
(run_uuid, name, status, start_time, end_time, lifecycle_stage, experiment_id, user_id,
artifact_uri, source_*), `params` / `tags` (key, value, run_uuid) and `metrics` (key, value,
timestamp, step, is_nan, run_uuid; a NaN is stored as 0 with is_nan = 1).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aim_parquet.convert.mlflow_records import Point, RunRecord
from aim_parquet.convert.sink import CountingSink
from aim_parquet.errors import SourceError

DELETED = "deleted"
_RUN_FIELDS = (
    "status",
    "start_time",
    "end_time",
    "user_id",
    "artifact_uri",
    "lifecycle_stage",
    "source_type",
    "source_name",
    "entry_point_name",
    "source_version",
)


class SqliteStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.location = f"sqlite:///{path.resolve()}"
        try:
            # as a URI, so that '#', '?' or '%' in the path are not read as URI syntax (which
            # opened, and created, another file)
            self.db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            self.db.row_factory = sqlite3.Row
            tables = {r[0] for r in self.db.execute("select name from sqlite_master")}
        except sqlite3.Error as exc:
            raise SourceError(f"cannot read MLflow database {path}: {_explain(path, exc)}") from exc
        missing = {"experiments", "runs", "metrics", "params", "tags"} - tables
        if missing:
            raise SourceError(
                f"{path} is a SQLite database but not MLflow's (no {', '.join(sorted(missing))} "
                "table)"
            )

    def list_runs(self) -> tuple[list[RunRecord], list[str]]:
        try:
            return self._list_runs(), []
        except sqlite3.Error as exc:
            raise SourceError(
                f"cannot read MLflow database {self.path}: {_explain(self.path, exc)}"
            ) from exc

    def _list_runs(self) -> list[RunRecord]:
        experiments = {
            str(row["experiment_id"]): row
            for row in self.db.execute("select * from experiments order by experiment_id")
        }
        records: list[RunRecord] = []
        for row in self.db.execute(
            "select * from runs order by experiment_id, start_time, run_uuid"
        ):
            exp = experiments.get(str(row["experiment_id"]))
            if (
                row["lifecycle_stage"] == DELETED
                or exp is None
                or exp["lifecycle_stage"] == DELETED
            ):
                continue
            keys = row.keys()
            info: dict[str, Any] = {k: row[k] for k in _RUN_FIELDS if k in keys}
            info["name"] = row["name"] if "name" in keys else None
            run_id = str(row["run_uuid"])
            records.append(
                RunRecord(
                    run_id,
                    str(row["experiment_id"]),
                    str(exp["name"]),
                    info,
                    params=self._pairs("params", run_id),
                    tags=self._pairs("tags", run_id),
                )
            )
        return records

    def _pairs(self, table: str, run_id: str) -> dict[str, str]:
        rows = self.db.execute(f"select key, value from {table} where run_uuid = ?", (run_id,))
        return {str(k): "" if v is None else str(v) for k, v in rows}

    def fingerprint(self, record: RunRecord) -> str:
        count, newest = self.db.execute(
            "select count(*), max(timestamp) from metrics where run_uuid = ?", (record.run_id,)
        ).fetchone()
        info = record.info
        text = repr(
            (
                info.get("status"),
                info.get("end_time"),
                count,
                newest,
                sorted(record.params.items()),
                sorted(record.tags.items()),
            )
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def metric_histories(
        self, record: RunRecord, sink: CountingSink
    ) -> Iterator[tuple[str, list[Point]]]:
        rows = self.db.execute(
            "select key, value, timestamp, step, is_nan from metrics where run_uuid = ? "
            "order by key",
            (record.run_id,),
        )
        current: str | None = None
        points: list[Point] = []
        for key, value, timestamp, step, is_nan in rows:
            if key != current:
                if current is not None:
                    yield current, points
                current, points = key, []
            points.append((int(timestamp), float("nan") if is_nan else float(value), int(step)))
        if current is not None:
            yield current, points


def _explain(path: Path, exc: sqlite3.Error) -> str:
    """SQLite's message, with what it means for a database only read."""
    text = str(exc)
    journal = path.with_name(path.name + "-journal")
    if "readonly" in text and journal.exists():
        return (
            f"a writer stopped in the middle of a transaction and left {journal.name}, which "
            "only a writer may roll back; open the database once with MLflow (or run "
            f"`sqlite3 {path} 'pragma quick_check'`), then convert again"
        )
    if "locked" in text:
        return f"{text}: another process is writing to it; convert again once it has finished"
    return text
