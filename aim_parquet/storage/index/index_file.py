"""The run index file `.aim/index/runs.arrow`: an Arrow IPC file, one row per run, read
in one piece (`index_table.read_table_file`) and decoded column-wise, so that a fresh process
makes no Python object per run.

Schema metadata: `format` "aim_parquet.run_index", `format_version` "6". Columns:

- `hash` (string); `mtime_ns`, `size` (int64), `ino` (uint64): the stat of `runs/<hash>/run.json`
  when it was read; `parts` (string, null but for a run with several writers: `+` and the key
  of its writers' parts); `kept` (bool: the row is the last good copy of a run whose sidecar is
  damaged, kept for `verify --repair`; never taken for the sidecar);
- `creation_time`, `updated_at` (float64), `end_time` (float64, null when the run has none);
- `experiment`, `name`, `description` (string, null when the sidecar has none: the experiment
  is then "default"), `archived` (bool), `tags` (list of string, null for none); `fields` (string,
  null for almost every run: a JSON object of the other sidecar fields that are not null nor
  their defaults, such as an older `format_version`, and of any of the fields above that UTF-8
  cannot hold (a lone surrogate));
- `params` (string: the sidecar's params, tagged JSON, ASCII);
- `catalogue_keys` (`[[seq_id, name, kind, context, start, end], ...]`) and `catalogue_stats`
  (`[[count, first_step, last_step, first, last, min, max], ...]`, where `start:end` locate each
  stats row in the text), both ASCII JSON text, parsed per run only when a query needs them;
- `rebuilt` (bool: the catalogue was scanned from the segments of a run whose writer died, not
  the sidecar's, which lags them);
- the catalogue as columns (`storage.index.catalogue_columns`): lists `seq_id`, `seq_name`,
  `seq_kind`, `seq_context` (ASCII JSON text), `seq_count`, `seq_first_step`, `seq_last_step`
  (int64), `seq_first`, `seq_last`, `seq_min`, `seq_max` (float64), one entry per catalogue
  entry, and `seq_plain` (bool: the lists hold the catalogue exactly; else they are empty);
- then typed columns of the params (`storage.index.param_columns`), `param <path>` and
  `status <path>` for each path that leads to a plain value in some run.

A sound file of format version 5 (the same columns without the catalogue ones) is upgraded as it
is read, where the caller passes `decode_table` an upgrade (`index_table.upgrade_format5`); a file
of another format or version, or one that does not parse, is rebuilt by the caller.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from aim_parquet.format.meta import FORMAT_VERSION
from aim_parquet.format.run_fields import DEFAULT_EXPERIMENT
from aim_parquet.storage.base.columns import (
    any_numpy,
    nullable_scalars,
    nullable_string_lists,
    nullable_strings,
)
from aim_parquet.storage.index import param_columns as pc_
from aim_parquet.storage.index.catalogue_columns import (
    SEQ_FIELDS,
    catalogue_arrays,
    catalogue_cells,
    check_columns,
)
from aim_parquet.storage.index.run_records import RunRecord, json_text

INDEX_FORMAT = "aim_parquet.run_index"
INDEX_FORMAT_VERSION = 6
PREVIOUS_FORMAT_VERSION = 5  # without the catalogue columns: upgraded where it is sound


class OlderIndexError(FileNotFoundError):
    """An index file of an older format that is not upgraded (4ba8723 wrote format 5): as good
    as none, so it is rebuilt as a missing one is, not reported as damage (a FileNotFoundError
    for that)."""


StatKey = str  # "<st_mtime_ns>-<st_size>-<st_ino>" of a sidecar, in hex (+ writers' parts)
KEPT_KEY_PREFIX = "kept:"  # the stat key of a damaged run's last good copy in the file


def stat_key(st: os.stat_result) -> StatKey:
    """What identifies one version of a sidecar: it is replaced, never rewritten in place."""
    return key_of(st.st_mtime_ns, st.st_size, st.st_ino, None, False)


def key_of(mtime_ns: int, size: int, ino: int, parts: str | None, kept: bool) -> StatKey:
    """The stat key of a stored row."""
    key = f"{mtime_ns:x}-{size:x}-{ino:x}{parts or ''}"
    return KEPT_KEY_PREFIX + key if kept else key


def split_key(key: StatKey) -> tuple[int, int, int, str | None, bool]:
    """(mtime_ns, size, ino, parts, kept) of a stat key (ValueError if it is not one)."""
    kept = key.startswith(KEPT_KEY_PREFIX)
    if kept:
        key = key[len(KEPT_KEY_PREFIX) :]
    stat, plus, parts = key.partition("+")
    mtime, size, ino = stat.rsplit("-", 2)
    return int(mtime, 16), int(size, 16), int(ino, 16), (plus + parts) or None, kept


SCHEMA = pa.schema(
    [
        ("hash", pa.string()),
        ("mtime_ns", pa.int64()),
        ("size", pa.int64()),
        ("ino", pa.uint64()),
        ("parts", pa.string()),
        ("kept", pa.bool_()),
        ("creation_time", pa.float64()),
        ("updated_at", pa.float64()),
        ("end_time", pa.float64()),
        ("experiment", pa.string()),
        ("name", pa.string()),
        ("description", pa.string()),
        ("archived", pa.bool_()),
        ("tags", pa.list_(pa.string())),
        ("fields", pa.string()),
        ("params", pa.string()),
        ("catalogue_keys", pa.string()),
        ("catalogue_stats", pa.string()),
        ("rebuilt", pa.bool_()),
        *SEQ_FIELDS,
    ]
)
FIXED = tuple(SCHEMA.names)
SEQ_AT = FIXED.index(SEQ_FIELDS[0][0])  # where the catalogue columns start
NOT_NULL: tuple[str, ...] = ("hash", "mtime_ns", "size", "ino", "kept", "creation_time")
NOT_NULL += ("updated_at", "archived", "params", "catalogue_keys", "catalogue_stats", "rebuilt")
_NOT_IN_FIELDS = frozenset(
    {"format", "hash", "params", "sequences", "creation_time", "updated_at", "end_time"}
)
_DEFAULTS: dict[str, Any] = {  # what RunRecord and RunMeta assume for a missing field
    "experiment": DEFAULT_EXPERIMENT,
    "tags": [],
    "archived": False,
    "format_version": FORMAT_VERSION,
}
_STRINGS = ("experiment", "name", "description")


def _columns_of(record: RunRecord) -> dict[str, Any]:
    """The run-level columns of one record."""
    return fields_columns(record.fields)


def fields_columns(data: dict[str, Any]) -> dict[str, Any]:
    """The run-level columns of a sidecar's fields (`RunRecord.fields`, or the sidecar's JSON
    object itself: its params and catalogue are not among them; its other fields go to
    `fields`)."""
    fields = {
        k: v
        for k, v in data.items()
        if k not in _NOT_IN_FIELDS and v is not None and _DEFAULTS.get(k, ...) != v
    }
    out: dict[str, Any] = {}
    for name in _STRINGS:
        value = fields.get(name)
        out[name] = None
        if type(value) is str and pc_.is_utf8(value):
            out[name] = fields.pop(name)
    archived = fields.get("archived")
    out["archived"] = False
    if type(archived) is bool:
        out["archived"] = fields.pop("archived")
    tags = fields.get("tags")
    out["tags"] = None
    if type(tags) is list and all(type(t) is str and pc_.is_utf8(t) for t in tags):
        out["tags"] = fields.pop("tags")
    out["fields"] = json_text(fields) if fields else None
    end_time = data.get("end_time")
    out["creation_time"] = float(data["creation_time"])
    out["updated_at"] = float(data.get("updated_at") or 0.0)
    out["end_time"] = None if end_time is None else float(end_time)
    return out


def row_cells(key: StatKey, record: RunRecord) -> list[Any]:
    """One row's cells: the fixed columns' values (`FIXED[:SEQ_AT]` order), then its
    catalogue's lists (`catalogue_cells`, None when it is not plain)."""
    mtime, size, ino, parts, kept = split_key(key)
    keys, stats = record.stored_catalogue()
    row = _columns_of(record)
    row.update(
        hash=record.hash,
        mtime_ns=mtime,
        size=size,
        ino=ino,
        parts=parts,
        kept=kept,
        params=record.params_text(),
        catalogue_keys=keys.decode("ascii"),
        catalogue_stats=stats.decode("ascii"),
        rebuilt=record.is_rebuilt,
    )
    return [*(row[name] for name in FIXED[:SEQ_AT]), catalogue_cells(record)]


