"""The sequence catalogue as the data says it is: the one place that summarises points into
catalogue entries and decides when the sidecar's catalogue can be trusted.

A writer rewrites the sidecar after the segments it describes, so the catalogue of a run whose
writer is alive lags its segments by at most one flush, and that of a run whose writer died (no
`end_time`, lock not held) may miss the last flush, or sequences created since the last sidecar
write. Everything that needs the true catalogue asks this module:

- `resume_catalogue`: the writer's open path (under the write lock); auto-steps continue after
  the real last step, so nothing the dead writer wrote is replaced.
- `read_catalogue`: readers (`Run.metrics()`, `Sequence` properties, `stats`) and the run index:
  the scanned catalogue when the writer is gone, the sidecar's (plus sequences not catalogued yet)
  otherwise.
- `catch_up_sidecar` (`compact`, before it moves a dead run's segments into Parquet) and
  `caught_up` (`runs close`): a dead run's sidecar rewritten with the scanned catalogue;
  `verify` compares the sidecar with `scan_catalogue(full=True)`, reports `stale-catalogue`,
  and `--repair` writes that.

Cost: each catalogue entry records how far into the segments its summary reaches
(`CatalogueReach`: a segment name and byte offset; segments are append-only and named in write
order), so a scan reads only the points written after the last sidecar write. An entry without a
reach (a sidecar of an earlier release), or whose reach no longer matches the files (the reach
segment was compacted while it could still grow, repaired shorter, quarantined), is summarised
from all of its points: slower, never wrong.

Summaries follow the catalogue's documented meaning (FORMAT.md): every field describes the
visible points (last write wins: `count` counts steps, `min`/`max` ignore replaced values). A
catch-up folds the rows after the reach exactly as the writer does (`seq_buffer.summarize`,
incremental while steps only grow); an entry marked `has_rewrites` (a write went to a step at or
before `last_step`) is recounted from all of its points, deduplicated (`summarize_exact`): by
every scan, by `discover_sequences` for readers of a live run (nothing written), and by the
writer at `close()` (`recount_sequences`), so only a run that rewrites steps pays for it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import stat
import time
from collections.abc import Callable, Container, Iterable
from dataclasses import replace
from pathlib import Path
from typing import TypeAlias

import numpy as np
import pyarrow as pa

from aim_parquet.errors import CorruptFileError
from aim_parquet.format.kinds import INT_KIND, NUMBER_KIND, is_metric_kind
from aim_parquet.format.meta import CatalogueReach, Manifest, RunMeta, SequenceInfo, loads_json
from aim_parquet.format.paths import (
    COMPACTED_DIRNAME,
    MANIFEST_FILENAME,
    SEQS_DIRNAME,
    RepoLayout,
    is_valid_seq_id,
    validate_run_hash,
)
from aim_parquet.format.schema import segment_key
from aim_parquet.storage.base.columns import to_numpy
from aim_parquet.storage.base.file_checks import check_segment_schema
from aim_parquet.storage.base.files import list_names
from aim_parquet.storage.base.lock import (
    held_run_lock,
    is_run_locked,
    run_lock_holder,
    writer_lock_holder,
)
from aim_parquet.storage.base.repo_changes import write_sidecar
from aim_parquet.storage.base.repo_files import writer_ranks
from aim_parquet.storage.online.compacted_read import GoneFiles, is_gone, read_compacted
from aim_parquet.storage.online.run_reader import (
    MAX_SWAP_RETRIES,
    load_sidecar,
    manifest_bytes,
    parse_manifest,
    segment_names,
)
from aim_parquet.storage.online.segments import open_segment, read_segment, read_segment_from
from aim_parquet.storage.online.seq_buffer import summarize, visible_rows
from aim_parquet.storage.online.writer_parts import (
    load_writer_part,
    load_writer_parts,
    sequence_owner,
)

log = logging.getLogger(__name__)

Piece: TypeAlias = (
    pa.RecordBatch | pa.Table
)  # rows with `step` first and, for metrics, `value` second


# -- summaries ------------------------------------------------------------------------------
def blank(info: SequenceInfo) -> SequenceInfo:
    """The entry of `info`'s sequence before any point: identity and kind, no summary."""
    return SequenceInfo(info.seq_id, info.name, info.context, info.kind)


