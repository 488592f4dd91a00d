"""SIGKILL writers at chosen moments, resume them, and check the catalogue and every point.

Moments: before the process's first flush (`early`), between a flush's segment writes and its
sidecar write (`gap`: the worst one, where the sidecar misses a whole flush), at a random time
(`mid`: mid-batch, mid-flush, anywhere) and inside `close()` between its last segment write and
its sidecar write (`close`). The writer is `catalogue_writer_proc.py`; between kills the dead run
is sometimes compacted, closed with `runs close`, verified or repaired.

After every kill the reader's statistics (run index, query, `Sequence` properties) must equal a
summary computed here, independently, from the rows of the files (plain pyarrow); after the last
writer closes, every point of every writer process must be there exactly once with its value,
auto-steps continuing after the real last step and explicit steps after the step the resumed
run's catalogue reported.
"""

from __future__ import annotations

import hashlib
import json
import math
import queue
import random
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage import compact_run, finish_run, verify_repo
from aim_parquet.storage.index import run_index
from tests.conftest import PYTHON, python_env, segment_batches

WRITER = str(Path(__file__).with_name("catalogue_writer_proc.py"))
LINE_TIMEOUT_S = 60.0
MOMENTS = ("early", "gap", "mid", "close")
SEQUENCES = {  # name: canonical context
    "auto": "{}",
    "explicit": '{"s":"x"}',
    "dup": '{"s":"dup"}',
    "late": "{}",
    "notes": "{}",
}
COUNTED = ("auto", "explicit", "late", "notes")  # the order of the numbers the writer prints
# what verify may find after kills: a temp file of an interrupted atomic write, a segment torn
# mid-append, and (until a writer or maintenance catches it up) the catalogue
KILL_LEFTOVERS = {"temp-file", "torn-tail", "stale-catalogue"}


def seq_id(name: str, context: str) -> str:
    """FORMAT.md's sequence id, computed here rather than by aim_parquet."""
    text = json.dumps([name, context], ensure_ascii=False)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:20]


