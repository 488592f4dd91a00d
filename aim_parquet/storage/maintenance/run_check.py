"""The checks of one run for `verify`, each problem paired with the fix `--repair` applies.

See `storage.maintenance.verify` for what is checked and `storage.maintenance.salvage` for how each fix keeps every
readable point. A file this process may not read is a `permission-denied` problem, never damage:
no fix is offered for it, and nothing else of that run is repaired (its owner can). Links and
special files (FIFOs, devices) are left to the repository-wide scan (`storage.maintenance.repo_scan`), which
names each of them once. The checks of the catalogue against the data (`missing-data`,
`stale-catalogue`) are in `storage.maintenance.catalogue_check`.
"""

from __future__ import annotations

import functools
import os
import time
from collections import Counter
from pathlib import Path

from aim_parquet.errors import AimParquetError, CorruptFileError, FormatVersionError
from aim_parquet.format.compacted import is_compacted_name
from aim_parquet.format.meta import Manifest, RunMeta
from aim_parquet.format.paths import SIDECAR_FILENAME, TEMP_PREFIX, RepoLayout, is_valid_seq_id
from aim_parquet.storage.base.files import age_s, list_names
from aim_parquet.storage.base.lock import WriterState, is_flocked, writer_state
from aim_parquet.storage.base.safe_fs import read_regular
from aim_parquet.storage.compaction.run_folder import is_uncommitted
from aim_parquet.storage.index.run_index import YOUNG_RUN_S
from aim_parquet.storage.maintenance import salvage
from aim_parquet.storage.maintenance.catalogue_check import CatalogueChecks, rewrite_sidecar
from aim_parquet.storage.maintenance.problems import PERMISSION_DENIED, TEMP_GRACE_S, Fix, Problem
from aim_parquet.storage.maintenance.verify_files import (
    check_parquet_file,
    check_segment_file,
    is_readable_parquet,
    is_special,
    missing_segments,
)
from aim_parquet.storage.online.run_reader import list_segments, load_manifest, load_run_meta


