"""The checks of one run for `verify`, each problem paired with the fix `--repair` applies.

See `storage.maintenance` for what is checked and `storage.salvage` for how each fix keeps every
readable point.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from aim_parquet.errors import AimParquetError, CorruptFileError, FormatVersionError
from aim_parquet.format.meta import FORMAT_VERSION, CompactedFile, Manifest, RunMeta
from aim_parquet.format.paths import TEMP_PREFIX, RepoLayout, is_valid_seq_id
from aim_parquet.format.schema import META_FORMAT_VERSION
from aim_parquet.storage import salvage
from aim_parquet.storage.catalogue_scan import scan_catalogue, stale_sequences
from aim_parquet.storage.compacted import is_compacted_name, read_footer
from aim_parquet.storage.lock import is_run_locked
from aim_parquet.storage.repo_changes import write_sidecar
from aim_parquet.storage.run_folder import (
    COMPACT_LOCK_FILENAME,
    is_file_locked,
    is_uncommitted,
    segment_key,
)
from aim_parquet.storage.run_index import YOUNG_RUN_S
from aim_parquet.storage.run_reader import list_segments, load_manifest, load_run_meta

TEMP_GRACE_S = 600.0  # a temp file this old is a leftover even in a run that is being written


@dataclass(frozen=True)
class Problem:
    """One damaged file. `action` says what `--repair` did (empty when it was not asked)."""

    run_hash: str | None  # None for repository-level files
    path: str
    kind: str  # invalid-sidecar, missing-sidecar, future-format, invalid-manifest, ...
    detail: str
    repaired: bool = False
    action: str = ""


Fix = Callable[[], str]


class RunCheck:
    """Problems of one run, each with the fix `--repair` applies."""

    def __init__(self, layout: RepoLayout, run_hash: str, *, is_exclusive: bool = False) -> None:
        """`is_exclusive`: the caller holds the run's write and compaction locks."""
        self.layout = layout
        self.run_hash = run_hash
        self.run_dir = layout.run_dir(run_hash)
        self.found: list[tuple[Problem, Fix | None]] = []
        self.notes: list[str] = []
        self.segments = 0
        self.files = 0
        self.is_exclusive = is_exclusive
        self.holder = None if is_exclusive else is_run_locked(layout.lock_file(run_hash))
        self.manifest: Manifest | None = None
        self._files_fixed = False
        self._footer_sequences: set[str] | None = None

    def add(self, path: Path, kind: str, detail: str, fix: Fix | None) -> None:
        self.found.append((Problem(self.run_hash, str(path), kind, detail), fix))

    def run(self) -> None:
        self.check_temp_files()
        self.check_manifest()
        self.check_segments()
        self.check_sidecar()

    def check_temp_files(self) -> None:
        idle = self.is_exclusive or (
            self.holder is None and not is_file_locked(self.run_dir / COMPACT_LOCK_FILENAME)
        )
        now = time.time()
        for dirpath, _dirs, names in os.walk(self.run_dir):
            for name in names:
                path = Path(dirpath) / name
                if not name.startswith(TEMP_PREFIX):
                    continue
                try:
                    age = now - path.stat().st_mtime
                except FileNotFoundError:
                    continue
                if idle or age > TEMP_GRACE_S:
                    self.add(
                        path,
                        "temp-file",
                        "leftover temp file of an interrupted write",
                        functools.partial(_unlink, path),
                    )

    def check_manifest(self) -> None:
        path = self.layout.manifest(self.run_hash)
        try:
            self.manifest = load_manifest(self.layout, self.run_hash)
        except FormatVersionError as exc:
            self.add(path, "future-format", str(exc), None)
            return
        except CorruptFileError as exc:
            self.add(path, "invalid-manifest", str(exc), self.fix_lost_manifest)
            return
        cdir = self.layout.compacted_dir(self.run_hash)
        if self.manifest is None:
            names = [n for n in listdir_sorted(cdir) if is_compacted_name(n)]
            if any(not is_uncommitted(self.run_dir, cdir / n) for n in names):
                self.add(
                    path,
                    "missing-manifest",
                    "compacted files exist whose segments are gone, but no manifest lists them",
                    self.fix_lost_manifest,
                )
            elif names:
                self.notes.append(
                    f"run {self.run_hash}: leftover files of an interrupted "
                    "compaction (`aim-parquet compact` or `gc` removes them)"
                )
            return
        bad = []
        for f in self.manifest.files:
            self.files += 1
            fpath = self.run_dir / f.path
            reason = _check_parquet(fpath, f.rows)
            if reason is not None:
                bad.append(f.path)
                kind = "missing-compacted" if "missing" in reason else "unreadable-compacted"
                self.add(fpath, kind, f"{reason} ({f.rows} rows)", self.fix_compacted_files)

    def fix_lost_manifest(self) -> str:
        path = self.layout.manifest(self.run_hash)
        if path.exists():
            salvage.quarantine(self.layout, path, keep=True)
        manifest, redundant = salvage.rebuild_manifest(self.layout, self.run_hash)
        for name in redundant:
            salvage.quarantine(self.layout, self.layout.compacted_dir(self.run_hash) / name)
        self.manifest = manifest
        n = len(manifest.files) if manifest else 0
        return f"rebuilt the manifest from the footers of {n} compacted file(s)"

    def fix_compacted_files(self) -> str:
        if self._files_fixed:
            return "fixed with the other compacted files of this run"
        self._files_fixed = True
        assert self.manifest is not None
        keep = []
        moved = []
        for f in self.manifest.files:
            fpath = self.run_dir / f.path
            if _check_parquet(fpath, f.rows) is None:
                keep.append(f)
            elif fpath.exists():
                moved.append(str(salvage.quarantine(self.layout, fpath)))
        lost = _missing_segments(self.run_dir, self.manifest, keep)
        self.manifest, _ = salvage.rebuild_manifest(self.layout, self.run_hash, keep)
        text = "removed from the manifest"
        if moved:
            text += f"; quarantined to {', '.join(moved)}"
        if lost:
            text += f"; {lost} covered segment(s) were already deleted, their points are lost"
        else:
            text += "; its points are read from the segments again"
        return text

    def check_segments(self) -> None:
        covered = self.manifest.segments if self.manifest is not None else frozenset()
        for seq_dir in _seq_dirs(self.layout, self.run_hash):
            segs = list_segments(seq_dir)
            for i, seg in enumerate(segs):
                if f"{seq_dir.name}/{seg.name}" in covered:
                    continue  # already in Parquet; gc removes it
                if self.holder is not None and i == len(segs) - 1:
                    continue  # the live writer's segment
                self.segments += 1
                self.check_segment(seg)

    def check_segment(self, seg: Path) -> None:
        key = segment_key(seg)
        if key is None:
            self.add(
                seg,
                "unreadable-segment",
                "no readable Arrow schema (empty or garbage file)",
                lambda: f"quarantined to {salvage.quarantine(self.layout, seg)}",
            )
            return
        try:
            with pa.OSFile(os.fspath(seg)) as f:
                reader = pa.ipc.open_stream(f)
                version = int((reader.schema.metadata or {}).get(META_FORMAT_VERSION, b"1"))
                if version > FORMAT_VERSION:
                    self.add(seg, "future-format", f"written by format version {version}", None)
                    return
                rows = 0
                while True:
                    try:
                        rows += reader.read_next_batch().num_rows
                    except StopIteration:
                        return
                    except (pa.ArrowInvalid, OSError, ValueError) as exc:
                        self.add(
                            seg,
                            "torn-tail",
                            f"incomplete data after {rows} rows ({exc})",
                            lambda: (
                                f"rewrote it with its {salvage.rewrite_segment(seg)} complete rows"
                            ),
                        )
                        return
        except (pa.ArrowInvalid, OSError, ValueError) as exc:
            self.add(
                seg,
                "unreadable-segment",
                str(exc),
                lambda: f"quarantined to {salvage.quarantine(self.layout, seg)}",
            )

    def check_sidecar(self) -> None:
        path = self.layout.sidecar(self.run_hash)
        if not path.exists():
            is_new = not self.is_exclusive and _age(self.run_dir) < YOUNG_RUN_S
            if self.holder is not None or is_new:
                return  # a run being created
            self.add(path, "missing-sidecar", "the run has no run.json", self.fix_sidecar)
            return
        try:
            meta = load_run_meta(self.layout, self.run_hash)
        except FormatVersionError as exc:
            self.add(path, "future-format", str(exc), None)
            return
        except CorruptFileError as exc:
            self.add(path, "invalid-sidecar", str(exc), self.fix_sidecar)
            return
        if meta.hash != self.run_hash:
            self.add(
                path,
                "invalid-sidecar",
                f"names run {meta.hash!r}, not its folder's",
                lambda: _rewrite(self.layout, RunMeta(**{**meta.__dict__, "hash": self.run_hash})),
            )
        missing = [s.name for s in meta.sequences if s.count and not self.has_data(s.seq_id)]
        if missing:
            self.add(
                path,
                "missing-data",
                f"no data left for sequence(s) {missing}",
                lambda: self.fix_catalogue(meta),
            )
        if self.holder is None:  # a live writer's catalogue may lag by one flush
            self.check_catalogue(path, meta, missing)

    def check_catalogue(self, path: Path, meta: RunMeta, missing: list[str]) -> None:
        """The catalogue against a summary of every readable point (`stale-catalogue`)."""
        try:
            true = scan_catalogue(self.layout, self.run_hash, meta, full=True)
        except (OSError, pa.ArrowException, AimParquetError) as exc:
            self.notes.append(f"run {self.run_hash}: catalogue not checked ({exc})")
            return
        stale = [n for n in stale_sequences(meta.sequences, true) if n not in missing]
        if not stale:
            return
        why = (
            "its writer died after writing segments the sidecar does not describe"
            if meta.end_time is None
            else "a writer closed it with figures that missed points"
        )
        self.add(
            path,
            "stale-catalogue",
            f"the catalogue disagrees with the data for sequence(s) {sorted(set(stale))} "
            f"(count, first/last step or value, min or max): {why}",
            lambda: self.fix_stale_catalogue(meta),
        )

    def fix_stale_catalogue(self, meta: RunMeta) -> str:
        true = scan_catalogue(self.layout, self.run_hash, meta, full=True)
        _rewrite(self.layout, RunMeta(**{**meta.__dict__, "sequences": true}))
        return "catalogue rewritten from the segments"

    def has_data(self, seq_id: str) -> bool:
        if list_segments(self.layout.seqs_dir(self.run_hash) / seq_id):
            return True
        if self._footer_sequences is None:
            cdir = self.layout.compacted_dir(self.run_hash)
            footers = salvage.readable_footers(cdir)
            if self.manifest is not None:  # only the files readers use
                listed = {Path(f.path).name for f in self.manifest.files}
                footers = {n: f for n, f in footers.items() if n in listed}
            self._footer_sequences = {s for f in footers.values() for s in f.sequences}
        return seq_id in self._footer_sequences

    def fix_sidecar(self) -> str:
        path = self.layout.sidecar(self.run_hash)
        moved = (
            f"; the damaged file is in {salvage.quarantine(self.layout, path, keep=True)}"
            if path.exists()
            else ""
        )
        meta, recovered = salvage.rebuild_sidecar(self.layout, self.run_hash)
        source = "params and properties from the run index" if recovered else "params lost"
        return f"rebuilt from the data ({len(meta.sequences)} sequences; {source}){moved}"

    def fix_catalogue(self, meta: RunMeta) -> str:
        infos = tuple(
            salvage.data_catalogue(
                self.layout, self.run_hash, RunMeta(meta.hash, meta.creation_time)
            )
        )
        _rewrite(self.layout, RunMeta(**{**meta.__dict__, "sequences": infos}))
        return "catalogue rebuilt from the readable data"


