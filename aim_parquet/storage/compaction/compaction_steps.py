"""The steps of one run's compaction (`compactor.compact_run` runs them under the run's compact
lock): cleaning what an interrupted compaction left, planning the sealed segments to compact,
and writing one compacted file of a kind."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from aim_parquet.errors import AimParquetError
from aim_parquet.format.compacted import SeqKey, is_compacted_name
from aim_parquet.format.meta import CompactedFile, Manifest
from aim_parquet.format.paths import SEQS_DIRNAME, TEMP_PREFIX, RepoLayout, is_valid_seq_id
from aim_parquet.storage.base.files import list_names
from aim_parquet.storage.base.lock import WriterState
from aim_parquet.storage.compaction.compacted import CompactedFileWriter, iter_file_pieces
from aim_parquet.storage.compaction.run_folder import (
    is_uncommitted,
    remove_file,
    unreadable_listed_file,
)
from aim_parquet.storage.online.compacted_read import read_footer
from aim_parquet.storage.online.run_reader import list_segments
from aim_parquet.storage.online.segments import iter_segment_batches, segment_identity


@dataclass
class SeqPlan:
    key: SeqKey
    segments: list[Path]


def clean_leftovers(layout: RepoLayout, run_hash: str, manifest: Manifest | None) -> None:
    """Remove what an interrupted compaction left (caller holds the compact lock)."""
    run_dir = layout.run_dir(run_hash)
    cdir = layout.compacted_dir(run_hash)
    names = list_names(cdir)
    referenced = {Path(f.path).name for f in manifest.files} if manifest else set()
    for name in names:
        path = cdir / name
        if name.startswith(TEMP_PREFIX):
            remove_file(path)
        elif is_compacted_name(name) and name not in referenced:
            if manifest is None and not is_uncommitted(run_dir, path):
                raise AimParquetError(
                    f"run {run_hash}: compacted file {path} has no manifest and holds points "
                    "whose segments are gone. Run `aim-parquet verify --repair` first."
                )
            remove_file(path)
    if manifest is not None:
        bad = unreadable_listed_file(run_dir, manifest)
        if bad is not None:
            raise AimParquetError(
                f"run {run_hash}: compacted file {run_dir / bad} is missing or unreadable. "
                "Run `aim-parquet verify --repair` first."
            )
        for seg in manifest.segments:
            remove_file(layout.seqs_dir(run_hash) / seg)


def plan_run(
    layout: RepoLayout, run_hash: str, writer: WriterState, notes: list[str]
) -> list[SeqPlan]:
    """Sealed segments not yet covered, grouped by sequence, sequences in seq_id order (with a
    LIVE writer, each sequence's newest segment is left out: the writer may append to it)."""
    seqs_dir = layout.seqs_dir(run_hash)
    try:
        seq_ids = sorted(n for n in os.listdir(seqs_dir) if is_valid_seq_id(n))
    except FileNotFoundError:
        return []
    plans = []
    for seq_id in seq_ids:
        if os.path.islink(seqs_dir / seq_id):
            notes.append(f"skipped {seqs_dir / seq_id}: a symbolic link (see `aim-parquet verify`)")
            continue
        segs = list_segments(seqs_dir / seq_id)
        if writer is WriterState.LIVE and segs:
            segs = segs[:-1]  # the live writer appends to the newest one
        plan: SeqPlan | None = None
        for seg in segs:
            key = segment_identity(seg)
            if key is None:
                notes.append(f"skipped unreadable segment {seg} (see `aim-parquet verify`)")
                continue
            if plan is None:
                plan = SeqPlan(key, [])
            plan.key = SeqKey(seq_id, plan.key.name, plan.key.context, key.kind)
            plan.segments.append(seg)
        if plan is not None:
            plans.append(plan)
    return plans


def write_kind(
    run_dir: Path,
    run_hash: str,
    kind: str,
    generation: int,
    prev: CompactedFile | None,
    plans: list[SeqPlan],
) -> tuple[CompactedFile, int]:
    """Write one file of `kind`: the previous file's rows, then the new segments, per sequence."""
    sequences: dict[str, SeqKey] = {}
    segments: set[str] = set()
    prev_path = run_dir / prev.path if prev is not None else None
    if prev_path is not None:
        footer = read_footer(prev_path)
        sequences.update(footer.sequences)
        segments.update(s for s in footer.segments if (run_dir / SEQS_DIRNAME / s).exists())
    for plan in plans:
        sequences[plan.key.seq_id] = plan.key
        segments.update(f"{plan.key.seq_id}/{s.name}" for s in plan.segments)
    writer = CompactedFileWriter(
        run_dir,
        run_hash=run_hash,
        kind=kind,
        generation=generation,
        segments=frozenset(segments),
        sequences=sequences,
    )
    points = 0
    try:
        is_metric = writer.is_metric
        prev_pieces = iter_file_pieces(prev_path, is_metric=is_metric) if prev_path else iter(())
        head = next(prev_pieces, None)
        for todo in [*plans, None]:
            while head is not None and (todo is None or head[0] <= todo.key.seq_id):
                seq_id, name, context, table = head
                default = SeqKey(seq_id, name, context, "float" if is_metric else kind)
                writer.add(sequences.get(seq_id, default), table)
                head = next(prev_pieces, None)
            if todo is None:
                break
            plan = todo
            for seg in plan.segments:
                for batch in iter_segment_batches(seg):
                    writer.add(plan.key, pa.Table.from_batches([batch]))
                    points += batch.num_rows
        return writer.finish(), points
    except BaseException:
        writer.abort()
        raise
