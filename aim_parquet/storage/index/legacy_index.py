"""The run index of format 4 and before, `.aim/index/runs.jsonl`, read once to upgrade a
repository: its entries seed the new index (`storage.index.run_index`) instead of every sidecar
being read again (on 100,000 runs whose sidecars had left the page cache that took minutes).

An entry is only a cache of a sidecar, as in the new index: it is used only where its stored
stat key still equals its sidecar's stat (the caller compares them as it compares its own
entries), so a sidecar changed since the old file was written is read again. A file that is
not a sound format 4 index (another version, truncated, damaged, foreign, not ASCII, a link, too
large) gives no entries at all, and every sidecar is read as without it.

The format 4 layout (written by `aim_parquet.storage.index.index_file` up to 7db2c30):

- Line 1, the header: `{"format": "aim_parquet.run_index", "format_version": 4, "columns":
  [...], "runs": [[...], ...]}`, one array per run with the `columns`: `hash`; `stat` (the stat
  key, as now: `<st_mtime_ns>-<st_size>-<st_ino>` in hex, `+<parts>` for a run with several
  writers, `kept:` before a damaged run's last good copy); `creation_time`, `updated_at`,
  `end_time` (float reprs as strings, `end_time` null for none); `fields` (the other run-level
  fields, defaults left out); `params` (tagged JSON); `catalogue`: `[offset, keys_length,
  stats_length]`; `rebuilt` (bool).
- Then two lines per run, at `offset` bytes after the header's newline: the catalogue's keys
  `[[seq_id, name, kind, context, start, end], ...]` and its stats rows, exactly the two lines
  the new index stores as its `catalogue_keys` and `catalogue_stats` columns.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aim_parquet.errors import AimParquetError
from aim_parquet.format.paths import RepoLayout, is_valid_run_hash
from aim_parquet.storage.base.repo_changes import index_link
from aim_parquet.storage.base.safe_fs import MAX_JSON_FILE_BYTES, read_regular
from aim_parquet.storage.index.index_entries import IndexEntry
from aim_parquet.storage.index.index_file import INDEX_FORMAT, split_key, valid_fields
from aim_parquet.storage.index.run_records import RunRecord

__all__ = ["LEGACY_FORMAT_VERSION", "decode_legacy_index", "read_legacy_index"]

log = logging.getLogger(__name__)

LEGACY_FORMAT_VERSION = 4
_COLUMNS = (
    "hash",
    "stat",
    "creation_time",
    "updated_at",
    "end_time",
    "fields",
    "params",
    "catalogue",
    "rebuilt",
)


def read_legacy_index(layout: RepoLayout) -> dict[str, IndexEntry]:
    """The entries of the repository's format 4 index file, keyed by run hash, in the file's
    order; empty when there is none or it cannot be used (never an error: it is a cache)."""
    if index_link(layout) is not None:
        return {}  # never read through a link
    try:
        raw = read_regular(layout.old_index_file, "old run index", MAX_JSON_FILE_BYTES)
    except FileNotFoundError:
        return {}
    except (OSError, AimParquetError) as exc:
        log.debug("aim_parquet: cannot read old run index %s (%s)", layout.old_index_file, exc)
        return {}
    try:
        return decode_legacy_index(raw)
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        log.debug("aim_parquet: old run index %s not used (%s)", layout.old_index_file, exc)
        return {}


def _bad(run_hash: Any) -> ValueError:
    return ValueError(f"bad entry of run {run_hash!r:.40}")


def decode_legacy_index(raw: bytes) -> dict[str, IndexEntry]:
    """The entries of a format 4 index file's bytes (ValueError, KeyError, TypeError or
    RecursionError when it is not a sound one: the catalogue lines of its runs must follow one
    another exactly as the writer laid them, one keys and one stats line each, to the end)."""
    if not raw.isascii():  # (the writer escaped every string)
        raise ValueError("not ASCII")
    end = raw.find(b"\n")
    if end < 0:
        raise ValueError("no header line")
    doc = json.loads(raw[:end])
    if not isinstance(doc, dict) or (
        doc.get("format") != INDEX_FORMAT
        or doc.get("format_version") != LEGACY_FORMAT_VERSION
        or tuple(doc.get("columns") or ()) != _COLUMNS
    ):
        raise ValueError("unknown index format")
    rows = doc["runs"]
    if not isinstance(rows, list):
        raise ValueError("bad runs list")
    base, size = end + 1, len(raw)
    out: dict[str, IndexEntry] = {}
    width = len(_COLUMNS)
    newline = ord("\n")
    start = base
    for row in rows:
        if type(row) is not list or len(row) != width:
            raise ValueError("bad run row")
        h, key, created, updated, ended, fields, params, cat, rebuilt = row
        if not (
            type(h) is str
            and is_valid_run_hash(h)
            and h not in out
            and type(key) is str
            and type(created) is str
            and type(updated) is str
            and (ended is None or type(ended) is str)
            and type(fields) is dict
            and type(params) is dict
            and type(cat) is list
            and len(cat) == 3
            and type(rebuilt) is bool
            and (not fields or valid_fields(fields))
        ):
            raise _bad(h)
        split_key(key)  # (ValueError when it is not a stat key)
        offset, keys_length, stats_length = cat
        if not (type(offset) is int and type(keys_length) is int and type(stats_length) is int):
            raise _bad(h)
        keys_end = start + keys_length
        stats_end = keys_end + 1 + stats_length
        if not (
            base + offset == start  # right after the previous run's lines
            and start < keys_end < stats_end < size
            and raw[keys_end] == newline
            and raw[stats_end] == newline
            and raw[start] == raw[keys_end + 1] == ord("[")
            and raw[keys_end - 1] == raw[stats_end - 1] == ord("]")
        ):
            raise _bad(h)
        data = dict(fields)
        data["creation_time"] = created_at = float(created)  # (ValueError if not a number)
        data["updated_at"] = float(updated)
        data["end_time"] = None if ended is None else float(ended)
        record = RunRecord.from_index(
            h, data, params, raw, start, keys_end, stats_end, rebuilt, created_at
        )
        out[h] = IndexEntry(key, record)
        start = stats_end + 1
    if start != size:
        raise ValueError("the catalogue lines do not end the file")
    return out
