"""Reading one sequence's rows from a run's compacted Parquet files (those its manifest lists),
and a compacted file's footer (`read_footer`; the layout is `format.compacted`'s).

Rows of a sequence sit in row groups of their own (by min/max statistics of `seq_id`), so a read
opens each file of the sequence's kind once and reads only those row groups, without a thread
pool unless the read is large. Errors: a file that vanished (ENOENT, ESTALE) is left to the
caller, which retries from the new manifest; an unreadable file is a CorruptFileError; each file
passes `storage.base.file_checks` first (format version, column types, decoded size).
"""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from aim_parquet.errors import CorruptFileError
from aim_parquet.format.compacted import (
    META_GENERATION,
    META_KIND,
    META_RUN,
    META_SEGMENTS,
    META_SEQUENCES,
    METRICS_KIND,
    FileFooter,
    SeqKey,
    compacted_kind,
)
from aim_parquet.format.json_records import loads_json
from aim_parquet.format.meta import Manifest, SequenceInfo
from aim_parquet.format.paths import is_segment_name, is_valid_seq_id
from aim_parquet.format.schema import METRIC_FILE_SCHEMA, OBJECT_FILE_SCHEMA, format_version_of
from aim_parquet.storage.base.columns import to_numpy
from aim_parquet.storage.base.file_checks import check_parquet, parquet_source

THREADED_READ_ROWS = 1_000_000  # compacted reads of more rows than this use pyarrow's threads


def is_gone(exc: OSError) -> bool:
    """A file removed or replaced under us: ENOENT, or ESTALE on a network filesystem."""
    return isinstance(exc, FileNotFoundError) or exc.errno == errno.ESTALE


class GoneFiles:
    """Tells a file removed by a compaction in progress (the caller reads again, from the new
    manifest) from one missing for good: the same file gone twice under the same manifest bytes
    is damage, said at once. It was retried for about 2 s and then reported as "files kept
    changing", which sent the user looking for a writer that was not there."""

    def __init__(self, run_hash: str) -> None:
        self.run_hash = run_hash
        self._last: tuple[object, bytes | None] | None = None

    def check(self, exc: OSError, manifest: bytes | None) -> None:
        """CorruptFileError when `exc`'s file was already gone under this same manifest."""
        gone = (exc.filename, manifest)
        if gone == self._last:
            raise CorruptFileError(
                f"run {self.run_hash}: {exc.filename or 'one of its files'} is missing (not "
                "removed by a compaction: the run's compaction manifest did not change); "
                "`aim-parquet verify --repair` repairs the run."
            ) from exc
        self._last = gone


def _file_schema(kind: str) -> pa.Schema:
    return METRIC_FILE_SCHEMA if kind == METRICS_KIND else OBJECT_FILE_SCHEMA


def read_footer(path: Path) -> FileFooter:
    """Decode a compacted file's footer (opened safely: a link or FIFO is refused). Raises
    OSError (CorruptFileError included), ArrowInvalid, ValueError or KeyError when unreadable."""
    import pyarrow.parquet as pq  # 10-25 ms to import: only when a footer is read

    source, _size = parquet_source(path)
    md = pq.read_metadata(source)
    kv = {k.decode(): v.decode("utf-8", "surrogatepass") for k, v in (md.metadata or {}).items()}
    what = f"footer of compacted file {path}"
    seqs = loads_json(kv.get(META_SEQUENCES, "{}").encode("utf-8", "surrogatepass"), what)
    segments = loads_json(kv.get(META_SEGMENTS, "[]").encode("utf-8", "surrogatepass"), what)
    if not isinstance(seqs, dict) or not isinstance(segments, list):
        raise ValueError(f"{what}: invalid sequences or segments")
    for seg in segments:
        seq_id, _, name = seg.partition("/") if isinstance(seg, str) else ("", "", "")
        if not (is_valid_seq_id(seq_id) and is_segment_name(name)):
            raise ValueError(f"{what}: invalid segment entry {seg!r:.60}")
    keys = {}
    for sid, d in seqs.items():
        key = SeqKey(sid, d["name"], d["context"], d["kind"])
        if not is_valid_seq_id(sid) or not all(isinstance(v, str) for v in key.__dict__.values()):
            raise ValueError(f"{what}: invalid sequence entry {sid!r:.40}")
        keys[sid] = key
    return FileFooter(
        run_hash=kv.get(META_RUN, ""),
        kind=kv[META_KIND],
        generation=int(kv[META_GENERATION]),
        segments=frozenset(segments),
        sequences=keys,
        rows=md.num_rows,
        format_version=format_version_of(md.metadata),
    )


