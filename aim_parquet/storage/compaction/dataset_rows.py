"""What the analyst dataset (`storage.compaction.dataset`) holds per run: its committed
manifest, a run's fingerprint, the context columns and a run's rows as queries see them."""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

import pyarrow as pa

from aim_parquet.errors import CorruptFileError
from aim_parquet.format.dataset import (
    COLUMN_TYPES,
    CURRENT_FILENAME,
    TAIL_FIELDS,
    DatasetManifest,
    dataset_dir,
)
from aim_parquet.format.kinds import is_metric_kind
from aim_parquet.format.meta import RunMeta
from aim_parquet.format.naming import CONTEXT_PREFIX, flat_columns
from aim_parquet.format.paths import RepoLayout, canonical_context, is_segment_name
from aim_parquet.format.values import encode_json_value
from aim_parquet.storage.base.columns import constant_array, empty_table
from aim_parquet.storage.base.lock import WriterState, writer_state
from aim_parquet.storage.base.safe_fs import MAX_JSON_FILE_BYTES, read_regular
from aim_parquet.storage.index.index_file import stat_key
from aim_parquet.storage.online.catalogue_scan import discover_sequences
from aim_parquet.storage.online.run_reader import read_sequence
from aim_parquet.storage.online.writer_parts import parts_key


def load_dataset_manifest(layout: RepoLayout) -> DatasetManifest | None:
    """The committed manifest; None when there is none. CorruptFileError when damaged."""
    path = dataset_dir(layout) / CURRENT_FILENAME
    try:
        raw = read_regular(path, "analyst dataset manifest", MAX_JSON_FILE_BYTES)
    except FileNotFoundError:
        return None
    try:
        return DatasetManifest.from_json(json.loads(raw))
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptFileError(f"{path} is damaged ({exc}); refresh the dataset.") from exc


def run_fingerprint(layout: RepoLayout, meta: RunMeta) -> str:
    """What changes whenever the points or the run-level fields of the run may have changed."""
    parts = [stat_key(os.stat(layout.sidecar(meta.hash)))]
    if meta.is_multi_writer:  # an extra rank writes `writers/<rank>.json`, never the sidecar
        parts.append(parts_key(layout, meta.hash))
    if meta.end_time is None:  # a live or dead writer: its segments may be ahead of the sidecar
        parts.append("live" if writer_state(layout, meta.hash) is WriterState.LIVE else "gone")
        seqs = layout.seqs_dir(meta.hash)
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            for seq_id in sorted(os.listdir(seqs)):
                with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                    for name in sorted(os.listdir(seqs / seq_id)):
                        if is_segment_name(name):
                            size = os.lstat(seqs / seq_id / name).st_size
                            parts.append(f"{seq_id}/{name}:{size}")
    return "|".join(parts)


# -- building rows ------------------------------------------------------------------------------


def _type_of(values: list[Any]) -> str:
    """A context column's type from every value it holds in the repository."""
    if all(type(v) is bool for v in values):
        return "bool"
    if all(type(v) is int and -(2**63) <= v < 2**63 for v in values):
        return "int64"
    if all(type(v) in (int, float) for v in values):
        return "double"
    return "string"  # strings, and anything else as its tagged-JSON text


def context_columns(metas: list[RunMeta]) -> dict[str, str]:
    """{column: type} of every context key of every metric sequence of `metas`."""
    values: dict[str, list[Any]] = {}
    for meta in metas:
        for info in meta.sequences:
            if is_metric_kind(info.kind):
                for column, value in flat_columns(CONTEXT_PREFIX, info.context).items():
                    values.setdefault(column, []).append(value)
    return {c: _type_of(v) for c, v in sorted(values.items())}


def _context_value(value: Any, typ: str) -> Any:
    if value is None:
        return None
    if typ == "string" and type(value) is not str:
        return json.dumps(encode_json_value(value), ensure_ascii=False)
    if typ == "double":
        return float(value)
    return value


def run_rows(layout: RepoLayout, meta: RunMeta, is_active: bool, schema: pa.Schema) -> pa.Table:
    """One row per point of every metric of the run, as queries see them, in `schema`."""
    columns = {f.name: f.type for f in schema if f.name.startswith(CONTEXT_PREFIX + ".")}
    infos = [i for i in discover_sequences(layout, meta.hash, meta) if is_metric_kind(i.kind)]
    infos.sort(key=lambda i: (i.name, canonical_context(i.context)))
    tables = []
    for info in infos:
        points = read_sequence(layout, meta.hash, info)
        n = points.num_rows
        if n == 0:
            continue
        ctx = flat_columns(CONTEXT_PREFIX, info.context)
        arrays: list[pa.Array] = [  # (pa.array would import pandas into `compact`)
            constant_array(meta.hash, pa.string(), n),
            constant_array(meta.archived, pa.bool_(), n),
            constant_array(is_active, pa.bool_(), n),
            constant_array(info.seq_id, pa.string(), n),
            constant_array(info.name, pa.string(), n),
            constant_array(canonical_context(info.context), pa.string(), n),
        ]
        for column, typ in columns.items():
            value = _context_value(ctx.get(column), str(_type_name(typ)))
            arrays.append(constant_array(value, typ, n))
        arrays.extend(points.column(f.name) for f in TAIL_FIELDS)
        tables.append(pa.Table.from_arrays(arrays, schema=schema))
    return pa.concat_tables(tables) if tables else empty_table(schema)


def _type_name(typ: pa.DataType) -> str:
    return next(name for name, t in COLUMN_TYPES.items() if t == typ)
