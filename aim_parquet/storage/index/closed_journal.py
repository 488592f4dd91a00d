"""Writer-left index rows: `.aim/index/closed.jsonl`, an accelerator of the first run index
build after many runs were written (`storage.index.run_index`).

A writer that has just closed its run (final sidecar written) appends the run's index row, in
the index file's cell form (`index_file.row_cells`) with the stat key of that sidecar, as one
line: `["aim_parquet.closed/1", <cells>]` (ASCII JSON) with the params and catalogue text cells
null, each of those three texts then following after a tab (a row's JSON texts are not quoted in
JSON again: half the bytes to parse), then a tab and the CRC-32 of all that (8 hex digits), so a
damaged line is never taken. A refresh that builds the index file
from scratch (none, or a damaged one) takes a run's row from the journal when its stat key
equals the sidecar's stat, and reads only the other sidecars; the refresh that writes the
index file removes the journal. The rules:

- The journal is only an accelerator: a torn, interleaved, foreign or damaged line, a line
  whose stat is not the sidecar's, or a journal that cannot be read just means that the run's
  sidecar is read; it is never an error nor reported as damage.
- A line is appended with one `write` on an `O_APPEND` descriptor (any number of processes and
  threads at once); appending never blocks, and a failure to append is swallowed (the close
  has succeeded and lost nothing). Past `MAX_BYTES` nothing more is appended, nor to a journal
  that is not a plain file with one link (a hard link shares it with a path outside the repo).
- A run closed again (resumed) appends a new line; the line whose stat key is the sidecar's is
  taken. Only a run with one writer, `end_time` set, and a catalogue that is the sidecar's is
  written (any other run's entry depends on more than its sidecar).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import zlib
from itertools import chain
from operator import itemgetter
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
    "JOURNAL_FILENAME", "MAX_BYTES", "MIN_NEW_RUNS", "NEVER", "append_closed", "journal_rows", "merged_cells", "read_journal",
    "remove_journal", "take_rows",
]  # fmt: skip

JOURNAL_FILENAME = "closed.jsonl"
TAG = "aim_parquet.closed/1"
MAX_BYTES = 64 << 20  # no line is appended to a journal this large
MIN_NEW_RUNS = 16  # a refresh reads the journal when it has at least this many runs to read
NEVER = 1 << 62  # (`journal_rows`'s `least` of a refresh that does not read the journal)
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
    cells = row_cells(entry.key, record)
    texts = [cells[i] for i in _TEXTS]
    for i in _TEXTS:
        cells[i] = None
    if any("\t" in t or "\n" in t for t in texts):
        return  # (never: JSON text escapes them)
    body = "\t".join([json_text([TAG, *cells]), *texts]).encode("ascii")
    line_bytes = body + b"\t%08x\n" % zlib.crc32(body)
    os.makedirs(os.fspath(layout.index_dir), exist_ok=True)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    fd = os.open(journal_path(layout), flags, 0o644)
    try:
        held = os.fstat(fd)  # (a FIFO, or a hard link that another path shares, is not written)
        if stat.S_ISREG(held.st_mode) and held.st_nlink == 1 and held.st_size <= MAX_BYTES:
            os.write(fd, line_bytes)
    finally:
        os.close(fd)


def remove_journal(layout: RepoLayout) -> None:
    """Remove the journal (its rows are in the index file just written)."""
    with contextlib.suppress(OSError):
        os.unlink(journal_path(layout))


def read_journal(layout: RepoLayout) -> dict[str, list[Row]]:
    """The journal's rows by run hash (every line of a run, in journal order; not checked but
    for their tag and length); {} when there is none or it cannot be read."""
    if index_link(layout) is not None:
        return {}
    try:
        data = read_regular(journal_path(layout), "index journal", _READ_MAX)
    except Exception:  # noqa: BLE001 (missing, a link, too large, ...: as good as none)
        return {}
    heads: list[bytes] = []
    texts: list[list[bytes]] = []
    for line in data.split(b"\n")[:-1]:  # (the last one is torn or empty)
        parts = line.split(b"\t")
        if len(parts) == 2 + len(_TEXTS) and parts[-1] == b"%08x" % zlib.crc32(line[:-9]):
            heads.append(parts[0])
            texts.append(parts[1:-1])
    try:  # one parse for the whole journal, one per line only when some line is damaged
        parsed: list[Any] = json.loads(b"[" + b",".join(heads) + b"]")
        if len(parsed) != len(heads):
            raise ValueError("not one value per line")
    except (ValueError, RecursionError):
        parsed = []
        for head in heads:
            try:
                parsed.append(json.loads(head))
            except (ValueError, RecursionError):
                parsed.append(None)
    out: dict[str, list[Row]] = {}
    for item, text in zip(parsed, texts, strict=True):
        is_row = type(item) is list and len(item) == SEQ_AT + 2 and item[0] == TAG
        if is_row and type(item[1]) is str:  # (a hash: a key)
            row = item[1:]
            try:
                for i, cell in zip(_TEXTS, text, strict=True):
                    row[i] = cell.decode("ascii")
            except ValueError:
                continue
            out.setdefault(row[0], []).append(row)
    return out


def journal_rows(
    layout: RepoLayout, listed: list[str], stats: Any, todo: list[int], least: int, new: list[str]
) -> dict[str, Entry]:
    """`take_rows` of the journal where a refresh is to read the sidecars of `new` runs, at
    least `least` of them (a few sidecars cost less than the journal), {} otherwise."""
    if not new or len(new) < least:
        return {}
    return take_rows(read_journal(layout), listed, stats, todo)


def take_rows(
    journal: dict[str, list[Row]], listed: list[str], stats: Any, todo: list[int]
) -> dict[str, Entry]:
    """The sound journal rows (with their params) of the runs `listed[i]` (i in `todo`) made
    of the sidecar whose stat (`stats[0..2][i]`: mtime_ns, size, ino) is the one listed: the
    last such line of each."""
    found: dict[str, Row] = {}
    if not journal:
        return {}
    mtimes, sizes, inos = (s.tolist() for s in stats[:3])
    for i in todo:
        rows = journal.get(listed[i])
        if rows is not None:
            for row in reversed(rows):
                if row[1] == mtimes[i] and row[2] == sizes[i] and row[3] == inos[i]:
                    found[listed[i]] = row
                    break
    params = _checked_all(list(found.values()))  # (one check of all, the usual case)
    if params is not None:
        return {h: (row, p) for (h, row), p in zip(found.items(), params, strict=True)}
    out: dict[str, Entry] = {}
    for run_hash, row in found.items():  # (some row is not sound: row by row)
        checked = _checked_params(row)
        if checked is not _BAD:
            out[run_hash] = (row, checked)
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
_TEXTS = tuple(_AT[name] for name in ("params", "catalogue_keys", "catalogue_stats"))
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


def _types(values: Any) -> set[type]:
    return set(map(type, values))


def _utf8(values: Any) -> bool:
    try:
        "".join(values).encode("utf-8")
    except (TypeError, ValueError):
        return False
    return True


def _ints(values: list[Any], low: int, high: int) -> bool:
    """Plain ints (or None) in [low, high)."""
    if not _types(values) <= {int, type(None)}:
        return False
    ints = [v for v in values if v is not None]
    return not ints or (min(ints) >= low and max(ints) < high)


def _checked_all(rows: list[Row]) -> list[Any] | None:
    """`_checked_params` of every row, in one pass per column; None when any row is not sound
    (or the checks do not hold for all at once)."""
    if not rows:
        return []
    try:
        columns = list(zip(*rows, strict=True))
        col = {name: columns[i] for name, i in _AT.items()}
        nothing, text, floats = {type(None)}, {str, type(None)}, {float}
        tags = [t for t in col["tags"] if t is not None]
        if not (
            _types(col["hash"]) <= {str}
            and _utf8(col["hash"])
            and _ints([*col["mtime_ns"], *col["size"]], 0, _INT64)
            and _ints(list(col["ino"]), 0, 2 * _INT64)
            and None not in col["mtime_ns"] + col["size"] + col["ino"]
            and _types(col["parts"]) <= nothing
            and _types(col["kept"] + col["rebuilt"] + col["archived"]) <= {bool}
            and not any(col["kept"] + col["rebuilt"])
            and _types(col["creation_time"] + col["updated_at"] + col["end_time"]) <= floats
            and all(_types(col[n]) <= text and _utf8(filter(None, col[n])) for n in _NULLABLE_TEXT)
            and _types(tags) <= {list}
            and _types(chain.from_iterable(tags)) <= {str}
            and _utf8(chain.from_iterable(tags))
            and _types(col["fields"]) <= text
            and all(_types(col[n]) <= {str} for n in ("params", "catalogue_keys"))
            and _types(col["catalogue_stats"]) <= {str}
            and all("".join(col[n]).isascii() for n in ("params", "catalogue_keys"))
            and "".join(col["catalogue_stats"]).isascii()
            and all(p[:1] == "{" and p[-1:] == "}" for p in col["params"])
        ):
            return None
        for fields in filter(None, col["fields"]):  # (almost never any)
            value = json.loads(fields) if fields.isascii() else None
            if type(value) is not dict or not valid_fields(value):
                return None
        params: list[Any] = json.loads("[" + ",".join(col["params"]) + "]")
        if len(params) != len(rows) or not _types(params) <= {dict}:
            return None
        return params if _sound_catalogues(columns[SEQ_AT]) else None
    except (ValueError, RecursionError, TypeError, IndexError):
        return None


def _sound_catalogues(cells: tuple[Any, ...]) -> bool:
    """`_sound_catalogue` of every row's catalogue lists, a column at a time."""
    plain = [c for c in cells if c is not None]
    if not _types(plain) <= {list} or not set(map(len, plain)) <= {len(LIST_COLUMNS)}:
        return False
    lengths = None
    for j in range(len(LIST_COLUMNS)):
        lists = list(map(itemgetter(j), plain))
        if not _types(lists) <= {list}:
            return False
        these = list(map(len, lists))
        if lengths is None:
            lengths = these
        elif these != lengths:
            return False
        flat = list(chain.from_iterable(lists))
        if j < 4:
            ok = _types(flat) <= {str} and _utf8(flat)
        elif j == 4:
            ok = None not in flat and _ints(flat, -_INT64, _INT64)
        elif j < 7:
            ok = _ints(flat, -_INT64, _INT64)
        else:
            ok = _types(flat) <= {float, type(None)}
        if not ok:
            return False
    return True


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
