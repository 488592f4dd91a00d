"""A small real reverse proxy on 127.0.0.1 for the UI tests, in a thread, in the two ways
proxies are configured: `rewrite` sends the backend's own address as `Host` (nginx's default
`proxy_pass`) and names the client's in `X-Forwarded-Host`; `preserve` passes the client's
`Host` on (nginx's common `proxy_set_header Host $host`). `strip` drops the path prefix first."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


@contextmanager
def reverse_proxy(
    backend_port: int, prefix: str, *, host: str = "rewrite", strip: bool = False
) -> Iterator[int]:
    """Serve a proxy to 127.0.0.1:`backend_port` for paths under `prefix`; yields its port."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def forward(self) -> None:
            if not self.path.startswith(prefix):
                self.send_response(404)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            path = (self.path[len(prefix) :] or "/") if strip else self.path
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            if host == "rewrite":
                headers["Host"] = f"127.0.0.1:{backend_port}"
            headers["X-Forwarded-Host"] = self.headers.get("host", "")
            headers["X-Forwarded-Proto"] = "http"
            upstream = http.client.HTTPConnection("127.0.0.1", backend_port, timeout=60)
            try:
                upstream.request(self.command, path, body=body, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
            finally:
                upstream.close()
            self.send_response(answer.status)
            for key, value in answer.getheaders():
                if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                    self.send_header(key, value)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = do_HEAD = forward

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
