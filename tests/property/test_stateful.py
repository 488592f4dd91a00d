"""A Hypothesis state machine: random sequences of new run / track / set param / flush / close /
resume / compact / delete / verify / read on one repository, checked against an in-memory model.

Reads go through our reader (`storage.online.run_reader`) and, independently, through plain pyarrow:
the Parquet files the compaction manifest lists, then every segment it does not cover, in write
order; "the last write of a step wins" over that order must give the model's values.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage import discover_sequences
from aim_parquet.storage.online.run_reader import (
    list_run_hashes,
    list_segments,
    load_manifest,
    load_run_meta,
    read_sequence,
)

try:
    from aim_parquet.storage import compact_repo
except ImportError:  # built by another issue; the rule is skipped without it
    compact_repo = None  # type: ignore[assignment]
try:
    from aim_parquet.storage import verify_repo
except ImportError:
    verify_repo = None  # type: ignore[assignment]

NAMES = ("loss", "acc", "lr")
CONTEXTS = ({}, {"subset": "train"}, {"k": 1})
MAX_OPEN = 3

values = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(2**40), 2**40)
param_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def plain(value: Any) -> Any:
    """A param value as it reads back (tuples as lists)."""
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


SeqKey = tuple[str, str]  # (name, canonical context JSON)


def seq_key(name: str, context: dict[str, Any]) -> SeqKey:
    return name, json.dumps(context, sort_keys=True, separators=(",", ":"))


@dataclass
class RunModel:
    params: dict[str, Any] = field(default_factory=dict)
    points: dict[SeqKey, dict[int, float]] = field(default_factory=dict)  # last write wins
    writes: dict[SeqKey, int] = field(default_factory=dict)  # every write counts

    def next_step(self, key: SeqKey) -> int:
        steps = self.points.get(key)
        return max(steps) + 1 if steps else 0


def independent_points(repo: Path, run_hash: str) -> dict[SeqKey, list[tuple[int, float]]]:
    """Every stored (step, value) per sequence in write order, read with plain pyarrow."""
    layout = RepoLayout(repo)
    run_dir = layout.run_dir(run_hash)
    out: dict[SeqKey, list[tuple[int, float]]] = {}
    manifest = load_manifest(layout, run_hash)
    for f in manifest.files if manifest else ():
        if f.kind != "metrics":
            continue
        table = pq.read_table(run_dir / f.path, columns=["name", "context", "step", "value"])
        for row in table.to_pylist():
            key = (row["name"], row["context"])
            out.setdefault(key, []).append((row["step"], row["value"]))
    covered = manifest.segments if manifest else frozenset()
    seqs = layout.seqs_dir(run_hash)
    for seq_dir in sorted(seqs.iterdir()) if seqs.is_dir() else []:
        for seg in list_segments(seq_dir):
            if f"{seq_dir.name}/{seg.name}" in covered:
                continue
            with pa.OSFile(str(seg)) as f:
                reader = pa.ipc.open_stream(f)
                meta = reader.schema.metadata
                key = (
                    meta[b"aim_parquet.name"].decode(),
                    meta[b"aim_parquet.context"].decode(),
                )
                rows = reader.read_all().to_pylist()
                out.setdefault(key, []).extend((r["step"], r["value"]) for r in rows)
    return out


class RepoMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="aim-parquet-stateful-"))
        self.layout = RepoLayout(self.root)
        self.model: dict[str, RunModel] = {}
        self.open: dict[str, Any] = {}

    # -- helpers -------------------------------------------------------------------------------
    def closed(self) -> list[str]:
        return [h for h in self.model if h not in self.open]  # creation order: replayable

    def check_run(self, run_hash: str) -> None:
        model = self.model[run_hash]
        meta = load_run_meta(self.layout, run_hash)
        assert same(plain(meta.params), plain(model.params))
        infos = {
            seq_key(i.name, i.context): i
            for i in discover_sequences(self.layout, run_hash, meta)
            if i.is_metric
        }
        expected = {k: v for k, v in model.points.items() if v}
        assert set(infos) == set(expected)
        raw = independent_points(self.root, run_hash)
        for key, points in expected.items():
            table = read_sequence(self.layout, run_hash, infos[key])
            got = list(
                zip(
                    table.column("step").to_pylist(), table.column("value").to_pylist(), strict=True
                )
            )
            want = sorted(points.items())
            assert len(got) == len(want) and all(
                g[0] == w[0] and same(g[1], w[1]) for g, w in zip(got, want, strict=True)
            ), (key, got, want)
            assert len(raw[key]) == model.writes[key], "a point was lost or doubled"
            last = dict(raw[key])
            assert sorted(last) == sorted(points)
            assert all(same(last[s], points[s]) for s in points)

    # -- rules ---------------------------------------------------------------------------------
    @precondition(lambda self: len(self.open) < MAX_OPEN)
    @rule()
    def new_run(self) -> None:
        run = aim.Run(repo=self.root, system_tracking_interval=None, capture_terminal_logs=False)
        self.open[run.hash] = run
        self.model[run.hash] = RunModel()

    @precondition(lambda self: self.open)
    @rule(
        data=st.data(),
        name=st.sampled_from(NAMES),
        ctx=st.sampled_from(range(len(CONTEXTS))),
        items=st.lists(st.tuples(st.none() | st.integers(0, 12), values), min_size=1, max_size=8),
    )
    def track(
        self, data: Any, name: str, ctx: int, items: list[tuple[int | None, float | int]]
    ) -> None:
        run_hash = data.draw(st.sampled_from(list(self.open)))
        run, model = self.open[run_hash], self.model[run_hash]
        context = CONTEXTS[ctx]
        key = seq_key(name, context)
        for step, value in items:
            run.track(value, name=name, step=step, context=context)
            actual = model.next_step(key) if step is None else step
            model.points.setdefault(key, {})[actual] = float(value)
            model.writes[key] = model.writes.get(key, 0) + 1

    @precondition(lambda self: self.open)
    @rule(data=st.data(), key=st.sampled_from(["p", "q"]), value=param_values)
    def set_param(self, data: Any, key: str, value: Any) -> None:
        run_hash = data.draw(st.sampled_from(list(self.open)))
        self.open[run_hash][key] = value
        self.model[run_hash].params[key] = value

    @precondition(lambda self: self.open)
    @rule(data=st.data())
    def flush_and_read(self, data: Any) -> None:
        run_hash = data.draw(st.sampled_from(list(self.open)))
        self.open[run_hash].flush()
        self.check_run(run_hash)

    @precondition(lambda self: self.open)
    @rule(data=st.data())
    def close(self, data: Any) -> None:
        run_hash = data.draw(st.sampled_from(list(self.open)))
        self.open.pop(run_hash).close()
        self.check_run(run_hash)

    @precondition(lambda self: self.closed() and len(self.open) < MAX_OPEN)
    @rule(data=st.data())
    def resume(self, data: Any) -> None:
        run_hash = data.draw(st.sampled_from(self.closed()))
        self.open[run_hash] = aim.Run(
            run_hash, repo=self.root, system_tracking_interval=None, capture_terminal_logs=False
        )

    @precondition(lambda self: compact_repo is not None and self.model)
    @rule(include_active=st.booleans())
    def compact(self, include_active: bool) -> None:
        report = compact_repo(self.layout, include_active=include_active)
        assert not report.has_failures, report
        for run_hash in self.closed():
            self.check_run(run_hash)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def delete(self, data: Any) -> None:
        run_hash = data.draw(st.sampled_from(list(self.model)))
        repo = aim.Repo(str(self.root))
        if run_hash in self.open:
            with pytest.raises(aim.RunLockedError, match="still being written"):
                repo.delete_run(run_hash)
            return
        assert repo.delete_run(run_hash) is True
        del self.model[run_hash]
        assert not self.layout.run_dir(run_hash).exists()

    @precondition(lambda self: verify_repo is not None and self.model)
    @rule()
    def verify(self) -> None:
        report = verify_repo(self.layout)
        assert report.problems == () and report.is_healthy, report.problems

    @precondition(lambda self: self.closed())
    @rule(data=st.data())
    def read_closed(self, data: Any) -> None:
        self.check_run(data.draw(st.sampled_from(self.closed())))

    @invariant()
    def runs_listed(self) -> None:
        assert list_run_hashes(self.layout) == sorted(self.model)

    def teardown(self) -> None:
        try:
            for run_hash in list(self.open):
                self.open.pop(run_hash).close()
            for run_hash in sorted(self.model):
                self.check_run(run_hash)
        finally:
            for run in self.open.values():
                run.close()
            shutil.rmtree(self.root, ignore_errors=True)


FAST = settings(
    max_examples=25,
    stateful_step_count=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

TestRepoMachine = RepoMachine.TestCase
TestRepoMachine.settings = FAST


@pytest.mark.slow
def test_repo_machine_many() -> None:
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(
        RepoMachine, settings=settings(FAST, max_examples=300, stateful_step_count=50)
    )
