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
parsed per run, and a stats row only for a sequence that matches (`storage.index.run_records`). The
file is ASCII (`ensure_ascii`), so byte and character offsets agree and a string holding a lone
surrogate survives. A file of another format or version, or one that does not parse, is rebuilt
by the caller.
"""

from __future__ import annotations

import json
import os
from typing import Any

from aim_parquet.errors import AimParquetError
from aim_parquet.format.meta import FORMAT_VERSION
from aim_parquet.format.paths import RepoLayout, is_valid_run_hash
from aim_parquet.format.run_fields import DEFAULT_EXPERIMENT
from aim_parquet.storage.base.safe_fs import MAX_JSON_FILE_BYTES, first_link, read_regular
from aim_parquet.storage.index.run_records import RunRecord, json_text

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
    "experiment": DEFAULT_EXPERIMENT,
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


_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "description": (str,),
    "experiment": (str,),
    "archived": (bool,),
    "format_version": (int,),
    "format": (str,),
}


def _valid_fields(fields: dict[str, Any]) -> bool:
    """The run-level fields a reader uses have the types of the sidecar (unknown keys pass).
    Defaults are left out of the file, so most runs have few fields to look at."""
    for name, value in fields.items():
        types = _FIELD_TYPES.get(name)
        if types is not None and value is not None and not isinstance(value, types):
            return False
        if name == "tags" and not (
            value is None or (isinstance(value, list) and all(isinstance(t, str) for t in value))
        ):
            return False
    return True


def decode_index(raw: bytes) -> list[tuple[StatKey, RunRecord]]:
    """The rows of an index file's bytes. Raises ValueError, KeyError or TypeError when it is
    not an index file of this version."""
    end = raw.find(b"\n")
    if end < 0:
        raise ValueError("no header line")
    doc = json.loads(raw[:end])  # (RecursionError: the caller rebuilds the file)
    if not isinstance(doc, dict) or (
        doc.get("format") != INDEX_FORMAT
        or doc.get("format_version") != INDEX_FORMAT_VERSION
        or tuple(doc.get("columns") or ()) != COLUMNS
    ):
        raise ValueError("unknown index format")
    base, size = end + 1, len(raw)
    rows = doc["runs"]
    if not isinstance(rows, list):
        raise ValueError("bad runs list")
    out: list[tuple[StatKey, RunRecord]] = []
    append = out.append
    width = len(COLUMNS)
    # one pass, checks inlined: this loop is most of what a fresh process pays per run
    for row in rows:
        if type(row) is not list or len(row) != width:
            raise ValueError("bad run row")
        h, key, created, updated, ended, fields, params, cat, rebuilt = row
        if not (
            type(h) is str
            and type(key) is str
            and type(created) is str
            and type(updated) is str
            and (ended is None or type(ended) is str)
            and type(fields) is dict
            and type(params) is dict
            and type(cat) is list
            and len(cat) == 3
            and type(rebuilt) is bool
            and (not fields or _valid_fields(fields))
        ):
            raise ValueError(f"bad entry of run {h!r:.40}")
        offset, keys_length, stats_length = cat
        if not (type(offset) is int and type(keys_length) is int and type(stats_length) is int):
            raise ValueError(f"bad entry of run {h!r:.40}")
        created_at = float(created)  # (ValueError if not a number, like the two below)
        float(updated), ended is None or float(ended)
        start = base + offset
        keys_end = start + keys_length
        stats_end = keys_end + 1 + stats_length
        # (also rules out negative numbers: each bound must not come before the previous one)
        if not (base <= start <= keys_end < stats_end <= size):
            raise ValueError(f"bad entry of run {h!r:.40}")
        fields["creation_time"] = created
        fields["updated_at"] = updated
        fields["end_time"] = ended
        append(
            (
                key,
                RunRecord.from_index(
                    h, fields, params, raw, start, keys_end, stats_end, rebuilt, created_at
                ),
            )
        )
    return out


def index_file_problem(layout: RepoLayout) -> str | None:
    """Why the index file cannot be used as it is, decoding every entry in full (None when it
    is sound or missing, or `.aim/index` is a link: never read, `verify` names the link)."""
    if first_link(layout.aim_dir, layout.index_dir) is not None:
        return None
    try:
        raw = read_regular(layout.index_file, "run index", MAX_JSON_FILE_BYTES)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"unreadable ({exc})"
    try:
        for _key, record in decode_index(raw):
            if not is_valid_run_hash(record.hash):  # (readers just ignore such an entry)
                raise ValueError(f"invalid run hash {record.hash!r:.40}")
            record.meta  # noqa: B018 (decodes the fields, params and the whole catalogue)
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