class _ParquetRows:
    """Row-group reads of one Parquet file through pyarrow's `ParquetReader`, the engine under
    `pyarrow.parquet.ParquetFile`: importing `pyarrow._parquet` alone costs a fresh process about
    1 ms, `pyarrow.parquet` 10-25 ms (it loads datasets and filesystems). Where that class is
    missing or its signature changed, `ParquetFile` is used instead."""

    def __init__(self, source: pa.NativeFile) -> None:
        try:
            from pyarrow._parquet import ParquetReader

            reader = ParquetReader()
            reader.open(source, read_dictionary=["seq_id"])
            self._reader: Any = reader
            self._file: Any = None
        except (ImportError, AttributeError, TypeError):
            import pyarrow.parquet as pq

            self._file = pq.ParquetFile(source, read_dictionary=["seq_id"])
            self._reader = self._file.reader
        self.metadata = self._reader.metadata
        self.schema_arrow = self._reader.schema_arrow

    def read_row_groups(self, groups: list[int], columns: list[str], threads: bool) -> pa.Table:
        if self._file is not None:
            return self._file.read_row_groups(groups, columns=columns, use_threads=threads)
        indices = [self._reader.column_name_idx(name) for name in columns]
        return self._reader.read_row_groups(groups, column_indices=indices, use_threads=threads)


def open_compacted(path: Path, kind: str) -> _ParquetRows:
    """A compacted file of `kind` opened for reading, checked (`storage.base.file_checks`: a regular
    file, not a link; this format version; a bounded decoded size; FORMAT.md's columns).
    Raises CorruptFileError (UnsafeFileError) naming the file, FormatVersionError, and the
    OSError of a file that vanished (a compaction swapped it: retry) or may not be read."""
    try:
        source, size = parquet_source(path)
        pf = _ParquetRows(source)
    except CorruptFileError:
        raise
    except OSError as exc:
        if is_gone(exc) or isinstance(exc, PermissionError):
            raise
        raise CorruptFileError(f"compacted file {path} is unreadable ({exc}).") from exc
    except pa.ArrowInvalid as exc:
        raise CorruptFileError(f"compacted file {path} is unreadable ({exc}).") from exc
    check_parquet(pf.metadata, path, size, schema=pf.schema_arrow, expected=_file_schema(kind))
    return pf


def read_compacted(
    run_dir: Path, manifest: Manifest, info: SequenceInfo, columns: list[str]
) -> list[pa.Table]:
    """The rows of one sequence in the manifest's files of its kind, `columns` only."""
    kind = compacted_kind(info.kind)
    tables = []
    for f in manifest.files:
        if f.kind != kind:
            continue
        pf = open_compacted(run_dir / f.path, kind)
        groups, is_exact = _row_groups_for(pf, info.seq_id)
        if not groups:
            continue
        md = pf.metadata
        rows = sum(md.row_group(g).num_rows for g in groups)
        threads = rows > THREADED_READ_ROWS  # a thread pool only pays off on large reads
        if is_exact:  # every chosen row group holds only this sequence: no filter needed
            tables.append(pf.read_row_groups(groups, columns, threads))
            continue
        t = pf.read_row_groups(groups, ["seq_id", *columns], threads)
        tables.append(_rows_of(t, info.seq_id).select(columns))
    return tables


def _rows_of(table: pa.Table, seq_id: str) -> pa.Table:
    """The rows of `seq_id` in a table whose `seq_id` column is dictionary-encoded.

    A sequence's rows are contiguous runs in a compacted file, so this slices instead of
    filtering: `Table.filter`/`take` would load `pyarrow.compute` (100+ ms in a fresh process).
    """
    pieces = []
    offset = 0
    for chunk in table.column("seq_id").chunks:
        n = len(chunk)
        codes = [i for i, v in enumerate(chunk.dictionary.to_pylist()) if v == seq_id]
        if codes:
            indices = to_numpy(chunk.indices)
            hit = np.isin(indices, codes)
            edges = np.flatnonzero(np.diff(np.concatenate(([False], hit, [False])).astype(np.int8)))
            for start, end in zip(edges[::2], edges[1::2], strict=True):
                pieces.append(table.slice(offset + int(start), int(end - start)))
        offset += n
    if not pieces:
        return table.slice(0, 0)
    return pa.concat_tables(pieces)


def _row_groups_for(pf: _ParquetRows, seq_id: str) -> tuple[list[int], bool]:
    """Row groups that may hold `seq_id` (by min/max statistics), and whether each of them holds
    nothing else (min == max == seq_id)."""
    md = pf.metadata
    col = pf.schema_arrow.get_field_index("seq_id")
    out = []
    is_exact = True
    for g in range(md.num_row_groups):
        stats = md.row_group(g).column(col).statistics
        if stats is None or not stats.has_min_max:
            out.append(g)
            is_exact = False
        elif stats.min <= seq_id <= stats.max:
            out.append(g)
            is_exact = is_exact and stats.min == stats.max
    return out, is_exact