def summarize_pieces(info: SequenceInfo, pieces: Iterable[Piece]) -> SequenceInfo:
    """`info` after the rows of `pieces`, in order (as the writer folds its batches). An `int`
    metric that meets a value that is not an integer becomes `number`, as the writer's does."""
    for piece in pieces:
        for batch in piece.to_batches() if isinstance(piece, pa.Table) else (piece,):
            if batch.num_rows == 0:
                continue
            if info.kind == INT_KIND:
                values = to_numpy(batch.column(1))
                if not bool(np.all(np.isfinite(values) & (values == np.floor(values)))):
                    info = replace(info, kind=NUMBER_KIND)
            info = summarize(info, batch)
    return info


def _piece_batches(pieces: Iterable[Piece]) -> list[pa.RecordBatch]:
    out: list[pa.RecordBatch] = []
    for piece in pieces:
        batches = piece.to_batches() if isinstance(piece, pa.Table) else [piece]
        out.extend(b for b in batches if b.num_rows)
    return out


def summarize_exact(info: SequenceInfo, pieces: Iterable[Piece]) -> SequenceInfo:
    """`info`'s entry made from all of its rows (`pieces` in write order: metrics `step, value`,
    objects `step, index` first), deduplicated by last write wins, then folded as one growing
    batch: exact whatever steps were rewritten. `reach` is kept."""
    batches = _piece_batches(pieces)
    entry = replace(blank(info), reach=info.reach)
    if not batches:
        return entry
    steps = np.concatenate([to_numpy(b.column(0)) for b in batches])
    second = np.concatenate([to_numpy(b.column(1)) for b in batches])
    is_metric = is_metric_kind(info.kind)
    if info.kind == "int" and not bool(np.all(np.isfinite(second) & (second == np.floor(second)))):
        entry = replace(entry, kind="number")  # as the writer's would (any value ever written)
    keep = visible_rows(steps, None if is_metric else second)
    if keep is not None:
        steps, second = steps[keep], second[keep]
    name = "value" if is_metric else "index"
    second_array = pa.array(second, pa.float64() if is_metric else pa.int32())
    batch = pa.record_batch([pa.array(steps, pa.int64()), second_array], names=["step", name])
    return summarize(entry, batch)


