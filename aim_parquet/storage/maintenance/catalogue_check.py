"""The catalogue checks of `verify`, part of `storage.maintenance.run_check.RunCheck`.

- `missing-data`: the catalogue counts more points than the data holds (a segment or compacted
  file was lost while others of the sequence are left): judged from the rows the other checks
  read, only when every data file of the run was read without a problem.
- `stale-catalogue`: any other figure (count, first/last step or value, min, max) disagrees
  with a summary of every readable point (`storage.online.catalogue_scan`, the reader's own meaning),
  e.g. a writer killed after writing points its sidecar does not describe. Not judged while a
  live writer holds the run (its catalogue may lag by one flush), nor when a file of the run
  could not be read (permission denied, a link or special file): its rows are unknown, and a
  catalogue is never rewritten from part of the data.

A sequence is reported under one of the two kinds, not both.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow as pa

from aim_parquet.errors import AimParquetError
from aim_parquet.format.meta import RunMeta, SequenceInfo
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage.base.repo_changes import write_sidecar
from aim_parquet.storage.base.repo_files import writer_ranks
from aim_parquet.storage.maintenance import salvage
from aim_parquet.storage.maintenance.problems import Fix, Problem
from aim_parquet.storage.online.catalogue_scan import edit_writer_catalogue, scan_catalogue
from aim_parquet.storage.online.catalogue_summary import stale_sequences
from aim_parquet.storage.online.run_reader import load_sidecar
from aim_parquet.storage.online.writer_parts import sequence_owner


def rewrite_sidecar(layout: RepoLayout, meta: RunMeta) -> str:
    """Write `meta` (the caller holds the run's `lock`). For a run with several writers, `meta`
    is the merged view: each writer's file gets its own sequences (by `sequence_owner`) and
    keeps its own `end_time`; a part is rewritten under its writer's lock, and not at all while
    that writer lives."""
    if not meta.is_multi_writer:
        write_sidecar(layout, meta.hash, meta.dumps())
        return "sidecar rewritten"
    owned: dict[int, list[SequenceInfo]] = {}
    for info in meta.sequences:
        owned.setdefault(sequence_owner(info.context), []).append(info)
    try:
        own_end = load_sidecar(layout, meta.hash).end_time
    except (OSError, AimParquetError):  # a sidecar being rebuilt: the merged view's
        own_end = meta.end_time
    main = RunMeta(**{**meta.__dict__, "sequences": tuple(owned.pop(0, [])), "end_time": own_end})
    write_sidecar(layout, meta.hash, main.dumps())
    for rank in sorted(set(owned) | set(writer_ranks(layout, meta.hash, "json"))):
        infos = tuple(owned.get(rank, []))

        def change(
            _layout: RepoLayout,
            part: RunMeta,
            _owner: int | None,
            infos: tuple[SequenceInfo, ...] = infos,
        ) -> tuple[RunMeta, list[str]]:
            return RunMeta(**{**part.__dict__, "sequences": infos}), []

        edit_writer_catalogue(layout, meta.hash, rank, change, True)
    return "sidecar and writer parts rewritten"


class CatalogueChecks:
    """The catalogue checks of a `RunCheck` (which provides these attributes and `add`)."""

    layout: RepoLayout
    run_hash: str
    is_live: bool
    is_partial: bool
    found: list[tuple[Problem, Fix | None]]
    notes: list[str]
    rows: Counter[str]  # readable rows per seq_id (segments and Parquet)

    def add(self, path: Path, kind: str, detail: str, fix: Fix | None) -> None:
        raise NotImplementedError

    def check_counts(self, meta: RunMeta, counts: dict[str, int]) -> list[str]:
        """A catalogue that counts more points than the data holds: a segment or compacted file
        was lost while others of the sequence are left (`runs ls` would show points no query
        returns). Only judged when every data file of the run was read without a problem.
        Returns the names of the sequences it reported."""
        known = {"torn-tail", "temp-file"}  # problems that leave the readable rows counted
        if self.is_live or self.is_partial or any(p.kind not in known for p, _fix in self.found):
            return []
        short = [s for s in meta.sequences if self.rows[s.seq_id] < counts.get(s.seq_id, 0)]
        if short:
            text = "; ".join(
                f"{s.name!r} counts {counts[s.seq_id]}, {self.rows[s.seq_id]} readable"
                for s in short
            )
            self.add(
                self.layout.sidecar(self.run_hash),
                "missing-data",
                f"the catalogue counts points that are gone: {text}",
                lambda: self.fix_catalogue(meta),
            )
        return [s.name for s in short]

    def check_catalogue(self, meta: RunMeta, reported: list[str]) -> None:
        """The catalogue against a summary of every readable point (`stale-catalogue`), for
        the sequences not `reported` as missing data already. Not judged while a live writer
        holds the run (its catalogue may lag by one flush), nor when a file of the run could
        not be read (permission denied, a link or special file): its rows are unknown."""
        if self.is_live or self.is_partial:
            return
        try:
            true = scan_catalogue(self.layout, self.run_hash, meta, full=True)
        except (OSError, pa.ArrowException, AimParquetError) as exc:
            self.notes.append(f"run {self.run_hash}: catalogue not checked ({exc})")
            return
        stale = [n for n in stale_sequences(meta.sequences, true) if n not in reported]
        if not stale:
            return
        why = (
            "its writer died after writing segments the sidecar does not describe"
            if meta.end_time is None
            else "a writer closed it with figures that missed points"
        )
        self.add(
            self.layout.sidecar(self.run_hash),
            "stale-catalogue",
            f"the catalogue disagrees with the data for sequence(s) {sorted(set(stale))} "
            f"(count, first/last step or value, min or max): {why}",
            lambda: self.fix_stale_catalogue(meta),
        )

    def fix_stale_catalogue(self, meta: RunMeta) -> str:
        true = scan_catalogue(self.layout, self.run_hash, meta, full=True)
        rewrite_sidecar(self.layout, RunMeta(**{**meta.__dict__, "sequences": true}))
        return "catalogue rewritten from the segments"

    def fix_catalogue(self, meta: RunMeta) -> str:
        infos = tuple(
            salvage.data_catalogue(
                self.layout, self.run_hash, RunMeta(meta.hash, meta.creation_time)
            )
        )
        rewrite_sidecar(self.layout, RunMeta(**{**meta.__dict__, "sequences": infos}))
        return "catalogue rebuilt from the readable data"
