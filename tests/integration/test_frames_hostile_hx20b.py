"""hx20b (hostile user pass on this round's frames and run index): threads of one process that
query a repository at once share its run index (`RunIndex.shared`), whose `refresh()` no lock
serialized (fixed: the threads take turns; the tests let another thread query during a pass and
check both answers).

- fj20 (regression): a refresh that decodes new closed runs' sidecars straight into cells
  (`storage.index.sidecar_cells`, `RunIndex._direct`) keeps those rows in the index's `_taken`,
  which another thread's refresh replaces meanwhile; they are then in neither the rows it reads
  nor the file it writes. Seen for real (/tmp/hx20b_threads_first_query.py: 4 threads' first
  query on a copy of a 1,500-run repository without `.aim/index/`, or with only the writers'
  journal): threads got 126 of 1,384 runs or none, and the process kept a wrong answer for later
  queries (6 of 6 tries); the reference (adccdf5), and this code with `_direct` disabled, answer
  every thread with every run. The first test makes that interleaving certain: a second thread's
  whole query runs while the first thread's refresh is decoding the sidecars.
- Also in the reference: a thread querying during another thread's full pass gets the previous
  snapshot (the second test), and threads querying while another process adds runs sometimes die
  with IndexError / ArrowIndexError in `_full_refresh_unpaused` (`current[self._rows] = True`,
  `IndexSnapshot.taken`: the table and rows of another thread's pass;
  /tmp/hx20b_threads_writer_proc.py, 1 of 3 runs of 25 s for the reference, 2 of 2 for this code)."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Any

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage.index.closed_journal import Entry
from aim_parquet.storage.index.run_index import RACY_S, RunIndex

QUIET: dict[str, Any] = {"system_tracking_interval": None, "capture_terminal_logs": False}
RUNS = 20


def _runs(root: Path) -> set[str]:
    hashes = set()
    for i in range(RUNS):
        run = aim.Run(repo=root, **QUIET)
        run["hparams"] = {"i": i}
        run.track(float(i), name="loss", step=0)
        run.close()
        hashes.add(run.hash)
    return hashes


def _answer(root: Path) -> tuple[set[str], int]:
    """(the hashes query_runs finds, the rows of the loss frame)."""
    runs = aim.Repo(root).query_runs("True").dataframe()
    frame = aim.Repo(root).query_metrics("metric.name == 'loss'").dataframe()
    hashes = set() if runs is None else set(runs["hash"])
    return hashes, 0 if frame is None else len(frame)


def test_threads_first_query_built_from_sidecars(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    hashes = _runs(root)
    shutil.rmtree(root / ".aim" / "index")  # (built from the sidecars: no journal, no file)
    index = RunIndex.shared(RepoLayout(root))
    real = index._direct
    other: list[tuple[set[str], int]] = []
    threads: list[threading.Thread] = []

    def overtaken(
        layout: RepoLayout, listed: list[str], todo: list[int], new: list[str], stats: Any
    ) -> dict[str, Entry]:
        if not other:  # (the first refresh: another thread's whole query may run meanwhile)
            other.append((set(), -1))
            threads.append(threading.Thread(target=lambda: other.__setitem__(0, _answer(root))))
            threads[0].start()
            threads[0].join(3)  # (it waits for this pass: the refreshes take turns)
        return real(layout, listed, todo, new, stats)

    index._direct = overtaken
    first = _answer(root)
    threads[0].join(60)
    index._direct = real
    later = _answer(root)
    found = {"other thread": other[0], "first": first, "later": later}
    assert {k: (len(v[0]), v[1]) for k, v in found.items()} == dict.fromkeys(found, (RUNS, RUNS))
    assert all(v[0] == hashes for v in found.values())


def test_thread_query_during_another_threads_refresh_sees_new_runs(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    before = _runs_of(root, 5)
    assert _answer(root)[0] == before  # (a warm process: its index and snapshot are current)
    added = _runs_of(root, 3)
    time.sleep(RACY_S + 0.1)  # (runs/ no longer changing: its new mtime is noted at once)
    index = RunIndex.shared(RepoLayout(root))
    real = index._full_refresh
    other: list[tuple[set[str], int]] = []
    threads: list[threading.Thread] = []

    def overtaken() -> Any:
        if not other:  # (the first pass: another thread's whole query may run meanwhile)
            other.append((set(), -1))
            threads.append(threading.Thread(target=lambda: other.__setitem__(0, _answer(root))))
            threads[0].start()
            threads[0].join(3)  # (it waits for this pass: the refreshes take turns)
        return real()

    index._full_refresh = overtaken  # type: ignore[method-assign]
    first = _answer(root)
    threads[0].join(60)
    del index._full_refresh
    assert (len(other[0][0]), len(first[0])) == (8, 8)
    assert other[0][0] == first[0] == before | added


def _runs_of(root: Path, count: int) -> set[str]:
    hashes = set()
    for i in range(count):
        run = aim.Run(repo=root, **QUIET)
        run.track(float(i), name="loss", step=0)
        run.close()
        hashes.add(run.hash)
    return hashes
