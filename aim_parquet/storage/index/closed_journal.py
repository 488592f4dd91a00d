"""Writer-left index rows: `.aim/index/closed.jsonl`, an accelerator of the first run index
build after many runs were written (`storage.index.run_index`).

A writer that has just closed its run (final sidecar written) appends the run's index row, in
the index file's cell form (`index_file.row_cells`) with the stat key of that sidecar, as one
line: `["aim_parquet.closed/1", <cells>]` (ASCII JSON). A refresh that builds the index file
from scratch (none, or a damaged one) takes a run's row from the journal when its stat key
equals the sidecar's stat, and reads only the other sidecars; the refresh that writes the
index file removes the journal. The rules:

- The journal is only an accelerator: a torn, interleaved, foreign or damaged line, a line
  whose stat is not the sidecar's, or a journal that cannot be read just means that the run's
  sidecar is read; it is never an error nor reported as damage.
- A line is appended with one `write` on an `O_APPEND` descriptor (any number of processes and
  threads at once); appending never blocks, and a failure to append is swallowed (the close
  has succeeded and lost nothing). Past `MAX_BYTES` nothing more is appended.
- A run closed again (resumed) appends a new line; the line whose stat key is the sidecar's is
  taken. Only a run with one writer, `end_time` set, and a catalogue that is the sidecar's is
  written (any other run's entry depends on more than its sidecar).
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage.base.repo_changes import index_link
from aim_parquet.storage.base.safe_fs import read_regular
from aim_parquet.storage.index import param_columns as pc_
from aim_parquet.storage.index.catalogue_columns import LIST_COLUMNS
from aim_parquet.storage.index.index_file import (
    FIXED,
    SEQ_AT,
    StatKey,
    row_cells,
    stat_key,
    valid_fields,
)
from aim_parquet.storage.index.run_records import RunRecord, json_text
from aim_parquet.storage.index.sidecar_entries import read_sidecar_entry

__all__ = [
    "JOURNAL_FILENAME", "MAX_BYTES", "append_closed", "merged_cells", "read_journal",
    "remove_journal", "take_rows",
]  # fmt: skip

JOURNAL_FILENAME = "closed.jsonl"
TAG = "aim_parquet.closed/1"
MAX_BYTES = 64 << 20  # no line is appended to a journal this large
_READ_MAX = 2 * MAX_BYTES  # (appends racing past the cap)
_INT64 = 1 << 63
Row = list[Any]  # a row's cells (`index_file.row_cells`)
Entry = tuple[Row, Any]  # a journal row and its stored params
_BAD: Any = object()


def journal_path(layout: RepoLayout) -> str:
    return os.path.join(os.fspath(layout.index_dir), JOURNAL_FILENAME)


def append_closed(layout: RepoLayout, run_hash: str) -> None:
    """Append the index row of a run just closed by this process (module doc); never raises."""
    try:
        _append(layout, run_hash)
    except Exception:  # noqa: BLE001 (an accelerator: the close has succeeded)
        return


def _append(layout: RepoLayout, run_hash: str) -> None:
    if index_link(layout) is not None:
        return
    st = os.stat(layout.sidecar_path(run_hash), follow_symlinks=False)
    entry = read_sidecar_entry(layout, run_hash, stat_key(st))
    record = entry.record
    if record is None or "+" in entry.key or record.is_rebuilt or not record.has_end_time:
        return
    if any(info.has_rewrites for info in record.meta.sequences):
        return  # (its catalogue is recounted from the segments by readers)
    line = (json_text([TAG, *row_cells(entry.key, record)]) + "\n").encode("ascii")
    os.makedirs(os.fspath(layout.index_dir), exist_ok=True)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    fd = os.open(journal_path(layout), flags, 0o644)
    try:
        if os.fstat(fd).st_size <= MAX_BYTES:
            os.write(fd, line)
    finally:
        os.close(fd)


def remove_journal(layout: RepoLayout) -> None:
    """Remove the journal (its rows are in the index file just written)."""
    with contextlib.suppress(OSError):
        os.unlink(journal_path(layout))


def read_journal(layout: RepoLayout) -> dict[str, list[Entry]]:
    """The journal's sound rows (with their params) by run hash (every line of a run, in
    journal order); {} when there is none or it cannot be read."""
    if index_link(layout) is not None:
        return {}
    try:
        data = read_regular(journal_path(layout), "index journal", _READ_MAX)
    except Exception:  # noqa: BLE001 (missing, a link, too large, ...: as good as none)
        return {}
    lines = data.split(b"\n")[:-1]  # (the last one is torn or empty)
    try:  # one parse for the whole journal, one per line only when some line is damaged
        parsed: list[Any] = json.loads(b"[" + b",".join(lines) + b"]")
    except (ValueError, RecursionError):
        parsed = []
        for line in lines:
            try:
                parsed.append(json.loads(line))
            except (ValueError, RecursionError):
                continue
    out: dict[str, list[Entry]] = {}
    for item in parsed:
        if type(item) is list and len(item) == SEQ_AT + 2 and item[0] == TAG:
            row = item[1:]
            params = _checked_params(row)
            if params is not _BAD:
                out.setdefault(row[0], []).append((row, params))
    return out


def take_rows(
    journal: dict[str, list[Entry]], listed: list[str], stats: Any, todo: list[int]
) -> dict[str, Entry]:
    """The journal rows of the runs `listed[i]` (i in `todo`) made of the sidecar whose stat
    (`stats[0..2][i]`: mtime_ns, size, ino) is the one listed: the last such line of each."""
    out: dict[str, Entry] = {}
    if not journal:
        return out
    mtimes, sizes, inos = (s.tolist() for s in stats[:3])
    for i in todo:
        entries = journal.get(listed[i])
        if entries is not None:
            for entry in reversed(entries):
                row = entry[0]
                if row[1] == mtimes[i] and row[2] == sizes[i] and row[3] == inos[i]:
                    out[listed[i]] = entry
                    break
    return out


def merged_cells(
    order: list[str], records: dict[str, tuple[StatKey, RunRecord]], taken: dict[str, Entry]
) -> tuple[list[Row], list[Any]]:
    """The cells and stored params of the rows of `records` (read from sidecars) and `taken`
    (from the journal), in `order` (the order of the runs listed), as `encode_cells` takes."""
    cells: list[Row] = []
    params: list[Any] = []
    for run_hash in order:
        entry = taken.get(run_hash)
        if entry is not None:
            cells.append(entry[0])
            params.append(entry[1])
        elif (found := records.get(run_hash)) is not None:
            cells.append(row_cells(*found))
            params.append(found[1].stored_params())
    return cells, params


# -- checking a row ----------------------------------------------------------------------------
_AT = {name: i for i, name in enumerate(FIXED[:SEQ_AT])}
_NULLABLE_TEXT = ("experiment", "name", "description")


def _text(value: Any) -> bool:
    return type(value) is str and pc_.is_utf8(value)


def _ascii(value: Any) -> bool:
    return type(value) is str and value.isascii()


def _checked_params(row: Row) -> Any:
    """The stored params of a journal row that has exactly the cells an index row of a closed,
    single-writer run can have (so that the table built of it is sound); else `_BAD`."""
    try:
        at = _AT
        if not (
            _text(row[at["hash"]])
            and all(
                type(row[at[n]]) is int and 0 <= row[at[n]] < _INT64 for n in ("mtime_ns", "size")
            )
            and type(row[at["ino"]]) is int
            and 0 <= row[at["ino"]] < 2 * _INT64
            and row[at["parts"]] is None
            and row[at["kept"]] is False
            and row[at["rebuilt"]] is False
            and type(row[at["creation_time"]]) is float
            and type(row[at["updated_at"]]) is float
            and type(row[at["end_time"]]) is float
            and all(row[at[n]] is None or _text(row[at[n]]) for n in _NULLABLE_TEXT)
            and type(row[at["archived"]]) is bool
            and all(_ascii(row[at[n]]) for n in ("params", "catalogue_keys", "catalogue_stats"))
        ):
            return _BAD
        tags = row[at["tags"]]
        if tags is not None and not (type(tags) is list and all(_text(t) for t in tags)):
            return _BAD
        fields = row[at["fields"]]
        if fields is not None:
            if not _ascii(fields):
                return _BAD
            value = json.loads(fields)
            if type(value) is not dict or not valid_fields(value):
                return _BAD
        params = json.loads(row[at["params"]])
        if type(params) is not dict or not _sound_catalogue(row[SEQ_AT]):
            return _BAD
        return params
    except (ValueError, RecursionError, TypeError, IndexError):
        return _BAD


def _sound_catalogue(cells: Any) -> bool:
    if cells is None:
        return True
    if type(cells) is not list or len(cells) != len(LIST_COLUMNS):
        return False
    if any(type(c) is not list or len(c) != len(cells[0]) for c in cells):
        return False
    strings, ints, floats = cells[:4], cells[4:7], cells[7:]
    return (
        all(_text(v) for c in strings for v in c)
        and all(type(v) is int and -_INT64 <= v < _INT64 for v in ints[0])
        and all(
            v is None or (type(v) is int and -_INT64 <= v < _INT64) for c in ints[1:] for v in c
        )
        and all(v is None or type(v) is float for c in floats for v in c)
    )
