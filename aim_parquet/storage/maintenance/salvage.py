"""Repair actions used by `verify --repair`; each one is crash-safe and loses no readable point.

- `rewrite_segment`: a segment with a torn tail is replaced (temp file, fsync, `os.replace` onto the
  same name, so its place in write order is kept) by one holding its complete batches.
- `quarantine`: an unreadable file is moved (one `rename`) to `.aim/quarantine/<hash>/<path>`,
  where nothing reads it and `gc` never deletes it.
- `rebuild_manifest`: a manifest is rebuilt from the footers of the compacted files (each file
  names the segments whose rows it holds).
- `rebuild_sidecar`: a sidecar is rebuilt from the data (sequence catalogue from segment schemas
  and compacted footers, summaries from the points); properties and params come from the run
  index's cached copy of the sidecar when it has one.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from aim_parquet.errors import AimParquetError
from aim_parquet.format.compacted import is_compacted_name
from aim_parquet.format.meta import CompactedFile, Manifest, RunMeta, SequenceInfo
from aim_parquet.format.paths import RepoLayout, is_valid_seq_id
from aim_parquet.storage.base.atomic import atomic_write, fsync_dir, fsync_file, temp_path_for
from aim_parquet.storage.base.files import list_names
from aim_parquet.storage.base.repo_changes import write_sidecar
from aim_parquet.storage.base.safe_fs import (
    copy_regular,
    require_real_dirs,
)
from aim_parquet.storage.index.index_table import read_table_file
from aim_parquet.storage.online.catalogue_scan import scan_catalogue
from aim_parquet.storage.online.compacted_read import read_footer
from aim_parquet.storage.online.run_reader import (
    list_segments,
    read_sequence,
)
from aim_parquet.storage.online.segments import iter_segment_batches, open_segment


def quarantine(layout: RepoLayout, path: Path, *, keep: bool = False) -> Path:
    """Move `path` (inside `.aim/runs/` or `.aim/`) into the quarantine folder; returns the target.

    `keep=True` copies instead, for a file the caller then replaces atomically (so a crash
    in between leaves the damaged file in place, to be found and repaired again).
    """
    try:
        rel = path.relative_to(layout.runs_dir)
    except ValueError:
        rel = path.relative_to(layout.aim_dir)
    target = layout.quarantine_dir / rel
    if os.path.lexists(target):
        target = target.with_name(f"{target.name}.{time.time_ns()}")
    require_real_dirs(layout.aim_dir, path.parent, f"quarantine {path}")  # (never moved out)
    require_real_dirs(layout.aim_dir, target.parent, f"quarantine {path}")
    target.parent.mkdir(parents=True, exist_ok=True)
    if keep:
        copy_regular(path, target)
        return target
    os.rename(path, target)
    fsync_dir(path.parent)
    return target


def rewrite_segment(path: Path) -> int:
    """Replace a torn segment by its complete batches; returns how many rows it keeps."""
    schema = open_segment(path).schema
    tmp = temp_path_for(path)
    rows = 0
    try:
        with pa.OSFile(os.fspath(tmp), "wb") as sink:
            sink.write(schema.serialize())
            for batch in iter_segment_batches(path):
                sink.write(batch.serialize())
                rows += batch.num_rows
        fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return rows


def readable_footers(compacted_dir: Path) -> dict[str, Any]:
    """{file name: FileFooter} of every compacted file whose footer can be read."""
    out: dict[str, Any] = {}
    for name in list_names(compacted_dir):
        if not is_compacted_name(name):
            continue
        try:
            out[name] = read_footer(compacted_dir / name)
        except (OSError, pa.ArrowInvalid, ValueError, KeyError):
            continue
    return out


def rebuild_manifest(
    layout: RepoLayout, run_hash: str, keep: list[CompactedFile] | None = None
) -> tuple[Manifest | None, list[str]]:
    """Write a manifest for the readable compacted files (`keep`, or the newest file of each kind
    found on disk). Returns the manifest (None when no file is left, and the manifest is removed)
    and the names of files made redundant (older generations), which the caller quarantines."""
    cdir = layout.compacted_dir(run_hash)
    footers = readable_footers(cdir)
    chosen: dict[str, str] = {}
    if keep is not None:
        chosen = {f.kind: Path(f.path).name for f in keep if Path(f.path).name in footers}
    else:
        for name, footer in footers.items():
            best = chosen.get(footer.kind)
            if best is None or footer.generation > footers[best].generation:
                chosen[footer.kind] = name
    redundant = [n for n in footers if n not in chosen.values()] if keep is None else []
    if not chosen:
        layout.manifest(run_hash).unlink(missing_ok=True)
        return None, redundant
    files = []
    segments: set[str] = set()
    for kind in sorted(chosen):
        name = chosen[kind]
        footer = footers[name]
        files.append(
            CompactedFile(f"{cdir.name}/{name}", kind, footer.rows, (cdir / name).stat().st_size)
        )
        segments |= footer.segments
    manifest = Manifest(
        generation=max(footers[n].generation for n in chosen.values()),
        files=tuple(files),
        segments=frozenset(segments),
        created_at=time.time(),
    )
    data = json.dumps(manifest.to_json(), ensure_ascii=False, indent=1).encode(
        "utf-8", "surrogatepass"
    )
    atomic_write(layout.manifest(run_hash), data)
    return manifest, redundant


def cached_sidecar(layout: RepoLayout, run_hash: str) -> dict[str, Any] | None:
    """The run index's copy of a run's sidecar JSON, if the index file has one."""
    try:
        table = read_table_file(layout)
        return table.record(table.where[run_hash]).data
    except (
        OSError,
        ValueError,
        KeyError,
        TypeError,
        RecursionError,
        AimParquetError,
        pa.ArrowException,
    ):
        return None


def _creation_time(layout: RepoLayout, run_hash: str) -> float:
    """Earliest session start encoded in a segment name, else the run folder's mtime."""
    starts = []
    for seq_dir in _seq_dirs(layout, run_hash):
        for seg in list_segments(seq_dir):
            starts.append(int(seg.name.split("-", 1)[0], 16) / 1e9)
    if starts:
        return min(starts)
    return layout.run_dir(run_hash).stat().st_mtime


