"""The compacted Parquet layout (FORMAT.md, "Compacted files"): file names, the columns a file
holds and which carry statistics, the footer's key-value metadata and a sequence's identity in it.

The writer (`storage.compaction.compacted`) and every reader ask this module; it does no I/O.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from aim_parquet.format.kinds import element_kind, is_metric_kind
from aim_parquet.format.meta import FORMAT_VERSION
from aim_parquet.format.paths import COMPACTED_DIRNAME

METRICS_KIND = "metrics"

# Min/max statistics (and the page index) only where readers prune with them: by run, sequence and
# step. Statistics of the dictionary and float columns would cost a third of the write time.
STATISTICS_COLUMNS = ("run_hash", "seq_id", "name", "step")
METRIC_DATA_COLUMNS = ("step", "epoch", "timestamp", "value")
# The encodings of a point's columns in every Parquet file compaction writes (the per-run files
# and the analyst dataset's): split floats decode in about a third of the time that
# dictionary-then-plain floats take under zstd, and take less room.
METRIC_ENCODINGS = {
    "step": "DELTA_BINARY_PACKED",
    "epoch": "DELTA_BINARY_PACKED",
    "timestamp": "BYTE_STREAM_SPLIT",
    "value": "BYTE_STREAM_SPLIT",
}
OBJECT_DATA_COLUMNS = ("step", "index", "epoch", "timestamp", "payload", "meta")

# Footer key-value metadata: makes every file self-describing and lets `verify --repair` rebuild
# a lost manifest from the files themselves.
META_FORMAT_VERSION = "aim_parquet.format_version"
META_RUN = "aim_parquet.run"
META_KIND = "aim_parquet.kind"
META_GENERATION = "aim_parquet.generation"
META_SEGMENTS = "aim_parquet.segments"  # JSON list of "<seq_id>/<segment>" whose rows it holds
META_SEQUENCES = "aim_parquet.sequences"  # JSON {seq_id: {"name", "context", "kind"}}

_NAME_RE = re.compile(r"(?:metrics|objects-(?P<kind>.+))-(?P<gen>[0-9]{6,})\.parquet")
_UNSAFE_RE = re.compile(r"[^A-Za-z0-9_.]")


def compacted_kind(kind: str) -> str:
    """The file kind a sequence of Aim dtype `kind` is compacted into (as the run reader expects)."""
    if is_metric_kind(kind):
        return METRICS_KIND
    return element_kind(kind)


def kind_token(kind: str) -> str:
    """`kind` made safe for a file name; a short hash keeps distinct kinds apart if it changed."""
    token = _UNSAFE_RE.sub("_", kind).strip(".") or "_"
    if token != kind:
        token += "_" + hashlib.sha1(kind.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return token


def file_name(kind: str, generation: int) -> str:
    if kind == METRICS_KIND:
        return f"metrics-{generation:06d}.parquet"
    return f"objects-{kind_token(kind)}-{generation:06d}.parquet"


def relative_path(kind: str, generation: int) -> str:
    """Path of a compacted file relative to its run folder, as written in the manifest."""
    return f"{COMPACTED_DIRNAME}/{file_name(kind, generation)}"


def is_compacted_name(name: str) -> bool:
    return _NAME_RE.fullmatch(name) is not None


@dataclass(frozen=True)
class SeqKey:
    """Identity of one sequence inside a compacted file."""

    seq_id: str
    name: str
    context: str  # canonical JSON text
    kind: str  # Aim dtype ('float', 'aim.image', 'list(aim.image)', ...)


@dataclass(frozen=True)
class FileFooter:
    """The aim_parquet metadata of one compacted file (`storage.online.compacted_read.read_footer`)."""

    run_hash: str
    kind: str
    generation: int
    segments: frozenset[str]
    sequences: dict[str, SeqKey]
    rows: int
    format_version: int = FORMAT_VERSION  # callers refuse to touch a file of a newer one
