"""Issue #20 on real files: shared writers, property edits of read runs, Aim repositories,
run/sequence identity, dtype families and the sequence data API."""

from __future__ import annotations

import gc
import logging
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import aim_parquet as aim
from aim_parquet.errors import AimRepositoryError, ReadOnlyRunError, RunLockedError
from aim_parquet.storage.base.lock import is_run_locked
from tests.conftest import PYTHON, python_env

QUIET = {"system_tracking_interval": None, "capture_terminal_logs": False}


def other_process(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "-c", code], capture_output=True, text=True, env=python_env(), timeout=120
    )


# -- item 8: a second Run(run_hash=h) in one process shares the open writer ----------------------
def test_second_handle_shares_the_writer_and_the_last_close_closes(repo_root: Path) -> None:
    first = aim.Run(repo=repo_root, **QUIET)
    first.track(1.0, name="a", step=0)
    second = aim.Run(run_hash=first.hash, repo=repo_root, **QUIET)
    assert second._writer is first._writer
    second.track(2.0, name="b", step=0)
    first.close()  # not the last handle: flushed, the run stays open
    lock = repo_root / ".aim" / "runs" / first.hash / "lock"
    assert is_run_locked(lock) is not None
    assert aim.Repo(repo_root).get_run(first.hash).get_metric("b").values.values_list() == [2.0]
    second.track(3.0, name="b", step=1)
    second["p"] = 1
    second.close()
    assert is_run_locked(lock) is None
    run = aim.Repo(repo_root).get_run(first.hash)
    assert run.end_time is not None and run["p"] == 1
    assert run.get_metric("a").values.values_list() == [1.0]
    assert run.get_metric("b").values.values_list() == [2.0, 3.0]


def test_owner_closing_last_and_a_collected_handle(repo_root: Path) -> None:
    first = aim.Run(repo=repo_root, **QUIET)
    second = aim.Run(run_hash=first.hash, repo=repo_root, **QUIET)
    second.track(1.0, name="x")
    del second
    gc.collect()  # a handle collected without close() counts as closed
    first.track(2.0, name="x")
    first.close()
    run = aim.Repo(repo_root).get_run(first.hash)
    assert run.end_time is not None and run.get_metric("x").values.values_list() == [1.0, 2.0]


def test_another_process_is_still_refused(repo_root: Path, make_run: Any) -> None:
    run = make_run()
    out = other_process(
        f"import aim_parquet as aim; aim.Run(run_hash={run.hash!r}, repo={str(repo_root)!r})"
    )
    assert out.returncode != 0 and "RunLockedError" in out.stderr


def test_track_after_close_warns_once_and_drops(
    make_run: Any, caplog: pytest.LogCaptureFixture
) -> None:
    run = make_run()
    run.track(1.0, name="x")
    run.close()
    with caplog.at_level(logging.WARNING):
        run.track(2.0, name="x")
        run.track(3.0, name="x")
    assert sum("after close()" in r.getMessage() for r in caplog.records) == 1
    assert run.get_metric("x").values.values_list() == [1.0]


# -- item 7: property edits of runs read from the repo -----------------------------------------
def test_edits_of_read_runs_persist(repo_root: Path, make_run: Any) -> None:
    done = make_run()
    done.add_tag("keep")
    done.close()
    run = aim.Repo(repo_root).get_run(done.hash)
    run.name, run.description, run.experiment, run.archived = "n", "d", "e", True
    run.add_tag("t")
    assert run.remove_tag("keep")
    again = next(aim.Repo(repo_root).query_runs("run.archived == True").iter_runs()).run
    assert (again.name, again.description, again.experiment, again.archived, again.tags) == (
        "n",
        "d",
        "e",
        True,
        ["t"],
    )
    assert again.repo == aim.Repo(repo_root)
    with pytest.raises(ReadOnlyRunError):
        again["param"] = 1
    done.name = "closed-run-edit"  # a closed Run edits its sidecar the same way
    assert aim.Repo(repo_root).get_run(done.hash).name == "closed-run-edit"


def test_edit_goes_through_this_process_writer(repo_root: Path, make_run: Any) -> None:
    live = make_run()
    read = aim.Repo(repo_root).get_run(live.hash)
    read.name = "from-reader"
    read.add_tag("t")
    assert live.name == "from-reader" and live.tags == ["t"]


