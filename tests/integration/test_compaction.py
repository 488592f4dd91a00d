"""Compaction is invisible to queries, idempotent, bounded in files, and safe next to writers."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import filelock
import pyarrow.parquet as pq
import pytest

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout, sequence_id
from aim_parquet.storage import compact_repo, compact_run, load_run_meta, read_sequence
from aim_parquet.storage.compaction import compacted, compactor
from aim_parquet.storage.online import catalogue_scan, run_reader
from tests.conftest import PYTHON, python_env
from tests.integration.repo_snapshots import (
    QUIET,
    raw_row_counts,
    rows,
    run_files,
    snapshot,
    write_rich_run,
)


def test_compaction_is_invisible_to_reads(tmp_path: Path) -> None:
    hashes = [write_rich_run(tmp_path, seed=s) for s in range(3)]
    before = snapshot(tmp_path)
    raw_before = {h: raw_row_counts(tmp_path, h) for h in hashes}
    report = compact_repo(RepoLayout(tmp_path))
    assert [r.status for r in report.runs] == ["compacted"] * 3
    assert report.points == sum(sum(c.values()) for c in raw_before.values())
    assert snapshot(tmp_path) == before
    for h in hashes:
        assert raw_row_counts(tmp_path, h) == raw_before[h]  # nothing lost or doubled
        files = run_files(tmp_path, h)
        assert not any(f.startswith("seqs/") for f in files)
        assert len(files) <= 8, files
        assert "compacted/metrics-000001.parquet" in files
        assert "compacted/objects-aim.text-000001.parquet" in files
        assert "compacted/objects-aim.image-000001.parquet" in files


def test_metrics_file_holds_no_object_bytes_and_is_sorted(tmp_path: Path) -> None:
    run_hash = write_rich_run(tmp_path)
    compact_run(RepoLayout(tmp_path), run_hash)
    path = tmp_path / ".aim" / "runs" / run_hash / "compacted" / "metrics-000001.parquet"
    table = pq.read_table(path)
    assert table.column_names == [
        "run_hash", "seq_id", "name", "context", "step", "epoch", "timestamp", "value",
    ]  # fmt: skip
    assert set(table.column("name").to_pylist()) == {"loss", "acc"}
    rows = list(
        zip(table.column("seq_id").to_pylist(), table.column("step").to_pylist(), strict=True)
    )
    assert rows == sorted(rows)  # by sequence, then step (stable: duplicates keep write order)
    md = pq.ParquetFile(path).metadata
    stats = md.row_group(0).column(1).statistics
    assert stats is not None and stats.has_min_max
    kv = md.metadata
    assert kv[b"aim_parquet.kind"] == b"metrics" and kv[b"aim_parquet.generation"] == b"1"


def test_idempotent_and_rerun_is_a_no_op(tmp_path: Path) -> None:
    run_hash = write_rich_run(tmp_path)
    layout = RepoLayout(tmp_path)
    first = compact_run(layout, run_hash)
    files = run_files(tmp_path, run_hash)
    second = compact_run(layout, run_hash)
    assert (first.status, second.status) == ("compacted", "unchanged")
    assert run_files(tmp_path, run_hash) == files


def test_resume_after_compaction_merges_generations(tmp_path: Path) -> None:
    run_hash = write_rich_run(tmp_path, n=120)
    layout = RepoLayout(tmp_path)
    compact_run(layout, run_hash)
    with aim.Run(run_hash, repo=tmp_path, **QUIET) as run:  # type: ignore[arg-type]
        run.track(-1.0, name="loss", step=3, context={"subset": "train"})  # rewrites a step
        run.track(aim.Text("late"), name="notes", step=0)
        run.track(1.5, name="new_metric", step=0)
    before = snapshot(tmp_path)
    raw = raw_row_counts(tmp_path, run_hash)
    report = compact_run(layout, run_hash)
    assert report.generation == 2 and report.status == "compacted"
    assert snapshot(tmp_path) == before
    assert raw_row_counts(tmp_path, run_hash) == raw
    info = next(s for s in load_run_meta(layout, run_hash).sequences if s.name == "loss")
    table = read_sequence(layout, run_hash, info)
    assert table.column("value").to_pylist()[3] == -1.0
    files = run_files(tmp_path, run_hash)
    assert "compacted/metrics-000002.parquet" in files
    assert "compacted/metrics-000001.parquet" not in files  # superseded and removed
    assert "compacted/objects-aim.image-000001.parquet" in files  # untouched kind kept


def test_row_groups_split_sequences_and_keep_write_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compacted, "ROW_GROUP_ROWS", 64)
    run = aim.Run(repo=tmp_path, **QUIET)  # type: ignore[arg-type]
    for rep in range(3):  # the same steps three times, descending: last write must win
        for i in reversed(range(100)):
            run.track(float(rep * 1000 + i), name="m", step=i)
        run.flush()
    for i in range(50):
        run.track(float(i), name="z", step=i)
    run.close()
    before = snapshot(tmp_path)
    compact_run(RepoLayout(tmp_path), run.hash, rewrite_all=True)
    assert snapshot(tmp_path) == before
    path = next((tmp_path / ".aim" / "runs" / run.hash / "compacted").glob("metrics-*.parquet"))
    md = pq.ParquetFile(path).metadata
    assert md.num_row_groups == 6 and all(md.row_group(g).num_rows <= 64 for g in range(6))


def test_reader_retries_when_a_compaction_commits_mid_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_hash = write_rich_run(tmp_path)
    layout = RepoLayout(tmp_path)
    info = next(s for s in load_run_meta(layout, run_hash).sequences if s.name == "loss")
    expected = rows(read_sequence(layout, run_hash, info))
    real = run_reader.segment_names
    calls = []

    def list_then_compact(seq_dir: str) -> list[str]:
        segs = real(seq_dir)
        if not calls:
            calls.append(1)
            compact_run(layout, run_hash)  # commits and removes the segments just listed
        return segs

    monkeypatch.setattr(run_reader, "segment_names", list_then_compact)
    assert rows(read_sequence(layout, run_hash, info)) == expected
    assert calls == [1]


def test_active_run_is_skipped_unless_asked(tmp_path: Path) -> None:
    run = aim.Run(repo=tmp_path, **QUIET)  # type: ignore[arg-type]
    try:
        run.track(1.0, name="m")
        run.flush()
        entry = compact_run(RepoLayout(tmp_path), run.hash)
        assert entry.status == "skipped" and "active" in entry.note
        entry = compact_run(RepoLayout(tmp_path), run.hash, include_active=True)
        assert entry.status == "unchanged"  # its only segment is the one being written
    finally:
        run.close()


def test_second_compactor_skips_the_run(tmp_path: Path) -> None:
    run_hash = write_rich_run(tmp_path, n=20)
    lock = filelock.FileLock(tmp_path / ".aim" / "runs" / run_hash / "compact.lock", timeout=0)
    with lock:
        entry = compact_run(RepoLayout(tmp_path), run_hash)
    assert entry.status == "skipped" and "compaction of this run is in progress" in entry.note


def test_writer_resumes_during_compaction_and_nothing_is_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compactor takes no write lock: a training script resuming the run mid-compaction
    goes on at once, and its new points survive both this compaction and the next."""
    run_hash = write_rich_run(tmp_path, n=20)
    real = compactor.write_kind
    resumed: list[str] = []

    def write_and_resume(*args: Any) -> Any:
        if not resumed:
            with aim.Run(run_hash, repo=tmp_path, **QUIET) as run:  # type: ignore[arg-type]
                run.track(123.0, name="resumed-metric", step=7)
            resumed.append(run.hash)
        return real(*args)

    monkeypatch.setattr(compactor, "write_kind", write_and_resume)
    assert compact_run(RepoLayout(tmp_path), run_hash, rewrite_all=True).status == "compacted"
    assert resumed == [run_hash]
    monkeypatch.setattr(compactor, "write_kind", real)
    before_new = snapshot(tmp_path)
    resumed_rows = before_new[(run_hash, sequence_id("resumed-metric", {}))]
    assert [(r["step"], r["value"]) for r in resumed_rows] == [(7, 123.0)]
    assert compact_run(RepoLayout(tmp_path), run_hash, rewrite_all=True).status == "compacted"
    assert snapshot(tmp_path) == before_new


