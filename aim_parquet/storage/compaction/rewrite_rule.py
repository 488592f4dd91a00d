"""When compaction rewrites a run (FORMAT.md, "Which runs are rewritten"): only when the rewrite
leaves the run no more directory entries (files and folders: inodes) AND fewer bytes than the
entries it replaces. The segments it covers, the sequence folders and `seqs/` it empties, and
the run's earlier manifest and Parquet files are replaced; its Parquet files, its manifest and
a new `compacted/` folder are added. Decided first from entries and a lower bound on Parquet's
bytes (no file written), then from the bytes actually written."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from aim_parquet.format.meta import Manifest
from aim_parquet.format.paths import COMPACTED_DIRNAME, SEQS_DIRNAME

MIN_PARQUET_BYTES = 1_500
"""A lower bound on one compacted Parquet file's bytes: its footer alone (schema, our key-value
metadata) is larger. Measured with pyarrow 18-21: one point of one metric takes 1,863 bytes, of
one Text 2,134. Used only to pass a run by without writing it (a bound too low only costs a
write that is then undone)."""

MIN_MANIFEST_BYTES = 100
"""A lower bound on `compacted/manifest.json`'s bytes (one file listed: about 300)."""


@dataclass(frozen=True)
class Usage:
    """Directory entries (files and folders) and bytes (of the files) of the part of a run
    folder that a compaction replaces or writes."""

    entries: int
    bytes: int

    def is_smaller_than(self, other: Usage) -> bool:
        """No more entries and fewer bytes: the only rewrite compaction commits by default."""
        return self.entries <= other.entries and self.bytes < other.bytes

    def __str__(self) -> str:
        return f"{self.entries} file(s) and folder(s), {self.bytes:,} bytes"


def _size(path: Path) -> int:
    try:
        return os.lstat(path).st_size
    except FileNotFoundError:
        return 0


def _emptied_folders(seqs_dir: Path, planned: dict[str, int]) -> int:
    """The folders the rewrite empties (a finished run's: the compactor removes them): each
    sequence folder holding nothing but planned segments, and `seqs/` when all of them are."""
    try:
        seq_names = os.listdir(seqs_dir)
    except OSError:
        return 0
    emptied = 0
    for name in seq_names:
        try:
            held = len(os.listdir(seqs_dir / name))
        except OSError:
            continue
        if held == planned.get(name, 0):  # (an empty folder too: it is removed as well)
            emptied += 1
    return emptied + (1 if emptied == len(seq_names) else 0)


def usage_before(
    run_dir: Path,
    manifest_path: Path,
    manifest: Manifest | None,
    segments: list[Path],
    *,
    empties_folders: bool,
) -> Usage:
    """What a rewrite of `segments` replaces: the segments (and, with `empties_folders`, the
    folders it empties), plus the run's manifest and its Parquet files."""
    entries, size = len(segments), sum(_size(s) for s in segments)
    if empties_folders:
        planned: dict[str, int] = {}
        for seg in segments:
            planned[seg.parent.name] = planned.get(seg.parent.name, 0) + 1
        entries += _emptied_folders(run_dir / SEQS_DIRNAME, planned)
    if manifest is not None:
        entries += 1 + len(manifest.files)
        size += _size(manifest_path) + sum(_size(run_dir / f.path) for f in manifest.files)
    return Usage(entries, size)


def least_after(run_dir: Path, manifest: Manifest | None, kinds: set[str]) -> Usage:
    """The least a rewrite of files of `kinds` leaves: one Parquet file per kind (the kinds
    not rewritten keep theirs), the manifest, and `compacted/` when the run has none yet."""
    kept = [f for f in manifest.files if f.kind not in kinds] if manifest is not None else []
    entries = len(kinds) + len(kept) + 1
    if not os.path.isdir(run_dir / COMPACTED_DIRNAME):
        entries += 1
    size = (
        len(kinds) * MIN_PARQUET_BYTES
        + MIN_MANIFEST_BYTES
        + sum(_size(run_dir / f.path) for f in kept)
    )
    return Usage(entries, size)