class RunCheck(CatalogueChecks):
    """Problems of one run, each with the fix `--repair` applies."""

    def __init__(
        self,
        layout: RepoLayout,
        run_hash: str,
        *,
        is_exclusive: bool = False,
        is_sidecar_moved: bool = False,
    ) -> None:
        """`is_exclusive`: the caller holds the run's write and compaction locks;
        `is_sidecar_moved`: the repository scan moved its sidecar (a FIFO) aside, so a missing
        sidecar is damage even in a young run folder."""
        self.layout = layout
        self.run_hash = run_hash
        self.run_dir = layout.run_dir(run_hash)
        self.found: list[tuple[Problem, Fix | None]] = []
        self.notes: list[str] = []
        self.segments = 0
        self.files = 0
        self.is_exclusive = is_exclusive
        self.is_sidecar_moved = is_sidecar_moved
        # a writer holds it
        self.is_live = not is_exclusive and writer_state(layout, run_hash) is WriterState.LIVE
        self.manifest: Manifest | None = None
        self._files_fixed = False
        self._footer_sequences: set[str] | None = None
        self.rows: Counter[str] = Counter()  # readable rows per seq_id (segments and Parquet)
        self.is_partial = False  # a file could not be read (permission denied, link, FIFO)
        self.is_denied = False  # ... because this user may not read it

    def add(self, path: Path, kind: str, detail: str, fix: Fix | None) -> None:
        self.found.append((Problem(self.run_hash, str(path), kind, detail), fix))

    def add_denied(self, path: Path | str, exc: OSError) -> None:
        """A file this process may not read: reported as such, never as damage, never fixed."""
        self.is_partial = self.is_denied = True
        self.add(
            Path(exc.filename) if isinstance(exc.filename, str) else Path(path),
            PERMISSION_DENIED,
            f"cannot read it ({exc.strerror or exc}); it is not damaged: check it as a user who "
            "may read it (its owner)",
            None,
        )

    def run(self) -> None:
        try:
            os.listdir(self.run_dir)
        except PermissionError as exc:  # a run folder we may not list: one problem, not three
            self.add_denied(self.run_dir, exc)
            return
        except FileNotFoundError:
            return  # deleted meanwhile
        # the counts as of before the data is read (a writer only adds points after them), and
        # the manifest then: a compaction committing meanwhile moves rows between files
        counts_before = self._catalogue_counts()
        manifest_before = self._manifest_bytes()
        for check in (self.check_temp_files, self.check_manifest, self.check_segments):
            try:
                check()
            except PermissionError as exc:
                self.add_denied(self.run_dir, exc)
        try:
            meta = self.check_sidecar()
        except PermissionError as exc:
            self.add_denied(self.layout.sidecar(self.run_hash), exc)
            meta = None
        if meta is None:
            return
        reported: list[str] = []
        if counts_before and self._manifest_bytes() == manifest_before:
            reported = self.check_counts(meta, counts_before)
        self.check_catalogue(meta, reported)

    def _catalogue_counts(self) -> dict[str, int]:
        try:
            meta = load_run_meta(self.layout, self.run_hash)
        except (OSError, AimParquetError):  # reported by check_sidecar
            return {}
        return {s.seq_id: s.count for s in meta.sequences}

    def _manifest_bytes(self) -> bytes | None:
        try:
            return read_regular(self.layout.manifest(self.run_hash), "manifest", 1 << 30)
        except OSError:
            return None

    def check_temp_files(self) -> None:
        idle = self.is_exclusive or (
            not self.is_live and not is_flocked(self.layout.compact_lock(self.run_hash))
        )
        now = time.time()
        walk = os.walk(
            self.run_dir,
            onerror=lambda e: (
                self.add_denied(self.run_dir, e) if isinstance(e, PermissionError) else None
            ),
        )
        for dirpath, _dirs, names in walk:
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
            names = [n for n in list_names(cdir) if is_compacted_name(n)]
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
        for f in self.manifest.files:
            self.files += 1
            fpath = self.run_dir / f.path
            if is_special(fpath):
                self.is_partial = True  # named by the repository scan; its rows are unknown
                continue
            try:
                reason = check_parquet_file(fpath, f.rows, self.rows)
            except FormatVersionError as exc:
                self.add(fpath, "future-format", str(exc), None)
                continue
            except PermissionError as exc:
                self.add_denied(fpath, exc)
                continue
            if reason is not None:
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
            if is_readable_parquet(fpath, f.rows):
                keep.append(f)
            elif fpath.exists():
                moved.append(str(salvage.quarantine(self.layout, fpath)))
        lost = missing_segments(self.run_dir, self.manifest, keep)
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
                if self.is_live and i == len(segs) - 1:
                    continue  # the live writer's segment
                self.segments += 1
                if is_special(seg):
                    self.is_partial = True  # named by the repository scan; its rows are unknown
                    continue
                try:
                    self.check_segment(seg)
                except PermissionError as exc:
                    self.add_denied(seg, exc)

    def check_segment(self, seg: Path) -> None:
        kind, detail, rows = check_segment_file(seg)  # (PermissionError passes through)
        self.rows[seg.parent.name] += rows
        if kind is None:
            return
        fix: Fix | None = None
        if kind == "torn-tail":

            def fix() -> str:
                return f"rewrote it with its {salvage.rewrite_segment(seg)} complete rows"

        elif kind != "future-format":

            def fix() -> str:
                return f"quarantined to {salvage.quarantine(self.layout, seg)}"

        self.add(seg, kind, detail, fix)

    def check_sidecar(self) -> RunMeta | None:
        """Check the sidecar; returns it when it is readable and its catalogue can be trusted."""
        path = self.layout.sidecar(self.run_hash)
        if not os.path.lexists(path):
            is_new = not (self.is_exclusive or self.is_sidecar_moved) and (
                age_s(self.run_dir) < YOUNG_RUN_S
            )
            if self.is_live or is_new:
                return None  # a run being created
            self.add(
                path, "missing-sidecar", f"the run has no {SIDECAR_FILENAME}", self.fix_sidecar
            )
            return None
        if is_special(path):
            return None  # named by the repository scan (its repair moves it aside)
        try:
            meta = load_run_meta(self.layout, self.run_hash)
        except FormatVersionError as exc:
            self.add(path, "future-format", str(exc), None)
            return None
        except CorruptFileError as exc:
            self.add(path, "invalid-sidecar", str(exc), self.fix_sidecar)
            return None
        if meta.hash != self.run_hash:
            self.add(
                path,
                "invalid-sidecar",
                f"names run {meta.hash!r}, not its folder's",
                lambda: rewrite_sidecar(
                    self.layout, RunMeta(**{**meta.__dict__, "hash": self.run_hash})
                ),
            )
        missing = [s.name for s in meta.sequences if s.count and not self.has_data(s.seq_id)]
        if missing:
            self.add(
                path,
                "missing-data",
                f"no data left for sequence(s) {missing}",
                lambda: self.fix_catalogue(meta),
            )
            self.check_catalogue(meta, missing)
            return None
        return meta

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


def _seq_dirs(layout: RepoLayout, run_hash: str) -> list[Path]:
    seqs = layout.seqs_dir(run_hash)
    if os.path.islink(seqs):
        return []  # named by the repository scan
    return [
        seqs / n for n in list_names(seqs) if is_valid_seq_id(n) and not os.path.islink(seqs / n)
    ]


def _unlink(path: Path) -> str:
    path.unlink(missing_ok=True)
    return "removed"
