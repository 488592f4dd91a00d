"""A local S3-compatible server on 127.0.0.1 for the object-storage tests.

moto's server mode speaks the S3 HTTP API (it is what `moto_server` runs); no S3 server product
installs from the package registries here, so it stands in for S3, GCS's S3 API or MinIO: the
client path under test (pyarrow's S3 filesystem, polars' object_store, DuckDB over pyarrow) is
the real one. A gate in front of it can hold a write request, which lets a test kill the
exporting process at a chosen point of its upload.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server

Predicate = Callable[[str], bool]  # request path -> hold this write?


class GatedApp:
    """WSGI middleware: a write (PUT/POST) the predicate picks is held until `release()`, then
    answered 503 without reaching the store (its client was killed meanwhile)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.writes: list[str] = []
        self.hold: Predicate | None = None
        self.held = threading.Event()
        self._release = threading.Event()

    def arm(self, hold: Predicate) -> None:
        self.held.clear()
        self._release.clear()
        self.hold = hold

    def release(self) -> None:
        self.hold = None
        self._release.set()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ["REQUEST_METHOD"] in ("PUT", "POST"):
            path = environ["PATH_INFO"]
            with self.lock:
                self.writes.append(path)
                hold = self.hold is not None and self.hold(path)
            if hold:
                self.held.set()
                self._release.wait(120)
                start_response("503 Service Unavailable", [("Content-Length", "0")])
                return [b""]
        return self.app(environ, start_response)  # type: ignore[no-any-return]


class S3Server:
    def __init__(self) -> None:
        self.gate = GatedApp(DomainDispatcherApplication(create_backend_app))
        self.server = make_server(
            "127.0.0.1", 0, self.gate, threaded=True, request_handler=MotoRequestHandler
        )
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.gate.release()
        self.server.shutdown()
        self.thread.join(10)
        self.server.server_close()
