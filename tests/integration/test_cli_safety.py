"""What the command line prints and writes is safe whatever the names hold, its errors are one
line with the real reason, and its output files are written atomically and never overwritten
by surprise."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import aim_parquet as aim
from aim_parquet.cli.main import main
from aim_parquet.errors import StorageError
from aim_parquet.format.paths import RepoLayout
from aim_parquet.storage import compact_repo, delete_run_folder
from aim_parquet.storage.compaction import compactor
from aim_parquet.storage.maintenance import export
from tests.integration.repo_snapshots import QUIET

EVIL_NAME = "evil\x1b]0;pwned\x07\x1b[2J\n0123456789abcdef01234567  fake  row\u202eexe.txt"


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def make(root: Path, *, name: str | None = None, **params: Any) -> str:
    run = aim.Run(repo=root, **QUIET)  # type: ignore[arg-type]
    if name is not None:
        run.name = name
    for key, value in params.items():
        run[key] = value
    for i in range(3):
        run.track(-1.5 + i, name="loss", step=i)
    run.close()
    return str(run.hash)


def test_names_can_neither_fake_rows_nor_send_terminal_escapes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    root = tmp_path / "repo\nwith a newline"
    run_hash = make(root, name=EVIL_NAME)
    code, out, _err = cli(capsys, "runs", "ls", "--repo", str(root))
    assert code == 0 and len(out.splitlines()) == 2  # the header and one run: no fake row
    for raw in ("\x1b", "\x07", "\u202e"):
        assert raw not in out
    assert "evil\\x1b]0;pwned\\x07\\x1b[2J\\n0123" in out and "\\u202eexe.txt" in out
    code, out, _err = cli(capsys, "runs", "ls", "--json", "--repo", str(root))
    assert code == 0 and "\x1b" not in out and "\u202e" not in out
    assert json.loads(out)[0]["name"] == EVIL_NAME  # JSON escapes keep the exact text
    code, out, _err = cli(capsys, "query", "metric.name == 'loss'", "--repo", str(root))
    assert code == 0 and "\x1b" not in out and "pwned" in out
    code, out, _err = cli(capsys, "verify", "--repo", str(root))
    assert code == 0 and "repo\\nwith a newline" not in out  # (no path printed when healthy)
    (root / ".aim" / "runs" / run_hash / "run.json").write_text("{")
    code, out, _err = cli(capsys, "verify", "--repo", str(root))
    assert code == 1 and "repo\\nwith a newline" in out and "repo\nwith" not in out


def test_lone_surrogates_are_refused_in_run_properties(tmp_path: Path) -> None:
    run = aim.Run(repo=tmp_path, **QUIET)  # type: ignore[arg-type]
    try:
        name = os.fsdecode(b"caf\xe9")  # a Latin-1 file name: 'caf\udce9'
        for set_it in (
            lambda: setattr(run, "name", name),
            lambda: setattr(run, "description", name),
            lambda: setattr(run, "experiment", name),
            lambda: run.add_tag(name),
        ):
            with pytest.raises(aim.UnsupportedValueError, match="lone surrogate"):
                set_it()
        run["path"] = name  # params keep round-tripping it (stored as a JSON escape)
        assert run["path"] == name and run.name == f"Run: {run.hash}"
    finally:
        run.close()
    with pytest.raises(aim.UnsupportedValueError, match="experiment name"):
        aim.Run(repo=tmp_path, experiment=name, **QUIET)  # type: ignore[arg-type]


def test_old_data_with_lone_surrogates_is_listed_and_published_as_valid_utf8(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run_hash = make(tmp_path, path="caf\udce9")
    sidecar = tmp_path / ".aim" / "runs" / run_hash / "run.json"
    data = json.loads(sidecar.read_text())
    data.update(name="caf\udce9", experiment="exp\udcff", tags=["t\ud800"])
    data["params"]["k\udc80"] = 1
    sidecar.write_text(json.dumps(data))  # (an older release accepted them: JSON escapes)
    code, out, err = cli(capsys, "runs", "ls", "--repo", str(tmp_path))
    assert code == 0 and "caf\\udce9" in out and "exp\\udcff" in out, err
    assert cli(capsys, "compact", "--rewrite-all", "--repo", str(tmp_path))[0] == 0
    table = pq.read_table(tmp_path / ".aim" / "index" / "runs.parquet")  # valid UTF-8 strings
    row = table.to_pylist()[0]
    assert row["name"] == "caf\\udce9" and row["params.path"] == "caf\\udce9"
    assert "params.k\\udc80" in table.column_names
    out_csv = tmp_path / "out.csv"
    code, _out, err = cli(capsys, "query", "", "--output", str(out_csv), "--repo", str(tmp_path))
    assert code == 0, err
    assert "caf\\udce9" in out_csv.read_text(encoding="utf-8")


def test_query_csv_cells_that_a_spreadsheet_would_run_are_quoted(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    make(tmp_path, name="@SUM(A1:A9)", cmd='=HYPERLINK("http://evil","click")', flag="+1")
    out = tmp_path / "out.csv"
    code, _o, err = cli(capsys, "query", "", "--output", str(out), "--repo", str(tmp_path))
    assert code == 0, err
    with out.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["run.name"] == "'@SUM(A1:A9)"
    assert rows[0]["run.cmd"] == '\'=HYPERLINK("http://evil","click")'
    assert rows[0]["run.flag"] == "'+1"
    assert [r["value"] for r in rows] == ["-1.5", "-0.5", "0.5"]  # numbers are left alone


def test_query_output_is_never_overwritten_without_force(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    make(tmp_path)
    out = tmp_path / "result.json"
    out.write_text("precious")
    code, _o, err = cli(capsys, "query", "", "--output", str(out), "--repo", str(tmp_path))
    assert code == 1 and "already exists; pass --force" in err and out.read_text() == "precious"
    code, _o, err = cli(
        capsys, "query", "", "--output", str(out), "--force", "--repo", str(tmp_path)
    )
    assert code == 0 and len(json.loads(out.read_text())) == 3
    assert sorted(os.listdir(tmp_path)) == [".aim", "result.json"]  # no temp file left


def test_query_parquet_with_a_param_of_different_types_across_runs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    make(tmp_path, warmup="warmup")
    nan_run = make(tmp_path, warmup=100)
    with aim.Run(nan_run, repo=tmp_path, **QUIET) as run:  # type: ignore[arg-type]
        run.track(math.nan, name="loss", step=9)
    out = tmp_path / "out.parquet"
    code, _o, err = cli(capsys, "query", "", "--output", str(out), "--repo", str(tmp_path))
    assert code == 0, err
    table = pq.read_table(out)
    assert sorted(set(table.column("run.warmup").to_pylist())) == ['"warmup"', "100"]
    values = table.column("value").to_pylist()
    assert len(values) == 7 and sum(1 for v in values if v is not None and math.isnan(v)) == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["query", "", "--max-rows", "-1"], "expected a whole number >= 1"),
        (["query", "", "--max-rows", "0"], "expected a whole number >= 1"),
        (["gc", "--grace-s", "nan"], "expected a number of seconds >= 0"),
        (["gc", "--grace-s", "-5"], "expected a number of seconds >= 0"),
        (["gc", "--grace-s", "inf"], "expected a number of seconds >= 0"),
    ],
)
def test_bad_numbers_are_refused_up_front(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], message: str
) -> None:
    make(tmp_path)
    code, _out, err = cli(capsys, *argv, "--repo", str(tmp_path))
    assert code == 2 and message in err and len(err.splitlines()) == 1


def test_copy_and_move_failures_are_one_line_with_the_reason(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    copied = make(src)
    assert cli(capsys, "runs", "cp", copied, "--destination", str(dest), "--repo", str(src))[0] == 0
    code, _out, err = cli(
        capsys, "runs", "cp", copied, "--destination", str(dest), "--repo", str(src)
    )
    assert code == 1 and err.splitlines() == [
        f"aim-parquet: error: cannot copy run {copied}: run {copied} already exists in "
        f"repository {dest}"
    ]
    live = aim.Run(repo=src, **QUIET)  # type: ignore[arg-type]
    try:
        code, _out, err = cli(
            capsys, "runs", "mv", live.hash, "--destination", str(dest), "--repo", str(src)
        )
    finally:
        live.close()
    assert code == 1 and len(err.splitlines()) == 1
    assert f"Cannot move run {live.hash}: the run is being written by process {os.getpid()}" in err


def test_a_file_where_a_repository_should_be_is_named_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    src, blocker = tmp_path / "src", tmp_path / "notes.txt"
    copied = make(src)
    blocker.write_text("keep me")
    for dest in (blocker, blocker / "sub"):
        code, _out, err = cli(
            capsys, "runs", "cp", copied, "--destination", str(dest), "--repo", str(src)
        )
        assert code == 1 and err.splitlines() == [
            f"aim-parquet: error: cannot create the repository at {dest}: {blocker} is a file, "
            "not a folder; pass a folder as the repo."
        ]
    with pytest.raises(StorageError, match="is a file, not a folder"):
        aim.Run(repo=blocker, **QUIET)  # type: ignore[arg-type]
    assert blocker.read_text() == "keep me"
    assert [c.run.hash for c in aim.Repo(str(src)).query_runs("").iter_runs()] == [copied]


def test_an_export_into_an_earlier_export_is_replaced_whole_or_not_at_all(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, out = tmp_path / "repo", tmp_path / "dataset"
    first = make(root)
    assert cli(capsys, "export", "--output", str(out), "--repo", str(root))[0] == 0
    before = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    make(root)
    real = export._export_run
    calls: list[str] = []

    def fail_on_the_second_run(*args: Any) -> Any:
        calls.append("x")
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(*args)

    monkeypatch.setattr(export, "_export_run", fail_on_the_second_run)
    code, _out, err = cli(capsys, "export", "--output", str(out), "--repo", str(root))
    assert code == 1 and "No space left" in err
    assert {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(os.listdir(tmp_path)) == ["dataset", "repo"]  # the half export is gone
    monkeypatch.setattr(export, "_export_run", real)
    assert cli(capsys, "export", "--output", str(out), "--repo", str(root))[0] == 0
    assert f"{first}.parquet" in before  # the earlier export held only the first run
    assert len(list((out / "metrics").glob("*.parquet"))) == 2
    assert sorted(os.listdir(tmp_path)) == ["dataset", "repo"]


def test_compact_reports_a_run_deleted_meanwhile_as_skipped(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doomed, kept = make(tmp_path), make(tmp_path)
    real = compactor.write_kind

    def delete_while_writing(run_dir: Path, run_hash: str, *args: Any) -> Any:
        if run_hash == doomed:
            delete_run_folder(RepoLayout(tmp_path), doomed)  # `runs rm` from another shell
        return real(run_dir, run_hash, *args)

    monkeypatch.setattr(compactor, "write_kind", delete_while_writing)
    report = compact_repo(RepoLayout(tmp_path), workers=1, rewrite_all=True)
    status = {r.run_hash: (r.status, r.note) for r in report.runs}
    assert status[doomed] == ("skipped", "deleted while it was being compacted")
    assert status[kept][0] == "compacted" and not report.has_failures
    assert not (tmp_path / ".aim" / "runs" / doomed).exists()
    code, _out, err = cli(capsys, "compact", "--rewrite-all", "--repo", str(tmp_path))
    assert code == 0 and "ERROR" not in err
