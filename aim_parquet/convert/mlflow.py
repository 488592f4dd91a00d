"""`aim-parquet convert mlflow PATH_OR_URI`: an MLflow tracking store, read without mlflow.

Two stores are read directly: the file store (`mlruns/`, see `mlflow_files`) and the SQLite
database of the SQL store (`mlflow.db`, see `mlflow_sqlite`); their layouts are the same in MLflow
2.x and 3.x for what is read here. What becomes what (`MlflowRun.read`):
- experiment name -> experiment; run name -> name; the `mlflow.note.content` tag -> description;
- params -> `run["params"]` (MLflow keeps them as strings, so do we);
- tags -> `run["tags"]` (as Aim's converter does); MLflow's own `mlflow.*` tags, the run id,
  status, user, source and artifact URI -> `run["mlflow"]`;
- start/end time -> creation/end time; every point of every metric history with its step and
  timestamp. A history whose steps repeat (`log_metric` without `step=` logs every point at
  step 0) or go below 0 cannot keep them as steps, since a step holds one value and steps are
  0..2**63-1: its points are numbered 0, 1, ... in (step, timestamp) order and the MLflow step is
  kept as the epoch; the metric is listed in `run["mlflow"]["renumbered_metrics"]`.
Deleted runs and deleted experiments are left out, as MLflow's own listing does.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from aim_parquet.convert.engine import FoundRuns, SourceRun
from aim_parquet.convert.mlflow_records import RunRecord, Store
from aim_parquet.convert.sink import CountingSink, needs_renumbering
from aim_parquet.errors import SourceError

SYSTEM_TAG_PREFIX = "mlflow."
NOTE_TAG = "mlflow.note.content"
RUN_NAME_TAG = "mlflow.runName"
SQLITE_MAGIC = b"SQLite format 3\x00"


class MlflowRun(SourceRun):
    tracker = "mlflow"

    def __init__(self, store: Store, record: RunRecord) -> None:
        name = record.info.get("name") or record.tags.get(RUN_NAME_TAG) or record.run_id
        super().__init__(record.run_id, f"{record.experiment_name}/{name}", record.experiment_name)
        self.store = store
        self.record = record
        self.name = str(name)

    def fingerprint(self) -> str:
        return self.store.fingerprint(self.record)

    def read(self, sink: CountingSink) -> None:
        record = self.record
        info = record.info
        renumbered: list[str] = []
        last_ms: int | None = None
        for key, points in self.store.metric_histories(record, sink):
            if not points:
                continue
            points.sort(key=lambda p: (p[2], p[0]))
            series = sink.series(key)
            if not needs_renumbering([p[2] for p in points]):
                for ts, value, step in points:
                    series.add(step, value, ts / 1000.0)
            else:
                renumbered.append(key)
                for index, (ts, value, step) in enumerate(points):
                    series.add(index, value, ts / 1000.0, step)
            newest = max(p[0] for p in points)
            last_ms = newest if last_ms is None else max(last_ms, newest)
        user_tags = {k: v for k, v in record.tags.items() if not k.startswith(SYSTEM_TAG_PREFIX)}
        system_tags = {k: v for k, v in record.tags.items() if k.startswith(SYSTEM_TAG_PREFIX)}
        if record.params:
            sink.set_param("params", dict(record.params))
        if user_tags:
            sink.set_param("tags", user_tags)
        mlflow: dict[str, Any] = {
            "run_id": record.run_id,
            "experiment_id": record.experiment_id,
            "store": self.store.location,
        }
        for key in (
            "status",
            "user_id",
            "artifact_uri",
            "lifecycle_stage",
            "source_type",
            "source_name",
            "entry_point_name",
            "source_version",
        ):
            field_value = info.get(key)
            if field_value is not None and field_value != "":
                mlflow[key] = field_value
        if system_tags:
            mlflow["tags"] = system_tags
        if renumbered:
            mlflow["renumbered_metrics"] = renumbered
        sink.set_param("mlflow", mlflow)
        sink.set_props(
            name=self.name,
            experiment=record.experiment_name,
            description=record.tags.get(NOTE_TAG),
        )
        start = _seconds(info.get("start_time"))
        end = _seconds(info.get("end_time"))
        if end is None and last_ms is not None:
            end = last_ms / 1000.0
        sink.set_times(creation_time=start, end_time=end if end is not None else start)


def _seconds(ms: Any) -> float | None:
    if ms is None or ms == "":
        return None
    value = float(ms) / 1000.0
    return value if math.isfinite(value) else None


def find_runs(source: str, experiment: str | None = None) -> FoundRuns:
    """The runs of the store at `source` (a path or a file:/sqlite: URI), optionally only those
    of one experiment (name or id)."""
    kind, path = resolve_store(source)
    if kind == "sqlite":
        from aim_parquet.convert.mlflow_sqlite import SqliteStore

        store: Any = SqliteStore(path)
    else:
        from aim_parquet.convert.mlflow_files import FileStore

        store = FileStore(path)
    records, problems = store.list_runs()
    if experiment is not None:
        records = [r for r in records if experiment in (r.experiment_name, r.experiment_id)]
        if not records:
            raise SourceError(
                f"no MLflow experiment named {experiment!r} (or with that id) in {source}"
            )
    return FoundRuns([MlflowRun(store, r) for r in records], problems)


def resolve_store(source: str) -> tuple[str, Path]:
    """('sqlite' | 'files', path) for a path or URI, or SourceError."""
    parsed = urlparse(source)
    if parsed.scheme == "sqlite":
        raw = unquote(source[len("sqlite:") :])
        if not raw.startswith("///"):
            raise SourceError(f"{source}: expected sqlite:///relative/path or sqlite:////abs/path")
        return _check_sqlite(Path(raw[3:]), source)  # SQLAlchemy's form, as MLflow writes it
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
    elif parsed.scheme and len(parsed.scheme) > 1:
        raise SourceError(
            f"{source}: only an MLflow file store (mlruns/) or a SQLite database can be read "
            "offline; for a tracking server, copy its backend store (or `mlflow.db`) here first"
        )
    else:
        path = Path(os.path.expanduser(source))
    if not path.exists():
        raise SourceError(
            f"MLflow store {source} does not exist; pass an mlruns/ folder or mlflow.db"
        )
    if path.is_file():
        return _check_sqlite(path, source)
    if (path / "mlruns").is_dir() and not (path / "0").is_dir():
        path = path / "mlruns"
    elif not any(path.glob("*/meta.yaml")) and (path / "mlflow.db").is_file():
        return _check_sqlite(path / "mlflow.db", source)
    if not any(path.glob("*/meta.yaml")):
        raise SourceError(
            f"{source} is not an MLflow file store (no <experiment>/meta.yaml in it) and holds "
            "no mlflow.db"
        )
    return "files", path


def _check_sqlite(path: Path, source: str) -> tuple[str, Path]:
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        raise SourceError(f"MLflow database {source} does not exist") from None
    except OSError as exc:
        raise SourceError(f"cannot read MLflow database {source}: {exc}") from exc
    if head != SQLITE_MAGIC:
        raise SourceError(f"{source} is not a SQLite database (MLflow's mlflow.db)")
    return "sqlite", path
