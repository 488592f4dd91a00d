"""`%load_ext aim_parquet` then `%aim_parquet up [--repo DIR] [--port N] ...`: the UI in a notebook.

The magic starts `aim-parquet up` as a background process (one per repository and port, reused by
later calls), waits until it answers, and shows it inline in an iframe. `%aim_parquet down`
stops the servers it started. IPython is imported only here, when the magic runs.
"""

from __future__ import annotations

import atexit
import shlex
import subprocess
import sys
import time
import urllib.request
from typing import Any

DEFAULT_PORT = 43800
START_TIMEOUT_S = 30.0
FRAME_HEIGHT = 800

_servers: dict[tuple[str, int], subprocess.Popen[bytes]] = {}
_cleanup_registered = False


def load_ipython_extension(ipython: Any) -> None:
    """Register the `%aim_parquet` line magic (what `%load_ext aim_parquet` calls)."""
    ipython.register_magic_function(aim_parquet_magic, magic_kind="line", magic_name="aim_parquet")


def aim_parquet_magic(line: str) -> Any:
    """`%aim_parquet up [aim-parquet up options]` or `%aim_parquet down`."""
    args = shlex.split(line)
    if not args or args[0] not in ("up", "down"):
        raise ValueError("usage: %aim_parquet up [--repo DIR] [--port N] | %aim_parquet down")
    if args[0] == "down":
        stop_all()
        return None
    url = start(args[1:])
    return show(url)


def _option(args: list[str], name: str, default: str) -> str:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return default


def start(args: list[str]) -> str:
    """Start (or reuse) `aim-parquet up ARGS` in the background; its URL once it answers."""
    port = int(_option(args, "--port", str(DEFAULT_PORT)))
    repo = _option(args, "--repo", ".")
    base = _option(args, "--base-path", "").strip("/")
    url = f"http://localhost:{port}/{base + '/' if base else ''}"
    global _cleanup_registered
    if not _cleanup_registered:
        atexit.register(stop_all)  # the servers end with the kernel
        _cleanup_registered = True
    key = (repo, port)
    proc = _servers.get(key)
    if proc is None or proc.poll() is not None:
        if "--port" not in " ".join(args):
            args = [*args, "--port", str(port)]
        proc = subprocess.Popen(
            [sys.executable, "-m", "aim_parquet", "up", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _servers[key] = proc
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"aim-parquet up exited with status {proc.returncode}: {err}")
        try:
            with urllib.request.urlopen(url + "api/info", timeout=1):
                return url
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"aim-parquet up did not answer at {url} within 30 s") from None
            time.sleep(0.1)


def show(url: str) -> Any:
    """The UI inline (an IFrame when IPython's display is there, else the URL)."""
    try:
        from IPython.display import IFrame
    except ImportError:
        return url
    return IFrame(url, width="100%", height=FRAME_HEIGHT)


def stop_all() -> None:
    """Stop every server this process started (SIGTERM, then wait)."""
    for key, proc in list(_servers.items()):
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        _servers.pop(key, None)
