"""The web UI workload group of issue 15 (`--only ui-pages`, also part of `--only ui`): the images
explorer on 1,000 images of 256x256, the run page of a run with 1M points and 100,000 log lines,
and the static report of 100 runs x 10 metrics, timed in headless Chromium from navigation to
`body[data-ready=true]` (for the images explorer: the images on the first screen are drawn).
"""

from __future__ import annotations

import sys
import time
from typing import Any

from bench_suite.env import SUITE_DIR, SideError, SideResult, log, run_side
from bench_suite.report import Target, _check, targets_table
from bench_suite.stats import Row, measure
from bench_suite.suite import Suite
from bench_suite.ui_workloads import ui_run

PAGES_SIDE = SUITE_DIR / "ui_pages_side.py"
SECTION = "Web UI, part two: images explorer, run page, static report (headless Chromium)"


def pages_run(s: Suite, workload: str, params: dict[str, Any], tag: str) -> SideResult | None:
    try:
        result = run_side(sys.executable, PAGES_SIDE, workload, params, s.work)
    except SideError as exc:
        s.errors.append(f"{tag}: {exc}")
        log(f"  FAILED {tag}: {exc}")
        return None
    s.raw.append({"tag": tag, "side": "ui", "workload": workload, "params": params,
                  "wall_s": result.wall_s, "result": result.data})  # fmt: skip
    log(f"[{time.perf_counter() - s.started:7.1f} s] {tag}: {result.wall_s:.2f} s")
    return result


def _m(r: SideResult | None, key: str = "s", unit: str = "s", scale: float = 1.0) -> Any:
    if r is None or r.data.get(key) is None:
        return None
    values = r.data[key] if isinstance(r.data[key], list) else [r.data[key]]
    return measure([v * scale for v in values], unit)


def ui_pages(s: Suite) -> None:
    quick = s.cfg.is_quick
    reps = 3 if quick else 7
    runs, per_run = (4, 50) if quick else (10, 100)
    points, lines = (200_000, 20_000) if quick else (1_000_000, 100_000)
    report_runs = 20 if quick else 100
    # -- images explorer ---------------------------------------------------------------------
    images = s.repo("ui-images")
    made = pages_run(s, "make_images", {"repo": images, "runs": runs, "per_run": per_run,
                                        "size": 256, "seed": s.cfg.seed},
                     f"UI pages: {runs * per_run:,} images of 256x256")  # fmt: skip
    grid = made and ui_run(
        s, "page_load", {"server": "ours", "repo": images, "path": "/images", "reps": reps,
                         "shot": "bench-images-explorer"},
        f"UI pages: images explorer, {runs * per_run:,} images",
    )  # fmt: skip
    s.drop("ui-images")
    # -- the run page of a long run ------------------------------------------------------------
    long_repo = s.repo("ui-long-run")
    made = pages_run(s, "make_long_run", {"repo": long_repo, "metrics": 4, "points": points,
                                          "lines": lines, "compact": False},
                     f"UI pages: a run with {points:,} points and {lines:,} log lines")  # fmt: skip
    overview = logs = None
    if made:
        run_hash = made.data["hash"]
        overview = ui_run(
            s, "page_load", {"server": "ours", "repo": long_repo, "path": f"/runs/{run_hash}",
                             "reps": reps, "shot": "bench-run-page"},
            "UI pages: run page overview",
        )  # fmt: skip
        logs = pages_run(
            s, "logs", {"repo": long_repo, "hash": run_hash, "lines": lines, "reps": reps,
                        "shot": "bench-run-page-logs"},
            "UI pages: run page logs",
        )  # fmt: skip
    s.drop("ui-long-run")
    # -- the static report ---------------------------------------------------------------------
    report_repo = s.repo("ui-report")
    written = s.ours(
        "write", {"repo": report_repo, "runs": report_runs, "metrics": 10, "steps": 1_000,
                  "seed": s.cfg.seed, "float32": True},
        f"UI pages: write {report_runs} runs x 10 metrics",
    )  # fmt: skip
    report = written and pages_run(
        s, "report", {"repo": report_repo, "reps": reps, "shot": "bench-report"},
        f"UI pages: report of {report_runs} runs x 10 metrics",
    )  # fmt: skip
    s.drop("ui-report")
    _report(s, sizes=(runs * per_run, points, lines, report_runs), results={
        "grid": grid or None, "overview": overview or None, "logs": logs or None,
        "report": report or None,
    })  # fmt: skip


