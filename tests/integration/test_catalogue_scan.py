"""The catalogue of a run whose writer died, everywhere it is read (`storage.online.catalogue_scan`).

A run is written by three processes: two that close it, then one SIGKILLed between the segment
writes of a flush and its sidecar write (`catalogue_writer_proc.py`, moment `gap`), so the
sidecar misses that flush. Each test works on a copy of it.
"""

from __future__ import annotations

import json
import math
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import aim_parquet as aim
from aim_parquet.format.meta import CatalogueReach
from aim_parquet.format.paths import RepoLayout
from aim_parquet.format.schema import METRIC_SCHEMA
from aim_parquet.storage import compact_run, load_run_meta
from aim_parquet.storage.index import run_index, sidecar_entries
from aim_parquet.storage.online import catalogue_files, catalogue_scan, catalogue_summary
from aim_parquet.storage.online.segments import read_segment_from
from tests.conftest import PYTHON, python_env
from tests.integration.test_catalogue_kill import Writer, file_rows, summary

CLI_TIMEOUT_S = 120


def write_killed_run(repo: Path) -> str:
    run_hash: str | None = None
    rng = random.Random(5)
    for gen, moment in enumerate(("finish", "finish", "gap")):
        writer = Writer(repo, run_hash, gen, moment, rng.randrange(2**31))
        try:
            run_hash = writer.wait_for("hash")[1]
            if moment == "finish":
                writer.wait_for("done")
                assert writer.proc.wait(timeout=CLI_TIMEOUT_S) == 0, writer.stderr()
            else:
                writer.wait_for("gap")
                writer.kill()
        finally:
            if writer.proc.poll() is None:
                writer.proc.kill()
            writer.close_pipes()
    assert run_hash is not None
    return run_hash


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    repo = tmp_path_factory.mktemp("killed")
    return repo, write_killed_run(repo)


@pytest.fixture
def killed(template: tuple[Path, str], tmp_path: Path) -> tuple[Path, str]:
    repo, run_hash = template
    copy = tmp_path / "repo"
    shutil.copytree(repo, copy)
    return copy, run_hash


def truth(repo: Path, run_hash: str) -> dict[str, dict[str, Any]]:
    return {
        name: summary(rows, is_metric=name != "notes")
        for name, rows in file_rows(repo, run_hash).items()
        if rows
    }


def catalogue(infos: Any) -> dict[str, dict[str, Any]]:
    keys = ("count", "first_step", "last_step", "first", "last", "min", "max")
    return {
        i.name: {k: getattr(i, k) for k in keys[: 7 if i.is_metric else 3]}
        for i in infos
        if i.count
    }


def sidecar_catalogue(repo: Path, run_hash: str) -> dict[str, dict[str, Any]]:
    return catalogue(load_run_meta(RepoLayout(repo), run_hash).sequences)


def cli(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "aim_parquet", *args, "--repo", str(repo)],
        capture_output=True,
        text=True,
        env=python_env(),
        timeout=CLI_TIMEOUT_S,
    )


def test_the_killed_run_has_a_stale_sidecar(killed: tuple[Path, str]) -> None:
    repo, run_hash = killed
    assert sidecar_catalogue(repo, run_hash) != truth(repo, run_hash)  # what the fixture is for


# -- readers --------------------------------------------------------------------------------------
def test_stats_and_runs_ls_count_the_segments(killed: tuple[Path, str]) -> None:
    repo, run_hash = killed
    want = truth(repo, run_hash)
    ls = cli(repo, "runs", "ls", "--json")
    assert ls.returncode == 0, ls.stderr
    (row,) = json.loads(ls.stdout)
    assert row["points"] == sum(s["count"] for s in want.values()) and row["active"] is False
    stats = cli(repo, "stats", "--json")
    assert stats.returncode == 0, stats.stderr
    data = json.loads(stats.stdout)
    assert data["metric_points"] == sum(s["count"] for n, s in want.items() if n != "notes")
    assert data["object_points"] == want["notes"]["count"]


