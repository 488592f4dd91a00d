"""The analyst dataset's layout (FORMAT.md, "The analyst dataset"): the folder and file names,
the columns of its metrics files, the bucket of a run and `current.json`, the commit point.

The refresh (`storage.compaction.dataset`) and every reader ask this module; it does no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from aim_parquet.errors import FormatVersionError
from aim_parquet.format.paths import RepoLayout

DATASET_DIRNAME = "dataset"
CURRENT_FILENAME = "current.json"
LOCK_FILENAME = "lock"
DATASET_FORMAT = "aim_parquet.dataset"
DATASET_FORMAT_VERSION = 1
DEFAULT_BUCKETS = 16
FILE_NAME = re.compile(r"^(metrics-[0-9a-f]{2}|runs)-[0-9]{6}\.parquet$")

# the columns before the context keys, and after them
HEAD_FIELDS = [
    pa.field("run_hash", pa.string(), nullable=False),
    pa.field("archived", pa.bool_(), nullable=False),
    pa.field("active", pa.bool_(), nullable=False),
    pa.field("seq_id", pa.string(), nullable=False),
    pa.field("name", pa.string(), nullable=False),
    pa.field("context", pa.string(), nullable=False),
]
TAIL_FIELDS = [
    pa.field("step", pa.int64(), nullable=False),
    pa.field("epoch", pa.int64()),
    pa.field("timestamp", pa.float64(), nullable=False),
    pa.field("value", pa.float64(), nullable=False),
]
COLUMN_TYPES = {
    "bool": pa.bool_(),
    "int64": pa.int64(),
    "double": pa.float64(),
    "string": pa.string(),
}


def dataset_dir(layout: RepoLayout) -> Path:
    return layout.aim_dir / DATASET_DIRNAME


@dataclass(frozen=True)
class DatasetManifest:
    """`current.json` (see FORMAT.md for each field)."""

    generation: int
    created_at: float
    buckets: int
    metrics: tuple[str, ...]  # file name of each bucket, in bucket order
    runs: str
    context_columns: dict[str, str]  # column name -> "bool" | "int64" | "double" | "string"
    run_states: dict[str, str]  # run hash -> fingerprint of its files
    retired: tuple[tuple[str, float], ...] = ()  # (file name, Unix time it was superseded)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": DATASET_FORMAT,
            "format_version": DATASET_FORMAT_VERSION,
            "generation": self.generation,
            "created_at": self.created_at,
            "buckets": self.buckets,
            "metrics": list(self.metrics),
            "runs": self.runs,
            "context_columns": self.context_columns,
            "run_states": self.run_states,
            "retired": [{"file": f, "retired_at": t} for f, t in self.retired],
        }

    @classmethod
    def from_json(cls, doc: Any) -> DatasetManifest:
        if not isinstance(doc, dict) or doc.get("format") != DATASET_FORMAT:
            raise ValueError("not an analyst dataset manifest")
        version = doc.get("format_version")
        if not isinstance(version, int) or version > DATASET_FORMAT_VERSION:
            raise FormatVersionError(
                f"the analyst dataset was written by a newer aim_parquet (format version "
                f"{version!r}); upgrade aim_parquet to read or refresh it."
            )
        metrics = tuple(doc["metrics"])
        names = [*metrics, doc["runs"], *(r["file"] for r in doc.get("retired", ()))]
        if not all(isinstance(n, str) and FILE_NAME.match(n) for n in names):
            raise ValueError("bad file name")
        if len(metrics) != int(doc["buckets"]) or not metrics:
            raise ValueError("one metrics file per bucket expected")
        columns = dict(doc["context_columns"])
        if not all(t in COLUMN_TYPES for t in columns.values()):
            raise ValueError("unknown column type")
        return cls(
            generation=int(doc["generation"]),
            created_at=float(doc["created_at"]),
            buckets=len(metrics),
            metrics=metrics,
            runs=doc["runs"],
            context_columns=columns,
            run_states={str(k): str(v) for k, v in dict(doc["run_states"]).items()},
            retired=tuple((r["file"], float(r["retired_at"])) for r in doc.get("retired", ())),
        )


def metrics_file_name(bucket: int, generation: int) -> str:
    """The name of bucket `bucket`'s metrics file of generation `generation` (`FILE_NAME`)."""
    return f"metrics-{bucket:02x}-{generation:06d}.parquet"


def runs_file_name(generation: int) -> str:
    """The name of the runs file of generation `generation` (`FILE_NAME`)."""
    return f"runs-{generation:06d}.parquet"


def bucket_of(run_hash: str, buckets: int) -> int:
    return int(run_hash[:2], 16) * buckets // 256


def dataset_schema(columns: dict[str, str]) -> pa.Schema:
    ctx = [pa.field(c, COLUMN_TYPES[t]) for c, t in columns.items()]
    return pa.schema([*HEAD_FIELDS, *ctx, *TAIL_FIELDS])
