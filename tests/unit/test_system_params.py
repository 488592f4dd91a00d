"""collect_system_params: packages, secret-free environment, git info, executable, arguments."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aim_parquet.system.params import collect_system_params, is_secret_variable

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


@pytest.fixture
def outside_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory git will not search above (in case the temp dir sits inside a checkout)."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    plain = tmp_path / "plain"
    plain.mkdir()
    return plain


def git(cwd: Path, *args: str) -> str:
    env = dict(
        os.environ,
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME="Ada",
        GIT_AUTHOR_EMAIL="ada@example.com",
        GIT_COMMITTER_NAME="Ada",
        GIT_COMMITTER_EMAIL="ada@example.com",
        GIT_AUTHOR_DATE="1700000000 +0000",
        GIT_COMMITTER_DATE="1700000000 +0000",
    )
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True, timeout=60
    )
    return done.stdout.strip()


def make_repo(path: Path, *, commit: bool) -> None:
    path.mkdir()
    git(path, "init", "-q")
    git(path, "symbolic-ref", "HEAD", "refs/heads/trunk")
    if commit:
        (path / "train.py").write_text("print('hi')\n", encoding="utf-8")
        git(path, "add", "train.py")
        git(path, "commit", "-q", "-m", "first")


def test_secret_environment_variables_are_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    dropped = {
        "MY_API_KEY": "k",
        "db_password": "p",
        "GITHUB_TOKEN": "t",
        "Secret_x": "s",
        "AWS_CREDENTIALS": "c",
        "MYSQL_PASSWD": "p",
        "HF_AUTH": "a",
        "SSH_PRIVATE": "x",
        "DATABASE_URL": "postgres://user:hunter2@db.example.com/prod",
    }
    kept = {"HARMLESS_SETTING": "1", "HTTP_PROXY": "http://proxy.example.com:3128"}
    for name, value in {**dropped, **kept}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PATH", os.environ.get("PATH", "/usr/bin"))

    env = collect_system_params()["env_variables"]
    assert not set(dropped) & set(env)
    assert {name: env[name] for name in kept} == kept
    assert env["PATH"] == os.environ["PATH"]
    assert list(env) == sorted(env)


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("OPENAI_API_KEY", True),
        ("aws_secret_access_key", True),
        ("WANDB_Token", True),
        ("PGPASSWORD", True),
        ("GOOGLE_APPLICATION_CREDENTIALS", True),
        ("HOME", False),
        ("CUDA_VISIBLE_DEVICES", False),
        ("PWD", False),
    ],
)
def test_is_secret_variable_by_name(name: str, secret: bool) -> None:
    assert is_secret_variable(name, "value") is secret


def test_packages_are_sorted_with_versions() -> None:
    packages = collect_system_params()["packages"]
    assert packages["pytest"] == importlib.metadata.version("pytest")
    assert packages["psutil"] == importlib.metadata.version("psutil")
    assert list(packages) == sorted(packages)
    assert all(key == key.lower() and "_" not in key for key in packages)


def test_executable_arguments_and_json_round_trip(outside_git: Path) -> None:
    result = collect_system_params(cwd=str(outside_git))
    assert result["executable"] == sys.executable
    assert result["arguments"] == sys.argv
    assert result["arguments"] is not sys.argv
    assert json.loads(json.dumps(result)) == result
    assert set(result) == {"packages", "env_variables", "executable", "arguments"}


@needs_git
def test_git_info_in_a_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    repo = tmp_path / "repo"
    make_repo(repo, commit=True)
    git(repo, "remote", "add", "origin", "https://user:ghp_secret@example.com/team/model.git")
    head = git(repo, "rev-parse", "HEAD")
    (repo / "sub").mkdir()

    info = collect_system_params(cwd=str(repo / "sub"))["git_info"]
    assert info == {
        "branch": "trunk",
        "remote_origin_url": "https://example.com/team/model.git",
        "commit": {"hash": head, "timestamp": 1700000000, "author": "ada@example.com"},
    }


@needs_git
def test_git_info_without_commits_or_remote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    repo = tmp_path / "fresh"
    make_repo(repo, commit=False)
    info = collect_system_params(cwd=str(repo))["git_info"]
    assert info == {"branch": "trunk", "remote_origin_url": None, "commit": None}


@needs_git
def test_git_info_absent_outside_a_repository(outside_git: Path) -> None:
    assert "git_info" not in collect_system_params(cwd=str(outside_git))


def test_git_info_absent_when_git_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no git executable on the PATH
    assert "git_info" not in collect_system_params(cwd=str(tmp_path))


def test_git_info_absent_when_git_hangs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []

    def too_slow(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs.get("timeout"))
        raise subprocess.TimeoutExpired(cmd="git", timeout=kwargs.get("timeout", 0))

    monkeypatch.setattr(subprocess, "run", too_slow)
    assert "git_info" not in collect_system_params(cwd=str(tmp_path))
    assert calls and all(timeout is not None and timeout <= 5 for timeout in calls)


def test_git_info_absent_for_a_missing_directory(tmp_path: Path) -> None:
    assert "git_info" not in collect_system_params(cwd=str(tmp_path / "does-not-exist"))