def _new_rows(rows: Sequence[list[Any]]) -> pa.Table:
    """The fixed and catalogue columns of rows of cells (`row_cells`)."""
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in range(SEQ_AT + 1)]
    arrays = [_array(list(columns[i]), f.type) for i, f in enumerate(list(SCHEMA)[:SEQ_AT])]
    arrays += catalogue_arrays(list(columns[SEQ_AT]))
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def _array(values: list[Any], typ: pa.DataType) -> pa.Array:
    """An array of a fixed column's values, importing no pandas (`pa.array` would)."""
    if typ == pa.string():
        return nullable_strings(values)
    if typ == pa.uint64():
        data = np.array(values, dtype=np.uint64)
        return pa.Array.from_buffers(typ, len(data), [None, pa.py_buffer(data)])
    if typ == pa.list_(pa.string()):
        return nullable_string_lists(values)
    return nullable_scalars(values, typ)


def _base_params(base: pa.Table) -> list[Any]:
    out: list[Any] = []
    for text in base.column("params").to_pylist():
        try:
            out.append(json.loads(text))
        except (ValueError, RecursionError):
            out.append(None)
    return out


def encode_index(rows: Sequence[tuple[StatKey, RunRecord]], base: pa.Table | None = None) -> bytes:
    """The index file's bytes for `base` (rows of an index table, kept as they are) followed
    by `(sidecar stat key, record)` rows."""
    cells = [row_cells(key, record) for key, record in rows]
    return encode_cells(cells, [record.stored_params() for _, record in rows], base)


