"""The server's behaviour under load and in a notebook: a slow query does not block other
requests; `%load_ext aim_parquet` / `%aim_parquet up` serve the UI from a real IPython shell;
`import aim_parquet` imports no web or notebook package."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from aim_parquet.ui.api.state import UiState
from aim_parquet.ui.server import bind, create_app
from tests.conftest import PYTHON, python_env
from tests.ui.test_api import free_port


@pytest.fixture
def threaded_server(ui_repo: Path) -> Iterator[str]:
    import uvicorn

    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(ui_repo), log_level="error", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        with httpx.Client(base_url=f"http://localhost:{port}", timeout=10) as http:
            for _ in range(200):  # poll until it answers
                try:
                    http.get("/api/info")
                    break
                except httpx.TransportError:
                    threading.Event().wait(0.05)
        yield f"http://localhost:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_a_slow_query_does_not_block_other_requests(
    threaded_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, release = threading.Event(), threading.Event()
    original = UiState.matches

    def slow_matches(self: UiState, plan: Any) -> Any:
        if "slow" in plan.text:
            entered.set()
            assert release.wait(20), "the test never released the slow query"
        return original(self, plan)

    monkeypatch.setattr(UiState, "matches", slow_matches)
    result: dict[str, Any] = {}

    def slow_request() -> None:
        with httpx.Client(base_url=threaded_server, timeout=30) as http:
            result["slow"] = http.get("/api/runs", params={"q": "run.name != 'slow'"})

    worker = threading.Thread(target=slow_request)
    worker.start()
    try:
        assert entered.wait(20)
        with httpx.Client(base_url=threaded_server, timeout=10) as http:
            assert http.get("/api/runs").json()["count"] == 4  # answered while the slow one waits
            assert http.get("/metrics").status_code == 200
        assert "slow" not in result
    finally:
        release.set()
        worker.join(30)
    assert result["slow"].status_code == 200


NOTEBOOK = """
import sys, urllib.request
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
shell.run_line_magic("load_ext", "aim_parquet")
frame = shell.run_line_magic("aim_parquet", f"up --repo {sys.argv[1]} --port {sys.argv[2]}")
print(type(frame).__name__, frame.src)
with urllib.request.urlopen(frame.src + "api/runs") as response:
    print("runs", response.status, len(response.read()) > 0)
again = shell.run_line_magic("aim_parquet", f"up --repo {sys.argv[1]} --port {sys.argv[2]}")
print("same", again.src == frame.src)
shell.run_line_magic("aim_parquet", "down")
try:
    urllib.request.urlopen(frame.src + "api/info", timeout=2)
    print("still up")
except OSError:
    print("stopped")
"""


def test_jupyter_magic_starts_shows_and_stops_the_ui(ui_repo: Path) -> None:
    pytest.importorskip("IPython")
    port = free_port()
    out = subprocess.run(
        [PYTHON, "-c", NOTEBOOK, str(ui_repo), str(port)],
        capture_output=True,
        text=True,
        timeout=120,
        env=python_env(),
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == f"IFrame http://localhost:{port}/"
    assert lines[1:] == ["runs 200 True", "same True", "stopped"]


def test_importing_aim_parquet_imports_no_web_or_notebook_package() -> None:
    code = (
        "import sys, aim_parquet, aim_parquet.ui\n"
        "bad = [m for m in ('starlette', 'uvicorn', 'IPython', 'anyio') if m in sys.modules]\n"
        "assert not bad, bad\nprint('ok')"
    )
    out = subprocess.run(
        [PYTHON, "-c", code], capture_output=True, text=True, timeout=60, env=python_env()
    )
    assert out.stdout.strip() == "ok", out.stderr
