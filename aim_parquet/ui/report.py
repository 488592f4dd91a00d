"""`aim-parquet report`: one self-contained HTML file with the runs table and the metric charts of
a query (and, with `images=True`, the last step's images as thumbnails).

Everything is inside the file: the data (the same downsampled binary series the metrics explorer
fetches, base64-encoded; the runs table as JSON; thumbnails as data URIs), uPlot, the page's
CSS and its code. The page's modules (`static/js/...`) are joined into one script by `bundle`,
each wrapped in a function whose imports are the exports of the modules before it, so the file
opens from a mail attachment with no server and no network: its Content-Security-Policy allows
no request at all.
"""

from __future__ import annotations

import base64
import html
import json
import os
import posixpath
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aim_parquet.storage.base.atomic import atomic_write
from aim_parquet.storage.base.repo_files import open_repo
from aim_parquet.ui.api.binary import decode
from aim_parquet.ui.api.jsonout import json_bytes
from aim_parquet.ui.api.state import UiState

STATIC = Path(__file__).resolve().parent / "static"
MODULES = ["js/dom.js", "js/series.js", "js/chart.js", "js/api.js", "js/report/report.js"]
"""The report's code, in dependency order (a module imports only modules before it)."""
DEFAULT_WIDTH = 900
THUMB_PX = 192
MAX_IMAGES = 200
CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data: blob:; connect-src 'none'; base-uri 'none'; form-action 'none'"
)

_IMPORT = re.compile(r'^import\s*\{([^}]*)\}\s*from\s*"([^"]+)";\s*$', re.M)
_EXPORT = re.compile(
    r"^export\s+((?:async\s+)?(?:function\*?|class|const|let|var)\s+([A-Za-z_$][\w$]*))", re.M
)


def bundle(modules: list[str], root: Path = STATIC) -> str:
    """The ES modules `modules` (paths under `root`) as one classic script."""
    parts = ["const __modules = {};"]
    for name in modules:
        text = (root / name).read_text(encoding="utf-8")

        def imported(match: re.Match[str], name: str = name) -> str:
            target = posixpath.normpath(posixpath.join(posixpath.dirname(name), match.group(2)))
            if target not in modules[: modules.index(name)]:
                raise ValueError(f"{name} imports {target}, which is not bundled before it")
            names = [n.strip() for n in match.group(1).split(",") if n.strip()]
            fields = ", ".join(n.replace(" as ", ": ") for n in names)
            return f"const {{ {fields} }} = __modules[{json.dumps(target)}];"

        text = _IMPORT.sub(imported, text)
        if re.search(r"^\s*import\b", text, re.M):
            raise ValueError(f"{name} has an import the bundler cannot read (one line each)")
        exports = [m.group(2) for m in _EXPORT.finditer(text)]
        text = _EXPORT.sub(r"\1", text)
        if re.search(r"^export\b", text, re.M):
            raise ValueError(f"{name} has an export the bundler cannot read")
        if "</script" in text.lower() or "<!--" in text:
            raise ValueError(f"{name} holds '</script' or '<!--', which would break the page")
        parts.append(
            f'__modules[{json.dumps(name)}] = (() => {{\n"use strict";\n{text}\n'
            f"return {{ {', '.join(exports)} }};\n}})();"
        )
    return "\n".join(parts)


@dataclass(frozen=True)
class ReportStats:
    """What `write_report` wrote."""

    path: Path
    bytes: int
    runs: int
    series: int
    charts: int
    images: int


def report_data(
    state: UiState, query: str, runs_query: str | None, *, images: bool, width: int
) -> dict[str, Any]:
    """The data the report shows (see the module docstring)."""
    from aim_parquet.ui.api.metrics import search
    from aim_parquet.ui.api.runs import runs_table

    charted = query
    if runs_query:  # only these runs, in the charts too
        charted = f"({query}) and ({runs_query})" if query.strip() else runs_query
    body = search(state, charted, "step", width, ["metric.name"], (None, None))
    header, _ = decode(body)
    # the runs table's metric columns: the user's own first, the system metrics (`__system__*`,
    # one column per GPU) after them (sorted by name they came first and filled the 20 columns)
    names = sorted(
        {s["name"] for c in header["charts"] for s in c["series"]},
        key=lambda name: (name.startswith("__system__"), name),
    )
    table = runs_table(state, runs_query or "", names[:20])
    if runs_query is None:  # the runs of the metric query
        keep = [i for i, h in enumerate(table["columns"]["hash"]) if h in header["runs"]]
        table = _subset(table, keep)
    data: dict[str, Any] = {
        "query": query,
        "runs_query": runs_query,
        "created": time.time(),
        "series": base64.b64encode(body).decode("ascii"),
        "runs": table,
        "images": _thumbnails(state, table["columns"]["hash"]) if images else None,
    }
    return data


