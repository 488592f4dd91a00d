"""Reading one data file of a run in full for `verify`, and what a verdict on it is.

`check_segment_file` reads a segment through `storage.base.file_checks` (no link, bounded decoded
size) and names what is wrong with it (`unsafe-segment`, `unreadable-segment`, `future-format`,
`invalid-segment`, `torn-tail`) and how many complete rows it holds; `check_parquet_file` reads a
compacted file in full and counts its rows per sequence. A `PermissionError` passes through: the
caller reports it as such, never as damage.
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from aim_parquet.errors import CorruptFileError, FormatVersionError, UnsafeFileError
from aim_parquet.format.meta import FORMAT_VERSION, CompactedFile, Manifest
from aim_parquet.format.paths import SEQS_DIRNAME
from aim_parquet.format.schema import (
    METRIC_FILE_SCHEMA,
    OBJECT_FILE_SCHEMA,
    format_version_of,
    segment_key,
)
from aim_parquet.storage.base.file_checks import (
    check_parquet,
    check_segment_schema,
    parquet_source,
)
from aim_parquet.storage.online.compacted_read import read_footer
from aim_parquet.storage.online.segments import open_segment


def check_segment_file(seg: Path) -> tuple[str | None, str, int]:
    """(problem kind or None, detail, complete rows) of one segment read in full."""
    try:
        reader = open_segment(seg)  # bounded: never a decoding bomb
    except PermissionError:
        raise
    except UnsafeFileError as exc:
        return "unsafe-segment", str(exc), 0
    except (pa.ArrowInvalid, OSError, ValueError) as exc:
        return "unreadable-segment", f"no readable Arrow schema ({exc})", 0
    version = format_version_of(reader.schema.metadata)
    if version > FORMAT_VERSION:
        return "future-format", f"written by format version {version}", 0
    try:
        check_segment_schema(reader.schema, seg)
    except CorruptFileError as exc:
        return "invalid-segment", str(exc), 0
    if segment_key(reader.schema, seg.parent.name) is None:
        return "unreadable-segment", "not a segment schema (columns or metadata)", 0
    rows = 0
    while True:
        try:
            rows += reader.read_next_batch().num_rows
        except StopIteration:
            return None, "", rows
        except (pa.ArrowInvalid, OSError, ValueError) as exc:
            return "torn-tail", f"incomplete data after {rows} rows ({exc})", rows


def missing_segments(run_dir: Path, manifest: Manifest, keep: list[CompactedFile]) -> int:
    kept = {f.path for f in keep}
    lost = 0
    for f in manifest.files:
        if f.path in kept:
            continue
        try:
            segs = read_footer(run_dir / f.path).segments
        except (OSError, pa.ArrowInvalid, ValueError, KeyError):
            segs = frozenset(manifest.segments)
        lost += sum(1 for s in segs if not (run_dir / SEQS_DIRNAME / s).exists())
    return lost


def check_parquet_file(path: Path, rows: int, per_seq: Counter[str]) -> str | None:
    """None when the file reads in full with the expected row count and passes
    `storage.base.file_checks` (columns, decoded size), else why not; adds its rows per seq_id to
    `per_seq`. Raises FormatVersionError for a newer format, PermissionError."""
    counts: Counter[str] = Counter()
    try:
        source, size = parquet_source(path)
        pf = pq.ParquetFile(source, read_dictionary=["seq_id"])
        is_metric = "value" in pf.schema_arrow.names
        expected = METRIC_FILE_SCHEMA if is_metric else OBJECT_FILE_SCHEMA
        check_parquet(pf.metadata, path, size, schema=pf.schema_arrow, expected=expected)
        n = 0
        for batch in pf.iter_batches(batch_size=65536):
            n += batch.num_rows
            seq_ids = batch.column(batch.schema.get_field_index("seq_id"))
            values = seq_ids.dictionary.to_pylist()
            for code, count in enumerate(np.bincount(seq_ids.indices, minlength=len(values))):
                counts[values[code]] += int(count)
    except (FileNotFoundError, FormatVersionError, PermissionError) as exc:
        if isinstance(exc, FileNotFoundError):
            return "missing compacted file listed in the manifest"
        raise
    except UnsafeFileError as exc:
        return str(exc)
    except (OSError, pa.ArrowException, ValueError, KeyError) as exc:
        return f"unreadable Parquet ({exc})"
    if n != rows:
        return f"holds {n} rows, the manifest says {rows}"
    per_seq.update(counts)
    return None


def is_readable_parquet(path: Path, rows: int) -> bool:
    try:
        return check_parquet_file(path, rows, Counter()) is None
    except (FormatVersionError, PermissionError):
        return True  # never repaired: kept as it is (reported on its own)


def is_special(path: Path) -> bool:
    """A link, FIFO, device or folder where a file should be (the repository scan names it)."""
    try:
        return not stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False