def _rewrite(layout: RepoLayout, meta: RunMeta) -> str:
    write_sidecar(layout, meta.hash, meta.dumps())
    return "sidecar rewritten"


def _missing_segments(run_dir: Path, manifest: Manifest, keep: list[CompactedFile]) -> int:
    kept = {f.path for f in keep}
    lost = 0
    for f in manifest.files:
        if f.path in kept:
            continue
        try:
            segs = read_footer(run_dir / f.path).segments
        except (OSError, pa.ArrowInvalid, ValueError, KeyError):
            segs = frozenset(manifest.segments)
        lost += sum(1 for s in segs if not (run_dir / "seqs" / s).exists())
    return lost


def _check_parquet(path: Path, rows: int) -> str | None:
    """None when the file reads in full with the expected row count, else why not."""
    try:
        pf = pq.ParquetFile(path)
        n = 0
        for batch in pf.iter_batches(batch_size=65536):
            n += batch.num_rows
    except FileNotFoundError:
        return "missing compacted file listed in the manifest"
    except (OSError, pa.ArrowException, ValueError) as exc:
        return f"unreadable Parquet ({exc})"
    if n != rows:
        return f"holds {n} rows, the manifest says {rows}"
    return None


def listdir_sorted(folder: Path) -> list[str]:
    try:
        return sorted(os.listdir(folder))
    except FileNotFoundError:
        return []


def _seq_dirs(layout: RepoLayout, run_hash: str) -> list[Path]:
    seqs = layout.seqs_dir(run_hash)
    return [seqs / n for n in listdir_sorted(seqs) if is_valid_seq_id(n)]


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _unlink(path: Path) -> str:
    path.unlink(missing_ok=True)
    return "removed"
