"""The compactor: merges a run's sealed segments into Parquet, atomically and idempotently.

One compaction of a run (`compact_run`), under `runs/<hash>/compact.lock` (non-blocking; a run
another compactor holds is skipped):

1. Look at the writer (`storage.base.lock.writer_state`). In a closed run every segment listed
   now is sealed; the compactor takes no write lock, so a training script may resume the run
   meanwhile (its new segments are not listed and wait for the next compaction). A run with a live writer is skipped unless
   `include_active`; then the newest segment of each sequence (the one it appends to) is left
   alone. Segments are listed first and the writer checked after (by its identity and the
   kernel's flock table): a writer that resumed before the listing is seen, one that resumes
   after it only makes segments that were not listed. A run whose writer died (no `end_time`)
   first gets its catalogue caught up with its segments (`catalogue_scan.catch_up_sidecar`,
   briefly under the write lock), before the segments are listed.
2. Clean up what an interrupted compaction left: `.tmp-*` files, Parquet files the manifest does
   not reference, and segments the manifest already covers.
3. For each file kind with new sealed segments, stream the previous generation's rows of that kind
   plus the new segments (in write order) into `compacted/<kind>-<generation+1>.parquet`, written
   under a temp name, fsynced and renamed into place. Kinds without new segments keep their file.
   Unless `rewrite_all`, the rewrite is committed only when it leaves the run no more files
   and folders AND fewer bytes than the segments (and the folders they leave empty), manifest
   and Parquet files it replaces (`rewrite_rule`: estimated before anything is written, then
   decided by the bytes written): otherwise the new files are removed, the segments stay as
   written and the run is *kept* (`run_folder.mark_kept`), so compacting again passes it by
   without a look until a writer opens it again.
4. Commit: write the new `compacted/manifest.json` atomically. Until this instant readers use the
   old manifest (new files are ignored); from it on, the new one.
5. Remove the now-covered segments and the superseded files (readers that still hold the old
   manifest see a changed manifest or ENOENT and retry).

A SIGKILL anywhere leaves a manifest that describes readable data, so no point is lost or doubled;
rerunning cleans up and finishes.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import suppress

import pyarrow as pa

from aim_parquet.errors import AimParquetError, FormatVersionError, MissingRunError, UnsafeFileError
from aim_parquet.format.compacted import compacted_kind, is_compacted_name
from aim_parquet.format.meta import CompactedFile, Manifest
from aim_parquet.format.paths import (
    COMPACTED_DIRNAME,
    SEQS_DIRNAME,
    RepoLayout,
    is_valid_run_hash,
    validate_run_hash,
)
from aim_parquet.storage.base.atomic import atomic_write
from aim_parquet.storage.base.file_checks import check_version
from aim_parquet.storage.base.files import folder_usage, list_names
from aim_parquet.storage.base.lock import WriterState, compaction_lock, run_holder, writer_state
from aim_parquet.storage.base.safe_fs import first_link
from aim_parquet.storage.compaction.compaction_report import CompactionReport, RunCompaction
from aim_parquet.storage.compaction.compaction_steps import (
    SeqPlan,
    clean_leftovers,
    plan_run,
    write_kind,
)
from aim_parquet.storage.compaction.rewrite_rule import Usage, least_after, usage_before
from aim_parquet.storage.compaction.run_folder import (
    mark_kept,
    remove_empty_dirs,
    remove_file,
    settled_runs,
)
from aim_parquet.storage.online.catalogue_scan import catch_up_sidecar
from aim_parquet.storage.online.compacted_read import read_footer
from aim_parquet.storage.online.run_reader import list_run_hashes, load_manifest
from aim_parquet.system.threads import signals_blocked

log = logging.getLogger(__name__)

SETTLED_NOTE = "nothing new to compact (settled: not opened)"


def compact_run(
    layout: RepoLayout, run_hash: str, *, include_active: bool = False, rewrite_all: bool = False
) -> RunCompaction:
    """Compact one run (see module doc): its segments are rewritten into Parquet only when
    that makes the run smaller in files and bytes, or always with `rewrite_all`.

    A run that is locked (a live writer without `include_active`, another compactor) is
    returned as skipped. Raises MissingRunError for an unknown run, and CorruptFileError or
    AimParquetError, leaving the run as it was, when its compacted files are damaged (run
    `aim-parquet verify --repair` first); `compact_repo` reports those as failed.
    """
    started = time.perf_counter()
    run_dir = layout.run_dir(validate_run_hash(run_hash))
    if not run_dir.is_dir():
        raise MissingRunError(f"No run {run_hash!r} in repository {layout.root}.")
    files_before, bytes_before = _usage(layout, run_hash)

    def result(status: str, note: str = "", **kw: int) -> RunCompaction:
        files_after, bytes_after = _usage(layout, run_hash)
        return RunCompaction(
            run_hash,
            status,
            note,
            bytes_before=bytes_before,
            bytes_after=bytes_after,
            files_before=files_before,
            files_after=files_after,
            seconds=time.perf_counter() - started,
            **kw,
        )

    if not layout.seqs_dir(run_hash).is_dir() and not layout.compacted_dir(run_hash).is_dir():
        return result("unchanged", "nothing to compact")  # (no lock taken: it may be new)
    link = first_link(layout.aim_dir, run_dir / COMPACTED_DIRNAME) or first_link(
        layout.aim_dir, run_dir / SEQS_DIRNAME
    )
    if link is not None:
        raise UnsafeFileError(
            f"run {run_hash}: {link} is a symbolic link; aim_parquet never compacts (or deletes) "
            "through links. Replace it by the folder itself."
        )
    with compaction_lock(layout, run_hash) as busy:
        if busy is not None:
            return result("skipped", busy)
        writer = writer_state(layout, run_hash)
        if writer is WriterState.LIVE and not include_active:
            return result(
                "skipped",
                f"active run (written by {run_holder(layout, run_hash)}); pass include_active "
                "to compact its sealed segments",
            )
        try:
            return _compact_locked(layout, run_hash, writer, result, rewrite_all)
        except FormatVersionError as exc:
            return result("skipped", f"{exc} (its files are left as they are)")


def _usage(layout: RepoLayout, run_hash: str) -> tuple[int, int]:
    """Files and bytes of the run folder, less `compact.lock` (it exists only while held)."""
    files, size = folder_usage(layout.run_dir(run_hash))
    try:
        lock_size = os.lstat(layout.compact_lock(run_hash)).st_size
    except OSError:
        return files, size
    return files - 1, size - lock_size


def _refuse_future_files(layout: RepoLayout, run_hash: str) -> None:
    """FormatVersionError when a compacted file of the run was written by a newer format
    version: compaction would rewrite it as this version and delete it (FORMAT.md, reader
    rule 6); its segments are checked while planning."""
    cdir = layout.compacted_dir(run_hash)
    for name in list_names(cdir):
        if not is_compacted_name(name):
            continue
        try:
            version = read_footer(cdir / name).format_version
        except (OSError, pa.ArrowInvalid, ValueError, KeyError):
            continue  # damage: handled where the file is used
        check_version(version, cdir / name, "compacted file")


def _compact_locked(
    layout: RepoLayout,
    run_hash: str,
    writer: WriterState,
    result: Callable[..., RunCompaction],
    rewrite_all: bool,
) -> RunCompaction:
    run_dir = layout.run_dir(run_hash)
    caught: list[str] = []
    if writer is WriterState.CLOSED:
        _catch_up_catalogue(layout, run_hash, caught)
    manifest = load_manifest(layout, run_hash)
    _refuse_future_files(layout, run_hash)
    plan_run(layout, run_hash, writer, [])  # a segment of a newer format: refused before any change
    clean_leftovers(layout, run_hash, manifest)
    plan_notes: list[str] = []
    plans = plan_run(layout, run_hash, writer, plan_notes)
    if writer is WriterState.CLOSED and writer_state(layout, run_hash) is WriterState.LIVE:
        # a writer resumed after the first look: a segment it appends to may be listed, so
        # list again leaving each sequence's newest segment alone (segments are listed first,
        # then the writer checked: one that starts later only makes segments not listed)
        writer, plan_notes = WriterState.LIVE, []
        plans = plan_run(layout, run_hash, writer, plan_notes)
    notes = [*caught, *plan_notes]
    generation = manifest.generation if manifest else 0
    if not plans:
        if writer is WriterState.CLOSED:  # (folders a compaction killed after its commit left)
            remove_empty_dirs(layout.seqs_dir(run_hash))
        return result(
            "unchanged", "; ".join(notes) or "nothing new to compact", generation=generation
        )
    generation += 1
    prev_files = {f.kind: f for f in manifest.files} if manifest else {}
    by_kind: dict[str, list[SeqPlan]] = {}
    for plan in plans:
        by_kind.setdefault(compacted_kind(plan.key.kind), []).append(plan)
    segments = [s for p in plans for s in p.segments]
    closed = writer is WriterState.CLOSED  # (its emptied folders are removed)
    before = usage_before(
        run_dir, layout.manifest(run_hash), manifest, segments, empties_folders=closed
    )
    least = least_after(run_dir, manifest, set(by_kind))
    if not rewrite_all and not least.is_smaller_than(before):
        return _keep(
            layout, run_hash, result, notes, generation - 1, before, least,
            estimated=True, no_manifest=manifest is None,
        )  # fmt: skip
    made_dir = not layout.compacted_dir(run_hash).is_dir()
    layout.compacted_dir(run_hash).mkdir(exist_ok=True)
    written: dict[str, CompactedFile] = {}
    points = 0
    try:
        for kind in sorted(by_kind):
            written[kind], n = write_kind(
                run_dir, run_hash, kind, generation, prev_files.get(kind), by_kind[kind]
            )
            points += n
    except BaseException:
        for f in written.values():
            remove_file(run_dir / f.path)
        raise
    new_segments = {f"{p.key.seq_id}/{s.name}" for p in plans for s in p.segments}
    still_there = {
        s for s in (manifest.segments if manifest else ()) if (run_dir / SEQS_DIRNAME / s).exists()
    }
    files = {**prev_files, **written}
    new_manifest = Manifest(
        generation=generation,
        files=tuple(files[k] for k in sorted(files)),
        segments=frozenset(new_segments | still_there),
        created_at=time.time(),
    )
    data = json.dumps(new_manifest.to_json(), ensure_ascii=False, indent=1)
    encoded = data.encode("utf-8", "surrogatepass")
    after = Usage(len(files) + 1 + made_dir, len(encoded) + sum(f.bytes for f in files.values()))
    if not rewrite_all and not after.is_smaller_than(before):
        for f in written.values():
            remove_file(run_dir / f.path)
        return _keep(
            layout, run_hash, result, notes, generation - 1, before, after,
            estimated=False, no_manifest=manifest is None,
        )  # fmt: skip
    atomic_write(layout.manifest(run_hash), encoded)  # commit
    for plan in plans:
        for seg in plan.segments:
            remove_file(seg)
    for kind in written:
        old = prev_files.get(kind)
        if old is not None and old.path != written[kind].path:
            remove_file(run_dir / old.path)
    if closed:
        remove_empty_dirs(layout.seqs_dir(run_hash))
    rows = sum(f.rows for f in written.values())
    return result(
        "compacted",
        "; ".join(notes),
        generation=generation,
        segments=len(new_segments),
        points=points,
        rows=rows,
    )


def _keep(
    layout: RepoLayout,
    run_hash: str,
    result: Callable[..., RunCompaction],
    notes: list[str],
    generation: int,
    before: Usage,
    after: Usage,
    *,
    estimated: bool,
    no_manifest: bool,
) -> RunCompaction:
    """Leave the segments as written: Parquet would not make the run smaller. `before`: what
    the rewrite would replace; `after`: what it would leave (at least, when `estimated`);
    `no_manifest`: the run has no manifest, so an empty `compacted/` is one this rewrite (or an
    interrupted one) made: it is removed."""
    notes.append(
        f"left as written: {before} now, Parquet would leave {'at least ' if estimated else ''}"
        f"{after} (rewritten only when no more files and folders and fewer bytes; "
        "`compact --rewrite-all` rewrites it)"
    )
    if no_manifest:
        with suppress(OSError):  # (only an empty folder is removed)
            os.rmdir(layout.compacted_dir(run_hash))
    mark_kept(layout, run_hash, lambda: writer_state(layout, run_hash) is WriterState.LIVE)
    return result("kept", "; ".join(notes), generation=generation)


def _catch_up_catalogue(layout: RepoLayout, run_hash: str, notes: list[str]) -> None:
    """Before the segments of a run whose writer died move into Parquet, bring its catalogue up
    to date with them (the sidecar may miss the writer's last flush): afterwards only a full
    read of the compacted rows could tell what it missed."""
    try:
        stale = catch_up_sidecar(layout, run_hash)
    except (AimParquetError, OSError) as exc:
        notes.append(f"could not catch its catalogue up with its segments: {exc}")
        return
    if stale:
        notes.append(f"caught the catalogue up with the segments ({', '.join(stale)})")


def default_workers() -> int:
    """Runs compacted at once by `compact_repo`: Parquet encoding releases the GIL."""
    return max(1, min(4, os.cpu_count() or 1))


def _compact_one(
    layout: RepoLayout, run_hash: str, include_active: bool, rewrite_all: bool
) -> RunCompaction:
    try:
        return compact_run(layout, run_hash, include_active=include_active, rewrite_all=rewrite_all)
    except Exception as exc:  # one run's failure is reported; the others still compact
        if not os.path.lexists(layout.run_dir(run_hash)):  # `runs rm|mv` while we worked on it
            return RunCompaction(run_hash, "skipped", "deleted while it was being compacted")
        if isinstance(exc, PermissionError):
            note = f"permission denied ({exc}); compact it as a user who may write it"
            return RunCompaction(run_hash, "skipped", note)
        log.error("aim_parquet: compacting run %s failed: %s", run_hash, exc)
        return RunCompaction(run_hash, "failed", str(exc))


def compact_repo(
    layout: RepoLayout,
    run_hashes: list[str] | None = None,
    *,
    include_active: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
    workers: int | None = None,
    rewrite_all: bool = False,
) -> CompactionReport:
    """Compact every run (or `run_hashes`), `workers` runs at a time (default: up to 4, one
    per CPU), then refresh the published runs table.

    A run is rewritten into Parquet only when that makes it smaller (`compact_run`); with
    `rewrite_all` every run with sealed segments is. `progress(done, total, run_hash)` is
    called after each run. A run that fails is reported
    (status 'failed', with the reason) and the others go on.
    """
    started = time.perf_counter()
    hashes = list_run_hashes(layout) if run_hashes is None else list(run_hashes)
    n_workers = max(1, workers if workers is not None else default_workers())
    done: dict[str, RunCompaction] = {}
    todo = []
    valid = [h for h in hashes if is_valid_run_hash(h)]
    settled = settled_runs(
        layout.runs_dir, valid, kept=not rewrite_all
    )  # compacted again: a few lstats a run, no lock
    for run_hash in hashes:
        if run_hash not in settled:
            todo.append(run_hash)
            continue
        done[run_hash] = RunCompaction(run_hash, "unchanged", SETTLED_NOTE)
        if progress is not None:
            progress(len(done), len(hashes), run_hash)
    with ThreadPoolExecutor(
        max_workers=n_workers, thread_name_prefix="aim_parquet-compact"
    ) as pool:
        with signals_blocked():  # the pool's threads leave Ctrl-C and SIGTERM to this one
            futures = {
                pool.submit(_compact_one, layout, h, include_active, rewrite_all): h for h in todo
            }
        for future in as_completed(futures):
            entry = future.result()
            done[futures[future]] = entry
            if progress is not None:
                progress(len(done), len(hashes), entry.run_hash)
    notes: list[str] = []
    try:
        from aim_parquet.storage.compaction.dataset import refresh_dataset

        refreshed = refresh_dataset(layout)
        notes.extend(f"analyst dataset: {n}" for n in refreshed.notes)
    except Exception as exc:  # the compaction itself succeeded: report, don't fail it
        notes.append(f"could not refresh the runs table and the analyst dataset: {exc}")
    entries = tuple(done[h] for h in hashes)
    return CompactionReport(entries, time.perf_counter() - started, tuple(notes))
