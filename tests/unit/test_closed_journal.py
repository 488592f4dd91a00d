"""The writers' journal of index rows (`storage.index.closed_journal`): the run index built
with it is the index built from the sidecars alone, column by column, whatever the journal
holds (torn, foreign, damaged, stale or duplicated lines), and appending to it never fails a
close. Real repositories written by the SDK, real processes."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import random
import shutil
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage.index import closed_journal
from aim_parquet.storage.index.closed_journal import JOURNAL_FILENAME
from aim_parquet.storage.index.run_index import RunIndex
from tests.random_runs import QUIET, write_random_runs

PARAMS: list[Any] = [
    1, 2.5, "x", "\u00e9t\u00e9", None, True, [1, 2], {"a": {"b": {"c": {"d": 1}}}},
    (1, 2), 10**30, {"hash": 1}, {"name": "n"}, "\ud800",
]  # fmt: skip


def _index_dir(repo: str) -> Path:
    return Path(repo) / ".aim" / "index"


def _build(repo: str) -> tuple[pa.Table, int, tuple[Any, ...]]:
    snapshot = RunIndex(RepoLayout(Path(repo))).refresh()
    table = pa.ipc.open_file(str(_index_dir(repo) / "runs.arrow")).read_all()
    return table, snapshot.sidecars_read, snapshot.damaged


def _cells(column: pa.ChunkedArray) -> str:
    """A column's cells as text (NaN equal to NaN, -0.0 not equal to 0.0)."""
    return json.dumps(column.to_pylist(), default=repr)


def _same_as_sidecars(repo: str, journal: bytes | None = None) -> int:
    """Build the index with the journal (`journal`, or the writers'), then again from the
    sidecars alone: they must be equal. How many sidecars the first build read."""
    index_dir = _index_dir(repo)
    if journal is not None:
        index_dir.mkdir(parents=True, exist_ok=True)
        (index_dir / JOURNAL_FILENAME).write_bytes(journal)
    (index_dir / "runs.arrow").unlink(missing_ok=True)
    with_journal, read, damaged = _build(repo)
    assert not (index_dir / JOURNAL_FILENAME).exists()  # removed by the write
    shutil.rmtree(index_dir)
    alone, read_alone, damaged_alone = _build(repo)
    assert with_journal.schema == alone.schema
    assert with_journal.schema.metadata == alone.schema.metadata
    for name in alone.schema.names:
        assert _cells(with_journal.column(name)) == _cells(alone.column(name)), name
    assert damaged == damaged_alone
    return read


