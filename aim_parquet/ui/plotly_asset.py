"""plotly.js for the figures page, served from the installed `plotly` Python package.

The figures page draws stored Plotly figures with the plotly.js bundle that the `plotly` package
ships (`plotly/package_data/plotly.min.js`); nothing is fetched from a CDN. plotly is an optional
extra (`pip install aim_parquet[figures]`): without it the route answers 404 with what to
install, and the page says so. The file is read on first request (4-5 MB), then kept in memory.

plotly.js adds some CSS at run time in inline `<style>` elements, which this server's
Content-Security-Policy forbids: its global rules go into the (empty) stylesheet the page links
under the id plotly.js looks for (`static/plotly-host.css`), and the style blocks it creates only
when no element has their id are taken out of the bundle here and served as one stylesheet
(`vendor/plotly/styles.css`); the page puts an element with each of those ids in place first.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import threading
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from aim_parquet.ui.api.jsonout import error_response

MISSING = (
    "Figures are drawn by plotly.js from the `plotly` Python package, which is not installed "
    "where this server runs: pip install 'aim_parquet[figures]' (or pip install plotly), "
    "then restart aim-parquet up."
)


def plotly_js_path() -> Path | None:
    """The plotly.js bundle of the installed plotly package, None without one."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "package_data" / "plotly.min.js"
        if path.is_file():
            return path
    return None


_STYLE_BLOCK = re.compile(
    r'document\.getElementById\("([0-9A-Za-z_-]{8,})"\)\)\{var (\w+)=document\.createElement'
    r"\(\"style\"\);\2\.id=\"\1\",\2\.textContent='((?:[^'\\]|\\.)*)'"
)


def inline_styles(bundle: str) -> dict[str, str]:
    """The style blocks plotly.js would create at run time: element id -> CSS text."""
    escapes = {"n": "\n", "t": "\t", "r": "\r"}
    return {
        m.group(1): re.sub(r"\\(.)", lambda e: escapes.get(e.group(1), e.group(1)), m.group(3))
        for m in _STYLE_BLOCK.finditer(bundle)
    }


class PlotlyAsset:
    """The route's endpoint: the bundle with an ETag, immutable under the URL's version."""

    def __init__(self) -> None:
        self._body: tuple[bytes, str] | None = None
        self._styles: dict[str, str] = {}
        self._lock = threading.Lock()

    def load(self) -> tuple[bytes, str] | None:
        with self._lock:
            if self._body is None:
                path = plotly_js_path()
                if path is None:
                    return None
                body = path.read_bytes()
                self._body = (body, '"' + hashlib.sha256(body).hexdigest()[:20] + '"')
                self._styles = inline_styles(body.decode("utf-8", "replace"))
            return self._body

    def style_ids(self) -> list[str]:
        """Ids of the style blocks served by `styles` (empty without plotly)."""
        return sorted(self._styles) if self.load() is not None else []

    async def styles(self, request: Request) -> Response:
        if self.load() is None:
            return error_response(404, "plotly_missing", MISSING)
        css = "\n".join(f"/* plotly.js block {k} */\n{v}" for k, v in sorted(self._styles.items()))
        return Response(
            css, media_type="text/css; charset=utf-8", headers={"cache-control": "no-cache"}
        )

    async def endpoint(self, request: Request) -> Response:
        found = self.load()
        if found is None:
            return error_response(404, "plotly_missing", MISSING)
        body, etag = found
        headers = {"etag": etag, "cache-control": "private, max-age=86400"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="text/javascript; charset=utf-8", headers=headers)
