"""Large params are written once per change, not with every sidecar rewrite: a run with a 10 MB
param that tracks over several flushes writes the param once (`params-<digest>.json`), and each
flush rewrites only a small `run.json` that names it. Readers see the params as if inline."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

import aim_parquet as aim
from aim_parquet.errors import CorruptFileError
from aim_parquet.format.meta import RunMeta
from aim_parquet.format.paths import PARAMS_FILE_MIN_BYTES, RepoLayout
from aim_parquet.storage import load_run_meta
from aim_parquet.storage.online import params_file as params_module

QUIET: dict[str, Any] = {"system_tracking_interval": None, "capture_terminal_logs": False}
BIG = "x" * (10 << 20)


def params_files(run_dir: Path) -> list[str]:
    return sorted(n for n in os.listdir(run_dir) if n.startswith("params-"))


def test_a_10_mb_param_is_written_once_over_many_flushes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written: list[tuple[str, int]] = []
    real_write = params_module.atomic_write

    def counting_write(path: Path, data: bytes, **kwargs: Any) -> None:
        written.append((Path(path).name, len(data)))
        real_write(path, data, **kwargs)

    monkeypatch.setattr(params_module, "atomic_write", counting_write)
    run = aim.Run(repo=str(tmp_path), **QUIET)
    run["blob"] = {"text": BIG, "lr": 0.1}
    run_dir = tmp_path / ".aim" / "runs" / run.hash
    sizes = []
    for flush in range(6):
        for i in range(20):
            run.track(float(i), name="loss", step=flush * 20 + i)
        run.flush()
        sizes.append((run_dir / "run.json").stat().st_size)
    run.close()
    sizes.append((run_dir / "run.json").stat().st_size)
    (name,) = params_files(run_dir)
    assert written == [(name, (run_dir / name).stat().st_size)]  # the param: once
    assert written[0][1] > len(BIG)
    assert max(sizes) < PARAMS_FILE_MIN_BYTES  # every sidecar rewrite is small
    sidecar = json.loads((run_dir / "run.json").read_text())
    assert sidecar["params_file"] == name and "params" not in sidecar
    repo = aim.Repo(str(tmp_path))
    for reader in (repo.get_run(run.hash), load_run_meta(RepoLayout(tmp_path), run.hash)):
        blob = reader["blob"] if isinstance(reader, aim.Run) else reader.params["blob"]
        assert blob == {"text": BIG, "lr": 0.1}
    matched = aim.Repo(str(tmp_path)).query_runs("run.blob.lr == 0.1").iter_runs()
    assert [r.run.hash for r in matched] == [run.hash]


def test_changing_a_large_param_replaces_its_file(tmp_path: Path) -> None:
    run = aim.Run(repo=str(tmp_path), **QUIET)
    run_dir = tmp_path / ".aim" / "runs" / run.hash
    run["blob"] = BIG
    first = params_files(run_dir)
    run["small"] = 1  # params change: a new file, the superseded one removed
    second = params_files(run_dir)
    assert len(first) == len(second) == 1 and first != second
    run["blob"] = "small now"  # small params go back inline
    assert params_files(run_dir) == []
    assert "params" in json.loads((run_dir / "run.json").read_text())
    run.close()
    assert aim.Repo(str(tmp_path)).get_run(run.hash)["blob"] == "small now"


def test_a_tool_that_rewrites_the_sidecar_inlines_the_params(tmp_path: Path) -> None:
    run = aim.Run(repo=str(tmp_path), **QUIET)
    run["blob"] = BIG
    run.close()
    run_dir = tmp_path / ".aim" / "runs" / run.hash
    assert len(params_files(run_dir)) == 1
    reopened = aim.Repo(str(tmp_path)).get_run(run.hash)
    reopened.archived = True  # a sidecar edit by the SDK on a closed run
    assert aim.Repo(str(tmp_path)).get_run(run.hash)["blob"] == BIG
    meta = load_run_meta(RepoLayout(tmp_path), run.hash)
    assert meta.archived and meta.params["blob"] == BIG


def test_a_missing_params_file_is_a_clear_error(tmp_path: Path) -> None:
    run = aim.Run(repo=str(tmp_path), **QUIET)
    run["blob"] = BIG
    run.close()
    run_dir = tmp_path / ".aim" / "runs" / run.hash
    (name,) = params_files(run_dir)
    (run_dir / name).unlink()
    with pytest.raises(CorruptFileError, match="params file"):
        load_run_meta(RepoLayout(tmp_path), run.hash)
    raw = json.loads((run_dir / "run.json").read_text())
    with pytest.raises(CorruptFileError, match="was not read"):  # never silently empty
        RunMeta.from_json(raw)


def _age(path: Path, seconds: float) -> None:
    old = path.stat().st_mtime - seconds
    os.utime(path, (old, old))


def test_gc_removes_orphaned_params_files_never_the_current_one(tmp_path: Path) -> None:
    """A superseded params file its writer did not remove (killed between the sidecar naming
    the new one and the removal) is removed by gc once it and run.json are older than the grace
    period; the file run.json names, and a young orphan, are kept."""
    from aim_parquet.storage import gc_repo

    run = aim.Run(repo=str(tmp_path), **QUIET)
    run["blob"] = {"text": BIG, "lr": 0.1}
    run.close()
    run_dir = tmp_path / ".aim" / "runs" / run.hash
    (current,) = params_files(run_dir)
    orphan = run_dir / "params-0123456789abcdef.json"
    orphan.write_bytes((run_dir / current).read_bytes())  # what a killed writer leaves
    layout = RepoLayout(tmp_path)
    assert not [r for r in gc_repo(layout, grace_s=600).removed if r.kind == "params-file"]
    for path in (orphan, run_dir / current, run_dir / "run.json"):
        _age(path, 3600)
    report = gc_repo(layout, grace_s=600)
    assert [Path(r.path).name for r in report.removed if r.kind == "params-file"] == [orphan.name]
    assert params_files(run_dir) == [current]
    reopened = aim.Repo(str(tmp_path)).get_run(run.hash)
    assert reopened is not None and reopened["blob"] == {"text": BIG, "lr": 0.1}


def test_gc_leaves_the_params_files_of_a_live_writer_alone(tmp_path: Path) -> None:
    """While a writer holds the run, gc removes none of its params files, however old: the
    writer removes its superseded ones itself."""
    from aim_parquet.storage import gc_repo

    run = aim.Run(repo=str(tmp_path), **QUIET)
    run["blob"] = {"text": BIG, "lr": 0.1}
    run.flush()
    run_dir = tmp_path / ".aim" / "runs" / run.hash
    orphan = run_dir / "params-0123456789abcdef.json"
    orphan.write_bytes(b"{}")
    for path in (orphan, *[run_dir / n for n in params_files(run_dir)], run_dir / "run.json"):
        _age(path, 3600)
    try:
        report = gc_repo(RepoLayout(tmp_path), grace_s=0)
        assert not [r for r in report.removed if r.kind == "params-file"]
        assert orphan.exists()
    finally:
        run.close()


_RESUME_WITH_OLD_PARAMS = """
import sys
import aim_parquet as aim
run = aim.Run(sys.argv[2], repo=sys.argv[1], system_tracking_interval=None,
              capture_terminal_logs=False)
