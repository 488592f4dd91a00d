"""The read side of one run: sidecar, sequence catalogue and the points of a sequence.

Points come from the compacted Parquet files the manifest lists and from every segment the
manifest does not cover, in write order; steps written twice keep the last value. Readers take no
lock, tolerate a torn segment tail, and retry when compaction swaps files under them: a file that
vanished (ENOENT, or ESTALE on NFS), or a manifest that changed while the read was in progress
(the compactor removes covered segments only after committing a new manifest, so a read that saw
the old manifest must not trust its segment listing), restarts the read from the new manifest.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa

from aim_parquet.errors import CorruptFileError, MissingRunError
from aim_parquet.format.json_records import loads_json_object
from aim_parquet.format.kinds import is_metric_kind
from aim_parquet.format.meta import Manifest, RunMeta, SequenceInfo
from aim_parquet.format.paths import (
    COMPACTED_DIRNAME,
    MANIFEST_FILENAME,
    SEQS_DIRNAME,
    RepoLayout,
    is_segment_name,
    is_valid_run_hash,
    is_valid_seq_id,
    validate_run_hash,
)
from aim_parquet.format.schema import METRIC_SCHEMA, OBJECT_SCHEMA
from aim_parquet.storage.base.columns import int64_array, nan_numpy, to_numpy
from aim_parquet.storage.base.files import list_names
from aim_parquet.storage.base.safe_fs import MAX_JSON_FILE_BYTES, read_regular
from aim_parquet.storage.online.compacted_read import GoneFiles, is_gone, read_compacted
from aim_parquet.storage.online.params_file import read_sidecar_object
from aim_parquet.storage.online.segments import read_segment
from aim_parquet.storage.online.writer_parts import load_writer_parts, merge_parts

log = logging.getLogger(__name__)

MAX_SWAP_RETRIES = 12
Piece = TypeVar("Piece")


def list_run_hashes(layout: RepoLayout) -> list[str]:
    """Hashes of every run folder (sorted); a run is visible as soon as its folder exists. A
    symbolic link named like a run is not a run (nothing under `.aim/` is followed out of it;
    `aim-parquet verify` names it), nor is a file that is not a folder."""
    try:
        with os.scandir(layout.runs_dir) as entries:
            return sorted(
                e.name
                for e in entries
                if is_valid_run_hash(e.name) and e.is_dir(follow_symlinks=False)
            )
    except FileNotFoundError:
        return []


def load_run_meta(layout: RepoLayout, run_hash: str) -> RunMeta:
    """The run as readers see it: its sidecar, merged with the parts of its extra writers when
    it has several (`storage.online.writer_parts`). Writers and tools that rewrite `run.json` read it
    with `load_sidecar` instead."""
    meta = load_sidecar(layout, run_hash)
    if not meta.is_multi_writer:
        return meta
    return merge_parts(meta, load_writer_parts(layout, run_hash))


def load_sidecar(layout: RepoLayout, run_hash: str) -> RunMeta:
    """`run.json` alone: rank 0's catalogue only, for a run with several writers."""
    path = layout.sidecar(run_hash)
    try:
        data = read_sidecar_object(path)
    except FileNotFoundError:
        if layout.run_dir(run_hash).is_dir():
            raise CorruptFileError(
                f"run {run_hash} has no sidecar {path}. Run `aim-parquet verify --repair`."
            ) from None
        raise MissingRunError(f"No run {run_hash!r} in repository {layout.root}.") from None
    return RunMeta.from_json(data, f"sidecar {path}")


def load_manifest(layout: RepoLayout, run_hash: str) -> Manifest | None:
    return _load_manifest_state(layout, run_hash)[0]


def manifest_bytes(path: str) -> bytes | None:
    """The content of the manifest at `path`, None when there is none. Every commit changes it
    (its generation grows), so equal bytes mean no compaction committed in between; inode and
    mtime are not enough (inodes are reused and mtime can be as coarse as a clock tick)."""
    try:
        return read_regular(path, "compaction manifest", MAX_JSON_FILE_BYTES)
    except FileNotFoundError:
        return None


def _load_manifest_state(layout: RepoLayout, run_hash: str) -> tuple[Manifest | None, bytes | None]:
    """The manifest and the exact bytes it was decoded from."""
    return parse_manifest(os.fspath(layout.manifest(run_hash)))


