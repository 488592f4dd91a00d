"""Fixtures for the web UI tests: a real repository with varied runs, and `aim-parquet up`
started as a user starts it (a real process on a free port, stopped with SIGTERM)."""

from __future__ import annotations

import math
import re
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PYTHON, python_env

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

START_TIMEOUT_S = 30


def quiet_run(repo: Path, **kwargs: Any) -> Any:
    import aim_parquet as aim

    return aim.Run(repo=repo, system_tracking_interval=None, capture_terminal_logs=False, **kwargs)


def make_ui_repo(root: Path) -> Path:
    """Four finished runs: train/val loss with epochs, an accuracy, a run with NaN/inf values
    and non-ASCII names, and an archived run."""
    for i in range(3):
        run = quiet_run(root, experiment="baseline" if i < 2 else "wide")
        run["hparams"] = {"lr": [0.1, 0.01, 0.001][i], "batch_size": 32 * (i + 1)}
        for step in range(200):
            loss = 2.0 * math.exp(-step / (50 + 20 * i))
            run.track(loss, name="loss", step=step, epoch=step // 50, context={"subset": "train"})
            if step % 10 == 0:
                run.track(loss * 1.1, name="loss", step=step, context={"subset": "val"})
        run.track(0.5 + 0.1 * i, name="accuracy", step=199)
        run.close()
    run = quiet_run(root, experiment="ünïcode 実験")
    run.name = "Лосс 損失 run"
    run["hparams"] = {"lr": float("nan"), "note": "größe"}
    for step, value in enumerate([1.0, float("nan"), 0.5, float("inf"), 0.25, -float("inf"), 0.1]):
        run.track(value, name="損失", step=step, context={"sub set": "ß"})
    run.close()
    run = quiet_run(root, experiment="old")
    run.track(1.0, name="loss", step=0, context={"subset": "train"})
    run.archived = True
    run.close()
    return root


@pytest.fixture(scope="module")
def ui_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_ui_repo(tmp_path_factory.mktemp("ui-repo"))


@dataclass
class UiServer:
    url: str
    port: int
    process: subprocess.Popen[str]
    first_lines: list[str]


def start_server(repo: Path, *extra: str) -> UiServer:
    """`python -m aim_parquet up --repo REPO --port 0 EXTRA...`; returns once it printed its URL."""
    proc = subprocess.Popen(
        [PYTHON, "-m", "aim_parquet", "up", "--repo", str(repo), "--port", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=python_env(),
    )
    lines: list[str] = []
    assert proc.stdout is not None
    for _ in range(5):  # the banner: repo line, URL line, (token note), "Press Ctrl-C"
        line = proc.stdout.readline()
        if not line:
            _, err = proc.communicate(timeout=START_TIMEOUT_S)
            raise AssertionError(f"aim-parquet up exited early ({proc.returncode}): {err}")
        lines.append(line.rstrip("\n"))
        if line.startswith("Press Ctrl-C"):
            break
    url_line = next(line.strip() for line in lines if line.strip().startswith("http://"))
    match = re.match(r"http://[^:/]+:(\d+)", url_line)
    assert match, lines
    return UiServer(url_line, int(match.group(1)), proc, lines)


def stop_server(server: UiServer) -> tuple[int, str]:
    """SIGTERM, as a service manager stops it: (exit status, what it wrote on stderr)."""
    proc = server.process
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=START_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return proc.returncode, err


@pytest.fixture(scope="module")
def ui_server(ui_repo: Path) -> Iterator[UiServer]:
    server = start_server(ui_repo)
    yield server
    code, err = stop_server(server)
    assert code == 0, err