def test_edit_of_a_run_another_process_writes_names_it(repo_root: Path) -> None:
    code = (
        "import sys, time, aim_parquet as aim\n"
        f"run = aim.Run(repo={str(repo_root)!r}, system_tracking_interval=None, "
        "capture_terminal_logs=False)\n"
        "print(run.hash, flush=True)\n"
        "sys.stdin.readline()\n"
    )
    with subprocess.Popen(
        [PYTHON, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=python_env(),
    ) as proc:
        assert proc.stdout is not None and proc.stdin is not None
        try:
            run_hash = proc.stdout.readline().strip()
            run = aim.Repo(repo_root).get_run(run_hash)
            with pytest.raises(RunLockedError, match=f"process {proc.pid}"):
                run.name = "x"
            assert aim.Repo(repo_root).get_run(run_hash).name != "x"
        finally:
            proc.stdin.close()
            proc.wait(timeout=60)


# -- item 12: an Aim repository ----------------------------------------------------------------
@pytest.mark.parametrize("aim_file", ["run_metadata.sqlite", "meta", "VERSION"])
def test_aim_repository_is_refused_with_a_convert_hint(tmp_path: Path, aim_file: str) -> None:
    aim_dir = tmp_path / ".aim"
    aim_dir.mkdir()
    (aim_dir / aim_file).mkdir() if aim_file == "meta" else (aim_dir / aim_file).write_text("1.3")
    with pytest.raises(AimRepositoryError, match="aim-parquet convert aim"):
        aim.Repo(tmp_path)
    with pytest.raises(AimRepositoryError, match="does not write into it"):
        aim.Run(repo=tmp_path, **QUIET)
    assert sorted(p.name for p in aim_dir.iterdir()) == [aim_file]  # nothing of ours added
    out = subprocess.run(
        [
            PYTHON,
            "-c",
            f"import aim_parquet as aim; r = aim.Run(repo={str(tmp_path)!r}, "
            "system_tracking_interval=None, capture_terminal_logs=False); r.close()",
        ],
        capture_output=True,
        text=True,
        env={**python_env(), "AIM_PARQUET_ALLOW_AIM_REPO": "1"},
    )
    assert out.returncode == 0, out.stderr
    assert len(aim.Repo(tmp_path).list_all_runs()) == 1


# -- items 2, 3, 5, 10 ----------------------------------------------------------------------------
def test_identity_dtype_families_and_data_api(repo_root: Path, make_run: Any) -> None:
    run = make_run()
    for step in range(10):
        run.track(float(step), name="f", step=step, epoch=None if step % 2 else step)
        run.track(step, name="i", step=step)
    pixels = np.zeros((2, 2), dtype=np.uint8)
    run.track(aim.Image(pixels), name="one", step=0)
    run.track([aim.Image(pixels)] * 2, name="many", step=0)
    run.track([aim.Image(pixels)] * 3, name="many", step=1)
    run.close()
    repo = aim.Repo(repo_root)
    a, b = repo.get_run(run.hash), next(repo.query_runs().iter_runs()).run
    assert a == b and len({a, b}) == 1 and a.get_metric("f") == b.get_metric("f")
    assert len({a.get_metric("f"), b.get_metric("f"), a.get_metric("i")}) == 2
    names = {
        t: sorted(n for n, _c, _r in a.iter_sequence_info_by_type(t))
        for t in ("float", "int", "aim.image")
    }
    assert names == {"float": ["f", "i"], "int": ["f", "i"], "aim.image": ["many", "one"]}
    metric = a.get_metric("f")
    assert len(metric) == 10 and metric.values[2:5] == [2.0, 3.0, 4.0]
    with pytest.raises(TypeError, match="indexed by step"):
        metric.values["2"]
    steps, cols = metric.data.items_list()
    assert cols[1][0] == 0.0 and cols[1][1] != cols[1][1]  # NaN epoch, as Aim
    step, (value, epoch, _time) = next(iter(metric.data))
    assert (step, value, epoch) == (0, 0.0, 0.0)
    assert [s for s, _ in metric.data.items()] == steps
    assert metric.data.view("val").values_list() == [[float(s) for s in range(10)]]
    assert metric.data.sample(3).indices_list() == [0, 3, 6, 9]
    assert metric.data.range(2, 5).indices_list() == [2, 3, 4]
    with pytest.raises(ValueError, match="unknown column"):
        metric.data.view("nope")
    vals = metric.values.values_numpy()
    vals /= vals.max()  # writable, the cache is not touched
    assert metric.values.values_numpy()[-1] == 9.0
    assert a.get_image_sequence("many").record_length() == 3
    assert a.get_image_sequence("one").record_length() is None