def encode_cells(
    cells: Sequence[list[Any]], params: list[Any], base: pa.Table | None = None
) -> bytes:
    """`encode_index` of rows of cells (`row_cells`) and their stored params (None where they
    do not decode)."""
    new = _new_rows(cells)
    known: dict[pc_.Path, pa.DataType] = {}
    if base is not None:
        for field in base.schema:
            path = pc_.parse_column_name(field.name)
            if path is not None:
                known[path] = field.type
    paths = pc_.union_paths(known, params, len(params) + (0 if base is None else base.num_rows))
    base_params: list[Any] | None = None
    parts: list[pa.Table] = []
    extra: dict[str, list[pa.Array]] = {}
    for path in paths:
        value_name, status_name = pc_.column_names(path)
        kind = pc_.python_kind(known[path]) if path in known else None
        values, statuses = pc_.param_arrays(params, path, kind)
        if base is not None and path not in known:  # (a new path: its values in the base)
            if base_params is None:
                base_params = _base_params(base)
            old_values, old_statuses = pc_.param_arrays(
                base_params, path, pc_.python_kind(values.type)
            )
            extra[value_name] = [old_values]
            extra[status_name] = [old_statuses]
        new = new.append_column(value_name, values).append_column(status_name, statuses)
    if base is not None:
        for name, arrays in extra.items():
            base = base.append_column(name, pa.chunked_array(arrays, type=arrays[0].type))
        parts.append(base.select(new.schema.names).cast(new.schema))
    parts.append(new)
    table = pa.concat_tables(parts) if len(parts) > 1 else new
    meta = {"format": INDEX_FORMAT, "format_version": str(INDEX_FORMAT_VERSION)}
    table = table.replace_schema_metadata(meta)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def decode_table(
    buf: bytes | pa.Buffer, upgrade: Callable[[pa.Table], pa.Table] | None = None
) -> pa.Table:
    """The table of an index file's bytes. Raises ValueError (or pa.ArrowException) when it is
    not an index file of this version, nor of the previous one where `upgrade` is given (it
    makes this version's table of a previous one's; the result is checked as a file's), and
    OlderIndexError when it is one of an older version that is not upgraded (an older file
    `upgrade` finds unsound is one)."""
    table = pa.ipc.open_file(pa.BufferReader(buf)).read_all()
    meta = table.schema.metadata or {}
    version = meta.get(b"format_version", b"")
    if meta.get(b"format") != INDEX_FORMAT.encode():
        raise ValueError("unknown index format")
    if upgrade is not None and version == str(PREVIOUS_FORMAT_VERSION).encode():
        try:
            table = upgrade(table)
        except (ValueError, TypeError, KeyError, pa.ArrowException) as exc:
            raise OlderIndexError(f"index format {PREVIOUS_FORMAT_VERSION}: {exc}") from exc
    elif version.isdigit() and int(version) < INDEX_FORMAT_VERSION:
        raise OlderIndexError(f"index format {int(version)}, not {INDEX_FORMAT_VERSION}")
    elif version != str(INDEX_FORMAT_VERSION).encode():
        raise ValueError("unknown index format")
    names = table.schema.names
    if tuple(names[: len(FIXED)]) != FIXED:
        raise ValueError("unknown index columns")
    for field in SCHEMA:
        if table.schema.field(field.name).type != field.type:
            raise ValueError(f"column {field.name} has type {table.schema.field(field.name).type}")
    for name in NOT_NULL:
        if table.column(name).null_count:
            raise ValueError(f"column {name} has nulls")
    check_columns(table)
    rest = names[len(FIXED) :]
    if len(rest) % 2:
        raise ValueError("unpaired param columns")
    for value_name, status_name in zip(rest[::2], rest[1::2], strict=True):
        path = pc_.parse_column_name(value_name)
        if path is None or pc_.column_names(path) != (value_name, status_name):
            raise ValueError(f"unknown column {value_name!r:.60}")
        if pc_.python_kind(table.schema.field(value_name).type) is None:
            raise ValueError(f"column {value_name!r:.60} of an unknown type")
        statuses = table.column(status_name)
        if statuses.type != pa.int8() or statuses.null_count:
            raise ValueError(f"column {status_name!r:.60} is not int8")
        codes = any_numpy(statuses)
        if len(codes) and not (codes.min() >= 0 and codes.max() <= pc_.OTHER):
            raise ValueError(f"column {status_name!r:.60} out of range")
        valid = any_numpy(table.column(value_name).is_valid())
        if bool(((codes == pc_.VALUE) & ~valid).any()):
            raise ValueError(f"column {value_name!r:.60} misses values")
    fields = table.column("fields")
    if fields.null_count < len(fields):  # the few runs with other fields: checked here
        for text in fields.drop_null().to_pylist():
            value = json.loads(text)
            if not isinstance(value, dict) or not valid_fields(value):
                raise ValueError("bad fields")
    return table


