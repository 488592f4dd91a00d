"""Threads of a fresh process that use different public names first, at the same time, each
get them; the subpackages are attributes after a plain `import aim_parquet`. (A lazy top-level
import, tried and withdrawn in issue #17's work, failed both: the SDK's modules import each
other, so two threads importing them at once saw each other's half initialized, and a fork
in the middle of such an import hung the child.)"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import PYTHON, python_env

THREADS_FIRST_USE = """
import sys
import threading
import aim_parquet as aim

names = sys.argv[2].split(",")
barrier = threading.Barrier(len(names))
errors = []


def touch(name):
    barrier.wait()
    try:
        value = getattr(aim, name)
        if name == "Run":
            with value(repo=sys.argv[1], system_tracking_interval=None,
                       capture_terminal_logs=False) as run:
                run.track(1.0, name="loss")
            assert type(run.repo).__name__ == "Repo"
    except BaseException as exc:
        errors.append(f"{name}: {type(exc).__name__}: {exc}")


threads = [threading.Thread(target=touch, args=(name,)) for name in names]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
assert not errors, errors
print("ok")
"""


def test_threads_using_aim_run_and_aim_repo_first_at_once(tmp_path: Path) -> None:
    """Two threads of a fresh process, `aim.Run` in one and `aim.Repo` in the other (a training
    thread and a reader): with the SDK imported lazily this failed every time with ImportError
    (partially initialized module) or _DeadlockError."""
    for k, names in enumerate(
        ["Run,Repo", "Repo,Run", "Run,Repo,Metric,Context,Texts,read_dataset,Image,Figures"]
    ):
        out = subprocess.run(
            [PYTHON, "-c", THREADS_FIRST_USE, str(tmp_path / f"repo{k}"), names],
            capture_output=True,
            text=True,
            env=python_env(),
            timeout=120,
        )
        assert out.returncode == 0 and out.stdout.strip() == "ok", (names, out.stderr[-2000:])


SUBPACKAGES = """
import aim_parquet as aim
assert aim.sdk.Run is aim.Run and aim.sdk.repo.Repo is aim.Repo
assert aim.objects.Image is aim.Image and aim.format.paths.RepoLayout is not None
assert aim.storage is not None and aim.query is not None and aim.system is not None
assert not {"os", "threading"} & set(dir(aim)), dir(aim)
print("ok")
"""


def test_the_subpackages_are_attributes_after_a_plain_import() -> None:
    """`aim.sdk.Run`, `aim.objects.Image`, ... resolve after a plain `import aim_parquet` (the
    lazy import gave AttributeError)."""
    out = subprocess.run(
        [PYTHON, "-c", SUBPACKAGES], capture_output=True, text=True, env=python_env(), timeout=120
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
