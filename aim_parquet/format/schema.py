"""Arrow schemas of segment files (and of the compacted Parquet files built from them).

A segment is an Arrow IPC *stream*: a schema message followed by record-batch messages, one per
flush, with no end-of-stream marker (readers stop at end of file and skip a torn last message).
The schema's metadata makes each segment self-describing (run, sequence name, context, kind).
"""

from __future__ import annotations

import pyarrow as pa

from aim_parquet.format.compacted import SeqKey
from aim_parquet.format.kinds import is_metric_kind

META_RUN = b"aim_parquet.run"
META_NAME = b"aim_parquet.name"
META_CONTEXT = b"aim_parquet.context"
META_KIND = b"aim_parquet.kind"
META_FORMAT_VERSION = b"aim_parquet.format_version"

METRIC_FIELDS = [
    pa.field("step", pa.int64(), nullable=False),
    pa.field("value", pa.float64(), nullable=False),
    pa.field("epoch", pa.int64(), nullable=True),
    pa.field("timestamp", pa.float64(), nullable=False),
]

OBJECT_FIELDS = [
    pa.field("step", pa.int64(), nullable=False),
    pa.field("index", pa.int32(), nullable=False),  # position within a list tracked at one step
    pa.field("epoch", pa.int64(), nullable=True),
    pa.field("timestamp", pa.float64(), nullable=False),
    pa.field("payload", pa.large_binary(), nullable=False),
    pa.field("meta", pa.string(), nullable=False),  # JSON object of the object's small fields
]

METRIC_SCHEMA = pa.schema(METRIC_FIELDS)
OBJECT_SCHEMA = pa.schema(OBJECT_FIELDS)

# Compacted Parquet files: four key columns, then the segment columns.
KEY_COLUMNS = ("run_hash", "seq_id", "name", "context")
# Compacted file schemas as readers see them (strings are dictionary-encoded on disk but read
# back as plain text).
METRIC_FILE_SCHEMA = pa.schema(
    [
        pa.field("run_hash", pa.string(), nullable=False),
        pa.field("seq_id", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("context", pa.string(), nullable=False),
        pa.field("step", pa.int64(), nullable=False),
        pa.field("epoch", pa.int64(), nullable=True),
        pa.field("timestamp", pa.float64(), nullable=False),
        pa.field("value", pa.float64(), nullable=False),
    ]
)
OBJECT_FILE_SCHEMA = pa.schema(
    [
        *(METRIC_FILE_SCHEMA.field(i) for i in range(4)),
        pa.field("step", pa.int64(), nullable=False),
        pa.field("index", pa.int32(), nullable=False),
        pa.field("epoch", pa.int64(), nullable=True),
        pa.field("timestamp", pa.float64(), nullable=False),
        pa.field("payload", pa.large_binary(), nullable=False),
        pa.field("meta", pa.string(), nullable=False),
    ]
)


def segment_schema(
    run_hash: str, name: str, context_json: str, kind: str, format_version: int
) -> pa.Schema:
    base = METRIC_SCHEMA if is_metric_kind(kind) else OBJECT_SCHEMA
    return base.with_metadata(
        {
            META_RUN: run_hash.encode(),
            META_NAME: name.encode("utf-8", "surrogatepass"),
            META_CONTEXT: context_json.encode("utf-8", "surrogatepass"),
            META_KIND: kind.encode(),
            META_FORMAT_VERSION: str(format_version).encode(),
        }
    )


def format_version_of(metadata: dict[bytes, bytes] | None) -> int:
    """The `aim_parquet.format_version` of a segment schema or Parquet footer (1 when absent;
    -1 when it is not a number, which the callers' checks report as damage)."""
    raw = (metadata or {}).get(META_FORMAT_VERSION, b"1")
    try:
        return int(raw)
    except ValueError:
        return -1


def segment_key(schema: pa.Schema, seq_id: str) -> SeqKey | None:
    """The sequence a segment schema describes: the one decoder of a segment's metadata (name,
    context, kind). None when its columns or metadata are not a segment's."""
    names = schema.names
    if names != METRIC_SCHEMA.names and names != OBJECT_SCHEMA.names:
        return None
    meta = schema.metadata or {}
    try:
        return SeqKey(
            seq_id=seq_id,
            name=meta[META_NAME].decode("utf-8", "surrogatepass"),
            context=meta.get(META_CONTEXT, b"{}").decode("utf-8", "surrogatepass"),
            kind=meta[META_KIND].decode(),
        )
    except (KeyError, UnicodeDecodeError):
        return None
