"""Every `aim-parquet` subcommand end to end, through `main(argv)` and as a real subprocess."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import aim_parquet as aim
from aim_parquet.cli.main import main
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage import list_run_hashes, load_run_meta
from tests.conftest import PYTHON, python_env
from tests.integration.repo_snapshots import QUIET, snapshot, write_rich_run

WRITER = str(Path(__file__).with_name("writer_proc.py"))

SUBCOMMANDS = [
    ["init"], ["version"], ["query"], ["export"], ["compact", "--rewrite-all"], ["verify"], ["gc"], ["stats"],
    ["runs"], ["runs", "ls"], ["runs", "rm"], ["runs", "cp"], ["runs", "mv"],
    ["runs", "archive"], ["runs", "unarchive"], ["runs", "close"],
]  # fmt: skip


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_cli(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-m", "aim_parquet", *argv],
        capture_output=True,
        text=True,
        env=python_env(),
        cwd=cwd,
        timeout=120,
    )


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, list[str]]:
    root = tmp_path / "repo"
    hashes = [write_rich_run(root, n=40, seed=s) for s in range(2)]
    return root, hashes


@pytest.mark.parametrize("argv", SUBCOMMANDS, ids=" ".join)
def test_every_subcommand_has_help_with_an_example(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, out, _err = cli(capsys, *argv, "--help")
    assert code == 0 and "--repo" in out and "example" in out


def test_init_and_version(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = cli(capsys, "init", "--repo", str(tmp_path))
    assert code == 0 and "initialized" in out and (tmp_path / ".aim" / "aim_parquet.json").exists()
    code, out, _ = cli(capsys, "--repo", str(tmp_path), "init")
    assert code == 0 and "already exists" in out
    code, out, _ = cli(capsys, "version")
    assert code == 0 and out.startswith(f"aim-parquet {aim.__version__}")


def test_runs_ls_table_and_json(capsys: pytest.CaptureFixture[str], repo: Any) -> None:
    root, hashes = repo
    code, out, _ = cli(capsys, "runs", "ls", "--repo", str(root))
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == [
        "HASH", "EXPERIMENT", "NAME", "CREATED", "ACTIVE", "POINTS",
    ]  # fmt: skip
    assert len(lines) == 3 and all(any(h in line for line in lines) for h in hashes)
    code, out, _ = cli(capsys, "runs", "ls", "--repo", str(root), "--json")
    rows = json.loads(out)
    assert [r["hash"] for r in rows] == hashes
    meta = load_run_meta(RepoLayout(root), hashes[0])
    assert rows[0]["points"] == sum(s.count for s in meta.sequences) > 40
    assert rows[0]["active"] is False


def test_hash_prefixes_unknown_and_ambiguous(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    hashes: list[str] = []
    while len({h[0] for h in hashes}) == len(hashes):  # until two runs share a first digit
        with aim.Run(repo=tmp_path, **QUIET) as run:  # type: ignore[arg-type]
            hashes.append(run.hash)
    first = next(h[0] for h in hashes if sum(x[0] == h[0] for x in hashes) > 1)
    code, _out, err = cli(capsys, "runs", "archive", first, "--repo", str(tmp_path))
    assert code == 1 and "ambiguous" in err and len(err.splitlines()) == 1
    code, _out, err = cli(capsys, "runs", "archive", "zz", "--repo", str(tmp_path))
    assert code == 1 and "not a run hash" in err
    missing = next(c for c in "0123456789abcdef" if not any(h.startswith(c) for h in hashes))
    code, _out, err = cli(capsys, "runs", "archive", missing, "--repo", str(tmp_path))
    assert code == 1 and "no run hash starts with" in err
    unique = hashes[0][:10]
    code, out, _ = cli(capsys, "runs", "archive", unique, "--repo", str(tmp_path))
    assert code == 0 and f"archived {hashes[0]}" in out
    assert load_run_meta(RepoLayout(tmp_path), hashes[0]).archived
    code, out, _ = cli(capsys, "runs", "unarchive", unique, "--repo", str(tmp_path))
    assert code == 0 and not load_run_meta(RepoLayout(tmp_path), hashes[0]).archived


def test_runs_rm_by_hash_and_by_query(
    capsys: pytest.CaptureFixture[str], repo: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, hashes = repo
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    code, _out, err = cli(capsys, "runs", "rm", hashes[0][:8], "--repo", str(root))
    assert code == 1 and "-y" in err and len(list_run_hashes(RepoLayout(root))) == 2
    code, out, _ = cli(capsys, "runs", "rm", hashes[0][:8], "-y", "--repo", str(root))
    assert code == 0 and f"deleted {hashes[0]}" in out
    query = "run.hparams.name == 'net1'"
    code, out, _ = cli(capsys, "runs", "rm", "--query", query, "-y", "--repo", str(root))
    assert code == 0 and f"deleted {hashes[1]}" in out
    assert list_run_hashes(RepoLayout(root)) == []


def test_runs_cp_and_mv(capsys: pytest.CaptureFixture[str], repo: Any, tmp_path: Path) -> None:
    root, hashes = repo
    dest = tmp_path / "dest"
    code, out, _ = cli(
        capsys, "runs", "cp", hashes[0], "--destination", str(dest), "--repo", str(root)
    )
    assert code == 0 and "copied" in out
    assert list_run_hashes(RepoLayout(dest)) == [hashes[0]]
    code, out, _ = cli(
        capsys, "runs", "mv", hashes[1][:6], "--destination", str(dest), "--repo", str(root)
    )
    assert code == 0 and "moved" in out
    assert sorted(list_run_hashes(RepoLayout(dest))) == sorted(hashes)
    assert list_run_hashes(RepoLayout(root)) == [hashes[0]]


def test_runs_close_finishes_a_crashed_run_and_refuses_a_live_one(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    proc = subprocess.Popen(
        [PYTHON, WRITER, str(tmp_path), "new"], stdout=subprocess.PIPE, text=True, env=python_env()
    )
    assert proc.stdout is not None
    run_hash = proc.stdout.readline().split()[1]
    while not proc.stdout.readline().startswith("step 1000 "):
        pass
    code, _out, err = cli(capsys, "runs", "close", run_hash, "--repo", str(tmp_path))
    assert code == 1 and "being written by process" in err and "Traceback" not in err
    code, _out, err = cli(capsys, "runs", "archive", run_hash, "--repo", str(tmp_path))
    assert code == 1 and "being written" in err
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert load_run_meta(RepoLayout(tmp_path), run_hash).end_time is None
    code, out, _ = cli(capsys, "runs", "close", run_hash[:7], "--repo", str(tmp_path))
    assert code == 0 and f"closed {run_hash}" in out
    meta = load_run_meta(RepoLayout(tmp_path), run_hash)
    assert meta.end_time is not None and meta.end_time >= meta.creation_time
    code, out, _ = cli(capsys, "runs", "close", run_hash, "--repo", str(tmp_path))
    assert code == 0 and "already finished" in out


def test_compact_query_export(
    capsys: pytest.CaptureFixture[str], repo: Any, tmp_path: Path
) -> None:
    root, hashes = repo
    before = snapshot(root)
    code, out, _ = cli(
        capsys, "compact", "--rewrite-all", "--run", hashes[0][:5], "--verbose", "--repo", str(root)
    )
    assert code == 0 and "compacted 1 of 1 run(s)" in out and hashes[0] in out
    code, out, _ = cli(
        capsys, "compact", "--rewrite-all", "--include-active", "--json", "--repo", str(root)
    )
    report = json.loads(out)
    assert code == 0 and sorted(r["status"] for r in report["runs"]) == ["compacted", "unchanged"]
    assert snapshot(root) == before
    query = "metric.name == 'acc' and run.hparams.name == 'net0'"
    code, out, _ = cli(capsys, "query", query, "--repo", str(root))
    assert code == 0 and "(15 rows)" in out
    for suffix in ("csv", "parquet", "json"):
        target = tmp_path / f"out.{suffix}"
        code, out, _ = cli(capsys, "query", query, "--output", str(target), "--repo", str(root))
        assert code == 0 and "wrote 15 rows" in out and target.stat().st_size > 0
    assert pq.read_table(tmp_path / "out.parquet").num_rows == 15
    assert len(json.loads((tmp_path / "out.json").read_text())) == 15
    code, _out, err = cli(capsys, "query", query, "--output", "x.xlsx", "--repo", str(root))
    assert code == 1 and ".parquet" in err
    code, _out, err = cli(capsys, "query", "metric.name ==", "--repo", str(root))
    assert code == 1 and len(err.splitlines()) == 1 and "Traceback" not in err
    export = tmp_path / "export"
    code, out, _ = cli(capsys, "export", "--output", str(export), "--objects", "--repo", str(root))
    assert code == 0 and "exported 2 run(s)" in out
    metrics = pq.read_table(sorted((export / "metrics").glob("*.parquet")))
    assert metrics.num_rows == sum(len(v) for k, v in before.items() if v and "value" in v[0])
    assert pq.read_table(export / "runs.parquet").num_rows == 2
    assert list((export / "objects").glob("*/*.parquet"))
    code, out, _ = cli(
        capsys, "export", "--output", str(export), "--query", query, "--repo", str(root)
    )
    assert code == 0 and "exported 1 run(s), 1 sequence(s), 15 metric points" in out
    assert (root / ".aim" / "index" / "runs.parquet").exists()


def test_verify_gc_stats(capsys: pytest.CaptureFixture[str], repo: Any) -> None:
    root, hashes = repo
    code, out, _ = cli(capsys, "verify", "--repo", str(root))
    assert code == 0 and "no damage found" in out
    seg = next((root / ".aim" / "runs" / hashes[1]).glob("seqs/*/*.arrows"))
    seg.write_bytes(seg.read_bytes()[:-5])
    code, out, _ = cli(capsys, "verify", "--repo", str(root))
    assert code == 1 and "torn-tail" in out and hashes[1] in out and str(seg) in out
    code, out, _ = cli(capsys, "verify", "--repair", "--json", "--repo", str(root))
    assert code == 0 and json.loads(out)["healthy"] is True
    code, out, _ = cli(capsys, "gc", "--grace-s", "0", "--repo", str(root))
    assert code == 0 and "freed" in out
    code, out, _ = cli(capsys, "stats", "--repo", str(root))
    assert code == 0 and "runs: 2" in out and "segment" in out
    code, out, _ = cli(capsys, "stats", "--json", "--repo", str(root))
    assert code == 0 and json.loads(out)["runs"] == 2


def test_errors_are_one_line_without_traceback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _out, err = cli(capsys, "runs", "ls", "--repo", str(tmp_path / "nowhere"))
    assert code == 1 and "Cannot find an aim_parquet repository" in err
    assert len(err.splitlines()) == 1
    code, _out, err = cli(capsys, "compact", "--rewrite-all", "--bogus")
    assert code == 2 and len(err.splitlines()) == 1 and "unrecognized arguments" in err
    code, _out, err = cli(capsys, "runs")
    assert code == 2 and len(err.splitlines()) == 1


SUBPROCESS_CASES = [
    (["version"], 0, "aim-parquet"),
    (["runs", "ls"], 0, "HASH"),
    (["runs", "archive", "{h0}"], 0, "archived"),
    (["runs", "unarchive", "{h0}"], 0, "unarchived"),
    (["runs", "close", "{h0}"], 0, "already finished"),
    (["compact", "--rewrite-all"], 0, "compacted 2 of 2"),
    (["query", "metric.name == 'loss'"], 0, "rows)"),
    (["export", "--output", "{tmp}/exp"], 0, "exported 2 run(s)"),
    (["verify"], 0, "no damage found"),
    (["gc"], 0, "freed"),
    (["stats"], 0, "runs: 2"),
    (["runs", "cp", "{h1}", "--destination", "{tmp}/copy"], 0, "copied"),
    (["runs", "mv", "{h1}", "--destination", "{tmp}/moved"], 0, "moved"),
    (["runs", "rm", "{h0}", "-y"], 0, "deleted"),
    (["runs", "rm", "0123456789abcdef01234567", "-y"], 1, "no run"),
    (["init"], 0, "already exists"),
]


def test_subcommands_as_a_real_process(repo: Any, tmp_path: Path) -> None:
    root, hashes = repo
    for argv, expected_code, expected_text in SUBPROCESS_CASES:
        args = [a.format(h0=hashes[0], h1=hashes[1][:8], tmp=tmp_path) for a in argv]
        proc = run_cli(*args, "--repo", str(root))
        output = proc.stdout + proc.stderr
        assert proc.returncode == expected_code, (args, output)
        assert expected_text in output, (args, output)
        assert "Traceback" not in output, (args, output)


def test_default_repo_is_found_upward(tmp_path: Path) -> None:
    write_rich_run(tmp_path, n=5)
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    proc = run_cli("runs", "ls", "--json", cwd=sub)
    assert proc.returncode == 0 and len(json.loads(proc.stdout)) == 1