run["blob"] = {"text": "x" * (10 << 20), "lr": 0.1}
run.close()
"""


def test_gc_never_removes_a_params_file_a_writer_resumed_onto(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that resumes between gc's last look at the run and its removal of an orphaned
    params file, and sets params whose file is that orphan (it reuses the file on disk), keeps
    its params: gc moves the file aside first and puts it back once it sees the run changed."""
    import subprocess
    import sys

    from aim_parquet.storage import gc_repo
    from aim_parquet.storage.maintenance import params_gc

    run = aim.Run(repo=str(tmp_path), **QUIET)
    run["blob"] = {"text": BIG, "lr": 0.1}
    run.flush()
    run_dir = tmp_path / ".aim" / "runs" / run.hash
    (old,) = params_files(run_dir)
    old_bytes = (run_dir / old).read_bytes()
    run["blob"] = {"text": BIG, "lr": 0.2}
    run.close()
    (current,) = params_files(run_dir)
    (run_dir / old).write_bytes(old_bytes)
    assert params_files(run_dir) == sorted([old, current])  # what a killed writer leaves
    for name in (old, current, "run.json"):
        _age(run_dir / name, 3600)
    real_state = params_gc.writer_state
    calls = []

    def state_then_resume(layout: RepoLayout, run_hash: str) -> Any:
        state = real_state(layout, run_hash)
        calls.append(state)
        if len(calls) == 2:  # gc's last check before removing the orphan: a writer resumes now
            subprocess.run(
                [sys.executable, "-c", _RESUME_WITH_OLD_PARAMS, str(tmp_path), run.hash],
                check=True,
            )
        return state

    monkeypatch.setattr(params_gc, "writer_state", state_then_resume)
    gc_repo(RepoLayout(tmp_path), grace_s=0)
    assert len(calls) >= 2
    reopened = aim.Repo(str(tmp_path)).get_run(run.hash)
    assert reopened is not None and reopened["blob"] == {"text": BIG, "lr": 0.1}
