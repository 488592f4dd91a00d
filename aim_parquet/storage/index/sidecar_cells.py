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

Cost (10,000 sidecars are the whole of a first query without index): the usual sidecar is read
with one `read` (`_read_object`; anything unusual goes through `read_sidecar_object`), its
JSON texts made by one C encoder made once (`json_text` makes one per call), and the sidecars
are read `BATCH` at a time before their rows are made: together about a quarter less time than
`read_sidecar_object` and `json_text` per run (BENCHMARKS.md, "First query with no index").
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from json import encoder as json_encoder
from operator import itemgetter
from typing import Any

from aim_parquet.format.json_records import (
    decode_json_values,
    is_plain_entry,
    is_plain_sidecar,
    loads_json_object,
)
from aim_parquet.format.meta import MULTI_WRITER_FORMAT_VERSION, SequenceInfo
from aim_parquet.format.paths import SIDECAR_FILENAME, RepoLayout, validate_run_hash
from aim_parquet.storage.base.safe_fs import MAX_JSON_FILE_BYTES, O_CLOEXEC, O_NOFOLLOW, O_NONBLOCK
from aim_parquet.storage.index.catalogue_columns import entry_cells
from aim_parquet.storage.index.closed_journal import Entry
from aim_parquet.storage.index.index_file import FIXED, SEQ_AT, fields_columns
from aim_parquet.storage.index.run_records import json_text
from aim_parquet.storage.online.params_file import read_sidecar_object

__all__ = ["sidecar_rows"]

_fixed_cells = itemgetter(*FIXED[:SEQ_AT])  # (a row's cells of the fixed columns, in order)
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
    for at in range(0, len(runs), BATCH):  # (a batch read, then its rows: faster than in turn)
        batch = runs[at : at + BATCH]
        objects = [_try_read(prefix + run_hash + suffix, run_hash) for _, run_hash in batch]
        for (i, run_hash), data in zip(batch, objects, strict=True):
            if data is None:
                continue
            try:
                row = _row(run_hash, data, mtimes[i], sizes[i], inos[i])
            except Exception:  # noqa: BLE001 (read again, and reported, by read_sidecar_entry)
                continue
            if row is not None:
                out[run_hash] = row
    return out


BATCH = 16  # sidecars read before their rows are made


def _try_read(path: str, run_hash: str) -> dict[str, Any] | None:
    """The sidecar's JSON object, None where it fails (read again, and reported, by
    read_sidecar_entry)."""
    try:
        validate_run_hash(run_hash)
        return _read_object(path)
    except Exception:  # noqa: BLE001
        return None


_FLAGS = os.O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC


def _read_object(path: str) -> dict[str, Any]:
    """`read_sidecar_object(path)`, with one `read` of the usual sidecar (a regular file that
    does not change while it is read) instead of `safe_fs.read_regular`'s loop: anything else
    (a link, a special file, a file that grows, a params file) is read by `read_sidecar_object`
    itself, whose errors are then those of the file."""
    fd = os.open(path, _FLAGS)
    try:
        st = os.fstat(fd)
        size = st.st_size
        if not stat.S_ISREG(st.st_mode) or size > MAX_JSON_FILE_BYTES:
            return read_sidecar_object(path)
        raw = os.read(fd, size + 1)
    finally:
        os.close(fd)
    if len(raw) != size:  # (it changed while read)
        return read_sidecar_object(path)
    data = loads_json_object(raw, f"sidecar {path}")
    return data if "params_file" not in data else read_sidecar_object(path)


def _parsed_encoder() -> Callable[[Any], str]:
    """`json_text` of a value as `json.loads` returns it (no cycle, no subclass), by one C
    encoder made once (`json_text` makes one per call: about half its time for a small value);
    `json_text` itself where the C encoder is missing or takes other arguments."""
    make = getattr(json_encoder, "c_make_encoder", None)
    if make is None:
        return json_text
    enc = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"))  # (`json_text`'s options)
    # (no markers: a parsed value has no cycle, and markers shared by threads would be wrong)
    try:
        encode = make(
            None, enc.default, json_encoder.encode_basestring_ascii, None, enc.key_separator,
            enc.item_separator, enc.sort_keys, enc.skipkeys, enc.allow_nan,
        )  # fmt: skip
    except TypeError:  # (a Python whose private encoder takes other arguments)
        return json_text
    join = "".join

    def parsed_json_text(obj: Any) -> str:
        return join(encode(obj, 0))

    return parsed_json_text


_json_text = _parsed_encoder()


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
    stats_text = _json_text(stats)  # (the texts of the rows, joined by "," in "[...]")
    lengths = [len(stats_text) - 2] if len(stats) == 1 else [len(_json_text(s)) for s in stats]
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
        params=_json_text(raw),
        catalogue_keys=_json_text(keys),
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
    return [*_fixed_cells(row), entry_cells(entries)], raw
