"""The UI's guards, one ASGI middleware in front of every route.

- **Host check** (on by default for a loopback bind): the `Host` header must name a loopback
  address (`localhost`, `127.x.x.x`, `::1`), so a page on another site cannot reach this server by
  making its own name resolve to 127.0.0.1 (DNS rebinding).
- **Token** (required by the CLI for a non-loopback bind): every request must carry it, as
  `Authorization: Bearer TOKEN`, as the cookie this server sets, or once as `?token=TOKEN` on a
  page (answered by a redirect without it that sets the cookie: HttpOnly, SameSite=Strict).
- **Same origin for changes**: a request that is not GET/HEAD must carry the header
  `X-Requested-By: aim-parquet` (a cross-site form cannot set it, and this server never answers
  CORS preflights) and, when it has an `Origin`, one whose host is the request's `Host` or, behind
  a reverse proxy that rewrites `Host`, the `X-Forwarded-Host` the proxy sets (a page on another
  site cannot set that header either: it is not one a browser sends cross-site without a
  preflight).
- **Headers on every answer**: a Content-Security-Policy that lets the page load nothing from
  outside this server, `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer`.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CHANGE_HEADER = "x-requested-by"
CHANGE_HEADER_VALUE = "aim-parquet"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; media-src 'self' blob:; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'self' http://localhost:* http://127.0.0.1:*"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


def is_loopback(host: str) -> bool:
    """True for `localhost`, `*.localhost` and loopback IP addresses (with or without [])."""
    name = host.strip().lower().strip("[]")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_name(host_header: str) -> str:
    """The host part of a `Host` header value (`[::1]:8000` -> `::1`)."""
    return urlsplit("//" + host_header).hostname or ""


class Guard:
    """The middleware described in the module docstring."""

    def __init__(self, app: ASGIApp, *, token: str | None, check_host: bool) -> None:
        self.app = app
        self.token = token
        self.check_host = check_host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if self.check_host and not is_loopback(host_name(host)):
            await _deny(send, 403, "host", f"this server answers only to localhost, not {host!r}")
            return
        if self.token is not None:
            cookie_name = f"aim_parquet_token_{(scope.get('server') or ('', 0))[1]}"
            query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), True)
            given = dict(query).get("token")
            if given is not None and self._token_ok(given) and scope["method"] == "GET":
                rest = urlencode([(k, v) for k, v in query if k != "token"])
                page = scope["path"].rsplit("/", 1)[-1] or "./"  # relative: proxies keep working
                await _redirect(send, page + (f"?{rest}" if rest else ""), cookie_name, given)
                return
            if not (
                self._token_ok(_bearer(headers.get("authorization", "")))
                or self._token_ok(_cookie(headers.get("cookie", ""), cookie_name))
            ):
                await _deny(
                    send,
                    401,
                    "token",
                    "this server needs its token: open the URL `aim-parquet up` printed "
                    "(with ?token=...) or send `Authorization: Bearer TOKEN`",
                )
                return
        if scope["method"] not in ("GET", "HEAD"):
            if headers.get(CHANGE_HEADER) != CHANGE_HEADER_VALUE:
                await _deny(
                    send, 403, "origin", f"changes need the header {CHANGE_HEADER}: aim-parquet"
                )
                return
            origin = headers.get("origin")
            if origin and urlsplit(origin).netloc.lower() not in _own_hosts(headers):
                await _deny(send, 403, "origin", f"cross-origin change refused (from {origin})")
                return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _token_ok(self, given: str | None) -> bool:
        if not given or self.token is None:
            return False
        return hmac.compare_digest(given.encode(), self.token.encode())


def _own_hosts(headers: dict[str, str]) -> set[str]:
    """The names this request was sent to: its `Host`, and the client-facing host a reverse
    proxy names in `X-Forwarded-Host` (its first entry) or `Forwarded: host=`."""
    hosts = {headers.get("host", "").lower()}
    forwarded_host = headers.get("x-forwarded-host", "").split(",")[0].strip()
    if forwarded_host:
        hosts.add(forwarded_host.lower())
    for part in headers.get("forwarded", "").split(",")[0].split(";"):
        key, _, value = part.strip().partition("=")
        if key.lower() == "host" and value:
            hosts.add(value.strip('"').lower())
    hosts.discard("")
    return hosts


def _bearer(value: str) -> str | None:
    scheme, _, credentials = value.partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else None


def _cookie(value: str, name: str) -> str | None:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(value)
    except Exception:
        return None
    morsel = jar.get(name)
    return unquote(morsel.value) if morsel is not None else None


async def _deny(send: Send, status: int, kind: str, message: str) -> None:
    body = json.dumps({"error": kind, "message": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _redirect(send: Send, location: str, cookie_name: str, token: str) -> None:
    # percent-encoded: a token may hold any character, a cookie value only a few
    cookie = f"{cookie_name}={quote(token, safe='')}; HttpOnly; SameSite=Strict; Path=/"
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [
                (b"location", location.encode("latin-1")),
                (b"set-cookie", cookie.encode("latin-1")),
                (b"content-length", b"0"),
                *SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": b""})
