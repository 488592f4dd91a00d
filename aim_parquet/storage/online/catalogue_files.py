"""A run's files as the catalogue scan reads them, as of one manifest state: the rows of a
sequence written after its entry's reach (or all of them, compacted rows first), a sequence not
catalogued identified from its segments or compacted footers, and the entries scanned from them
(`storage.online.catalogue_scan` decides when to scan; `catalogue_summary` folds the rows)."""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from collections.abc import Callable, Container, Iterable
from dataclasses import replace
from pathlib import Path

import pyarrow as pa

from aim_parquet.errors import CorruptFileError
from aim_parquet.format.json_records import loads_json
from aim_parquet.format.kinds import is_metric_kind
from aim_parquet.format.meta import CatalogueReach, Manifest, SequenceInfo
from aim_parquet.format.paths import (
    COMPACTED_DIRNAME,
    MANIFEST_FILENAME,
    SEQS_DIRNAME,
    RepoLayout,
    is_valid_seq_id,
    validate_run_hash,
)
from aim_parquet.format.schema import segment_key
from aim_parquet.storage.base.file_checks import check_segment_schema
from aim_parquet.storage.base.files import list_names
from aim_parquet.storage.online.catalogue_summary import Piece, summarize_exact, summarize_pieces
from aim_parquet.storage.online.compacted_read import GoneFiles, is_gone, read_compacted
from aim_parquet.storage.online.run_reader import (
    MAX_SWAP_RETRIES,
    manifest_bytes,
    parse_manifest,
    segment_names,
)
from aim_parquet.storage.online.segments import open_segment, read_segment, read_segment_from
from aim_parquet.storage.online.writer_parts import sequence_owner

__all__ = ["RunFiles", "as_of_one_manifest", "recount_once", "scan_once"]

log = logging.getLogger(__name__)


class RunFiles:
    """A run folder as of one manifest state: which segments the manifest covers."""

    def __init__(self, run_dir: str, manifest: Manifest | None) -> None:
        self.run_dir = run_dir
        self.manifest = manifest
        self.covered = manifest.segments if manifest is not None else frozenset()
        self._covered_names: dict[str, list[str]] = {}
        for entry in self.covered:
            seq_id, _, name = entry.partition("/")
            self._covered_names.setdefault(seq_id, []).append(name)

    def seq_dir(self, seq_id: str) -> str:
        return f"{self.run_dir}/{SEQS_DIRNAME}/{seq_id}"

    def covered_names(self, seq_id: str) -> list[str]:
        """Names of the segments of `seq_id` whose rows the manifest's files hold."""
        return self._covered_names.get(seq_id, [])


def _read_whole(path: str) -> list[pa.RecordBatch]:
    """The complete batches of a segment; none for a just-created empty one, or (logged) for one
    whose schema is unreadable, a link or a FIFO in its place (never followed or opened for
    reading: `storage.base.safe_fs`): `verify` reports it, and nobody can read its points."""
    try:
        return read_segment(path).batches
    except CorruptFileError as exc:  # (UnsafeFileError too)
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size > 0:
            log.warning("aim_parquet: catalogue scan skips %s", exc)
        return []


def _tail_pieces(files: RunFiles, info: SequenceInfo, names: list[str]) -> list[Piece] | None:
    """The rows written after `info.reach`, in write order; None when the reach does not match
    the files (then every point has to be summarised)."""
    reach = info.reach
    seq_id = info.seq_id
    covered = files.covered_names(seq_id)
    if reach is None:
        if info.count or covered:
            return None
        later = names  # never summarised anything: every segment is new
    else:
        if any(n > reach.segment for n in covered):
            return None  # rows after the reach were compacted: only a full read finds them
        later = [n for n in names if n > reach.segment]
    pieces: list[Piece] = []
    if reach is not None and not reach.is_sealed:
        if reach.segment in covered or reach.segment not in names:
            return None
        data = read_segment_from(f"{files.seq_dir(seq_id)}/{reach.segment}", reach.bytes)
        if data is None:
            return None
        pieces.extend(data.batches)
    for name in later:
        pieces.extend(_read_whole(f"{files.seq_dir(seq_id)}/{name}"))
    return pieces


def _all_pieces(files: RunFiles, info: SequenceInfo, names: list[str]) -> list[Piece]:
    """Every row of the sequence: its compacted rows, then the segments they do not cover."""
    pieces: list[Piece] = []
    if files.manifest is not None:
        columns = ["step", "value"] if is_metric_kind(info.kind) else ["step", "index"]
        pieces.extend(read_compacted(Path(files.run_dir), files.manifest, info, columns))
    for name in names:
        if f"{info.seq_id}/{name}" not in files.covered:
            pieces.extend(_read_whole(f"{files.seq_dir(info.seq_id)}/{name}"))
    return pieces


def _scan_sequence(files: RunFiles, info: SequenceInfo, *, full: bool) -> SequenceInfo:
    """`info` caught up with the rows written after its reach (`full`: summarised from all of its
    points), with a sealed reach at the newest segment of the sequence."""
    names = segment_names(files.seq_dir(info.seq_id))
    pieces = None if full or info.has_rewrites else _tail_pieces(files, info, names)
    if pieces is not None:
        info = summarize_pieces(info, pieces)
    if pieces is None or info.has_rewrites:
        info = summarize_exact(info, _all_pieces(files, info, names))
    last = max([*names, *files.covered_names(info.seq_id)], default=None)
    if last is None:
        reach = info.reach  # no segment at all (never flushed, or compacted and gone)
        return info if reach is None else replace(info, reach=replace(reach, is_sealed=True))
    try:
        size = os.lstat(f"{files.seq_dir(info.seq_id)}/{last}").st_size
    except FileNotFoundError:
        size = 0  # compacted: its size no longer matters, it is sealed
    return replace(info, reach=CatalogueReach(last, size, is_sealed=True))