def test_sequence_properties_and_collect_sequence_info(killed: tuple[Path, str]) -> None:
    repo, run_hash = killed
    want = truth(repo, run_hash)
    run = aim.Run(run_hash, repo=repo, read_only=True)
    infos = run.collect_sequence_info(["metric"])["metric"]
    got = {i["name"]: i["values"] for i in infos}
    for name, stats in want.items():
        if name != "notes":
            assert {k: got[name][k] for k in stats} == stats
    metric = run.get_metric("auto")
    assert metric is not None and metric.values.last() == (
        want["auto"]["last_step"],
        want["auto"]["last"],
    )


def test_the_index_file_keeps_the_scanned_catalogue(
    killed: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, run_hash = killed
    record = run_index.RunIndex(RepoLayout(repo)).refresh().records[run_hash]
    assert record.is_rebuilt and catalogue(record.sequences) == truth(repo, run_hash)

    def no_scan(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("scanned again")

    monkeypatch.setattr(sidecar_entries, "scan_catalogue", no_scan)
    again = run_index.RunIndex(RepoLayout(repo)).refresh().records[run_hash]  # from the file
    assert again.is_rebuilt and catalogue(again.sequences) == truth(repo, run_hash)


def test_export_holds_every_point(killed: tuple[Path, str], tmp_path: Path) -> None:
    repo, run_hash = killed
    out = cli(repo, "export", "--output", str(tmp_path / "out"))
    assert out.returncode == 0, out.stderr
    table = pq.read_table(tmp_path / "out" / "metrics" / f"{run_hash}.parquet")
    rows = file_rows(repo, run_hash)
    per_name = {n: len({s for s, _ in r}) for n, r in rows.items() if n != "notes"}
    names = table.column("name").to_pylist()
    assert {n: names.count(n) for n in per_name} == per_name


# -- maintenance ----------------------------------------------------------------------------------
def test_verify_reports_stale_catalogue_and_repair_rewrites_it(killed: tuple[Path, str]) -> None:
    repo, run_hash = killed
    want = truth(repo, run_hash)
    stale = sorted(n for n, s in want.items() if sidecar_catalogue(repo, run_hash).get(n) != s)
    report = cli(repo, "verify")
    assert report.returncode == 1
    line = next(x for x in report.stdout.splitlines() if x.startswith("stale-catalogue"))
    assert run_hash in line and all(repr(n) in line for n in stale), (line, stale)
    fixed = cli(repo, "verify", "--repair")
    assert fixed.returncode == 0, fixed.stdout
    assert sidecar_catalogue(repo, run_hash) == want
    assert load_run_meta(RepoLayout(repo), run_hash).end_time is None  # repair does not close it
    assert "no damage found" in cli(repo, "verify").stdout


def test_runs_close_rewrites_the_catalogue(killed: tuple[Path, str]) -> None:
    repo, run_hash = killed
    done = cli(repo, "runs", "close", run_hash)
    assert done.returncode == 0, done.stderr
    meta = load_run_meta(RepoLayout(repo), run_hash)
    assert meta.end_time is not None and sidecar_catalogue(repo, run_hash) == truth(repo, run_hash)


def test_compaction_catches_the_catalogue_up_first(killed: tuple[Path, str]) -> None:
    repo, run_hash = killed
    want = truth(repo, run_hash)
    result = compact_run(RepoLayout(repo), run_hash)
    assert result.status == "compacted" and "caught the catalogue up" in result.note
    assert sidecar_catalogue(repo, run_hash) == want == truth(repo, run_hash)
    assert not list((repo / ".aim" / "runs" / run_hash / "seqs").rglob("*.arrows"))
    # a later resume reads no compacted row to know where it is
    with aim.Run(
        run_hash, repo=repo, system_tracking_interval=None, capture_terminal_logs=False
    ) as run:
        run.track(-1.0, name="auto")
    assert sidecar_catalogue(repo, run_hash)["auto"]["last_step"] == want["auto"]["last_step"] + 1


def test_a_closed_run_with_wrong_figures_is_reported(killed: tuple[Path, str]) -> None:
    repo, run_hash = killed
    assert cli(repo, "runs", "close", run_hash).returncode == 0
    path = repo / ".aim" / "runs" / run_hash / "run.json"
    data = json.loads(path.read_text())
    entry = next(s for s in data["sequences"] if s["name"] == "dup")
    entry["last"] = 12345.0  # what a writer resumed by an earlier release could leave
    path.write_text(json.dumps(data))
    report = cli(repo, "verify", "--json")
    problems = json.loads(report.stdout)["problems"]
    assert report.returncode == 1 and [(p["kind"], p["run_hash"]) for p in problems] == [
        ("stale-catalogue", run_hash)
    ]
    assert "'dup'" in problems[0]["detail"] and "'auto'" not in problems[0]["detail"]
    assert cli(repo, "verify", "--repair").returncode == 0
    assert sidecar_catalogue(repo, run_hash) == truth(repo, run_hash)


# -- cost: the resume reads only what the sidecar misses -------------------------------------------
def test_resume_reads_only_the_segments_after_the_reach(
    killed: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, run_hash = killed
    meta = load_run_meta(RepoLayout(repo), run_hash)
    reaches = {i.seq_id: i.reach for i in meta.sequences}
    assert all(r is not None for r in reaches.values())
    whole: list[str] = []
    real_read = catalogue_files.read_segment

    def spy_read(path: Any, **kwargs: Any) -> Any:
        whole.append(Path(path).name)
        return real_read(path, **kwargs)

    real_all = catalogue_files._all_pieces
    rewritten: set[str] = set()

    def full_read_of_rewrites_only(files: Any, info: Any, names: Any) -> Any:
        # only a sequence whose new rows rewrote a step is recounted from every point
        if not info.has_rewrites:
            raise AssertionError("read every point")
        rewritten.add(info.seq_id)
        return real_all(files, info, names)

    monkeypatch.setattr(catalogue_files, "read_segment", spy_read)
    monkeypatch.setattr(catalogue_files, "_all_pieces", full_read_of_rewrites_only)
    with aim.Run(run_hash, repo=repo, system_tracking_interval=None, capture_terminal_logs=False):
        pass
    seqs = repo / ".aim" / "runs" / run_hash / "seqs"
    older = {  # every segment a catalogue entry already reached
        seg.name
        for seq_id, reach in reaches.items()
        for seg in (seqs / seq_id).glob("*.arrows")
        if reach is not None and seg.name <= reach.segment and seq_id not in rewritten
    }
    assert older and not older & set(whole), (older, whole)
    assert sidecar_catalogue(repo, run_hash) == truth(repo, run_hash)


def test_a_sidecar_without_reach_is_summarised_from_every_point(killed: tuple[Path, str]) -> None:
    repo, run_hash = killed
    path = repo / ".aim" / "runs" / run_hash / "run.json"
    data = json.loads(path.read_text())
    for entry in data["sequences"]:
        del entry["reach"]  # as written by an earlier release
    path.write_text(json.dumps(data))
    with aim.Run(run_hash, repo=repo, system_tracking_interval=None, capture_terminal_logs=False):
        pass
    assert sidecar_catalogue(repo, run_hash) == truth(repo, run_hash)


def test_a_reach_that_no_longer_matches_falls_back_to_every_point(killed: tuple[Path, str]) -> None:
    repo, run_hash = killed
    path = repo / ".aim" / "runs" / run_hash / "run.json"
    data = json.loads(path.read_text())
    for entry in data["sequences"]:
        entry["reach"]["bytes"] += 3  # not where a message starts
        entry["reach"]["sealed"] = False
    path.write_text(json.dumps(data))
    layout = RepoLayout(repo)
    infos = catalogue_scan.scan_catalogue(layout, run_hash, load_run_meta(layout, run_hash))
    assert catalogue(infos) == truth(repo, run_hash)
    assert all(i.reach is not None and i.reach.is_sealed for i in infos)


# -- pieces ---------------------------------------------------------------------------------------
def segment_with(path: Path, batches: int) -> list[int]:
    """A segment of `batches` batches of 3 rows; returns the offset after the schema and after
    each batch."""
    schema = METRIC_SCHEMA  # (a segment of other columns is damaged: read_segment_from refuses it)
    offsets = []
    with open(path, "wb") as f:
        f.write(schema.serialize())
        offsets.append(f.tell())
        for b in range(batches):
            columns = [pa.array([b] * 3), pa.array([1.0] * 3), pa.array([None] * 3, pa.int64())]
            batch = pa.record_batch([*columns, pa.array([0.0] * 3)], schema=schema)
            f.write(batch.serialize())
            offsets.append(f.tell())
    return offsets


def test_read_segment_from_an_offset(tmp_path: Path) -> None:
    seg = tmp_path / "s.arrows"
    offsets = segment_with(seg, 3)
    for i, offset in enumerate(offsets):
        data = read_segment_from(seg, offset)
        assert data is not None and [b.column(0)[0].as_py() for b in data.batches] == list(
            range(i, 3)
        )
    assert read_segment_from(seg, offsets[1] + 8) is None  # inside a message
    assert read_segment_from(seg, offsets[-1] + 1) is None  # past the end
    seg.write_bytes(seg.read_bytes()[:-5])  # the last batch torn
    data = read_segment_from(seg, offsets[1])
    assert data is not None and data.is_torn and len(data.batches) == 1
    assert read_segment_from(seg, offsets[-1]) is None  # the file tears before the offset


def test_reach_json_is_validated() -> None:
    good = {"segment": "18eb9144d154d6a5-26752-01ae3c-000001.arrows", "bytes": 10, "sealed": True}
    assert CatalogueReach.from_json(good) == CatalogueReach(good["segment"], 10, True)
    for bad in (
        {**good, "segment": "../../run.json"},
        {**good, "bytes": -1},
        {**good, "bytes": 1.5},
        {**good, "sealed": "yes"},
        "18eb9144d154d6a5-26752-01ae3c-000001.arrows",
        None,
    ):
        assert CatalogueReach.from_json(bad) is None


# -- one meaning: the writer's running summary equals a summary of the files --------------------
@pytest.mark.parametrize("seed", range(3))
def test_writer_summary_equals_scan_before_and_after_compaction(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    quiet = {"system_tracking_interval": None, "capture_terminal_logs": False}
    run = aim.Run(repo=tmp_path, **quiet)  # type: ignore[arg-type]
    specials = [math.nan, math.inf, -math.inf, 0.0, -0.0]
    for i in range(3000):
        step = rng.randrange(0, 200) if rng.random() < 0.5 else None  # rewrites and auto-steps
        value = rng.choice(specials) if rng.random() < 0.05 else rng.uniform(-5, 5)
        run.track(value, name="f", step=step)
        run.track(rng.randrange(-9, 9), name="i", step=step)  # stays an int metric
        run.track(i if i % 50 else 0.5, name="n", step=step)  # becomes a number metric
        if i % 11 == 0:
            run.track(aim.Text(str(i)), name="t", step=step)
        if rng.random() < 0.01:
            run.flush()
    run.close()
    layout = RepoLayout(tmp_path)
    meta = load_run_meta(layout, run.hash)
    for _ in range(2):  # as written, then compacted (rows re-sorted by step within chunks)
        scanned = catalogue_scan.scan_catalogue(layout, run.hash, meta, full=True)
        assert catalogue_summary.stale_sequences(meta.sequences, scanned) == []
        assert catalogue(scanned) == catalogue(meta.sequences)
        assert {i.name: i.kind for i in scanned} == {i.name: i.kind for i in meta.sequences}
        assert compact_run(layout, run.hash).status in ("compacted", "unchanged")