def test_unreadable_segment_is_left_for_verify(tmp_path: Path) -> None:
    run_hash = write_rich_run(tmp_path, n=30)
    seq_dir = next((tmp_path / ".aim" / "runs" / run_hash / "seqs").iterdir())
    garbage = seq_dir / "0000000000000000-1-aaaaaa-000001.arrows"
    garbage.write_bytes(b"not arrow at all")
    entry = compact_run(RepoLayout(tmp_path), run_hash, rewrite_all=True)
    assert entry.status == "compacted" and "unreadable segment" in entry.note
    assert garbage.exists()


def test_compact_repo_publishes_the_runs_table(tmp_path: Path) -> None:
    hashes = sorted(write_rich_run(tmp_path, seed=s, n=20) for s in range(2))
    progress: list[tuple[int, int, str]] = []
    report = compact_repo(RepoLayout(tmp_path), progress=lambda *a: progress.append(a))
    assert [p[:2] for p in progress] == [(1, 2), (2, 2)]
    assert all(r.files_after <= 8 for r in report.runs)
    runs = pq.read_table(tmp_path / ".aim" / "index" / "runs.parquet").to_pylist()
    assert sorted(r["hash"] for r in runs) == hashes
    assert {r["params.hparams.name"] for r in runs} == {"net0", "net1"}
    assert json.loads(runs[0]["params.hparams.layers"]) == [64, 32]