# -- the writer process -------------------------------------------------------------------------
class Writer:
    """One writer process and its stdout lines (read by a thread, so a kill never blocks us)."""

    def __init__(self, repo: Path, run_hash: str | None, gen: int, moment: str, seed: int) -> None:
        self.proc = subprocess.Popen(
            [PYTHON, WRITER, str(repo), run_hash or "-", str(gen), moment, str(seed)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=python_env(),
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.durable = dict.fromkeys(COUNTED, 0)  # points known to be in segments
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _note(self, line: str) -> list[str]:
        words = line.split()
        if len(words) == 5 and words[0] in ("flushed", "gap"):
            self.durable = dict(zip(COUNTED, map(int, words[1:]), strict=True))
        return words

    def wait_for(self, word: str) -> list[str]:
        """The words of the first line starting with `word` (progress lines noted on the way)."""
        deadline = time.monotonic() + LINE_TIMEOUT_S
        while True:
            line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if line is None:
                raise AssertionError(f"writer ended before {word!r}: {self.stderr()}")
            words = self._note(line)
            if words and words[0] == word:
                return words

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=LINE_TIMEOUT_S)
        self.drain()

    def drain(self) -> None:
        """Note every line the process printed before it ended."""
        while (line := self.lines.get(timeout=LINE_TIMEOUT_S)) is not None:
            self._note(line)

    def stderr(self) -> str:
        self.proc.wait(timeout=LINE_TIMEOUT_S)
        assert self.proc.stderr is not None
        return self.proc.stderr.read()[-2000:]

    def close_pipes(self) -> None:
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


# -- the files, read without aim_parquet ----------------------------------------------------------
def file_rows(repo: Path, run_hash: str) -> dict[str, list[tuple[int, Any]]]:
    """Every row of every sequence, `{name: [(step, value or payload text)]}` in write order:
    the rows the manifest's Parquet files hold, then those of the segments it does not cover
    (in name order), a torn last message skipped. Plain pyarrow, per FORMAT.md."""
    run_dir = repo / ".aim" / "runs" / run_hash
    ids = {seq_id(n, c): n for n, c in SEQUENCES.items()}
    out: dict[str, list[tuple[int, Any]]] = {}
    covered: set[str] = set()
    manifest_path = run_dir / "compacted" / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        covered = set(manifest["segments"])
        for f in manifest["files"]:
            is_metric = f["kind"] == "metrics"
            table = pq.read_table(
                run_dir / f["path"], columns=["seq_id", "step", "value" if is_metric else "payload"]
            )
            for sid, step, value in zip(*(c.to_pylist() for c in table.columns), strict=True):
                out.setdefault(ids[sid], []).append((step, value if is_metric else value.decode()))
    for seq_dir in sorted((run_dir / "seqs").glob("*")):
        for seg in sorted(seq_dir.glob("*.arrows")):
            if f"{seq_dir.name}/{seg.name}" in covered or seg.stat().st_size == 0:
                continue
            rows = out.setdefault(ids[seq_dir.name], [])
            for batch in segment_batches(seg)[1]:
                steps = batch.column("step").to_pylist()
                if "value" in batch.schema.names:
                    values = batch.column("value").to_pylist()
                else:
                    values = [p.decode() for p in batch.column("payload").to_pylist()]
                rows.extend(zip(steps, values, strict=True))
    return out


def summary(rows: list[tuple[int, Any]], *, is_metric: bool) -> dict[str, Any]:
    """FORMAT.md's catalogue fields of these rows (in write order), by last write wins: the
    visible point of a step is the last row written at it; count, min and max are over the
    visible points, first/last the visible values at the smallest/largest step."""
    visible: dict[int, Any] = {}
    for step, value in rows:
        visible[step] = value
    lo, hi = min(visible), max(visible)
    out: dict[str, Any] = {"count": len(visible), "first_step": lo, "last_step": hi}
    if is_metric:
        values = [v for v in visible.values() if not math.isnan(v)]
        out.update(first=visible[lo], last=visible[hi], min=min(values), max=max(values))
    return out


def stats_of(info: Any, *, is_metric: bool) -> dict[str, Any]:
    keys = ["count", "first_step", "last_step"]
    if is_metric:
        keys += ["first", "last", "min", "max"]
    return {k: getattr(info, k) for k in keys}


# -- checks -------------------------------------------------------------------------------------
def check_reader_stats(repo: Path, run_hash: str, kept: run_index.RunIndex) -> dict[str, Any]:
    """Every reader's statistics equal the files' (after a kill: the writer is gone)."""
    truth = {
        name: summary(rows, is_metric=name != "notes")
        for name, rows in file_rows(repo, run_hash).items()
        if rows
    }
    layout = RepoLayout(repo)
    fresh = run_index.RunIndex(layout).refresh().records[run_hash]
    kept_record = kept.refresh().records[run_hash]
    assert fresh.end_time is not None or fresh.is_rebuilt
    for record in (fresh, kept_record):
        have = {i.name: stats_of(i, is_metric=i.is_metric) for i in record.sequences if i.count}
        assert have == truth, ("run index", have, truth)
    run = aim.Run(run_hash, repo=repo, read_only=True)
    for name, want in truth.items():
        context = json.loads(SEQUENCES[name])
        seq = run.get_text_sequence(name) if name == "notes" else run.get_metric(name, context)
        assert seq is not None, name
        assert stats_of(seq.info, is_metric=name != "notes") == want, (name, seq.info, want)
        assert (seq.first_step(), seq.last_step()) == (want["first_step"], want["last_step"])
    query = aim.Repo(repo)
    for name, want in truth.items():
        if name == "notes":
            continue
        expr = (
            f"metric.name == {name!r} and metric.count == {want['count']} and "
            f"metric.last_step == {want['last_step']} and metric.first_step == "
            f"{want['first_step']} and metric.last == {want['last']!r} and metric.min == "
            f"{want['min']!r} and metric.max == {want['max']!r}"
        )
        assert len(list(query.query_metrics(expr).iter_runs())) == 1, expr
    return truth


def stored_stale(repo: Path, run_hash: str, truth: dict[str, Any]) -> set[str]:
    """Sequences whose sidecar entry disagrees with the files (computed here)."""
    sidecar = json.loads((repo / ".aim" / "runs" / run_hash / "run.json").read_text())
    stored = {s["name"]: s for s in sidecar["sequences"]}
    stale = set()
    for name, want in truth.items():
        entry = stored.get(name)
        if entry is None or any(entry[k] != v for k, v in want.items()):
            stale.add(name)
    return stale


@dataclass
class History:
    """What each writer process is known to have put in segments (`durable` points)."""

    durable: list[dict[str, int]] = field(default_factory=list)
    kills: int = 0
    moments: dict[str, int] = field(default_factory=dict)
    stale: int = 0  # kills after which the sidecar's catalogue disagreed with the files


def check_every_point(repo: Path, run_hash: str, history: History) -> None:
    """After the last writer closed: each process's points are there exactly once, a prefix of
    what it tracked that holds at least what it had flushed, with their values."""
    rows = file_rows(repo, run_hash)
    for name in ("auto", "explicit", "late", "notes"):
        got = rows.get(name, [])
        steps = [s for s, _ in got]
        assert len(steps) == len(set(steps)), f"{name}: a step was written twice"
        per_gen: dict[int, list[int]] = {}
        for _, value in got:
            gen, k = map(int, value.split(":")) if name == "notes" else divmod(int(value), 10**6)
            per_gen.setdefault(gen, []).append(k)
        for gen, durable in enumerate(history.durable):
            ks = per_gen.get(gen, [])
            assert ks == list(range(len(ks))), f"{name}: writer {gen} has holes or reordering"
            assert len(ks) >= durable[name], (name, gen, len(ks), durable[name])
        if name in ("auto", "late", "notes"):  # auto-steps continue after the real last step
            assert steps == list(range(len(steps))), f"{name}: auto-steps are not 0..n-1"
        else:
            assert steps == sorted(steps), f"{name}: explicit steps went back"
    # the reader returns exactly those rows (no step replaced)
    run = aim.Run(run_hash, repo=repo, read_only=True)
    metric = run.get_metric("auto")
    assert metric is not None
    s, v = metric.values.sparse_numpy()
    assert list(zip(s.tolist(), v.tolist(), strict=True)) == rows["auto"]


def between_kills(repo: Path, run_hash: str, truth: dict[str, Any], rng: random.Random) -> None:
    """Maintenance on the dead run, sometimes: compact, close, verify, repair."""
    layout = RepoLayout(repo)
    action = rng.choice(("none", "none", "compact", "close", "verify", "repair"))
    if action == "compact":
        assert compact_run(layout, run_hash).status in ("compacted", "unchanged")
        assert not stored_stale(repo, run_hash, truth), "compaction left the catalogue stale"
    elif action == "close":
        assert finish_run(layout, run_hash).end_time is not None
        assert not stored_stale(repo, run_hash, truth), "runs close left the catalogue stale"
    elif action in ("verify", "repair"):
        expected = stored_stale(repo, run_hash, truth)
        report = verify_repo(layout, repair=action == "repair")
        found = [p for p in report.problems if p.kind == "stale-catalogue"]
        assert {p.kind for p in report.problems} <= KILL_LEFTOVERS, report.problems
        if expected:
            assert len(found) == 1 and run_hash in found[0].path
            for name in expected:
                assert repr(name) in found[0].detail, (name, found[0].detail)
        else:
            assert not found, found
        if action == "repair":
            assert report.is_healthy and not stored_stale(repo, run_hash, truth)


def kill_trial(repo: Path, rng: random.Random, moments: list[str]) -> History:
    """One run: a writer process per moment (each killed there, the next resuming the run),
    then one that closes it; checks after each kill and at the end."""
    history = History()
    kept = run_index.RunIndex(RepoLayout(repo))
    run_hash: str | None = None
    for gen, moment in enumerate([*moments, "finish"]):
        writer = Writer(repo, run_hash, gen, moment, rng.randrange(2**31))
        try:
            run_hash = writer.wait_for("hash")[1]
            if moment == "finish":
                writer.wait_for("done")
                assert writer.proc.wait(timeout=LINE_TIMEOUT_S) == 0, writer.stderr()
                writer.drain()
            else:
                if moment == "early":
                    writer.wait_for("early")
                elif moment in ("gap", "close"):
                    writer.wait_for("gap")
                    kept.refresh()  # its entry now is a live writer's (lagging) one
                else:
                    time.sleep(rng.uniform(0.0, 0.6))  # the moment is the random variable
                writer.kill()
                history.kills += 1
                history.moments[moment] = history.moments.get(moment, 0) + 1
        finally:
            if writer.proc.poll() is None:
                writer.proc.kill()
                writer.proc.wait(timeout=LINE_TIMEOUT_S)
            writer.close_pipes()
        history.durable.append(writer.durable)
        truth = check_reader_stats(repo, run_hash, kept)
        if moment != "finish":
            history.stale += bool(stored_stale(repo, run_hash, truth))
            between_kills(repo, run_hash, truth, rng)
    assert run_hash is not None
    check_every_point(repo, run_hash, history)
    problems = verify_repo(RepoLayout(repo)).problems
    assert {p.kind for p in problems} <= KILL_LEFTOVERS - {"stale-catalogue"}, problems
    return history


@pytest.fixture
def full_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every refresh of a kept RunIndex re-checks each run (no 5 s grace)."""
    monkeypatch.setattr(run_index, "FULL_CHECK_S", 0.0)


@pytest.mark.crash
@pytest.mark.usefixtures("full_passes")
def test_kill_at_each_moment_then_resume(tmp_path: Path) -> None:
    history = kill_trial(tmp_path, random.Random(7), ["gap", "early", "mid", "close", "gap"])
    assert history.kills == 5 and set(history.moments) == set(MOMENTS)
    assert history.stale >= 2  # the gap kills left sidecars that miss a flush


@pytest.mark.crash
@pytest.mark.slow
@pytest.mark.usefixtures("full_passes")
def test_randomized_kill_trials(tmp_path: Path) -> None:
    rng = random.Random(20240613)
    history = History()
    trials = 0
    while history.kills < 210:
        moments = [rng.choice(MOMENTS) for _ in range(rng.randrange(3, 8))]
        history_run = kill_trial(tmp_path / f"t{trials}", rng, moments)
        history.kills += history_run.kills
        history.stale += history_run.stale
        for moment, n in history_run.moments.items():
            history.moments[moment] = history.moments.get(moment, 0) + n
        trials += 1
    assert history.kills >= 200 and set(history.moments) == set(MOMENTS)
    assert history.stale >= history.moments["gap"]