def _seq_dirs(layout: RepoLayout, run_hash: str) -> list[Path]:
    names = list_names(layout.seqs_dir(run_hash))
    return [layout.seqs_dir(run_hash) / n for n in names if is_valid_seq_id(n)]


def data_catalogue(layout: RepoLayout, run_hash: str, base: RunMeta) -> list[SequenceInfo]:
    """Every sequence with readable points, summarised from the points themselves."""
    infos = scan_catalogue(layout, run_hash, base, full=True)
    return sorted((i for i in infos if i.count), key=lambda i: i.seq_id)


def rebuild_sidecar(layout: RepoLayout, run_hash: str) -> tuple[RunMeta, bool]:
    """Write a sidecar rebuilt from the data; returns it and whether params were recovered from
    the run index (otherwise properties and params are lost: the damaged file is quarantined)."""
    cached = cached_sidecar(layout, run_hash)
    base = RunMeta(hash=run_hash, creation_time=_creation_time(layout, run_hash))
    recovered = False
    if cached is not None:
        try:
            base = replace(RunMeta.from_json(cached, "cached sidecar"), hash=run_hash, sequences=())
            recovered = True
        except AimParquetError:
            pass
    sequences = tuple(data_catalogue(layout, run_hash, base))
    meta = replace(base, sequences=sequences, updated_at=time.time())
    write_sidecar(layout, run_hash, meta.dumps())
    return meta, recovered


def last_timestamp(layout: RepoLayout, run_hash: str, infos: list[SequenceInfo]) -> float | None:
    """The newest point's timestamp over `infos` (None when they hold no point)."""
    last: float | None = None
    for info in infos:
        table = read_sequence(layout, run_hash, info, columns=["timestamp"])
        if table.num_rows:
            value = float(pc.max(table.column("timestamp")).as_py())
            last = value if last is None else max(last, value)
    return last