@pytest.mark.parametrize("seed", range(4))
def test_index_from_the_journal_is_the_index_from_the_sidecars(tmp_path: Path, seed: int) -> None:
    repo = str(tmp_path / "repo")
    hashes = write_random_runs(repo, random.Random(seed), 12, PARAMS)
    journal = (_index_dir(repo) / JOURNAL_FILENAME).read_bytes()
    assert len(journal.splitlines()) >= len(hashes)
    read = _same_as_sidecars(repo)
    assert read < len(hashes)  # most rows came from the journal
    damaged = [
        b"",
        b"garbage\n",
        b'["aim_parquet.closed/1", 1]\n',
        b'{"a": 1}\n',
        b"[" * 100000 + b"\n",
        journal[: len(journal) // 2],  # a torn line in the middle
    ]
    lines = journal.splitlines(keepends=True)
    rng = random.Random(seed)
    for line in rng.sample(lines, min(6, len(lines))):  # damaged cells, stale stats
        head, *texts = line.rstrip(b"\n").split(b"\t")
        row = json.loads(head)
        position = rng.randrange(1, len(row))
        row[position] = rng.choice([None, "x", 1, 1.5, [], {}, True, "\ud800", 2**64])
        texts[rng.randrange(len(texts))] = rng.choice([b"[1]", b"{", b"\xff", b"x\ty", b""])
        damaged.append(b"\t".join([json.dumps(row).encode(), *texts]) + b"\n")
        damaged.append(b"\t".join([head, *texts]) + b"\n")
    mixed = list(lines) + damaged
    rng.shuffle(mixed)
    assert _same_as_sidecars(repo, b"".join(mixed)) <= len(hashes)


def test_damaged_journal_is_never_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    repo = str(tmp_path / "repo")
    write_random_runs(repo, random.Random(7), 5, PARAMS)
    caplog.set_level(logging.DEBUG)
    journal = _index_dir(repo) / JOURNAL_FILENAME
    journal.write_bytes(b"\x00\xff not json\n" + journal.read_bytes()[:-7])
    assert _same_as_sidecars(repo) >= 1
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    _index_dir(repo).mkdir(exist_ok=True)
    os.mkfifo(journal)  # not a regular file: ignored, never opened for reading
    assert _same_as_sidecars(repo) == 5


def test_a_sidecar_changed_after_its_close_is_read(tmp_path: Path) -> None:
    repo = str(tmp_path / "repo")
    hashes = write_random_runs(repo, random.Random(3), 4, PARAMS)
    journal = (_index_dir(repo) / JOURNAL_FILENAME).read_bytes()  # (lines made before the changes)
    run = aim.Run(run_hash=hashes[0], repo=repo, **QUIET)
    run.archived = True
    run.close()
    writer = aim.Run(run_hash=hashes[1], repo=repo, **QUIET)  # resumed, still open
    writer["late"] = 1
    try:
        assert _same_as_sidecars(repo, journal) >= 2
        assert [r.run.hash for r in aim.Repo(repo).query_runs("run.late == 1").iter_runs()] == [
            hashes[1]
        ]
    finally:
        writer.close()


def test_closing_never_fails_on_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = str(tmp_path / "repo")
    write_random_runs(repo, random.Random(1), 1, PARAMS)
    journal = _index_dir(repo) / JOURNAL_FILENAME
    journal.unlink()
    journal.mkdir()  # cannot be opened for writing
    run = aim.Run(repo=repo, **QUIET)
    run.track(1.0, name="loss")
    run.close()
    journal.rmdir()
    monkeypatch.setattr(closed_journal, "MAX_BYTES", 10)
    write_random_runs(repo, random.Random(2), 2, PARAMS)
    assert len(journal.read_bytes().splitlines()) == 1  # full: nothing more appended
    assert len(list(aim.Repo(repo).query_runs("True").iter_runs())) == 4


def _close_runs(repo: str, seed: int) -> None:
    rng = random.Random(seed)
    threads = [
        threading.Thread(target=write_random_runs, args=(repo, rng, 3, PARAMS)) for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_many_processes_and_threads_append(tmp_path: Path) -> None:
    repo = str(tmp_path / "repo")
    write_random_runs(repo, random.Random(0), 1, PARAMS)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_close_runs, args=(repo, seed)) for seed in range(3)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
        assert proc.exitcode == 0
    lines = (_index_dir(repo) / JOURNAL_FILENAME).read_bytes().splitlines()
    assert all(json.loads(line.split(b"\t")[0])[0] == closed_journal.TAG for line in lines)
    assert _same_as_sidecars(repo) < 19


@pytest.mark.parametrize("warm", [False, True])
def test_runs_missing_from_the_index_come_from_the_journal(tmp_path: Path, warm: bool) -> None:
    """An index file written before more runs were closed: the next refresh (of a new process,
    or of one that kept its index) takes their rows from the journal; the file it writes is the
    one the sidecars alone give."""
    repo = str(tmp_path / "repo")
    write_random_runs(repo, random.Random(5), 6, PARAMS)
    layout = RepoLayout(Path(repo))
    kept = RunIndex(layout)
    kept.refresh()  # writes runs.arrow, removes the journal
    index_dir = _index_dir(repo)
    assert not (index_dir / JOURNAL_FILENAME).exists()
    old = (index_dir / "runs.arrow").read_bytes()
    hashes = write_random_runs(repo, random.Random(6), closed_journal.MIN_NEW_RUNS + 2, PARAMS)
    journal = (index_dir / JOURNAL_FILENAME).read_bytes()
    index = kept if warm else RunIndex(layout)
    index._full_at = 0.0  # (a full pass now)
    read = index.refresh().sidecars_read
    assert read < len(hashes)
    with_journal = pa.ipc.open_file(str(index_dir / "runs.arrow")).read_all()
    (index_dir / "runs.arrow").write_bytes(old)
    alone = RunIndex(layout)
    assert alone.refresh().sidecars_read >= len(hashes)
    table = pa.ipc.open_file(str(index_dir / "runs.arrow")).read_all()
    assert with_journal.schema == table.schema
    for name in table.schema.names:
        assert _cells(with_journal.column(name)) == _cells(table.column(name)), name
    assert journal


def test_a_journal_hard_linked_from_outside_the_repo_is_not_appended_to(tmp_path: Path) -> None:
    """A journal that shares its inode with another path (a hard link: `cp -al`, `rsync
    --link-dest` snapshots, or put there on purpose) is never written: that path lies outside
    the repository. The closes succeed and the index is the sidecars'."""
    repo = str(tmp_path / "repo")
    write_random_runs(repo, random.Random(3), 1, PARAMS)
    journal = _index_dir(repo) / JOURNAL_FILENAME
    journal.unlink()
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"precious\n")
    os.link(outside, journal)
    write_random_runs(repo, random.Random(4), 2, PARAMS)
    assert outside.read_bytes() == b"precious\n"
    assert _same_as_sidecars(repo) == 3  # (every sidecar read: the journal holds no line)
    assert outside.read_bytes() == b"precious\n"