def _same_value(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


def stats_differ(stored: SequenceInfo, true: SequenceInfo) -> bool:
    """Whether two entries of one sequence disagree on any summary field (kind and reach are
    not compared: `int` and `number` hold the same values)."""
    fields = ("count", "first_step", "last_step", "first", "last", "min", "max")
    return not all(_same_value(getattr(stored, f), getattr(true, f)) for f in fields)


def stale_sequences(stored: Iterable[SequenceInfo], true: Iterable[SequenceInfo]) -> list[str]:
    """Names of the sequences whose stored entry disagrees with the true one, or is missing (a
    sequence without a point may be missing: a catalogue rebuilt from the data leaves it out)."""
    have = {s.seq_id: s for s in stored}
    stale = []
    for info in true:
        old = have.get(info.seq_id)
        if (old is None and info.count) or (old is not None and stats_differ(old, info)):
            stale.append(info.name)
    return stale


# -- liveness -------------------------------------------------------------------------------
def is_writer_gone(layout: RepoLayout, meta: RunMeta) -> bool:
    """True when the run was not closed (no `end_time`) and no live process holds its lock
    (any writer's lock, for a run with several): its catalogue may lag its segments, and
    nothing will catch it up but a scan."""
    if meta.end_time is not None:
        return False
    if meta.is_multi_writer:
        return run_lock_holder(layout, meta.hash) is None
    return is_run_locked(layout.lock_file(meta.hash)) is None


# -- scanning -------------------------------------------------------------------------------
class _RunFiles:
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


def _tail_pieces(files: _RunFiles, info: SequenceInfo, names: list[str]) -> list[Piece] | None:
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


def _all_pieces(files: _RunFiles, info: SequenceInfo, names: list[str]) -> list[Piece]:
    """Every row of the sequence: its compacted rows, then the segments they do not cover."""
    pieces: list[Piece] = []
    if files.manifest is not None:
        columns = ["step", "value"] if is_metric_kind(info.kind) else ["step", "index"]
        pieces.extend(read_compacted(Path(files.run_dir), files.manifest, info, columns))
    for name in names:
        if f"{info.seq_id}/{name}" not in files.covered:
            pieces.extend(_read_whole(f"{files.seq_dir(info.seq_id)}/{name}"))
    return pieces


def _scan_sequence(files: _RunFiles, info: SequenceInfo, *, full: bool) -> SequenceInfo:
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


def _identify(files: _RunFiles, seq_id: str) -> SequenceInfo | None:
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


def _compacted_only(files: _RunFiles, known: Container[str]) -> list[SequenceInfo]:
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


def _seq_folder_ids(files: _RunFiles) -> list[str]:
    return [n for n in list_names(f"{files.run_dir}/{SEQS_DIRNAME}") if is_valid_seq_id(n)]


def _scan_once(
    files: _RunFiles,
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


def _scan(
    layout: RepoLayout,
    run_hash: str,
    infos: tuple[SequenceInfo, ...],
    known: Container[str] = (),
    *,
    full: bool = False,
    owner: int | None = None,
) -> list[SequenceInfo]:
    """`_scan_once` as of one manifest state; starts over when a compaction swapped files."""
    return _as_of_one_manifest(
        layout, run_hash, lambda files: _scan_once(files, infos, known, full=full, owner=owner)
    )


def _recount_once(files: _RunFiles, infos: Iterable[SequenceInfo]) -> list[SequenceInfo]:
    out = []
    for info in infos:
        names = segment_names(files.seq_dir(info.seq_id))
        out.append(summarize_exact(info, _all_pieces(files, info, names)))
    return out


def recount_sequences(
    layout: RepoLayout, run_hash: str, infos: Iterable[SequenceInfo]
) -> list[SequenceInfo]:
    """`infos` summarised exactly from all of their points (last write wins), each keeping its
    `reach`: the recount of entries marked `has_rewrites`. Writes nothing."""
    todo = tuple(infos)
    if not todo:
        return []
    return _as_of_one_manifest(layout, run_hash, lambda files: _recount_once(files, todo))


def _as_of_one_manifest(
    layout: RepoLayout, run_hash: str, work: Callable[[_RunFiles], list[SequenceInfo]]
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
        files = _RunFiles(run_dir, manifest)
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


# -- what each caller uses ------------------------------------------------------------------
def scan_catalogue(
    layout: RepoLayout,
    run_hash: str,
    meta: RunMeta,
    *,
    full: bool = False,
    owner: int | None = None,
) -> tuple[SequenceInfo, ...]:
    """Every sequence of the run summarised from its points: the catalogue's entries caught up
    from their reach, then the sequences it lacks. `full`: every entry from all of its points,
    and sequences found only in compacted files too (what `verify` compares with). Every reach
    of the result is sealed: call this only for a run no live writer holds. `owner`: `meta` is
    one writer's part (or rank 0's run.json) of a multi-writer run: only the sequences of that
    rank are added."""
    return tuple(_scan(layout, run_hash, meta.sequences, full=full, owner=owner))


def uncatalogued_sequences(
    layout: RepoLayout, run_hash: str, catalogued: Container[str], owner: int | None = None
) -> list[SequenceInfo]:
    """Sequences with a folder under `seqs/` but no entry in `catalogued` (seq ids), summarised
    from their points: a live writer's new sequences before its next sidecar write."""
    names = list_names(layout.seqs_dir(run_hash))
    if all(n in catalogued or not is_valid_seq_id(n) for n in names):
        return []  # the usual case: no manifest to read
    return _scan(layout, run_hash, (), catalogued, owner=owner)


def discover_sequences(
    layout: RepoLayout, run_hash: str, meta: RunMeta, owner: int | None = None
) -> list[SequenceInfo]:
    """The sidecar's catalogue plus the sequences it does not list yet (summarised from their
    points). What a reader uses for a run a live writer holds (its entries may lag by one flush)
    and for a closed run (complete: `close()` writes the sidecar after the last segment). An
    entry marked `has_rewrites` is recounted from its points (nothing is written)."""
    infos = {s.seq_id: s for s in meta.sequences}
    rewritten = [i for i in infos.values() if i.has_rewrites]
    for info in recount_sequences(layout, run_hash, rewritten):
        infos[info.seq_id] = info
    return [*infos.values(), *uncatalogued_sequences(layout, run_hash, infos, owner)]


class ScanCache:
    """What `read_catalogue` scanned for a run whose writer is gone, with the state of the files
    it was scanned from; reused while the sidecar, the manifest and every sequence folder are as
    they were (a dead writer appends nothing; compaction, repairs, `runs close` and a resumed
    writer each change one of them). One per reader (`Run` object)."""

    def __init__(self) -> None:
        self.state: tuple[object, ...] | None = None
        self.infos: tuple[SequenceInfo, ...] = ()


def _files_state(layout: RepoLayout, run_hash: str, meta: RunMeta) -> tuple[object, ...]:
    """The sidecar version, the manifest bytes and each sequence folder's mtime (ns)."""
    seqs_dir = os.fspath(layout.seqs_dir(run_hash))
    try:
        seq_ids = sorted(n for n in os.listdir(seqs_dir) if is_valid_seq_id(n))
    except FileNotFoundError:
        seq_ids = []
    folders = []
    for seq_id in seq_ids:
        try:
            folders.append((seq_id, os.stat(f"{seqs_dir}/{seq_id}").st_mtime_ns))
        except FileNotFoundError:
            continue
    manifest = manifest_bytes(os.fspath(layout.manifest(run_hash)))
    return (meta.updated_at, meta.end_time, len(meta.sequences), manifest, tuple(folders))


def read_catalogue(
    layout: RepoLayout, run_hash: str, meta: RunMeta, *, cache: ScanCache | None = None
) -> list[SequenceInfo]:
    """The catalogue readers show: scanned from the segments when the run's writer is gone,
    else `discover_sequences` (a live writer's entries may lag its segments by one flush).
    With `cache`, a dead run whose files did not change is not scanned again (a run with
    thousands of sequences its writer never catalogued costs one `stat` per sequence)."""
    if meta.is_multi_writer and meta.end_time is None:
        return _read_writers_catalogue(layout, run_hash, meta)
    if not is_writer_gone(layout, meta):
        return discover_sequences(layout, run_hash, meta)
    if cache is None:
        return list(scan_catalogue(layout, run_hash, meta))
    state = _files_state(layout, run_hash, meta)
    if cache.state != state:
        cache.infos = scan_catalogue(layout, run_hash, meta)
        cache.state = state
    return list(cache.infos)


def _read_writers_catalogue(
    layout: RepoLayout, run_hash: str, merged: RunMeta
) -> list[SequenceInfo]:
    """The catalogue of a multi-writer run not closed by all its writers, writer by writer:
    the entries of a live or closed writer as they are, those of a writer that died (no
    `end_time`, lock not held) caught up from its segments; then the sequences nobody
    catalogued yet, summarised from their points."""
    trusted: dict[str, SequenceInfo] = {}
    dead: dict[str, SequenceInfo] = {}
    catalogues = [(0, load_sidecar(layout, run_hash))]
    catalogues += sorted(load_writer_parts(layout, run_hash).items())
    for rank, part in catalogues:
        is_gone = part.end_time is None and writer_lock_holder(layout, run_hash, rank) is None
        for info in part.sequences:
            if info.seq_id not in trusted and info.seq_id not in dead:
                (dead if is_gone else trusted)[info.seq_id] = info
    if not dead:
        return discover_sequences(layout, run_hash, replace(merged, sequences=(*trusted.values(),)))
    return [*trusted.values(), *_scan(layout, run_hash, tuple(dead.values()), trusted)]


def resume_catalogue(
    layout: RepoLayout, run_hash: str, meta: RunMeta, owner: int | None = None
) -> tuple[SequenceInfo, ...]:
    """The catalogue a writer resuming the run starts from; the caller holds the write lock.

    After a writer that did not close the run (no `end_time`) it is caught up from the segments
    written after the sidecar's reach; after a clean close the sidecar's is complete. Either way
    every reach is sealed: the new session writes new segments only. `owner`: the writer's rank
    in a multi-writer run (`meta` is its own part): only its own sequences are added.
    """
    if meta.end_time is None:
        return scan_catalogue(layout, run_hash, meta, owner=owner)
    infos = discover_sequences(layout, run_hash, meta, owner)
    return tuple(
        i if i.reach is None else replace(i, reach=replace(i.reach, is_sealed=True)) for i in infos
    )


def caught_up(layout: RepoLayout, meta: RunMeta, owner: int | None = None) -> RunMeta:
    """`meta` with the catalogue of its points; the caller holds the run's write lock (`owner`:
    writer `owner`'s lock, `meta` being its part of a multi-writer run)."""
    return replace(meta, sequences=scan_catalogue(layout, meta.hash, meta, owner=owner))


def catch_up_sidecar(layout: RepoLayout, run_hash: str) -> list[str]:
    """Rewrite the sidecar of a run whose writer is gone with the catalogue of its points (under
    the write lock, taken here); returns the names of the sequences that were stale. Nothing is
    done, and no lock taken, for a closed run; nothing is done for one a live writer holds (that
    writer keeps its catalogue). For a
    run with several writers, each dead writer's catalogue (run.json or its part) is caught up
    under that writer's lock."""
    main = load_sidecar(layout, run_hash)
    ranks = [0, *writer_ranks(layout, run_hash)] if main.is_multi_writer else [0]
    stale: list[str] = []
    for rank in ranks:
        meta = main if rank == 0 else load_writer_part(layout, run_hash, rank)
        if meta is None or meta.end_time is not None:
            # that writer closed: nothing to catch up, and its lock is not taken, so a resume
            # at this instant is never refused (a writer that resumed after this look keeps
            # its own catalogue)
            continue
        stale += edit_writer_catalogue(layout, run_hash, rank, _catch_up, main.is_multi_writer)
    return stale


def _catch_up(layout: RepoLayout, meta: RunMeta, owner: int | None) -> tuple[RunMeta, list[str]]:
    if meta.end_time is not None:
        return meta, []
    new = caught_up(layout, meta, owner)
    return new, stale_sequences(meta.sequences, new.sequences)


def edit_writer_catalogue(
    layout: RepoLayout,
    run_hash: str,
    rank: int,
    change: Callable[[RepoLayout, RunMeta, int | None], tuple[RunMeta, list[str]]],
    is_multi_writer: bool,
) -> list[str]:
    """Apply `change` to writer `rank`'s catalogue (rank 0: run.json; else its part) under that
    writer's lock, and write it when it changed; nothing when the writer is alive or has
    written no part. Returns what `change` reports."""
    if rank == 0:
        path, lock_path = layout.sidecar(run_hash), layout.lock_file(run_hash)
    else:
        path, lock_path = layout.writer_part(run_hash, rank), layout.writer_lock(run_hash, rank)
    try:
        with held_run_lock(lock_path, run_hash) as holder:
            if holder is not None:
                return []  # a live writer keeps its own catalogue
            meta = (
                load_sidecar(layout, run_hash)
                if rank == 0
                else load_writer_part(layout, run_hash, rank)
            )
            if meta is None:
                return []
            new, report = change(layout, meta, rank if is_multi_writer else None)
            if new != meta or any(
                a.reach != b.reach for a, b in zip(new.sequences, meta.sequences, strict=False)
            ):
                data = replace(new, updated_at=time.time()).dumps()
                write_sidecar(layout, run_hash, data, path=path)
            return report
    except FileNotFoundError:
        if os.path.lexists(lock_path.parent):
            raise
        return []  # the run (or its writers/ folder) is gone
