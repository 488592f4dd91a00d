"""Index rows decoded straight from run sidecars, for a refresh that reads many new runs
(`storage.index.run_index`: an index built from scratch, where no writers' journal row is
there to take).

A closed run with one writer whose sidecar has its plain JSON types (`json_records`, "the plain
case") and no catalogue entry marked rewritten has an index row that depends on its sidecar
alone: its cells are made here from the sidecar's JSON object, in the form of a journal row
(`closed_journal.Entry`: cells and stored params), without the RunMeta, RunRecord and
SequenceInfo objects of `sidecar_entries.read_sidecar_entry`, which the refresh drops once it
takes the index file's columns. The cells are those `index_file.row_cells` makes of that
entry (tests/property/test_sidecar_cells.py checks the index files are equal byte for byte).
Any other sidecar, or one that fails to read or decode, is left to `read_sidecar_entry` (which
reports it as damage where it is).
"""

from __future__ import annotations

import os
from typing import Any

from aim_parquet.format.json_records import decode_json_values, is_plain_entry, is_plain_sidecar
from aim_parquet.format.meta import MULTI_WRITER_FORMAT_VERSION, SequenceInfo
from aim_parquet.format.paths import SIDECAR_FILENAME, RepoLayout, validate_run_hash
from aim_parquet.storage.index.catalogue_columns import entry_cells
from aim_parquet.storage.index.closed_journal import Entry
from aim_parquet.storage.index.index_file import FIXED, SEQ_AT, fields_columns
from aim_parquet.storage.index.run_records import json_text
from aim_parquet.storage.online.params_file import read_sidecar_object

__all__ = ["sidecar_rows"]

_FIXED = FIXED[:SEQ_AT]
_json_key = SequenceInfo.json_key
_json_stats = SequenceInfo.json_stats


def sidecar_rows(
    layout: RepoLayout, listed: list[str], todo: list[int], new: list[str], stats: Any
) -> dict[str, Entry]:
    """The rows of the `new` runs among `listed[i]` (i in `todo`) whose sidecar (of stat
    `stats[0..2][i]`: mtime_ns, size, ino) is decoded here (module doc); the others are not in
    the result."""
    if not new:
        return {}
    fresh = set(new)
    runs = [(i, listed[i]) for i in todo if listed[i] in fresh]
    prefix, suffix = os.path.join(os.fspath(layout.runs_dir), ""), "/" + SIDECAR_FILENAME
    mtimes, sizes, inos = (s.tolist() for s in stats[:3])
    out: dict[str, Entry] = {}
    for i, run_hash in runs:
        try:
            data = read_sidecar_object(prefix + validate_run_hash(run_hash) + suffix)
            row = _row(run_hash, data, mtimes[i], sizes[i], inos[i])
        except Exception:  # noqa: BLE001 (read again, and reported, by read_sidecar_entry)
            continue
        if row is not None:
            out[run_hash] = row
    return out


def _row(run_hash: str, data: dict[str, Any], mtime: int, size: int, ino: int) -> Entry | None:
    """The row of a sidecar's JSON object, None where it is not the plain case of a closed run
    with one writer (or fails to decode as a RunMeta: raises)."""
    version = data.get("format_version")
    end_time = data.get("end_time")
    if type(version) is not int or version >= MULTI_WRITER_FORMAT_VERSION or end_time is None:
        return None
    if "params_file" in data or not is_plain_sidecar(data):
        return None
    items = data.get("sequences") or []
    for item in items:
        if not is_plain_entry(item) or item.get("rewritten") is True:
            return None
    raw = data.get("params") or {}
    # what `RunMeta.from_json` decodes in the plain case (an error: read_sidecar_entry's)
    float(data["creation_time"]), float(end_time), float(data.get("updated_at") or 0.0)
    decode_json_values(raw)
    stats = [_json_stats(item) for item in items]
    stats_text = json_text(stats)  # (the texts of the rows, joined by "," in "[...]")
    lengths = [len(stats_text) - 2] if len(stats) == 1 else [len(json_text(s)) for s in stats]
    keys: list[list[Any]] = []
    offset = 1  # after the stats line's "[" (as `RunRecord.stored_catalogue`)
    for item, length in zip(items, lengths, strict=True):
        keys.append([*_json_key(item), offset, offset + length])
        offset += length + 1
    row = fields_columns(data)
    row.update(
        hash=run_hash,
        mtime_ns=mtime,
        size=size,
        ino=ino,
        parts=None,
        kept=False,
        params=json_text(raw),
        catalogue_keys=json_text(keys),
        catalogue_stats=stats_text,
        rebuilt=False,
    )
    get = dict.get
    entries = (
        (d["seq_id"], d["name"], d["kind"], get(d, "context") or {}, get(d, "count", 0),
         get(d, "first_step"), get(d, "last_step"), get(d, "first"), get(d, "last"),
         get(d, "min"), get(d, "max"))
        for d in items
    )  # fmt: skip
    return [*(row[name] for name in _FIXED), entry_cells(entries)], raw