def _report(s: Suite, *, sizes: tuple[int, int, int, int], results: dict[str, Any]) -> None:
    images, points, lines, report_runs = sizes
    grid, overview, logs, report = (results[k] for k in ("grid", "overview", "logs", "report"))
    mib = 1 / 1048576
    first = measure([grid.data["s"][0]], "s") if grid else None
    frames = logs.data.get("frame_ms") or [] if logs else []
    other = report.data["other_requests"] if report else None
    rows = [
        s.add("ui_images", Row(
            f"images explorer, {images:,} images of 256x256: navigation to first screen drawn",
            _m(grid), None, note="thumbnails made by the server, loaded as they scroll into view",
        )),
        s.add("ui_images_first", Row("  ... first load (fresh server and browser: no thumbnail made yet)", first, None)),
        s.add("ui_images_bytes", Row("  ... bytes transferred (page, code, listing, thumbnails)",
                                     _m(grid, "bytes", "MiB", mib), None)),
        s.add("ui_run_page", Row(
            f"run page of a run with {points / 1e6:g}M points (4 metrics) and {lines:,} log lines: "
            "overview drawn", _m(overview), None,
        )),
        s.add("ui_run_logs", Row("  ... Logs tab: navigation to drawn", _m(logs), None)),
        s.add("ui_run_logs_end", Row(f"  ... jump to line {lines:,} drawn", _m(logs, "end_s"), None)),
        s.add("ui_run_logs_search", Row(f"  ... search over {lines:,} lines, first match drawn",
                                        _m(logs, "search_s"), None)),
        s.add("ui_run_logs_scroll", Row(
            f"  ... scrolling the logs 100 lines a frame, longest of {len(frames)} frames",
            measure([max(frames) / 1000], "s") if frames else None, None,
            note=f"{sum(1 for f in frames if f > 50)} frame(s) over 50 ms" if frames else "",
        )),
        s.add("ui_report_open", Row(
            f"static report, {report_runs} runs x 10 metrics x 1,000 steps: file opened to charts drawn",
            _m(report), None, note=f"requests besides the file: {other}" if report else "",
        )),
        s.add("ui_report_bytes", Row("  ... file size", _m(report, "bytes", "MiB", mib), None)),
        s.add("ui_report_build", Row("  ... `aim-parquet report` wall time", _m(report, "build_s"), None)),
    ]  # fmt: skip
    intro = (
        "Same method as the section above (`tools/bench_suite/ui_pages_side.py` and "
        "`ui_side.py`): one `python -m aim_parquet up` per repository, each figure the median of "
        "cold page loads in new browser contexts; the report is opened from its file "
        "(`file://`). Screenshots: `.bench/screenshots/bench-images-explorer.png`, "
        "`bench-run-page*.png`, `bench-report.png`."
    )
    s.section(SECTION, intro, rows)
    s.extra[f"outro:{SECTION}"] = "Targets (issue 15):\n\n" + targets_table(pages_targets(s.named))


def pages_targets(named: dict[str, Row]) -> list[Target]:
    g = named.get
    mb = 5e6 / 1048576
    images = g("ui_images")
    quick = "" if images is None or "1,000 images" in images.label else " (quick sizes)"
    return [
        _check("images explorer, 1,000 images of 256x256: first screen <= 1 s (issue 15)" + quick,
               g("ui_images") and g("ui_images").ours, 1.0, is_max=True),
        _check("static report, 100 runs x 10 metrics <= 5 MB (issue 15)" + quick,
               g("ui_report_bytes") and g("ui_report_bytes").ours, mb, is_max=True),
        _check("  ... opens (charts drawn) <= 1 s (issue 15)",
               g("ui_report_open") and g("ui_report_open").ours, 1.0, is_max=True),
    ]  # fmt: skip
