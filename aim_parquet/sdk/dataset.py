"""`aim_parquet.read_dataset`: the analyst dataset (FORMAT.md) made current with the live tier,
as Arrow tables that pandas, polars and DuckDB take without copying."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aim_parquet.sdk.run_base import layout_for

if TYPE_CHECKING:
    from aim_parquet.storage import DatasetTables

__all__ = ["read_dataset"]


def read_dataset(repo: Any = None, *, live: bool = True) -> DatasetTables:
    """The analyst dataset of `repo` (a path, a `Repo`, or None: the nearest `.aim` upward):
    `.metrics`, one row per point (the last write of each step), with the runs' `archived` and
    `active` flags and one `context.<key>` column per context key, and `.runs`, one row per run
    with its `params.<key>` columns. With `live` (default), runs that changed since the dataset
    was last committed (live runs, runs written, resumed or closed since) are read from their own files, so the
    result equals what `Repo.query_metrics` returns now; `live=False` reads the committed files
    only. Reads without writing or locking anything."""
    from aim_parquet.storage import read_dataset_tables

    return read_dataset_tables(layout_for(repo, create=False), live=live)