def _identify(files: RunFiles, seq_id: str) -> SequenceInfo | None:
    """Name, context and kind of a sequence not catalogued, from its first readable segment."""
    for name in segment_names(files.seq_dir(seq_id)):
        path = f"{files.seq_dir(seq_id)}/{name}"
        try:
            schema = open_segment(path).schema  # bounded, regular, not a link (UnsafeFileError)
            check_segment_schema(schema, path)  # FormatVersionError passes
            key = segment_key(schema, seq_id)
            context = None if key is None else json.loads(key.context)
        except (pa.ArrowInvalid, OSError, ValueError) as exc:  # (CorruptFileError)
            if isinstance(exc, OSError) and (is_gone(exc) or isinstance(exc, PermissionError)):
                raise
            continue
        if key is None or not isinstance(context, dict):
            continue  # not a segment's metadata: the next segment may tell
        return SequenceInfo(seq_id=seq_id, name=key.name, context=context, kind=key.kind)
    return None


def _compacted_only(files: RunFiles, known: Container[str]) -> list[SequenceInfo]:
    """Sequences whose rows are all in compacted files and that the catalogue lacks (a run
    compacted by an earlier release while its catalogue lagged)."""
    if files.manifest is None:
        return []
    from aim_parquet.storage.online.compacted_read import read_footer

    out: dict[str, SequenceInfo] = {}
    for f in files.manifest.files:
        try:
            footer = read_footer(Path(files.run_dir) / f.path)
        except (OSError, pa.ArrowInvalid, ValueError, KeyError) as exc:
            if isinstance(exc, OSError) and is_gone(exc):
                raise
            continue  # an unreadable compacted file: `verify` reports it
        for key in footer.sequences.values():
            if key.seq_id not in known and key.seq_id not in out:
                what = f"context of sequence {key.seq_id} in {f.path}"
                try:  # bounded depth: CorruptFileError for a hostile footer
                    context = loads_json(key.context.encode("utf-8", "surrogatepass"), what)
                except CorruptFileError:
                    continue
                if not isinstance(context, dict):
                    continue
                out[key.seq_id] = SequenceInfo(key.seq_id, key.name, context, key.kind)
    return list(out.values())


def _seq_folder_ids(files: RunFiles) -> list[str]:
    return [n for n in list_names(f"{files.run_dir}/{SEQS_DIRNAME}") if is_valid_seq_id(n)]


def scan_once(
    files: RunFiles,
    infos: tuple[SequenceInfo, ...],
    known: Container[str],
    *,
    full: bool,
    owner: int | None = None,
) -> list[SequenceInfo]:
    """`infos` scanned, then the sequences on disk whose seq id is neither among them nor in
    `known` (with `owner`: only those that belong to that writer of a multi-writer run)."""
    out = [_scan_sequence(files, i, full=full) for i in infos]
    seen = {i.seq_id for i in infos}
    new: list[SequenceInfo] = []
    for seq_id in _seq_folder_ids(files):
        if seq_id not in seen and seq_id not in known:
            found = _identify(files, seq_id)
            if found is not None:
                new.append(found)
    if full:
        seen.update(i.seq_id for i in new)
        new.extend(i for i in _compacted_only(files, seen) if i.seq_id not in known)
    if owner is not None:
        new = [i for i in new if sequence_owner(i.context) == owner]
    out.extend(_scan_sequence(files, i, full=True) for i in new)
    return out


def recount_once(files: RunFiles, infos: Iterable[SequenceInfo]) -> list[SequenceInfo]:
    out = []
    for info in infos:
        names = segment_names(files.seq_dir(info.seq_id))
        out.append(summarize_exact(info, _all_pieces(files, info, names)))
    return out


def as_of_one_manifest(
    layout: RepoLayout, run_hash: str, work: Callable[[RunFiles], list[SequenceInfo]]
) -> list[SequenceInfo]:
    """`work` done on the run's files as of one manifest state; starts over when a compaction
    swapped files (reader rule 5)."""
    run_dir = f"{os.fspath(layout.runs_dir)}/{validate_run_hash(run_hash)}"
    manifest_path = f"{run_dir}/{COMPACTED_DIRNAME}/{MANIFEST_FILENAME}"
    gone = GoneFiles(run_hash)
    for attempt in range(MAX_SWAP_RETRIES):
        if attempt > 1:
            time.sleep(min(0.2, 0.005 * 2**attempt))  # let a compaction in progress finish
        manifest, seen = parse_manifest(manifest_path)
        files = RunFiles(run_dir, manifest)
        try:
            out = work(files)
        except OSError as exc:
            if is_gone(exc):
                gone.check(exc, seen)
                continue
            raise
        if manifest_bytes(manifest_path) == seen:
            return out
    raise CorruptFileError(f"run {run_hash}: files kept changing while scanning its catalogue.")