def parse_manifest(path: str) -> tuple[Manifest | None, bytes | None]:
    raw = manifest_bytes(path)
    if raw is None:
        return None, None
    what = f"compaction manifest {path}"
    return Manifest.from_json(loads_json_object(raw, what), what), raw


def list_segments(seq_dir: Path) -> list[Path]:
    """Segment files of one sequence folder in write order (temp files ignored)."""
    return [seq_dir / n for n in segment_names(os.fspath(seq_dir))]


def segment_names(seq_dir: str) -> list[str]:
    """Names of the segment files of one sequence folder in write order."""
    return [n for n in list_names(seq_dir) if is_segment_name(n)]


def dedupe_steps(table: pa.Table, *, by_index: bool) -> pa.Table:
    """Sort by step (then index for objects) keeping, for each key, the row written last."""
    n = table.num_rows
    if n == 0:
        return table
    steps = to_numpy(table.column("step"))
    if by_index:
        index = to_numpy(table.column("index")).astype(np.int64)
        order = np.lexsort((np.arange(n), index, steps))
        s, i = steps[order], index[order]
        keep = np.ones(n, dtype=bool)
        keep[:-1] = (s[1:] != s[:-1]) | (i[1:] != i[:-1])
        return table.take(int64_array(order[keep]))
    chosen = last_writes(steps)
    return table if chosen is None else table.take(int64_array(chosen))


def last_writes(steps: np.ndarray[Any, Any]) -> np.ndarray[Any, Any] | None:
    """Row positions, in step order, of the last row written for each step; None when `steps`
    already increase strictly (every row is kept, in place)."""
    n = len(steps)
    if n < 2 or (steps[1:] > steps[:-1]).all():
        return None
    order = np.lexsort((np.arange(n), steps))
    s = steps[order]
    keep = np.ones(n, dtype=bool)
    keep[:-1] = s[1:] != s[:-1]
    return order[keep]


def read_pieces(
    layout: RepoLayout,
    run_hash: str,
    info: SequenceInfo,
    from_compacted: Callable[[Path, Manifest], Iterable[Piece]],
    from_batch: Callable[[pa.RecordBatch], Piece | None],
) -> list[Piece]:
    """The points of one sequence as of one manifest state, in write order: what
    `from_compacted(run_dir, manifest)` takes from the compacted files, then what `from_batch`
    keeps of each batch of every segment they do not cover (None: nothing). The one retry loop
    of every sequence reader: a read that raced a compaction or gc (a file gone, or a manifest
    that changed meanwhile) restarts from the new manifest."""
    run_dir = f"{os.fspath(layout.runs_dir)}/{validate_run_hash(run_hash)}"
    seq_id = info.seq_id
    if not is_valid_seq_id(seq_id):
        raise ValueError(f"invalid sequence id {seq_id!r}")
    seq_dir = f"{run_dir}/{SEQS_DIRNAME}/{seq_id}"
    manifest_path = f"{run_dir}/{COMPACTED_DIRNAME}/{MANIFEST_FILENAME}"
    gone = GoneFiles(run_hash)
    for attempt in range(MAX_SWAP_RETRIES):
        if attempt > 1:
            time.sleep(min(0.2, 0.005 * 2**attempt))  # let a compaction in progress finish
        seen: bytes | None = None
        try:
            manifest, seen = parse_manifest(manifest_path)
            pieces: list[Piece] = []
            covered: frozenset[str] = frozenset()
            if manifest is not None:
                covered = manifest.segments
                pieces.extend(from_compacted(Path(run_dir), manifest))
            for name in segment_names(seq_dir):
                if covered and f"{seq_id}/{name}" in covered:
                    continue
                path = f"{seq_dir}/{name}"
                try:
                    data = read_segment(path)
                except CorruptFileError:  # (a link or FIFO: UnsafeFileError, never opened)
                    st = os.lstat(path)
                    if stat.S_ISREG(st.st_mode) and st.st_size == 0:
                        continue  # just created, its header not written yet: no points
                    raise
                for batch in data.batches:
                    kept = from_batch(batch)
                    if kept is not None:
                        pieces.append(kept)
        except OSError as exc:
            if is_gone(exc):
                gone.check(exc, seen)
                continue  # compaction or gc swapped files under us: read the new state
            raise
        if manifest_bytes(manifest_path) == seen:
            return pieces
        # a compaction committed while we read: segments we listed may have been removed
    raise CorruptFileError(f"run {run_hash}: files kept changing while reading {info.name!r}.")


