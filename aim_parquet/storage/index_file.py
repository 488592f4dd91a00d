"""The run index file `.aim/index/runs.jsonl`: a JSON Lines file (ASCII), read by one
`json.loads` of its first line plus, per run, the catalogue lines a sequence query needs.

- Line 1, the header: `{"format": "aim_parquet.run_index", "format_version": 4, "columns":
  [...], "runs": [[...], ...]}`, one array per run with the `columns`:
  `hash`; `stat` (`"<st_mtime_ns>-<st_size>-<st_ino>"` in hex, of `runs/<hash>/run.json` when it
  was read); `creation_time`, `updated_at`, `end_time` (the float's shortest repr as a string,
  which parses faster than a JSON number; `end_time` null when the run has none); `fields` (the
  other
  run-level sidecar fields, leaving out null ones and the defaults: `experiment` "default", no
  `tags`, `archived` false, the current `format_version`); `params` (as in the sidecar, tagged
  JSON); `catalogue`: `[offset, keys_length, stats_length]`; `rebuilt` (true when the catalogue
  lines hold the catalogue scanned from the segments of a run whose writer died, not the
  sidecar's, which lags them).
- Then two lines per run, at `offset` bytes after the header's newline: the catalogue's keys
  `[[seq_id, name, kind, context, start, end], ...]` (`keys_length` bytes) and its stats
  `[[count, first_step, last_step, first, last, min, max], ...]` (`stats_length` bytes), where
  `start:end` locate each stats row in its line.

Arrays instead of objects and catalogues out of the header keep the one parse a run predicate
pays small (a fresh process reads 100 runs in about half a millisecond); the catalogue lines are
parsed per run, and a stats row only for a sequence that matches (`storage.run_records`). The
file is ASCII (`ensure_ascii`), so byte and character offsets agree and a string holding a lone
surrogate survives. A file of another format or version, or one that does not parse, is rebuilt
by the caller.
"""

from __future__ import annotations

import json
import os
from typing import Any

from aim_parquet.format.meta import FORMAT_VERSION
from aim_parquet.storage.run_records import Catalogue, RunRecord, json_text

INDEX_FILENAME = "runs.jsonl"
INDEX_FORMAT = "aim_parquet.run_index"
INDEX_FORMAT_VERSION = 4
StatKey = str  # "<st_mtime_ns>-<st_size>-<st_ino>" of a sidecar, in hex


def stat_key(st: os.stat_result) -> StatKey:
    """What identifies one version of a sidecar: it is replaced, never rewritten in place."""
    return f"{st.st_mtime_ns:x}-{st.st_size:x}-{st.st_ino:x}"


COLUMNS = (
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
_NOT_IN_FIELDS = frozenset(
    {"format", "hash", "params", "sequences", "creation_time", "updated_at", "end_time"}
)
_DEFAULTS: dict[str, Any] = {  # what RunRecord and RunMeta assume for a missing field
    "experiment": "default",
    "tags": [],
    "archived": False,
    "format_version": FORMAT_VERSION,
}


def encode_index(rows: list[tuple[StatKey, RunRecord]]) -> bytes:
    """The index file's bytes for `(sidecar stat, record)` rows."""
    runs: list[list[Any]] = []
    body: list[bytes] = []
    offset = 0
    for key, record in rows:
        data = record.fields
        fields = {
            k: v
            for k, v in data.items()
            if k not in _NOT_IN_FIELDS and v is not None and _DEFAULTS.get(k, ...) != v
        }
        keys, stats = record.stored_catalogue()
        end_time = data.get("end_time")
        runs.append(
            [
                record.hash,
                key,
                repr(float(data["creation_time"])),
                repr(float(data.get("updated_at") or 0.0)),
                None if end_time is None else repr(float(end_time)),
                fields,
                record.raw_params(),
                [offset, len(keys), len(stats)],
                record.is_rebuilt,
            ]
        )
        body.append(keys + b"\n" + stats + b"\n")
        offset += len(keys) + len(stats) + 2
    header = {
        "format": INDEX_FORMAT,
        "format_version": INDEX_FORMAT_VERSION,
        "columns": list(COLUMNS),
        "runs": runs,
    }
    return json_text(header).encode("ascii") + b"\n" + b"".join(body)


def decode_index(raw: bytes) -> list[tuple[StatKey, RunRecord]]:
    """The rows of an index file's bytes. Raises ValueError, KeyError or TypeError when it is
    not an index file of this version."""
    end = raw.find(b"\n")
    if end < 0:
        raise ValueError("no header line")
    doc = json.loads(raw[:end])
    if (
        doc.get("format") != INDEX_FORMAT
        or doc.get("format_version") != INDEX_FORMAT_VERSION
        or tuple(doc.get("columns") or ()) != COLUMNS
    ):
        raise ValueError("unknown index format")
    base, size = end + 1, len(raw)
    out = []
    for h, key, created, updated, ended, fields, params, cat, rebuilt in doc["runs"]:
        start = base + cat[0]
        keys_end = start + cat[1]
        stats_end = keys_end + 1 + cat[2]
        if not (base <= start <= keys_end < stats_end <= size) or not isinstance(params, dict):
            raise ValueError(f"bad entry of run {h!r}")
        if not isinstance(fields, dict) or not isinstance(h, str) or not isinstance(key, str):
            raise ValueError(f"bad entry of run {h!r}")
        if not isinstance(rebuilt, bool):
            raise ValueError(f"bad entry of run {h!r}")
        fields["creation_time"] = created
        fields["updated_at"] = updated
        fields["end_time"] = ended
        catalogue = Catalogue(raw, start, keys_end, stats_end)
        record = RunRecord(h, fields, catalogue=catalogue, params=params, is_rebuilt=rebuilt)
        out.append((key, record))
    return out
