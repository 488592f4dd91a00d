"""System params: what ``Run(log_system_params=True)`` stores under ``run["__system_params"]``.

The keys match Aim 3.x: ``packages``, ``env_variables``, ``git_info`` (only inside a git checkout),
``executable`` and ``arguments``. Collecting them never raises for a missing or broken ``git``.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from typing import Any

__all__ = ["SECRET_NAME_PARTS", "collect_system_params", "is_secret_variable"]

logger = logging.getLogger(__name__)

# An environment variable whose name contains one of these (any case) is never stored.
# Aim drops secret/key/token/password; the rest catch common spellings of the same thing.
SECRET_NAME_PARTS = (
    "secret",
    "key",
    "token",
    "password",
    "passwd",
    "credential",
    "auth",
    "private",
    "cookie",
    "dsn",
)

# A value that is a URL with a password in it (postgres://user:pw@host/db) is never stored either.
_URL_WITH_PASSWORD_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]*:[^/\s@]*@")
# user:password@ (or token@) part of a remote URL.
_URL_USERINFO_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://)[^/@]*@")
_PROJECT_NAME_RE = re.compile(r"[^A-Za-z0-9.]+")

_GIT_TIMEOUT_S = 2.0


def collect_system_params(*, cwd: str | None = None) -> dict[str, Any]:
    """Describe the environment of this process; ``git_info`` describes the checkout at ``cwd``."""
    params: dict[str, Any] = {
        "packages": collect_packages(),
        "env_variables": collect_env_variables(),
    }
    git_info = collect_git_info(cwd=cwd)
    if git_info is not None:
        params["git_info"] = git_info
    params["executable"] = sys.executable
    params["arguments"] = list(sys.argv)
    return params


def collect_packages() -> dict[str, str]:
    """Installed distributions as ``{key: version}``, sorted by key.

    Keys are normalised the way Aim's ``pkg_resources`` keys were (lower case, runs of characters
    other than letters, digits and ``.`` replaced by ``-``). Where a name is installed twice the
    one found first on ``sys.path`` wins, as for ``import``.
    """
    import importlib.metadata  # 10-15 ms, paid only where a run records its packages

    packages: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        try:
            name = dist.metadata["Name"]
            version = dist.version
        except Exception as exc:  # a broken .dist-info must not break the run
            logger.debug("skipping an unreadable distribution (%r)", exc)
            continue
        if not name or version is None:
            continue
        key = _PROJECT_NAME_RE.sub("-", name).lower()
        packages.setdefault(key, str(version))
    return dict(sorted(packages.items()))


def is_secret_variable(name: str, value: str = "") -> bool:
    """True if an environment variable must not be stored (by its name, or a password in a URL)."""
    lowered = name.lower()
    if any(part in lowered for part in SECRET_NAME_PARTS):
        return True
    return bool(_URL_WITH_PASSWORD_RE.search(value))


def collect_env_variables() -> dict[str, str]:
    """``os.environ`` without the variables :func:`is_secret_variable` flags."""
    return {
        name: value
        for name, value in sorted(os.environ.items())
        if not is_secret_variable(name, value)
    }


def collect_git_info(*, cwd: str | None = None) -> dict[str, Any] | None:
    """``{branch, remote_origin_url, commit: {hash, timestamp, author}}``, or None outside git.

    Unknown parts are ``None`` (no remote, no commit yet). The ``timestamp`` is the commit's author
    time in Unix seconds and ``author`` its e-mail, as in Aim; credentials in the remote URL are
    removed.
    """
    if _git(["rev-parse", "--is-inside-work-tree"], cwd) != "true":
        return None
    branch = _git(["rev-parse", "--abbrev-ref", "HEAD"], cwd)
    if branch is None:  # a repository without commits yet
        branch = _git(["symbolic-ref", "--short", "-q", "HEAD"], cwd)
    remote = _git(["config", "--get", "remote.origin.url"], cwd)
    commit: dict[str, Any] | None = None
    log = _git(["log", "-1", "--format=%H%x00%at%x00%ae"], cwd)
    if log:
        parts = log.split("\x00")
        if len(parts) == 3:
            commit_hash, timestamp, author = parts
            commit = {
                "hash": commit_hash,
                "timestamp": int(timestamp) if timestamp.isdigit() else None,
                "author": author,
            }
    return {
        "branch": branch,
        "remote_origin_url": _URL_USERINFO_RE.sub(r"\1", remote) if remote else None,
        "commit": commit,
    }


def _git(args: list[str], cwd: str | None) -> str | None:
    """Output of ``git <args>`` (stripped), or None when git fails, is missing or is too slow."""
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0", LC_ALL="C")
    try:
        completed = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=_GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        logger.debug("git %s failed (%r)", " ".join(args), exc)
        return None
    if completed.returncode != 0:
        return None
    return completed.stdout.strip()
