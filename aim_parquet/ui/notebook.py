"""`%load_ext aim_parquet` then `%aim_parquet up [--repo DIR] [--port N] ...`: the UI in a notebook.

The magic starts `aim-parquet up` as a background process (one per repository and port, reused by
later calls), waits until it printed its URL and answers there, and shows it inline in an
iframe (a port taken by another program is the server's error, not someone else's page).
`%aim_parquet down` stops the servers it started. IPython is imported only here, when the magic runs.
"""

from __future__ import annotations

import atexit
import shlex
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from typing import IO, Any

DEFAULT_PORT = 43800
START_TIMEOUT_S = 30.0
FRAME_HEIGHT = 800

_servers: dict[tuple[str, int], _Server] = {}
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
    """Start (or reuse) `aim-parquet up ARGS` in the background; its URL once it answers.

    The URL is the one the server printed (its repository, base path and token), so another
    program already on the port is an error (the server's own message), never a page of some
    other repository. The server's output goes to files, never to a pipe nobody reads (a
    full pipe would stop the server at its next log line).
    """
    port = int(_option(args, "--port", str(DEFAULT_PORT)))
    repo = _option(args, "--repo", ".")
    global _cleanup_registered
    if not _cleanup_registered:
        atexit.register(stop_all)  # the servers end with the kernel
        _cleanup_registered = True
    key = (repo, port)
    running = _servers.get(key)
    if running is not None and running.process.poll() is None and running.url:
        return running.url
    stop(key)
    if "--port" not in " ".join(args):
        args = [*args, "--port", str(port)]
    # closed by stop(): they live as long as the server does
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "aim_parquet", "up", *args],
        stdin=subprocess.DEVNULL,
        stdout=out,
        stderr=err,
    )
    server = _Server(proc, out, err)
    _servers[key] = server
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            message = server.output(err)
            stop(key)
            raise RuntimeError(f"aim-parquet up exited with status {proc.returncode}: {message}")
        url = server.url or server.printed_url()
        if url and _answers(url):
            return url
        if time.monotonic() > deadline:
            stop(key)
            raise TimeoutError(f"aim-parquet up did not answer within {START_TIMEOUT_S:g} s")
        time.sleep(0.1)


class _Server:
    """A server this process started: its process, output files and printed URL."""

    def __init__(self, process: subprocess.Popen[bytes], out: IO[bytes], err: IO[bytes]):
        self.process, self.out, self.err = process, out, err
        self.url: str | None = None

    def output(self, file: IO[bytes]) -> str:
        file.seek(0)
        return file.read().decode(errors="replace").strip()

    def printed_url(self) -> str | None:
        """The URL line of the banner `aim-parquet up` prints once it listens."""
        for line in self.output(self.out).splitlines():
            if line.strip().startswith("http://"):
                self.url = line.split()[0]  # the first: the one to open on this machine
                break
        return self.url


def _answers(url: str) -> bool:
    """Whether the server at `url` answers `api/info` (with the URL's token, if any)."""
    parts = urllib.parse.urlsplit(url)
    token = dict(urllib.parse.parse_qsl(parts.query)).get("token")
    info = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path + "api/info", "", ""))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(info, headers=headers), timeout=1):
            return True
    except OSError:
        return False


def show(url: str) -> Any:
    """The UI inline (an IFrame when IPython's display is there, else the URL)."""
    try:
        from IPython.display import IFrame
    except ImportError:
        return url
    return IFrame(url, width="100%", height=FRAME_HEIGHT)


def stop_all() -> None:
    """Stop every server this process started (SIGTERM, then wait)."""
    for key in list(_servers):
        stop(key)


def stop(key: tuple[str, int]) -> None:
    server = _servers.pop(key, None)
    if server is None:
        return
    proc = server.process
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    server.out.close()
    server.err.close()
