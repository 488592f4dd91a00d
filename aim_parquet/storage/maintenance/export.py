"""Self-contained Parquet exports (the published runs table is `storage.index.runs_table`'s).

`export_dataset(layout, output)` writes a folder that needs nothing of aim_parquet to read:
  `runs.parquet`, `metrics/<run hash>.parquet` (every metric point as queries see it: compacted
  and uncompacted data merged, one row per step) and, on request, `objects/<kind>/<run hash>.parquet`;
  to a URI (`s3://...`) it is built in a local temp folder, then uploaded and published by
  `storage.maintenance.remote`.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aim_parquet.errors import AimParquetError, CorruptFileError, FormatVersionError
from aim_parquet.format.compacted import METRICS_KIND, SeqKey, compacted_kind, kind_token
from aim_parquet.format.kinds import is_metric_kind
from aim_parquet.format.meta import RunMeta
from aim_parquet.format.paths import (
    EXPORT_METRICS_DIRNAME,
    EXPORT_OBJECTS_DIRNAME,
    EXPORT_POINTER_FILENAME,
    RUNS_TABLE_FILENAME,
    RepoLayout,
    canonical_context,
    is_valid_run_hash,
)
from aim_parquet.storage.base.atomic import (
    atomic_write_json,
    replace_folder,
    temp_path_for,
)
from aim_parquet.storage.base.files import folder_usage
from aim_parquet.storage.compaction.compacted import CompactedFileWriter
from aim_parquet.storage.index.runs_table import (
    repo_runs,
    runs_table,
    write_table_atomic,
)
from aim_parquet.storage.online.catalogue_scan import discover_sequences
from aim_parquet.storage.online.run_reader import read_sequence
from aim_parquet.storage.online.writer_parts import is_run_active

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]  # (done, total, run hash)


@dataclass(frozen=True)
class ExportReport:
    """What `export_dataset` wrote."""

    output: Path | str  # a local folder, or the URI of an export to object storage
    runs: int
    sequences: int
    points: int  # metric points
    objects: int  # object rows
    files: int
    bytes: int


def _prepare_output(output: Path) -> Path:
    """Check `output` (a new or empty folder, or an earlier export) and make the temp folder the
    export is built in, next to it (it replaces `output` only once complete)."""
    if output.is_symlink() or (output.exists() and not output.is_dir()):
        raise AimParquetError(f"{output} is not a folder; choose a new or empty folder.")
    if (
        output.exists()
        and any(output.iterdir())
        and not (output / EXPORT_POINTER_FILENAME).exists()
    ):
        raise AimParquetError(
            f"{output} exists and is not an aim_parquet export; choose a new or empty folder."
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    work = temp_path_for(output)
    work.mkdir()
    return work


def export_dataset(
    layout: RepoLayout,
    output: Path | str,
    *,
    sequences: dict[str, set[str] | None] | None = None,
    include_objects: bool = False,
    progress: Progress | None = None,
) -> ExportReport:
    """Write the repo as a Parquet dataset in `output` (see module doc): built in a temp folder
    next to it, which then replaces `output` at once (an earlier export there stays whole until
    the new one is complete).

    `output` may also be a URI (`s3://bucket/prefix`, `gs://...`, any fsspec URL): the dataset is
    built in a local temp folder, uploaded and published by `storage.maintenance.remote` (the previous export
    stays readable until the new one is complete).

    `sequences` limits the export to some runs ({run hash: metric seq_ids, or None for all});
    with `include_objects`, every object sequence of the exported runs is written too.
    `progress(done, total, run_hash)` is called after each run.
    """
    from aim_parquet.storage.maintenance import remote

    if remote.is_remote_target(output):
        return _export_to_uri(layout, str(output), sequences, include_objects, progress)
    output = Path(os.path.abspath(output))
    work = _prepare_output(output)
    try:
        report = _export_into(work, layout, sequences, include_objects, progress)
        replace_folder(work, output)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return ExportReport(output, *report)


def _export_to_uri(
    layout: RepoLayout,
    uri: str,
    sequences: dict[str, set[str] | None] | None,
    include_objects: bool,
    progress: Progress | None,
) -> ExportReport:
    import tempfile

    from aim_parquet.storage.maintenance import remote

    target = remote.open_target(uri)
    with tempfile.TemporaryDirectory(prefix="aim-parquet-export-") as tmp:
        work = Path(tmp)
        counts = _export_into(work, layout, sequences, include_objects, progress)
        files, size = remote.publish_export(work, target, source=str(layout.root))
    return ExportReport(target.uri, *counts[:4], files, size)


def _export_into(
    output: Path,
    layout: RepoLayout,
    sequences: dict[str, set[str] | None] | None,
    include_objects: bool,
    progress: Progress | None = None,
) -> tuple[int, int, int, int, int, int]:
    """Write the dataset into the (temp) folder `output`; the report's figures. A run whose
    files cannot be read (damaged, a newer format, permission denied) is left out with a
    warning: one run never stops the export of the others."""
    selected = None if sequences is None else set(sequences)
    n_seqs = points = objects = 0
    exported = []
    metas = repo_runs(layout, selected)
    for done, meta in enumerate(metas, 1):
        wanted = None if sequences is None else sequences.get(meta.hash)
        try:
            counts = _export_run(output, layout, meta, wanted, include_objects)
        except (CorruptFileError, FormatVersionError, PermissionError) as exc:
            log.warning("aim_parquet: export leaves out run %s: %s", meta.hash, exc)
            continue
        finally:
            if progress is not None:
                progress(done, len(metas), meta.hash)
        exported.append(meta)
        n_seqs, points, objects = n_seqs + counts[0], points + counts[1], objects + counts[2]
    active = {m.hash: is_run_active(layout, m) for m in exported}
    write_table_atomic(output / RUNS_TABLE_FILENAME, runs_table(exported, active))
    atomic_write_json(
        output / EXPORT_POINTER_FILENAME,
        {"format": "aim_parquet.export", "format_version": 1, "source": str(layout.root)},
    )
    files, size = folder_usage(output)
    return len(exported), n_seqs, points, objects, files, size


def _export_run(
    output: Path,
    layout: RepoLayout,
    meta: RunMeta,
    wanted: set[str] | None,
    include_objects: bool,
) -> tuple[int, int, int]:
    """Write one run's files; (sequences, metric points, objects). On an error no file of the
    run is left."""
    infos = [
        i
        for i in discover_sequences(layout, meta.hash, meta)
        if wanted is None or i.seq_id in wanted or not is_metric_kind(i.kind)
    ]
    writers: dict[str, CompactedFileWriter] = {}
    n_seqs = points = objects = 0
    try:
        for info in sorted(infos, key=lambda i: i.seq_id):
            kind = compacted_kind(info.kind)
            if kind != METRICS_KIND and not include_objects:
                continue
            table = read_sequence(layout, meta.hash, info)
            if table.num_rows == 0:
                continue
            writer = writers.get(kind)
            if writer is None:
                writer = writers[kind] = _export_writer(output, meta.hash, kind)
            key = SeqKey(info.seq_id, info.name, canonical_context(info.context), info.kind)
            writer.add(key, table)
            n_seqs += 1
            if kind == METRICS_KIND:
                points += table.num_rows
            else:
                objects += table.num_rows
        for writer in writers.values():
            writer.finish()
    except BaseException:
        for writer in writers.values():
            writer.abort()
            writer.path.unlink(missing_ok=True)  # a kind already finished
        raise
    return n_seqs, points, objects


def _export_writer(output: Path, run_hash: str, kind: str) -> CompactedFileWriter:
    if kind == METRICS_KIND:
        path = output / EXPORT_METRICS_DIRNAME / f"{run_hash}.parquet"
    else:
        path = output / EXPORT_OBJECTS_DIRNAME / kind_token(kind) / f"{run_hash}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    assert is_valid_run_hash(run_hash)
    return CompactedFileWriter(
        path.parent,
        run_hash=run_hash,
        kind=kind,
        generation=0,
        segments=frozenset(),
        sequences={},
        path=path,
    )