def _read_pieces(
    layout: RepoLayout, run_hash: str, info: SequenceInfo, wanted: list[str]
) -> list[pa.Table | pa.RecordBatch]:
    """The sequence's compacted rows (`wanted` columns only) and its segments' batches (every
    column), in write order."""

    def from_compacted(run_dir: Path, manifest: Manifest) -> list[pa.Table | pa.RecordBatch]:
        return [*read_compacted(run_dir, manifest, info, wanted)]

    return read_pieces(layout, run_hash, info, from_compacted, lambda batch: batch)


def read_sequence(
    layout: RepoLayout, run_hash: str, info: SequenceInfo, columns: list[str] | None = None
) -> pa.Table:
    """All points of one sequence, sorted by step (and index), last write winning per step."""
    is_metric = is_metric_kind(info.kind)
    schema = METRIC_SCHEMA if is_metric else OBJECT_SCHEMA
    wanted = list(columns) if columns is not None else schema.names
    for key in ("step", "index") if not is_metric else ("step",):
        if key not in wanted:
            wanted.append(key)
    wanted = [c for c in schema.names if c in wanted]
    pieces = _read_pieces(layout, run_hash, info, wanted)
    target = pa.schema([schema.field(c) for c in wanted])
    tables = []
    for piece in pieces:
        table = piece if isinstance(piece, pa.Table) else pa.Table.from_batches([piece])
        table = table.select(wanted)
        tables.append(table if table.schema.equals(target) else table.cast(target))
    if len(tables) == 1:
        table = tables[0]
    else:
        table = pa.concat_tables(tables) if tables else pa.Table.from_batches([], schema=target)
    out = dedupe_steps(table, by_index=not is_metric)
    if columns is not None and len(wanted) != len(columns):
        out = out.select([c for c in wanted if c in columns or c == "step"])
    return out


_METRIC_DTYPES = {"step": np.int64, "value": np.float64, "epoch": np.int64, "timestamp": np.float64}


def read_metric_columns(
    layout: RepoLayout, run_hash: str, info: SequenceInfo, columns: list[str]
) -> tuple[np.ndarray[Any, Any], dict[str, np.ndarray[Any, Any]]]:
    """The points of one metric as numpy arrays, without building Arrow tables: the steps (int64,
    increasing, each once: the last write of a step wins) and each of `columns` (`value`,
    `epoch`, `timestamp`) at those steps. An int column with nulls (a missing epoch) is float64
    with NaN there when a kept point has one (a missing epoch overwritten by the step's last
    write leaves it int64). Same result as `read_sequence`, for the cost of a few numpy calls."""
    wanted = ["step", *(c for c in _METRIC_DTYPES if c in columns and c != "step")]
    parts: dict[str, list[np.ndarray[Any, Any]]] = {c: [] for c in wanted}
    for piece in _read_pieces(layout, run_hash, info, wanted):
        if piece.num_rows == 0:
            continue
        for name in wanted:
            parts[name].append(_metric_column(piece.column(name), name))
    arrays = {
        name: (
            np.concatenate(chunks)
            if len(chunks) > 1
            else chunks[0]
            if chunks
            else np.empty(0, _METRIC_DTYPES[name])
        )
        for name, chunks in parts.items()
    }
    steps = arrays.pop("step")
    chosen = last_writes(steps)
    if chosen is not None:
        steps = steps[chosen]
        arrays = {name: array[chosen] for name, array in arrays.items()}
        epochs = arrays.get("epoch")
        if epochs is not None and epochs.dtype != np.int64 and not np.isnan(epochs).any():
            arrays["epoch"] = epochs.astype(np.int64)  # the missing epochs were overwritten
    return steps, arrays


def _metric_column(column: pa.Array | pa.ChunkedArray, name: str) -> np.ndarray[Any, Any]:
    array = nan_numpy(column)
    dtype = _METRIC_DTYPES[name]
    return array if array.dtype == dtype or column.null_count else array.astype(dtype)
