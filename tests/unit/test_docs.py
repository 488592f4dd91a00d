"""The docs stay true to the code: every CLI command is in the README, every make target the
README names exists, the README's quick start is exactly the two documented commands, and
FORMAT.md's sentence on the locks compaction takes is what the compactor does."""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from aim_parquet.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _commands(parser: argparse.ArgumentParser, prefix: str) -> list[str]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out.append(f"{prefix} {name}")
                out.extend(_commands(sub, f"{prefix} {name}"))
    return out


def test_every_cli_command_is_documented_in_the_readme() -> None:
    commands = _commands(build_parser(), "aim-parquet")
    assert len(commands) >= 15
    flat = README.replace("\\|", "|")
    for command in commands:
        head, _, last = command.rpartition(" ")
        pattern = re.escape(head) + r" (\S*\|)?" + re.escape(last) + r"\b"
        assert re.search(pattern, flat), f"{command!r} is not in README.md"


def test_quick_start_is_make_demo_and_make_test() -> None:
    block = README.split("## Quick start", 1)[1].split("```", 2)[1]
    lines = [ln.split("#")[0].strip() for ln in block.strip().splitlines()[1:]]
    assert lines == ["make demo", "make test"]


def test_make_targets_named_in_readme_exist() -> None:
    out = subprocess.run(
        ["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    targets = set(re.findall(r"make (\S+)", out.stdout))
    for target in set(re.findall(r"`make ([a-z-]+)", README)):
        assert target in targets, target


def test_ci_runs_the_readme_test_command() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text()


FORMAT = (ROOT / "FORMAT.md").read_text()
COMPACTION_TAKES_NO_WRITE_LOCK = (
    "5. Compaction (holding `compact.lock`, not the write lock, so a writer may resume meanwhile:"
)


def test_format_md_says_compaction_takes_no_write_lock_and_the_compactor_agrees(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writer rule 5 is pinned, and checked against the compactor: at each of its steps the
    run's write lock can be taken (a resume would go on at once)."""
    assert COMPACTION_TAKES_NO_WRITE_LOCK in FORMAT
    assert (
        "nor does `compact` while it compacts (a resume\n  during them goes on at once)" in FORMAT
    )
    import aim_parquet as aim
    from aim_parquet.format.paths import RepoLayout
    from aim_parquet.storage.base.lock import RunLock
    from aim_parquet.storage.compaction import compactor

    run = aim.Run(repo=str(tmp_path), system_tracking_interval=None, capture_terminal_logs=False)
    for i in range(10):
        run.track(float(i), name="loss", step=i)
    run.close()
    layout = RepoLayout(tmp_path)
    takeable: list[str] = []

    def probe(step: str, real: Any) -> Any:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            lock = RunLock(layout.lock_file(run.hash), run.hash)
            lock.acquire()  # RunLockedError if the compactor held it
            lock.release()
            takeable.append(step)
            return real(*args, **kwargs)

        return wrapped

    for step in ("_catch_up_catalogue", "plan_run", "write_kind", "remove_file"):
        monkeypatch.setattr(compactor, step, probe(step, getattr(compactor, step)))
    assert compactor.compact_run(layout, run.hash, rewrite_all=True).status == "compacted"
    assert {"_catch_up_catalogue", "plan_run", "write_kind", "remove_file"} <= set(takeable)
