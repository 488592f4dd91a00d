"""The index file's runs in memory as columns (`IndexTable`): what a fresh process decodes of
`.aim/index/runs.arrow` (`storage.index.index_file`) without a Python object per run, and the
RunRecords of its rows, made on demand, many at a time; a sound file of format 5 is upgraded as
it is read (`upgrade_format5`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from aim_parquet.errors import AimParquetError
from aim_parquet.format.meta import SequenceInfo
from aim_parquet.format.paths import RepoLayout, is_valid_run_hash
from aim_parquet.storage.base.cached import cached_property
from aim_parquet.storage.base.columns import any_numpy, empty_table, int64_array, positions_numpy
from aim_parquet.storage.base.safe_fs import first_link, read_regular
from aim_parquet.storage.index import param_columns as pc_
from aim_parquet.storage.index.catalogue_columns import (
    SEQ_FIELDS,
    CatalogueColumns,
    catalogue_arrays,
    catalogue_cells,
)
from aim_parquet.storage.index.index_file import (
    FIXED,
    INDEX_FORMAT_VERSION,
    SEQ_AT,
    StatKey,
    check_previous,
    decode_table,
    key_of,
)
from aim_parquet.storage.index.run_records import RunRecord, json_text

__all__ = [
    "MAX_INDEX_BYTES", "IndexTable", "index_file_problem", "read_table_file", "upgrade_format5",
]  # fmt: skip

MAX_INDEX_BYTES = 4 << 30  # far above the index of a million runs
Positions = npt.NDArray[np.intp]


class IndexTable:
    """The rows of an index file as columns (numpy arrays of the few a refresh compares), no
    Python object per run; `record(row)`/`records(rows)` make RunRecords, once each.
    `upgraded`: the table was upgraded from a format 5 file (which is then written again)."""

    def __init__(self, table: pa.Table, upgraded: bool = False) -> None:
        self.table = table
        self.upgraded = upgraded
        self.size = table.num_rows
        self.mtime_ns = _ints(table, "mtime_ns")
        self.st_size = _ints(table, "size")
        self.ino = _ints(table, "ino")
        self.kept = _bools(table, "kept")
        self.has_parts = _valid(table, "parts")
        self.has_fields = _valid(table, "fields")
        # open: no end_time and the sidecar's catalogue (a live writer may be ahead of it)
        self.is_open = ~_valid(table, "end_time") & ~_bools(table, "rebuilt")
        self._records: list[RunRecord | None] = [None] * self.size

    @cached_property
    def hashes(self) -> list[str]:
        return self.table.column("hash").to_pylist()  # type: ignore[no-any-return]

    @cached_property
    def where(self) -> dict[str, int]:
        """The row of each hash."""
        return dict(zip(self.hashes, range(self.size), strict=True))

    def rows_of(self, names: pa.Array) -> Positions:
        """The row of each of `names` (-1 for none), found column-wise."""
        if not self.size:
            return np.full(len(names), -1, dtype=np.intp)
        found = pc.index_in(names, value_set=self.table.column("hash").combine_chunks())
        return positions_numpy(found)

    @classmethod
    def empty(cls) -> IndexTable:
        from aim_parquet.storage.index.index_file import SCHEMA

        return cls(empty_table(SCHEMA))

    def key(self, row: int) -> StatKey:
        """The stat key of a row (as `stat_key` writes it, `kept:` for a kept copy)."""
        parts = self.table.column("parts")[row].as_py() if self.has_parts[row] else None
        return key_of(
            int(self.mtime_ns[row]),
            int(self.st_size[row]),
            int(self.ino[row]),
            parts,
            bool(self.kept[row]),
        )

    def record(self, row: int) -> RunRecord:
        record = self._records[row]
        if record is None:
            record = self.records(np.array([row], dtype=np.intp))[0]
        return record

    def records(self, rows: Positions | Sequence[int]) -> list[RunRecord]:
        """The records of `rows`, made for the rows that have none yet (one Arrow take and
        one conversion per column for all of them)."""
        cache = self._records
        todo = [r for r in rows if cache[r] is None]
        if todo:
            taken = self.table.select(list(_RECORD_COLUMNS)).take(int64_array(todo))
            cols = [taken.column(name).to_pylist() for name in _RECORD_COLUMNS]
            catalogue = self.catalogue
            plain = catalogue.plain[todo].tolist()
            for row, values, is_plain in zip(todo, zip(*cols, strict=True), plain, strict=True):
                cache[row] = _make_record(values, catalogue if is_plain else None, row)
        return [cache[r] for r in rows]  # type: ignore[misc]

    @cached_property
    def catalogue(self) -> CatalogueColumns:
        """The catalogue columns (`storage.index.catalogue_columns`)."""
        return CatalogueColumns(self.table)

    # -- columns for the query layer -------------------------------------------------------
    def column(self, name: str) -> pa.ChunkedArray:
        return self.table.column(name)

    def param_column(self, path: tuple[str, ...]) -> tuple[pa.ChunkedArray, np.ndarray] | None:
        """(values, statuses) of a param path (`storage.index.param_columns`), None when the
        file has no column for it."""
        value_name, status_name = pc_.column_names(path)
        if value_name not in self.table.schema.names:
            return None
        statuses = any_numpy(self.table.column(status_name))
        return self.table.column(value_name), statuses


_RECORD_COLUMNS = (
    "hash",
    "creation_time",
    "updated_at",
    "end_time",
    "experiment",
    "name",
    "description",
    "archived",
    "tags",
    "fields",
    "params",
    "catalogue_keys",
    "catalogue_stats",
    "rebuilt",
)


def _make_record(values: tuple[Any, ...], catalogue: CatalogueColumns | None, at: int) -> RunRecord:
    """The record of one row's `_RECORD_COLUMNS` values (`catalogue`: the index's catalogue
    columns when the row is plain, `at` the row)."""
    (run_hash, created, updated, end, experiment, name, description, archived, tags, fields,
     params, catalogue_keys, catalogue_stats, rebuilt) = values  # fmt: skip
    data: dict[str, Any] = {}
    if experiment is not None:
        data["experiment"] = experiment
    if name is not None:
        data["name"] = name
    if description is not None:
        data["description"] = description
    if tags is not None:
        data["tags"] = tags
    if archived:
        data["archived"] = True
    if fields is not None:
        data.update(json.loads(fields))  # (checked when the file was decoded)
    data["creation_time"] = created
    data["updated_at"] = updated
    data["end_time"] = end
    keys = catalogue_keys.encode("ascii", "surrogatepass")
    raw = keys + b"\n" + catalogue_stats.encode("ascii", "surrogatepass")
    return RunRecord.from_index(
        run_hash, data, params, raw, 0, len(keys), len(raw), rebuilt, created, catalogue, at
    )


def _ints(table: pa.Table, name: str) -> np.ndarray:
    return any_numpy(table.column(name))


def _bools(table: pa.Table, name: str) -> np.ndarray:
    return np.asarray(any_numpy(table.column(name)), dtype=bool)


def _valid(table: pa.Table, name: str) -> np.ndarray:
    column = table.column(name)
    if column.null_count == len(column):
        return np.zeros(len(column), dtype=bool)
    if column.null_count == 0:
        return np.ones(len(column), dtype=bool)
    return np.asarray(any_numpy(column.is_valid()), dtype=bool)


def _texts(infos: Sequence[SequenceInfo]) -> list[str]:
    return [json_text(info.to_json()) for info in infos]


def read_table_file(layout: RepoLayout) -> IndexTable:
    """The index file of `layout` decoded (FileNotFoundError, OSError, ValueError,
    pa.ArrowException: it is missing or cannot be used)."""
    # Read, not memory-mapped: a kept-open Repo holds its snapshot's columns, and a map of a
    # file another tool truncates in place would kill the process (SIGBUS) on the next read.
    # (20 MB at 100,000 runs: a few milliseconds from the page cache.)
    buf = read_regular(layout.index_file, "run index", MAX_INDEX_BYTES)
    upgraded = False

    def upgrade(table: pa.Table) -> pa.Table:
        nonlocal upgraded
        upgraded = True
        return upgrade_format5(table)

    table = decode_table(buf, upgrade)
    return IndexTable(table, upgraded)


def upgrade_format5(table: pa.Table) -> pa.Table:
    """A format 5 index table as one of this version: its catalogue columns made of each row's
    catalogue JSON by `catalogue_cells`, as the writer makes them of the same JSON read from
    the sidecar (ValueError, KeyError, TypeError, RecursionError: not a sound format 5 table)."""
    check_previous(table)
    columns = [table.column(name).to_pylist() for name in _RECORD_COLUMNS]
    cells = [
        catalogue_cells(_make_record(values, None, row))
        for row, values in enumerate(zip(*columns, strict=True))
    ]
    for i, (field, array) in enumerate(zip(SEQ_FIELDS, catalogue_arrays(cells), strict=True)):
        table = table.add_column(SEQ_AT + i, pa.field(*field), array)
    meta = dict(table.schema.metadata or {})
    meta[b"format_version"] = str(INDEX_FORMAT_VERSION).encode()
    return table.replace_schema_metadata(meta)


def index_file_problem(layout: RepoLayout) -> str | None:
    """Why the index file cannot be used as it is, decoding every entry in full and checking
    its param columns against its params (None when it is sound or missing, or `.aim/index` is
    a link: never read, `verify` names the link)."""
    if first_link(layout.aim_dir, layout.index_dir) is not None:
        return None
    try:
        table = read_table_file(layout)
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, RecursionError, pa.ArrowException) as exc:
        return f"damaged ({exc})"
    except OSError as exc:
        return f"unreadable ({exc})"
    try:
        records = table.records(range(table.size))
        for record in records:
            if not is_valid_run_hash(record.hash):  # (readers just ignore such an entry)
                raise ValueError(f"invalid run hash {record.hash!r:.40}")
            record.meta  # noqa: B018 (decodes the fields, params and the whole catalogue)
            from_json = record.without_columns()
            if from_json is not record and _texts(from_json.sequences) != _texts(record.sequences):
                raise ValueError(f"catalogue columns of run {record.hash} disagree with its JSON")
        params = [r.raw_params() for r in records]
        for name in table.table.schema.names[len(FIXED) :: 2]:
            path = pc_.parse_column_name(name)
            assert path is not None  # (checked by decode_table)
            values, statuses = table.param_column(path)  # type: ignore[misc]
            kind = pc_.python_kind(values.type)
            want_values, want_statuses = pc_.param_arrays(params, path, kind)
            same = np.array_equal(statuses, any_numpy(want_statuses)) and (
                np.array_equal(any_numpy(values), any_numpy(want_values), equal_nan=True)
                if kind is float
                else values.to_pylist() == want_values.to_pylist()
            )
            if not same:
                raise ValueError(f"param column {path!r:.60} disagrees with the params")
    except (
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        RecursionError,
        AimParquetError,
    ) as exc:
        return f"damaged ({exc})"
    return None
