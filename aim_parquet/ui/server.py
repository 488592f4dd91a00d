"""The web UI's ASGI app (`create_app`) and the server that runs it (`serve`).

Pages (`/`, `/runs`, `/metrics`) are one small HTML shell naming the page's ES module; everything
they show comes from `/api/...` (`aim_parquet.ui.api`). Every URL a page uses is relative, so the
app works under `--base-path /prefix` and behind reverse proxies that strip or keep a prefix.
Static files are the package's `static/` folder, read into memory at start and served by exact
name, so no request can name a file outside it. `serve` binds the socket first (a busy port is a clear error), then runs
uvicorn, which stops cleanly on Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import re
import signal
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import FrameType
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from aim_parquet.storage.base.repo_files import open_repo
from aim_parquet.ui import api, plotly_asset
from aim_parquet.ui.api.errors import api_errors
from aim_parquet.ui.api.jsonout import error_response
from aim_parquet.ui.api.state import QUERY_TIME_S, UiState
from aim_parquet.ui.security import Guard

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
PAGES = {"": "runs", "runs": "runs", "metrics": "metrics"}
"""URL path (under the base path) -> page module `static/js/pages/<name>.js`."""
PAGES.update(
    {
        "images": "images",
        "distributions": "distributions",
        "texts": "texts",
        "audios": "audios",
        "figures": "figures",
        "params": "params",
        "scatters": "scatters",
    }
)
NESTED_PAGES = {"runs/{hash}": "run"}
"""Pages one folder deep: their shell gets `<base href="../">`, so relative URLs still work."""
DEFAULT_PORT = 43800


class StaticAssets:
    """The package's static files, read once into memory and served by exact name (a path that
    is not one of them, `..` included, is a 404: nothing outside `static/` can be named).

    Each answer has an ETag and `Cache-Control: no-cache`, so a browser revalidates (304) and an
    upgrade shows at once. Serving from memory keeps the page's first paint off the thread pool
    the data reads use.
    """

    TYPES = {
        ".js": "text/javascript; charset=utf-8",
        ".css": "text/css; charset=utf-8",
        ".svg": "image/svg+xml",
        ".html": "text/html; charset=utf-8",
        "": "text/plain; charset=utf-8",
    }

    def __init__(self, directory: Path) -> None:
        self.files: dict[str, tuple[bytes, str, str]] = {}
        for path in sorted(directory.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                body = path.read_bytes()
                etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
                media = self.TYPES.get(path.suffix, "application/octet-stream")
                self.files[path.relative_to(directory).as_posix()] = (body, media, etag)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        name = request.path_params.get("path", "")
        found = self.files.get(name)
        if found is None or request.method not in ("GET", "HEAD"):
            response: Response = error_response(404, "not_found", f"no static file {name!r}")
        else:
            body, media, etag = found
            headers = {"etag": etag, "cache-control": "no-cache"}
            if request.headers.get("if-none-match") == etag:
                response = Response(status_code=304, headers=headers)
            else:
                response = Response(body, media_type=media, headers=headers)
        await response(scope, receive, send)


def preload_links(page: str) -> str:
    """`<link rel="modulepreload">` for every module the page imports (read from its import
    lines), so the browser fetches them at once instead of one import level at a time."""
    seen: list[str] = []
    pending = [f"js/pages/{page}.js"]
    while pending:
        module = pending.pop()
        text = (STATIC_DIR / module).read_text(encoding="utf-8")
        for target in re.findall(r'^import\b[^;]*?from "([^"]+)";', text, flags=re.M):
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(module), target))
            if resolved not in seen:
                seen.append(resolved)
                pending.append(resolved)
    return "\n".join(f'<link rel="modulepreload" href="static/{m}">' for m in sorted(seen))


def normalize_base_path(base_path: str | None) -> str:
    """`prefix/`, `/prefix/` -> `/prefix`; `` and `/` -> `` (served at the root)."""
    text = (base_path or "").strip().strip("/")
    if any(part in ("", ".", "..") for part in text.split("/")) and text:
        raise ValueError(f"base path {base_path!r} is not a clean URL path such as /aim")
    return f"/{text}" if text else ""


def create_app(
    repo: str | os.PathLike[str] | None,
    *,
    base_path: str = "",
    token: str | None = None,
    check_host: bool = True,
    query_time_s: float = QUERY_TIME_S,
) -> UiApp:
    """The UI for the repository at `repo` (RepoNotFoundError when there is none)."""
    state = UiState(open_repo(repo), query_time_s=query_time_s)
    plotly = plotly_asset.PlotlyAsset()
    shell = (STATIC_DIR / "page.html").read_text(encoding="utf-8")
    pages = {
        name: shell.replace("{{page}}", name)
        .replace("{{preload}}", preload_links(name))
        .replace("{{base}}", '<base href="../">' if name in NESTED_PAGES.values() else "")
        for name in {*PAGES.values(), *NESTED_PAGES.values()}
    }

    def page(name: str) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return HTMLResponse(pages[name], headers={"cache-control": "no-cache"})

        return endpoint

    @api_errors
    async def info(request: Request) -> Response:
        from aim_parquet.ui.api.jsonout import JsonResponse
        from aim_parquet.version import __version__

        return JsonResponse(
            {
                "version": __version__,
                "repo": str(state.layout.root),
                "pages": sorted(PAGES),
                "plotly": plotly_asset.plotly_js_path() is not None,
                "plotly_style_ids": await state.call(plotly.style_ids)
                if request.query_params.get("plotly")
                else [],
            }
        )

    async def not_found(request: Request, exc: Exception) -> Response:
        return error_response(404, "not_found", f"no such page or endpoint: {request.url.path}")

    routes: list[Any] = [
        *(Route(f"/{path}", page(name)) for path, name in PAGES.items()),
        *(Route(f"/{path}", page(name)) for path, name in NESTED_PAGES.items()),
        Route("/api/info", info, methods=["GET"]),
        Route("/vendor/plotly/plotly.min.js", plotly.endpoint, methods=["GET"]),
        Route("/vendor/plotly/styles.css", plotly.styles, methods=["GET"]),
        *api.routes(state),
        Route("/static/{path:path}", StaticAssets(STATIC_DIR), methods=["GET", "HEAD"]),
    ]
    app: ASGIApp = Starlette(routes=routes, exception_handlers={404: not_found})
    prefix = normalize_base_path(base_path)
    if prefix:

        async def to_prefix(request: Request) -> Response:
            return RedirectResponse(prefix + "/")

        async def add_slash(request: Request) -> Response:
            # relative ("aim/" from "/aim"): the browser stays on the proxy's host and scheme
            # (Starlette's own slash redirect names the Host the proxy sent, i.e. this server)
            query = f"?{request.url.query}" if request.url.query else ""
            return RedirectResponse(prefix.rsplit("/", 1)[-1] + "/" + query)

        app = Starlette(
            routes=[Route("/", to_prefix), Route(prefix, add_slash), Mount(prefix, app=app)]
        )
    return UiApp(app, state, token=token, check_host=check_host)


class UiApp(Guard):
    """The guarded app of one repository; `stop()` (called by `serve` when a stop is asked)
    makes the reads in flight end at once, answered 503, instead of being cut off."""

    def __init__(self, app: ASGIApp, state: UiState, *, token: str | None, check_host: bool):
        super().__init__(app, token=token, check_host=check_host)
        self.state = state

    def stop(self) -> None:
        self.state.stopping.set()


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port); OSError says what is wrong (e.g. the port is busy)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # accepted connections inherit it: without, a response written in two parts (headers,
        # body) waits ~40 ms for the client's delayed ACK (Nagle)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise OSError(
            exc.errno, f"cannot listen on {host}:{port} ({exc.strerror}); pass another --port"
        ) from None
    sock.set_inheritable(True)
    return sock


def serve(
    app: ASGIApp,
    sock: socket.socket,
    *,
    on_ready: Callable[[], None] | None = None,
    log_level: str = "warning",
) -> None:
    """Serve `app` on the bound `sock` until Ctrl-C or SIGTERM (then return normally); a
    `UiApp` is told at once, so its reads in flight end with a 503 within the grace period."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if isinstance(app, UiApp):
                app.stop()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=3,
        server_header=False,
    )
    server = Server(config)
    if on_ready is not None:
        on_ready()
    # uvicorn shuts down gracefully on SIGINT/SIGTERM and then re-raises the signal to the
    # handler it found; a no-op one makes a requested stop a normal return (exit status 0).
    previous = {sig: signal.signal(sig, _stopped) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stopped(signum: int, frame: FrameType | None) -> None:
    """The signal handler in force while uvicorn serves (it handles the stop itself)."""