def check_previous(table: pa.Table) -> None:
    """ValueError unless a format 5 table's run-level columns (all but the catalogue columns
    and the params') are there with their types and without nulls where none may be (the rest
    is checked once it is upgraded, as a file of this version)."""
    names = table.schema.names
    if tuple(names[:SEQ_AT]) != FIXED[:SEQ_AT] or any(n in FIXED[SEQ_AT:] for n in names):
        raise ValueError("unknown index columns")
    for field in list(SCHEMA)[:SEQ_AT]:
        if table.schema.field(field.name).type != field.type:
            raise ValueError(f"column {field.name} has type {table.schema.field(field.name).type}")
    for name in NOT_NULL:
        if table.column(name).null_count:
            raise ValueError(f"column {name} has nulls")


_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "description": (str,),
    "experiment": (str,),
    "archived": (bool,),
    "format_version": (int,),
    "format": (str,),
}


def valid_fields(fields: dict[str, Any]) -> bool:
    """The run-level fields a reader uses have the types of the sidecar (unknown keys pass)."""
    for name, value in fields.items():
        types = _FIELD_TYPES.get(name)
        if types is not None and value is not None and not isinstance(value, types):
            return False
        if name == "tags" and not (
            value is None or (isinstance(value, list) and all(isinstance(t, str) for t in value))
        ):
            return False
    return True
