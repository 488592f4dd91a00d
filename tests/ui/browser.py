"""Driving Debian's Chromium with Playwright for the browser tests and the UI benchmark.

The browser is never downloaded: Playwright launches the executable named by
`AIM_PARQUET_CHROMIUM` (default /usr/bin/chromium, `apt-get install -y chromium`). A `Watch`
collects console errors, uncaught page errors and every request that is not for the server.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

CHROMIUM = os.environ.get("AIM_PARQUET_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def launch(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)


@dataclass
class Watch:
    """What a page did that a test must fail on."""

    allowed_netloc: str
    console_errors: list[str] = field(default_factory=list)
    outside_requests: list[str] = field(default_factory=list)
    expected_errors: list[str] = field(default_factory=list)

    def expect_error(self, text: str) -> None:
        """The page will log one console error containing `text` (e.g. the 400 of a bad query,
        which Chromium logs for any failed fetch); it is taken off the list when checked."""
        self.expected_errors.append(text)

    def attach(self, context: Any, page: Any) -> None:
        def on_console(msg: Any) -> None:
            if msg.type == "error":
                self.console_errors.append(msg.text)

        page.on("console", on_console)
        page.on("pageerror", lambda exc: self.console_errors.append(f"uncaught: {exc}"))

        def route(route: Any) -> None:
            url = route.request.url
            parts = urlsplit(url)
            if parts.scheme in ("data", "blob") or parts.netloc == self.allowed_netloc:
                route.continue_()
            else:
                self.outside_requests.append(url)
                route.abort()

        context.route("**/*", route)

    def check(self) -> None:
        errors = list(self.console_errors)
        for text in self.expected_errors:
            found = next((e for e in errors if text in e), None)
            assert found is not None, f"expected a console error with {text!r}, got {errors}"
            errors.remove(found)
        assert not errors, f"console errors: {errors}"
        assert not self.outside_requests, f"requests leaving the server: {self.outside_requests}"