def _subset(table: dict[str, Any], keep: list[int]) -> dict[str, Any]:
    def pick(values: list[Any]) -> list[Any]:
        return [values[i] for i in keep]

    return {
        **table,
        "count": len(keep),
        "columns": {k: pick(v) for k, v in table["columns"].items()},
        "params": {k: pick(v) for k, v in table["params"].items()},
        "metrics": [{**m, "values": pick(m["values"])} for m in table["metrics"]],
    }


def _thumbnails(state: UiState, hashes: list[str]) -> dict[str, Any]:
    """The last step's images of the runs, as small data URIs (the first MAX_IMAGES)."""
    from aim_parquet.storage.online.object_read import read_object_rows
    from aim_parquet.ui.api.media import UndecodableObject, encode, find_sequence
    from aim_parquet.ui.api.objects import listing, parse_meta

    if not hashes:
        return {"count": 0, "items": []}
    quoted = ", ".join(json.dumps(h) for h in hashes)
    found = listing(state, "images", f"run.hash in [{quoted}]", None)
    items: list[dict[str, Any]] = []

    for seq in found["sequences"]:
        if len(items) >= MAX_IMAGES:
            break  # the rest are counted, not read
        if seq["step"] is None:
            continue
        _, info = find_sequence(state, seq["run"], seq["seq"])
        table = read_object_rows(
            state.layout, seq["run"], info, ["payload", "meta"], steps=[seq["step"]]
        )
        metas = table.column("meta").to_pylist()
        for index, payload, meta_text in zip(
            table.column("index").to_pylist(),
            table.column("payload").to_pylist(),
            metas,
            strict=True,
        ):
            if len(items) >= MAX_IMAGES:
                break
            item = {"run": seq["run"], "name": seq["name"], "context": seq["context"],
                    "step": seq["step"], "index": index}  # fmt: skip
            meta = parse_meta(meta_text)
            item["caption"] = str(meta.get("caption", ""))
            item["width"], item["height"] = meta.get("width"), meta.get("height")
            try:
                thumb, media_type = encode(info.kind, bytes(payload), meta, THUMB_PX)
                item["src"] = f"data:{media_type};base64,{base64.b64encode(thumb).decode()}"
            except UndecodableObject as exc:
                item["error"] = str(exc)
            items.append(item)
    return {"count": found["count"], "items": items}


def render(data: dict[str, Any], title: str) -> str:
    """The report's HTML."""
    vendor = STATIC / "vendor" / "uplot"
    css = "\n".join(
        (STATIC / name).read_text(encoding="utf-8")
        for name in ("vendor/uplot/uPlot.min.css", "style.css", "pages.css", "report.css")
    )
    # no "<" at all inside the script element: neither "</script>" nor "<!--" can end or
    # confuse it, whatever the run names hold
    payload = json_bytes(data).decode("ascii").replace("<", "\\u003c")
    script = (vendor / "uPlot.iife.min.js").read_text(encoding="utf-8")
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="aim_parquet report">
<title>{html.escape(title)}</title>
<style>
{css}
</style>
</head>
<body data-ready="false" data-page="report">
<header class="topbar"><span class="brand">aim_parquet</span><span class="report-title">{html.escape(title)}</span>
<span class="spacer"></span><span id="status" class="status" role="status"></span></header>
<main id="app"></main>
<noscript>This report draws its charts with JavaScript; the runs table and data are inside this file.</noscript>
<script type="application/json" id="report-data">{payload}</script>
<script>
{script}
</script>
<script>
{bundle(MODULES)}
</script>
</body>
</html>
"""


def write_report(
    repo: str | os.PathLike[str] | None,
    query: str,
    output: str | os.PathLike[str],
    *,
    runs_query: str | None = None,
    images: bool = False,
    width: int = DEFAULT_WIDTH,
    title: str | None = None,
) -> ReportStats:
    """Write the report of `query` (a metric query) to `output`; see the module docstring."""
    state = UiState(open_repo(repo))
    data = report_data(state, query, runs_query, images=images, width=width)
    text = render(data, title or f"aim_parquet report: {query or 'all metrics'}")
    path = Path(output)
    # the one atomic-write path: a unique temp name, removed when the write fails (a fixed
    # `.NAME.tmp` was left behind by an output that is a folder, or a full disk)
    atomic_write(path, text.encode("utf-8"))
    header, _ = decode(base64.b64decode(data["series"]))
    return ReportStats(
        path=path.resolve(),
        bytes=path.stat().st_size,
        runs=data["runs"]["count"],
        series=header["series_count"],
        charts=len(header["charts"]),
        images=len(data["images"]["items"]) if data["images"] else 0,
    )
