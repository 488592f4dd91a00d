"""The web UI workload group (issue 14): `aim-parquet up` in headless Chromium, and Aim's `aim up`
on the same 100-run repo, timed from navigation to "drawn" (`tools/bench_suite/ui_side.py`).

aim_parquet's pages are drawn when `body[data-ready=true]`; Aim's metrics explorer when its chart
has one line path per run. Each figure is the median of cold page loads (a new browser context
each, so nothing is cached), one server process per side.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.parse
from base64 import b64encode
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench_suite.env import SUITE_DIR, SideError, SideResult, log, run_side
from bench_suite.report import targets_table, ui_targets
from bench_suite.stats import Measure, Row, fmt_measure, measure
from bench_suite.suite import Suite

UI_SIDE = SUITE_DIR / "ui_side.py"
SECTION = "Web UI: `aim-parquet up` vs `aim up` (headless Chromium)"


def ui_run(s: Suite, workload: str, params: dict[str, Any], tag: str) -> SideResult | None:
    """One ui_side.py process (with this interpreter, which has Playwright)."""
    try:
        result = run_side(sys.executable, UI_SIDE, workload, params, s.work)
    except SideError as exc:
        s.errors.append(f"{tag}: {exc}")
        log(f"  FAILED {tag}: {exc}")
        return None
    s.raw.append({"tag": tag, "side": "ui", "workload": workload, "params": params,
                  "wall_s": result.wall_s, "result": result.data})  # fmt: skip
    log(f"[{time.perf_counter() - s.started:7.1f} s] {tag}: {result.wall_s:.2f} s")
    return result


def aim_metrics_url(query: str) -> str:
    """Aim 3.29's metrics explorer URL for an advanced-mode query (its own state encoding:
    "O-" + base64 of the URI-encoded JSON, with "+/" -> "-_" and no padding)."""
    state = {"options": [], "query": "", "advancedMode": True, "advancedQuery": query}
    text = urllib.parse.quote(json.dumps(state, separators=(",", ":")), safe="~@#$&()*!+=:;,?/'")
    encoded = b64encode(text.encode()).decode().replace("=", "").replace("+", "-").replace("/", "_")
    return "/metrics?select=O-" + encoded


def _loads(r: SideResult | None, key: str = "s", scale: float = 1.0) -> Measure | None:
    if r is None or not r.data.get(key):
        return None
    return measure([v * scale for v in r.data[key]], "MiB" if scale != 1.0 else "s")


def ui(s: Suite) -> None:
    c = s.cfg
    quick = c.is_quick
    loads = 3 if quick else 7
    small = 20 if quick else 100
    big_runs, big_steps = (100, 10_000) if quick else (1_000, 10_000)
    many = 1_000 if quick else 10_000
    write = {"metrics": 1, "steps": 1_000, "seed": c.seed, "float32": True}
    # -- the 100-run repo, both sides -----------------------------------------------------
    ours_small, aim_small = s.repo("ui-small"), s.repo("ui-small-aim")
    built = s.ours("write", dict(write, repo=ours_small, runs=small), f"UI: write {small} runs")
    aim_built = s.aim(
        "write", dict(write, repo=aim_small, runs=small), f"UI: Aim write {small} runs"
    )
    if aim_built is not None:
        s.aim("reindex", {"repo": aim_small}, "UI: Aim reindex")
    page = {"reps": loads}
    ours_100 = built and ui_run(
        s, "page_load",
        dict(page, server="ours", repo=ours_small, path="/metrics?q=" +
             urllib.parse.quote("metric.name == 'loss'"), shot=f"bench-metrics-{small}-runs"),
        f"UI: metrics explorer, {small} runs (ours)",
    )  # fmt: skip
    aim_100 = aim_built and ui_run(
        s, "page_load",
        dict(page, server="aim", repo=aim_small, aim_python=str(s.aim_python),
             path=aim_metrics_url('metric.name == "loss"'), lines=small,
             shot=f"bench-aim-metrics-{small}-runs"),
        f"UI: metrics explorer, {small} runs (Aim)",
    )  # fmt: skip
    s.drop("ui-small", "ui-small-aim")
    # -- 1,000 runs x 10,000 steps (10M points), ours -----------------------------------------
    big = s.repo("ui-big")
    half = big_runs // 2
    with ThreadPoolExecutor(2) as pool:
        parts = list(pool.map(
            lambda job: s.ours("write", dict(write, repo=big, runs=job, steps=big_steps),
                               f"UI: write {job} runs x {big_steps:,} steps"),
            [half, big_runs - half],
        ))  # fmt: skip
    ours_big = all(parts) and ui_run(
        s, "page_load",
        dict(page, server="ours", repo=big, path="/metrics", shot="bench-metrics-10M-points"),
        f"UI: metrics explorer, {big_runs} runs x {big_steps:,} steps",
    )  # fmt: skip
    s.drop("ui-big")
    # -- 10,000 runs: the runs explorer and scrolling -----------------------------------------
    runs_repo = s.repo("ui-many")
    half = many // 2
    with ThreadPoolExecutor(2) as pool:
        parts = list(pool.map(
            lambda job: s.ours("create_runs", {"repo": runs_repo, "runs": job[1], "offset": job[0]},
                               f"UI: create {job[1]:,} runs"),
            [(0, half), (half, many - half)],
        ))  # fmt: skip
    ours_runs = all(parts) and ui_run(
        s, "page_load",
        dict(page, server="ours", repo=runs_repo, path="/runs", shot=f"bench-runs-{many}-runs"),
        f"UI: runs explorer, {many:,} runs",
    )  # fmt: skip
    scrolled = all(parts) and ui_run(
        s, "scroll", {"repo": runs_repo, "frames": 240, "shot": f"bench-runs-{many}-scrolled"},
        f"UI: scroll {many:,} runs",
    )  # fmt: skip
    s.drop("ui-many")
    # -- live ----------------------------------------------------------------------------------
    live = ui_run(
        s, "live", {"repo": s.repo("ui-live"), "points": 10, "gap_s": 1.3, "shot": "bench-live"},
        "UI: live run",
    )  # fmt: skip
    s.drop("ui-live")
    _report(s, small=small, big=(big_runs, big_steps), many=many, results={
        "m100": ours_100 or None, "aim100": aim_100 or None, "big": ours_big or None,
        "runs": ours_runs or None, "scroll": scrolled or None, "live": live or None,
    })  # fmt: skip


def _report(
    s: Suite, *, small: int, big: tuple[int, int], many: int, results: dict[str, Any]
) -> None:
    mib = 1 / 1048576
    m100, aim100, big_r = results["m100"], results["aim100"], results["big"]
    runs, scroll, live = results["runs"], results["scroll"], results["live"]
    frames = scroll.data["frame_ms"] if scroll else []
    longest = measure([max(frames) / 1000], "s") if frames else None
    over = measure([sum(1 for f in frames if f > 50)], "frames") if frames else None
    loaf = scroll.data["long_ms"] if scroll else []
    rows = [
        s.add("ui_metrics_100", Row(
            f"metrics explorer, {small} runs x `loss` x 1,000 steps: navigation to drawn",
            _loads(m100), _loads(aim100),
            note="Aim: until its chart has one line per run",
        )),
        s.add("ui_metrics_100_bytes", Row(
            "  ... bytes transferred (page, code, data)", _loads(m100, "bytes", mib),
            _loads(aim100, "bytes", mib),
        )),
        s.add("ui_metrics_big", Row(
            f"metrics explorer, {big[0]:,} runs x {big[1]:,} steps ({big[0] * big[1] / 1e6:g}M "
            "points): navigation to drawn", _loads(big_r), None,
            note="Aim not measured: writing 10M points takes it ~25 min",
        )),
        s.add("ui_metrics_big_bytes", Row(
            "  ... bytes transferred (page, code, data)", _loads(big_r, "bytes", mib), None,
        )),
        s.add("ui_metrics_big_series", Row(
            "  ... of which the binary series response", _loads(big_r, "series_bytes", mib), None,
        )),
        s.add("ui_runs", Row(f"runs explorer, {many:,} runs: navigation to drawn", _loads(runs), None)),
        s.add("ui_scroll", Row(
            f"  ... scrolling it, longest of {len(frames)} frames", longest, None,
            note=f"{scroll.data['rows_in_dom']} rows in the DOM; {len(loaf)} long animation "
            "frame(s) reported" if scroll else "",
        )),
        s.add("ui_scroll_over", Row("  ... frames over 50 ms", over, None)),
        s.add("ui_live", Row(
            "live: a flushed point on screen (10 points, 1.3 s apart)",
            measure(live.data["latency_s"], "s") if live else None, None,
            note="page polls every 1 s; only points after the last step seen are fetched",
        )),
    ]  # fmt: skip
    intro = (
        "Debian's Chromium, headless, driven by Playwright "
        "(`tools/bench_suite/ui_side.py`); one server process per side "
        "(`python -m aim_parquet up`, `.venv-aim/bin/aim up`), each figure the median of cold "
        "page loads in new browser contexts. Screenshots: `.bench/screenshots/bench-*.png`."
    )
    s.section(SECTION, intro, rows)
    s.extra[f"outro:{SECTION}"] = "Targets (issue 14):\n\n" + targets_table(ui_targets(s.named))
    log("  UI: " + ", ".join(f"{r.label.split(':')[0]} {fmt_measure(r.ours)}" for r in rows))
