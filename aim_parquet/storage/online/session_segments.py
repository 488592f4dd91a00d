"""The segments one writer session creates: named after the session (which starts after every
segment the run already has, so names sort in write order), a sequence's batches appended to its
open segment (rolled over at `max_segment_bytes`) with its catalogue summary and reach, and the
files and folders not yet synced, and the bound on what a failing disk leaves unwritten. `storage.online.run_writer` decides when to write."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import replace

from aim_parquet.errors import AimParquetError, StorageError
from aim_parquet.format.meta import FORMAT_VERSION, CatalogueReach
from aim_parquet.format.paths import (
    RepoLayout,
    canonical_context,
    is_valid_seq_id,
    new_session_token,
    next_session_ns,
    segment_name,
    segment_session_ns,
)
from aim_parquet.format.schema import segment_schema
from aim_parquet.storage.base.files import list_names
from aim_parquet.storage.online.run_reader import load_manifest, segment_names
from aim_parquet.storage.online.segments import SegmentFile, UnsyncedFiles
from aim_parquet.storage.online.seq_buffer import SeqBuffer, summarize

__all__ = ["MAX_PENDING_POINTS", "SessionSegments", "newest_session_ns"]

log = logging.getLogger(__name__)

MAX_PENDING_POINTS = 1_000_000  # unwritten points kept per sequence while writes keep failing


def newest_session_ns(layout: RepoLayout, run_hash: str) -> int | None:
    """The newest session start among the run's segments: those in `seqs/` and those the
    compaction manifest lists (already merged into Parquet). None for a run without segments."""
    names: list[str] = []
    seqs_dir = layout.seqs_dir(run_hash)
    for seq_id in list_names(seqs_dir):
        if is_valid_seq_id(seq_id):
            names += segment_names(os.path.join(seqs_dir, seq_id))[-1:]
    with contextlib.suppress(AimParquetError, OSError):  # a damaged manifest: verify reports it
        manifest = load_manifest(layout, run_hash)
        if manifest is not None:
            names += [seg.rpartition("/")[2] for seg in manifest.segments]
    starts = [segment_session_ns(n) for n in names if len(n) > 16]
    return max(starts) if starts else None


class SessionSegments:
    """The segments of one writer session of a run (used under the writer's flush lock)."""

    def __init__(self, layout: RepoLayout, run_hash: str, max_segment_bytes: int) -> None:
        self.run_hash = run_hash
        self.max_segment_bytes = max_segment_bytes
        self.session_ns = next_session_ns(time.time_ns(), newest_session_ns(layout, run_hash))
        self.session_token = new_session_token()  # same for all segments: they sort by counter
        self._counter = 0
        self.unsynced = UnsyncedFiles()

    def write_batches(self, seq: SeqBuffer) -> None:
        """Append `seq`'s unwritten batches to its open segment (a new one when it has none,
        rolled over at `max_segment_bytes`), each batch's summary and reach with it. A batch
        that fails stays first in `seq.unwritten`, for the next flush."""
        while seq.unwritten:
            batch = seq.unwritten[0]
            segment = self.open_segment(seq)
            try:
                segment.append(batch)
            except StorageError:
                if segment.is_broken:
                    seq.segment = None
                raise
            seq.unwritten.pop(0)
            self.unsynced.files.add(os.fspath(segment.path))
            if segment.size >= self.max_segment_bytes:
                segment.close(sync=False)
                seq.segment = None
            # the summary and how far into the segments it reaches change together, so every
            # sidecar says exactly which points its catalogue covers (FORMAT.md, writer rule 8)
            reach = CatalogueReach(segment.path.name, segment.size, seq.segment is None)
            seq.info = replace(summarize(seq.info, batch), reach=reach)

    def open_segment(self, seq: SeqBuffer) -> SegmentFile:
        """`seq`'s open segment, or a new one named next in this session's order."""
        if seq.segment is not None:
            return seq.segment
        self.unsynced.create_folder(seq.dir)
        self._counter += 1
        path = seq.dir / segment_name(self.session_ns, self._counter, self.session_token)
        info = seq.info
        schema = segment_schema(
            self.run_hash, info.name, canonical_context(info.context), info.kind, FORMAT_VERSION
        )
        try:
            try:
                seq.segment = SegmentFile(path, schema)
            except FileNotFoundError:  # `gc` removed the empty folder meanwhile: make it again
                seq.dir.mkdir(parents=True, exist_ok=True)
                seq.segment = SegmentFile(path, schema)
        except OSError as exc:
            raise StorageError(f"creating segment {path} failed: {exc}") from exc
        self.unsynced.folders.add(os.fspath(seq.dir))
        self.unsynced.files.add(os.fspath(path))
        return seq.segment

    def bound_unwritten(self, seq: SeqBuffer) -> int:
        """Keep at most MAX_PENDING_POINTS unwritten points of `seq` while writes fail; returns
        how many points were dropped (each drop logged)."""
        pending = sum(b.num_rows for b in seq.unwritten)
        dropped_points = 0
        while pending > MAX_PENDING_POINTS and len(seq.unwritten) > 1:
            dropped = seq.unwritten.pop(0)
            pending -= dropped.num_rows
            dropped_points += dropped.num_rows
            log.error(
                "aim_parquet: run %s: dropped %d unwritten points of %r (writes keep failing).",
                self.run_hash,
                dropped.num_rows,
                seq.info.name,
            )
        return dropped_points
