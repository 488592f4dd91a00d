"""The docs stay true to the code: every CLI command is in the README, every make target the
README names exists, and the README's quick start is exactly the two documented commands."""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path

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