LIVE_WRITER = """
import sys, time
from pathlib import Path
import aim_parquet as aim
repo, stop = sys.argv[1], Path(sys.argv[2])
run = aim.Run(repo=repo, system_tracking_interval=None, capture_terminal_logs=False)
run._writer.segments.max_segment_bytes = 2048  # roll segments often so there are sealed ones
run._writer.flush_interval_s = 0.02
print(run.hash, flush=True)
i = 0
while not stop.exists():
    run.track(float(i), name="m", step=i)
    i += 1
    if i % 50 == 0:
        time.sleep(0.005)
run.close()
print(i, flush=True)
"""


def _check_prefix(layout: RepoLayout, run_hash: str) -> int:
    meta = load_run_meta(layout, run_hash)
    infos = [s for s in catalogue_scan.discover_sequences(layout, run_hash, meta) if s.name == "m"]
    if not infos:
        return 0
    table = read_sequence(layout, run_hash, infos[0])
    steps = table.column("step").to_pylist()
    assert steps == list(range(len(steps)))
    assert table.column("value").to_pylist() == [float(s) for s in steps]
    return len(steps)


def test_include_active_next_to_a_live_writer_process(tmp_path: Path) -> None:
    stop = tmp_path / "stop"
    proc = subprocess.Popen(
        [PYTHON, "-c", LIVE_WRITER, str(tmp_path), str(stop)],
        stdout=subprocess.PIPE,
        text=True,
        env=python_env(),
    )
    assert proc.stdout is not None
    run_hash = proc.stdout.readline().strip()
    layout = RepoLayout(tmp_path)
    failures: list[BaseException] = []
    done = threading.Event()

    def read_loop() -> None:
        last = 0
        while not done.is_set():
            try:
                n = _check_prefix(layout, run_hash)
                assert n >= last, "a reader saw points disappear"
                last = n
            except BaseException as exc:
                failures.append(exc)
                return

    reader = threading.Thread(target=read_loop)
    reader.start()
    compacted_runs = 0
    deadline = time.monotonic() + 4.0
    while time.monotonic() < deadline:
        entry = compact_run(layout, run_hash, include_active=True, rewrite_all=True)
        assert entry.status in ("compacted", "unchanged"), entry
        compacted_runs += entry.status == "compacted"
    stop.touch()
    total = int(proc.stdout.readline())
    assert proc.wait(timeout=30) == 0
    proc.stdout.close()
    done.set()
    reader.join()
    assert not failures, failures[0]
    assert compacted_runs >= 2
    assert _check_prefix(layout, run_hash) == total
    assert compact_run(layout, run_hash, rewrite_all=True).status == "compacted"
    assert _check_prefix(layout, run_hash) == total
    assert sum(raw_row_counts(tmp_path, run_hash).values()) == total


