"""`run.repo` is a `Repo` however the run was made, through the hook `sdk/repo.py` plugs into
(`RunBase.use_repo_class`), with no import of `sdk.repo` from the run's modules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import aim_parquet as aim
from aim_parquet.sdk.run_base import RunBase
from tests.conftest import python_env


def _finished(make_run: Any) -> str:
    run = make_run()
    run.track(1.0, name="loss", step=0)
    run.close()
    return str(run.hash)


def test_a_user_made_run_has_the_shared_repo_of_its_path(make_run: Any, repo_root: Path) -> None:
    run = make_run()
    assert isinstance(run.repo, aim.Repo)
    assert run.repo is aim.Repo.from_path(repo_root)
    assert run.repo.root_path == str(repo_root.resolve())


def test_a_run_given_a_repo_instance_returns_that_instance(make_run: Any, repo_root: Path) -> None:
    repo = aim.Repo(repo_root, init=True)  # not the pooled one: identity shows it was kept
    assert repo is not aim.Repo.from_path(repo_root)
    writing = make_run(repo=repo)
    assert writing.repo is repo
    writing.close()
    assert aim.Run(writing.hash, repo=repo, read_only=True).repo is repo


def test_runs_a_repo_hands_out_have_that_repo(make_run: Any, repo_root: Path) -> None:
    run_hash = _finished(make_run)
    repo = aim.Repo(repo_root)
    got = repo.get_run(run_hash)
    assert got is not None and got.repo is repo
    (listed,) = list(repo.iter_runs())
    assert listed.repo is repo
    (from_runs,) = [c.run for c in repo.query_runs("run.hash != ''").iter_runs()]
    assert from_runs.repo is repo
    (metric,) = list(repo.query_metrics("metric.name == 'loss'"))
    assert metric.run.repo is repo
    assert all(isinstance(r.repo, aim.Repo) for r in (got, listed, from_runs, metric.run))


def test_run_repo_before_the_hook_is_plugged_in_is_a_clear_error(
    make_run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = make_run()
    monkeypatch.setattr(RunBase, "_repo_class", None)
    with pytest.raises(RuntimeError, match="internal error: no Repo class"):
        _ = run.repo


def test_run_repo_in_a_fresh_interpreter_importing_only_the_run_module(repo_root: Path) -> None:
    code = (
        "import sys\n"
        "from aim_parquet.sdk.run import Run\n"
        "run = Run(repo=sys.argv[1], system_tracking_interval=None, capture_terminal_logs=False)\n"
        "repo = run.repo\n"
        "run.close()\n"
        "print(type(repo).__module__, type(repo).__name__, repo.root_path)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(repo_root)],
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.split() == ["aim_parquet.sdk.repo", "Repo", str(repo_root.resolve())]
