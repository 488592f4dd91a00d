"""The web UI's second part on the benchmark side (issue 15): repositories made for the images
explorer and the run page, the run page's logs in headless Chromium, and the static report.

`python ui_pages_side.py WORKLOAD JSON_PARAMS` prints one JSON line (see `common.serve`):

- `make_images`: `runs` runs, each tracking a list of `per_run` RGB images of `size` x `size`
  pixels (smooth gradients with noise, PNG) at one step;
- `make_long_run`: one run with `metrics` metrics of `points` points in all and `lines` lines of
  terminal output (the `logs` sequence), compacted or not;
- `logs`: the run page's Logs tab: navigation to drawn, then jumping to the last line and a
  search over every line, each until the page has drawn it (`reps` cold loads); once, every
  frame's duration while the logs scroll by 100 lines a frame;
- `report`: `aim-parquet report` of a repository (the command's wall time and the file's size),
  then `reps` cold loads of the file in Chromium until its charts are drawn, with every request
  the page made (there must be none but the file itself).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

import common  # noqa: E402
import numpy as np  # noqa: E402
import ui_side  # noqa: E402

from tests.ui.browser import launch  # noqa: E402

READY = "body[data-ready=true]"


def make_images(p: dict[str, Any]) -> dict[str, Any]:
    import aim_parquet as aim

    rng = np.random.default_rng(p["seed"])
    size = p["size"]
    y, x = np.mgrid[0:size, 0:size]
    started = time.perf_counter()
    for r in range(p["runs"]):
        run = aim.Run(repo=p["repo"], system_tracking_interval=None, capture_terminal_logs=False)
        run["hparams"] = {"seed": r}
        batch = []
        for i in range(p["per_run"]):
            k = r * p["per_run"] + i
            base = np.stack([(x + k * 7) % 256, (y + k * 13) % 256, (x + y + k) % 256], axis=-1)
            noise = rng.integers(0, 24, size=(size, size, 3))
            batch.append(aim.Image((base + noise).clip(0, 255).astype(np.uint8), caption=f"#{k}"))
        run.track(batch, name="samples", step=0, context={"subset": "val"})
        run.close()
    return {"s": time.perf_counter() - started}


def make_long_run(p: dict[str, Any]) -> dict[str, Any]:
    import aim_parquet as aim
    from aim_parquet.objects import LogLine

    started = time.perf_counter()
    run = aim.Run(repo=p["repo"], system_tracking_interval=None, capture_terminal_logs=False)
    run["hparams"] = {"lr": 0.001, "batch_size": 256}
    per_metric = p["points"] // p["metrics"]
    steps = np.arange(per_metric)
    for m in range(p["metrics"]):
        values = np.exp(-steps / (per_metric / 4)) + 0.01 * np.sin(steps / (50 + m))
        name = ["loss", "accuracy", "grad_norm", "lr"][m % 4] + (f"_{m // 4}" if m >= 4 else "")
        for step, value in zip(steps.tolist(), values.tolist(), strict=True):
            run.track(value, name=name, step=step)
    for line in range(p["lines"]):
        text = f"epoch {line // 1000} batch {line % 1000:4d} loss={np.exp(-line / 30000):.5f}"
        if line % 9973 == 0:
            text += " checkpoint saved"
        run.track(LogLine(text), name="logs", step=line)
    run.close()
    if p.get("compact"):
        from aim_parquet.format.paths import RepoLayout
        from aim_parquet.storage import compact_repo

        compact_repo(RepoLayout(Path(p["repo"])))
    return {"s": time.perf_counter() - started, "hash": run.hash}


def logs(p: dict[str, Any]) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    server = ui_side.Server("ours", p["repo"])
    opened, to_end, search = [], [], []
    try:
        with sync_playwright() as pw:
            browser = launch(pw)
            for rep in range(p["reps"]):
                context = browser.new_context(viewport=ui_side.VIEWPORT)
                page = context.new_page()
                page.set_default_timeout(ui_side.TIMEOUT_MS)
                t0 = time.perf_counter()
                page.goto(f"{server.base}/runs/{p['hash']}?tab=logs")
                page.wait_for_selector(READY)
                opened.append(time.perf_counter() - t0)
                last = str(p["lines"])
                t0 = time.perf_counter()
                page.click("button:text-is('End')")
                page.wait_for_function(
                    "n => [...document.querySelectorAll('.log-line:not([hidden]) .ln')]"
                    ".some(e => e.textContent === n)", arg=last)  # fmt: skip
                to_end.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                page.fill("input[name=log-search]", "checkpoint")
                page.press("input[name=log-search]", "Enter")
                page.wait_for_selector(".log-line.hit mark")
                search.append(time.perf_counter() - t0)
                if rep == 0 and p.get("shot"):
                    ui_side.SHOTS.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(ui_side.SHOTS / f"{p['shot']}.png"))
                if rep == 0:
                    page.evaluate("document.querySelector('#logs').scrollTop = 0")
                    frames = page.evaluate(SCROLL_LOGS_JS, 240)
                context.close()
            browser.close()
    finally:
        server.stop()
    return {"s": opened, "end_s": to_end, "search_s": search, "frame_ms": frames}


SCROLL_LOGS_JS = """async (frames) => {
  const el = document.querySelector('#logs');
  const times = [];
  await new Promise(r => requestAnimationFrame(r));
  let last = performance.now();
  for (let i = 0; i < frames; i++) {
    el.scrollTop += (i % 60 < 45 ? 1800 : -900);  // 100 lines a frame, now and then back
    await new Promise(r => requestAnimationFrame(r));
    const now = performance.now();
    times.push(now - last);
    last = now;
  }
  return times;
}"""


def report(p: dict[str, Any]) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    out = Path(p["repo"]).parent / "report.html"
    env = dict(os.environ, PYTHONPATH=str(ui_side.ROOT))
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "aim_parquet", "report", "--repo", p["repo"], "--output", str(out)],
        check=True, env=env, stdout=subprocess.DEVNULL, timeout=1800,
    )  # fmt: skip
    build_s = time.perf_counter() - t0
    seconds, requests = [], []
    with sync_playwright() as pw:
        browser = launch(pw)
        for rep in range(p["reps"]):
            context = browser.new_context(viewport=ui_side.VIEWPORT)
            page = context.new_page()
            page.set_default_timeout(ui_side.TIMEOUT_MS)
            seen: list[str] = []
            page.on("request", lambda r, seen=seen: seen.append(r.url))
            t0 = time.perf_counter()
            page.goto(out.as_uri())
            page.wait_for_selector(READY)
            seconds.append(time.perf_counter() - t0)
            requests.append(len([u for u in seen if u != out.as_uri()]))
            series = int(page.get_attribute("#report", "data-series-count") or 0)
            if rep == 0 and p.get("shot"):
                ui_side.SHOTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(ui_side.SHOTS / f"{p['shot']}.png"))
            context.close()
        browser.close()
    return {"build_s": build_s, "bytes": out.stat().st_size, "s": seconds,
            "other_requests": max(requests), "series": series}  # fmt: skip


if __name__ == "__main__":
    common.serve(
        {
            "make_images": make_images,
            "make_long_run": make_long_run,
            "logs": logs,
            "report": report,
        },
        0.0,
    )