def test_compaction_never_deletes_the_last_copy_of_points(tmp_path: Path) -> None:
    import shutil

    from aim_parquet.errors import AimParquetError
    from aim_parquet.storage import verify_repo

    run_hash = write_rich_run(tmp_path)
    before = snapshot(tmp_path)
    run_dir = tmp_path / ".aim" / "runs" / run_hash
    shutil.copytree(run_dir / "seqs", tmp_path / "backup")
    compact_run(RepoLayout(tmp_path), run_hash)
    shutil.copytree(tmp_path / "backup", run_dir / "seqs", dirs_exist_ok=True)  # crash leftovers
    next(run_dir.glob("compacted/metrics-*.parquet")).unlink()  # and then damage
    with pytest.raises(AimParquetError, match="verify --repair"):
        compact_run(RepoLayout(tmp_path), run_hash)
    report = compact_repo(RepoLayout(tmp_path))
    assert report.runs[0].status == "failed" and report.has_failures
    assert list(run_dir.glob("seqs/*/*.arrows"))  # the covered segments were kept
    assert verify_repo(RepoLayout(tmp_path), repair=True).is_healthy
    assert snapshot(tmp_path) == before


def test_compact_again_passes_settled_runs_by_without_their_lock(tmp_path: Path) -> None:
    """A run compacted to the end (no `seqs/` left) is passed by without taking its lock; a run
    resumed since (its writer made `seqs/` again) is compacted as before."""
    hashes = []
    for i in range(2):
        run = aim.Run(repo=str(tmp_path), **QUIET)
        run.track(float(i), name="loss", step=0)
        run.close()
        hashes.append(run.hash)
    layout = RepoLayout(tmp_path)
    compact_repo(layout, rewrite_all=True)
    resumed = aim.Run(run_hash=hashes[1], repo=str(tmp_path), **QUIET)
    resumed.track(5.0, name="loss", step=1)
    resumed.close()
    # another compactor holds the settled run's lock: it is not waited for, nor even looked at
    with filelock.FileLock(str(layout.run_dir(hashes[0]) / "compact.lock"), timeout=0):
        report = compact_repo(layout, rewrite_all=True)
    by_hash = {r.run_hash: r for r in report.runs}
    assert by_hash[hashes[0]].status == "unchanged"
    assert by_hash[hashes[0]].note == compactor.SETTLED_NOTE
    assert by_hash[hashes[1]].status == "compacted"
    steps, values = (
        read_sequence(layout, hashes[1], load_run_meta(layout, hashes[1]).sequences[0])
        .select(["step", "value"])
        .to_pydict()
        .values()
    )
    assert steps == [0, 1] and values == [1.0, 5.0]


def test_settled_runs_checks_each_folder_without_following_links(tmp_path: Path) -> None:
    """Only a real run folder with a real `compacted/` and no `seqs/` is settled: a resumed
    run, a run never compacted, a linked run folder or `compacted/`, and a run deleted
    meanwhile are all compacted as usual (`compact_run` refuses the links by name)."""
    from aim_parquet.storage.compaction.run_folder import settled_runs

    runs = tmp_path / "runs"
    names = {
        "settled": ["compacted/"],
        "resumed": ["compacted/", "seqs/"],
        "never": ["seqs/"],
        "empty": [],
        "file": ["compacted"],  # `compacted` a file, not a folder
    }
    for name, entries in names.items():
        (runs / name).mkdir(parents=True)
        for entry in entries:
            path = runs / name / entry.rstrip("/")
            path.mkdir() if entry.endswith("/") else path.write_text("x")
    (runs / "linked_run").symlink_to(runs / "settled")
    (runs / "linked_compacted").mkdir()
    (runs / "linked_compacted" / "compacted").symlink_to(runs / "settled" / "compacted")
    hashes = [*names, "linked_run", "linked_compacted", "gone"]
    assert settled_runs(runs, hashes) == {"settled"}
    assert settled_runs(tmp_path / "missing", hashes) == set()


def test_compact_again_with_nothing_to_do_rewrites_no_runs_table(tmp_path: Path) -> None:
    """A compaction with nothing to do leaves `.aim/index/runs.parquet` as it is (the same
    bytes are not written again); one whose published table was lost or differs publishes the
    dataset's committed table again."""
    for i in range(3):
        run = aim.Run(repo=str(tmp_path), **QUIET)
        run.track(float(i), name="loss", step=0)
        run.close()
    layout = RepoLayout(tmp_path)
    compact_repo(layout)
    compact_repo(layout)  # (publishes the committed file's bytes)
    published = layout.runs_table
    inode = published.stat().st_ino
    compact_repo(layout)
    assert published.stat().st_ino == inode  # not replaced
    expected = pq.read_table(published)
    published.write_bytes(b"not parquet")
    compact_repo(layout)
    assert pq.read_table(published).equals(expected)
    published.unlink()
    compact_repo(layout)
    assert pq.read_table(published).equals(expected)
