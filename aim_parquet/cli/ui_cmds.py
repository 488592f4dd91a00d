"""`aim-parquet up`: serve the web UI of a repository (needs `pip install aim_parquet[ui]`)."""

from __future__ import annotations

import argparse
import secrets
import socket
import sys
from typing import Any
from urllib.parse import quote

from aim_parquet.cli.common import CliError, open_layout, repo_option

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 43800

DESCRIPTION = (
    "Serve a local web UI of the repository: the runs explorer (a table of runs with an AimQL "
    "search, archive, tags, edit, delete), the metrics explorer (curves grouped, aggregated "
    "and smoothed; active runs update live), a page per run (params, charts, system metrics, "
    "terminal logs, log records), the images, distributions, texts, audio and figures "
    "explorers, and the params (parallel coordinates) and scatter views. It binds to "
    "127.0.0.1 by default. With a "
    "non-loopback --host, every request must carry a token: pass --token TOKEN, or one is "
    "generated and printed in the URL. Ctrl-C or SIGTERM stops it."
)
EPILOG = """examples:
  aim-parquet up
  aim-parquet up --repo ~/experiments --port 8080
  aim-parquet up --host 0.0.0.0 --token s3cret          # reachable from other machines
  aim-parquet up --base-path /aim                        # behind a reverse proxy at /aim/

token rule: on 127.0.0.1/localhost no token is needed (and only requests naming localhost are
answered); on any other host a token is required: --token, or a generated one printed once.
Behind a reverse proxy that passes on its own public Host name, give --token on 127.0.0.1 too:
the token then guards every request instead of the localhost-name check."""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "up",
        help="serve the web UI (runs, metrics, run pages, objects, params, scatters)",
        description=DESCRIPTION,
        epilog=EPILOG,
        parents=[repo_option()],
    )
    p.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default 43800)")
    p.add_argument("--base-path", default="", metavar="/PREFIX", help="serve under this URL prefix")
    p.add_argument(
        "--token",
        default=None,
        help="require this token on every request (required off loopback, generated if absent; "
        "on loopback it replaces the localhost-name check, e.g. behind a reverse proxy)",
    )
    p.set_defaults(func=cmd_up)


WILDCARD_HOSTS = ("0.0.0.0", "::", "")
"""Binds to every address: the URL to open is localhost here, the machine's name elsewhere."""


def ui_url(host: str, port: int, base_path: str, token: str | None) -> str:
    shown = "localhost" if host in ("127.0.0.1", "localhost", *WILDCARD_HOSTS) else host
    if ":" in shown:
        shown = f"[{shown}]"
    query = f"?token={quote(token, safe='')}" if token else ""
    return f"http://{shown}:{port}{base_path}/{query}"


def cmd_up(args: argparse.Namespace) -> int:
    layout = open_layout(args)
    try:
        from aim_parquet.ui.security import is_loopback
        from aim_parquet.ui.server import bind, create_app, normalize_base_path, serve
    except ImportError as exc:
        raise CliError(
            f"the web UI needs its optional dependencies ({exc.name} is missing): "
            "pip install 'aim_parquet[ui]'"
        ) from None
    if not 0 <= args.port <= 65535:
        raise CliError(f"--port must be 0..65535, not {args.port}", code=2)
    try:
        base_path = normalize_base_path(args.base_path)
    except ValueError as exc:
        raise CliError(str(exc), code=2) from None
    loopback = is_loopback(args.host)
    token = args.token
    generated = False
    if not loopback and not token:
        token = secrets.token_urlsafe(24)
        generated = True
    # a token guards every request: the localhost-name check is then not needed (and would refuse
    # a reverse proxy that passes its public Host on)
    app = create_app(layout.root, base_path=base_path, token=token, check_host=token is None)
    sock = bind(args.host, args.port)
    port = sock.getsockname()[1]

    def announce() -> None:
        url = ui_url(args.host, port, base_path, token)
        sys.stdout.write(f"aim_parquet UI for {layout.root}\n  {url}\n")
        if args.host in WILDCARD_HOSTS:  # a browser cannot open http://0.0.0.0 (Chrome blocks it)
            there = ui_url(socket.gethostname(), port, base_path, token)
            sys.stdout.write(f"  {there}  (from other machines)\n")
        if generated:
            sys.stdout.write("  (a token was generated: requests without it are refused)\n")
        sys.stdout.write("Press Ctrl-C to stop.\n")
        sys.stdout.flush()

    serve(app, sock, on_ready=announce)
    return 0
