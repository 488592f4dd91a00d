"""`verify` names every kind of damage; `--repair` fixes it keeping every readable point; `gc`
removes only what nothing needs; `stats` counts what is there."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

import aim_parquet as aim
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage import RunIndex, compact_run, load_run_meta
from aim_parquet.storage.maintenance.verify import VerifyReport, gc_repo, repo_stats, verify_repo
from tests.integration.repo_snapshots import QUIET, raw_row_counts, snapshot, write_rich_run


def _run_dir(root: Path, run_hash: str) -> Path:
    return root / ".aim" / "runs" / run_hash


def _kinds(report: VerifyReport) -> set[str]:
    return {p.kind for p in report.problems}


@pytest.fixture
def two_runs(tmp_path: Path) -> tuple[Path, str, str]:
    """A repo with a damaged-to-be run and a bystander run (indexed, so sidecars are cached)."""
    victim = write_rich_run(tmp_path, seed=1)
    bystander = write_rich_run(tmp_path, seed=2)
    RunIndex(RepoLayout(tmp_path)).refresh()
    return tmp_path, victim, bystander


def _only_bystander_unchanged(
    root: Path, bystander: str, before: dict[tuple[str, str], object]
) -> None:
    after = snapshot(root)
    assert {k: v for k, v in after.items() if k[0] == bystander} == {
        k: v for k, v in before.items() if k[0] == bystander
    }


def test_healthy_repo_has_no_problems(two_runs: tuple[Path, str, str]) -> None:
    root, _victim, _bystander = two_runs
    report = verify_repo(RepoLayout(root))
    assert report.problems == () and report.is_healthy and report.runs == 2
    assert report.segments > 0


def test_invalid_sidecar_is_rebuilt_with_params_from_the_index(
    two_runs: tuple[Path, str, str],
) -> None:
    root, victim, bystander = two_runs
    before = snapshot(root)
    sidecar = _run_dir(root, victim) / "run.json"
    sidecar.write_text('{"format": "aim_parquet", "format_ver')
    report = verify_repo(RepoLayout(root))
    assert _kinds(report) == {"invalid-sidecar"} and report.damaged_runs == (victim,)
    assert report.problems[0].path == str(sidecar) and not report.is_healthy
    fixed = verify_repo(RepoLayout(root), repair=True)
    assert (
        fixed.is_healthy and "params and properties from the run index" in fixed.problems[0].action
    )
    assert snapshot(root) == before  # every point kept
    assert load_run_meta(RepoLayout(root), victim).params["hparams"]["name"] == "net1"
    assert list((root / ".aim" / "quarantine" / victim).glob("run.json*"))
    assert verify_repo(RepoLayout(root)).problems == ()
    _only_bystander_unchanged(root, bystander, before)


def test_invalid_sidecar_without_index_keeps_the_data(tmp_path: Path) -> None:
    run_hash = write_rich_run(tmp_path)
    before = snapshot(tmp_path)
    (_run_dir(tmp_path, run_hash) / "run.json").write_bytes(b"\xff\xfe garbage")
    fixed = verify_repo(RepoLayout(tmp_path), repair=True)
    assert fixed.is_healthy and "params lost" in fixed.problems[0].action
    assert snapshot(tmp_path) == before


def test_garbage_segment_is_quarantined(two_runs: tuple[Path, str, str]) -> None:
    root, victim, bystander = two_runs
    before = snapshot(root)
    seq_dir = next((_run_dir(root, victim) / "seqs").iterdir())
    garbage = seq_dir / "0000000000000001-7-abcdef-000001.arrows"
    garbage.write_bytes(os.urandom(3000))
    report = verify_repo(RepoLayout(root))
    assert _kinds(report) == {"unreadable-segment"} and report.problems[0].path == str(garbage)
    assert verify_repo(RepoLayout(root), repair=True).is_healthy
    assert not garbage.exists()
    assert (root / ".aim" / "quarantine" / victim / "seqs" / seq_dir.name / garbage.name).exists()
    assert snapshot(root) == before


def test_truncated_segment_keeps_its_complete_batches(tmp_path: Path) -> None:
    run = aim.Run(repo=tmp_path, **QUIET)  # type: ignore[arg-type]
    for i in range(50):
        run.track(float(i), name="m", step=i)
        if i % 10 == 9:
            run.flush()  # five batches of ten points
    run.close()
    seg = next(_run_dir(tmp_path, run.hash).glob("seqs/*/*.arrows"))
    seg.write_bytes(seg.read_bytes()[:-20])
    report = verify_repo(RepoLayout(tmp_path))
    # the cut lost a whole batch: the catalogue (50 points) no longer matches the data (40);
    # the problem is named once, as points that are gone (not also as a stale catalogue)
    assert _kinds(report) == {"torn-tail", "missing-data"}
    assert "after 40 rows" in report.problems[0].detail
    assert "'m' counts 50, 40 readable" in report.problems[1].detail
    fixed = verify_repo(RepoLayout(tmp_path), repair=True)
    assert fixed.is_healthy and "40 complete rows" in fixed.problems[0].action
    rows = next(iter(snapshot(tmp_path).values()))
    assert [r["step"] for r in rows] == list(range(40))
    assert verify_repo(RepoLayout(tmp_path)).problems == ()
    assert load_run_meta(RepoLayout(tmp_path), run.hash).sequences[0].count == 40


def test_parquet_cut_in_half_falls_back_to_segments_still_there(tmp_path: Path) -> None:
    run_hash = write_rich_run(tmp_path)
    before = snapshot(tmp_path)
    run_dir = _run_dir(tmp_path, run_hash)
    backup = tmp_path / "seqs-backup"
    shutil.copytree(run_dir / "seqs", backup)
    compact_run(RepoLayout(tmp_path), run_hash)
    shutil.copytree(backup, run_dir / "seqs", dirs_exist_ok=True)  # a crash before their removal
    metrics = next(run_dir.glob("compacted/metrics-*.parquet"))
    metrics.write_bytes(metrics.read_bytes()[: metrics.stat().st_size // 2])
    report = verify_repo(RepoLayout(tmp_path))
    assert _kinds(report) == {"unreadable-compacted"} and report.problems[0].path == str(metrics)
    fixed = verify_repo(RepoLayout(tmp_path), repair=True)
    assert fixed.is_healthy and "read from the segments again" in fixed.problems[0].action
    assert snapshot(tmp_path) == before  # nothing lost: the segments still had the points


def test_parquet_cut_in_half_without_segments_reports_the_loss(tmp_path: Path) -> None:
    run_hash = write_rich_run(tmp_path)
    before = snapshot(tmp_path)
    compact_run(RepoLayout(tmp_path), run_hash)
    metrics = next(_run_dir(tmp_path, run_hash).glob("compacted/metrics-*.parquet"))
    metrics.write_bytes(metrics.read_bytes()[:1000])
    fixed = verify_repo(RepoLayout(tmp_path), repair=True)
    assert fixed.is_healthy
    actions = " ".join(p.action for p in fixed.problems)
    assert "points are lost" in actions and "quarantined" in actions
    after = snapshot(tmp_path)
    objects = {k: v for k, v in before.items() if v and "payload" in v[0]}
    assert {k: after[k] for k in objects} == objects  # the object files were not touched
    assert verify_repo(RepoLayout(tmp_path)).problems == ()


def test_missing_compacted_file_and_corrupt_manifest(tmp_path: Path) -> None:
    run_hash = write_rich_run(tmp_path)
    compact_run(RepoLayout(tmp_path), run_hash)
    before = snapshot(tmp_path)
    run_dir = _run_dir(tmp_path, run_hash)
    (run_dir / "compacted" / "manifest.json").write_text("[1, 2")
    report = verify_repo(RepoLayout(tmp_path))
    assert _kinds(report) == {"invalid-manifest"}
    assert verify_repo(RepoLayout(tmp_path), repair=True).is_healthy
    assert snapshot(tmp_path) == before  # rebuilt from the files' footers
    next(run_dir.glob("compacted/objects-aim.text-*.parquet")).unlink()
    report = verify_repo(RepoLayout(tmp_path))
    assert _kinds(report) == {"missing-compacted", "missing-data"}  # its sequences are gone
    assert verify_repo(RepoLayout(tmp_path), repair=True).is_healthy
    assert verify_repo(RepoLayout(tmp_path)).problems == ()


def test_missing_sidecar_and_missing_sequence_data(two_runs: tuple[Path, str, str]) -> None:
    root, victim, bystander = two_runs
    before = snapshot(root)
    run_dir = _run_dir(root, victim)
    (run_dir / "run.json").unlink()
    old = time.time() - 3600
    os.utime(run_dir, (old, old))  # not a run being created
    assert _kinds(verify_repo(RepoLayout(root))) == {"missing-sidecar"}
    assert verify_repo(RepoLayout(root), repair=True).is_healthy
    assert snapshot(root) == before
    gone = next((_run_dir(root, bystander) / "seqs").iterdir())
    shutil.rmtree(gone)
    report = verify_repo(RepoLayout(root))
    assert _kinds(report) == {"missing-data"} and report.damaged_runs == (bystander,)
    assert verify_repo(RepoLayout(root), repair=True).is_healthy
    assert gone.name not in {s.seq_id for s in load_run_meta(RepoLayout(root), bystander).sequences}


def test_leftover_temp_files(tmp_path: Path) -> None:
    run_hash = write_rich_run(tmp_path, n=20)
    tmp = _run_dir(tmp_path, run_hash) / ".tmp-run.json-1234abcd"
    tmp.write_text("{}")
    old_copy = tmp_path / ".aim" / "runs" / ".tmp-copy-of-a-run"
    old_copy.mkdir()
    old = time.time() - 3600
    os.utime(old_copy, (old, old))
    report = verify_repo(RepoLayout(tmp_path))
    assert _kinds(report) == {"temp-file"}
    assert {p.path for p in report.problems} == {str(tmp), str(old_copy)}
    assert verify_repo(RepoLayout(tmp_path), repair=True).is_healthy
    assert not tmp.exists() and not old_copy.exists()


def test_future_format_version_is_reported_and_never_touched(tmp_path: Path) -> None:
    run_hash = write_rich_run(tmp_path, n=20)
    sidecar = _run_dir(tmp_path, run_hash) / "run.json"
    data = json.loads(sidecar.read_text())
    data["format_version"] = 99
    sidecar.write_text(json.dumps(data))
    report = verify_repo(RepoLayout(tmp_path), repair=True)
    assert _kinds(report) == {"future-format"} and not report.is_healthy
    assert "upgrade" in report.problems[0].action
    assert json.loads(sidecar.read_text())["format_version"] == 99
    marker = tmp_path / ".aim" / "aim_parquet.json"
    marker.write_text(json.dumps({"format": "aim_parquet", "format_version": 7}))
    report = verify_repo(RepoLayout(tmp_path), repair=True)
    assert [p.kind for p in report.problems] == ["future-format"] and report.runs == 0


def test_live_writer_is_not_judged_or_repaired(tmp_path: Path) -> None:
    run = aim.Run(repo=tmp_path, **QUIET)  # type: ignore[arg-type]
    try:
        for i in range(20):
            run.track(float(i), name="m", step=i)
        run.flush()
        seg = next(_run_dir(tmp_path, run.hash).glob("seqs/*/*.arrows"))
        with open(seg, "ab") as f:
            f.write(b"\x01\x02")  # as if a batch were being appended right now
        assert verify_repo(RepoLayout(tmp_path)).problems == ()
        garbage = seg.parent / "0000000000000000-1-aaaaaa-000001.arrows"
        garbage.write_bytes(b"junk")
        report = verify_repo(RepoLayout(tmp_path), repair=True)
        assert _kinds(report) == {"unreadable-segment"}
        assert "being written" in report.problems[0].action and garbage.exists()
    finally:
        run.close()


def test_gc_removes_only_what_nothing_needs(tmp_path: Path) -> None:
    run_hash = write_rich_run(tmp_path)
    layout = RepoLayout(tmp_path)
    run_dir = _run_dir(tmp_path, run_hash)
    backup = tmp_path / "seqs-backup"
    shutil.copytree(run_dir / "seqs", backup)
    compact_run(layout, run_hash)
    shutil.copytree(backup, run_dir / "seqs", dirs_exist_ok=True)  # covered, left by a crash
    old_gen = run_dir / "compacted" / "metrics-000000.parquet"  # superseded, left by a crash
    shutil.copy(next(run_dir.glob("compacted/metrics-000001.parquet")), old_gen)
    (tmp_path / ".aim" / "trash" / f"{run_hash}-x").mkdir(parents=True)
    (run_dir / ".tmp-run.json-00000000").write_text("{}")
    fresh_tmp = run_dir / ".tmp-run.json-11111111"  # a write in progress: never removed
    fresh_tmp.write_text("{}")
    two_minutes_ago = time.time() - 120  # (older than TEMP_MIN_AGE_S, younger than the grace)
    os.utime(run_dir / ".tmp-run.json-00000000", (two_minutes_ago, two_minutes_ago))
    before = snapshot(tmp_path)
    raw = raw_row_counts(tmp_path, run_hash)
    kept = gc_repo(layout)  # default grace: everything above is too young
    assert {r.kind for r in kept.removed} == {"trash"}
    report = gc_repo(layout, grace_s=0)
    kinds = report.by_kind()
    assert set(kinds) == {"covered-segment", "superseded-file", "temp-file", "empty-folder"}
    assert kinds["superseded-file"][0] == 1 and report.bytes_freed > 0
    assert not old_gen.exists() and not list(run_dir.glob("seqs/*/*.arrows"))
    assert fresh_tmp.exists() and not (run_dir / ".tmp-run.json-00000000").exists()
    fresh_tmp.unlink()  # (verify, which locks the idle run, calls any temp file a leftover)
    assert snapshot(tmp_path) == before and raw_row_counts(tmp_path, run_hash) == raw
    assert verify_repo(layout).problems == ()


def test_stats_counts_runs_points_and_files(tmp_path: Path) -> None:
    hashes = [write_rich_run(tmp_path, seed=s, n=30) for s in range(2)]
    compact_run(RepoLayout(tmp_path), hashes[0], rewrite_all=True)
    stats = repo_stats(RepoLayout(tmp_path))
    assert (stats.runs, stats.compacted_runs, stats.active_runs, stats.damaged_runs) == (2, 1, 0, 0)
    assert stats.metric_sequences == 4 and stats.object_sequences == 8
    # visible points (last write wins): loss 30 steps (two rewritten), acc 10 steps + step 1
    assert stats.metric_points == 2 * (30 + 10 + 1)
    assert stats.files["compacted-metrics"] == 1 and stats.files["segment"] == 6
    assert stats.total_bytes == sum(stats.bytes.values()) > 0
