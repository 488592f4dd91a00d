"""The catalogue scan of a dead writer's run follows the rules for links, special files and bounds
(FORMAT.md): a segment that is a link or a FIFO is never followed or opened, the scan leaves it out
(as if it were absent) instead of hanging or reading outside the repository, and `verify` names
it without calling the catalogue stale or rewriting it from what it could not read."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa

from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage import load_run_meta, verify_repo
from aim_parquet.storage.online.catalogue_scan import scan_catalogue
from aim_parquet.storage.online.segments import read_segment_from
from tests.integration.test_catalogue_scan import catalogue, write_killed_run

BOUND_S = 60  # a FIFO opened for reading would block: each call must return well before this


def bounded(fn: Callable[[], Any]) -> Any:
    """`fn()` in a thread that must finish within BOUND_S (a hang fails the test)."""
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    thread.start()
    thread.join(BOUND_S)
    assert not thread.is_alive(), "hung (a FIFO opened for reading?)"
    return out[0]


def newest_segments(repo: Path, run_hash: str) -> list[Path]:
    """The newest segment of each sequence folder of the run (the ones a reach points into)."""
    seqs = repo / ".aim" / "runs" / run_hash / "seqs"
    return [sorted(d.glob("*.arrows"))[-1] for d in sorted(seqs.iterdir()) if any(d.iterdir())]


def test_scan_of_a_dead_run_skips_a_linked_and_a_fifo_segment(tmp_path: Path) -> None:
    planted = tmp_path / "planted"
    run_hash = write_killed_run(planted)
    absent = tmp_path / "absent"  # the same run with those two segments simply gone
    shutil.copytree(planted, absent)
    link_seg, fifo_seg = newest_segments(planted, run_hash)[:2]
    outside = tmp_path / "outside.arrows"
    shutil.copyfile(link_seg, outside)
    kept = outside.read_bytes()
    for seg in (link_seg, fifo_seg):
        (absent / seg.relative_to(planted)).unlink()
        seg.unlink()
    link_seg.symlink_to(outside)  # a valid segment, but outside the repository
    os.mkfifo(fifo_seg)

    with pa.OSFile(str(outside)) as source:  # where the first batch starts
        pa.ipc.MessageReader.open_stream(source).read_next_message()
        first_batch = source.tell()
    good = read_segment_from(outside, first_batch)  # (the file itself is a good segment)
    assert good is not None and good.batches
    assert bounded(lambda: read_segment_from(link_seg, first_batch)) is None
    assert bounded(lambda: read_segment_from(fifo_seg, first_batch)) is None

    def scan(repo: Path) -> dict[str, dict[str, Any]]:
        layout = RepoLayout(repo)
        return catalogue(scan_catalogue(layout, run_hash, load_run_meta(layout, run_hash)))

    expected = scan(absent)
    assert bounded(lambda: scan(planted)) == expected
    full = bounded(
        lambda: scan_catalogue(
            RepoLayout(planted), run_hash, load_run_meta(RepoLayout(planted), run_hash), full=True
        )
    )
    assert catalogue(full) == expected

    report = bounded(lambda: verify_repo(RepoLayout(planted)))
    kinds = {p.kind for p in report.problems}
    assert {"symlink", "special-file"} <= kinds, report.problems
    assert "stale-catalogue" not in kinds  # its rows are unknown: not judged from a part
    sidecar = planted / ".aim" / "runs" / run_hash / "run.json"
    before = sidecar.read_bytes()
    leftover = sidecar.with_name(".tmp-run.json-deadbeef")  # damage --repair could fix
    leftover.write_text("{}")
    repair = bounded(lambda: verify_repo(RepoLayout(planted), repair=True))
    assert not repair.is_healthy  # the link is left for its owner to remove
    (temp,) = [p for p in repair.problems if p.kind == "temp-file"]
    assert not temp.repaired and "link or special file" in temp.action  # says why, not "denied"
    assert link_seg.is_symlink() and outside.read_bytes() == kept  # a link is never touched
    assert not os.path.lexists(fifo_seg)  # the FIFO is moved aside, unopened
    assert sidecar.read_bytes() == before  # not rewritten from the part that could be read
