"""The web UI side of the benchmark: a UI server (`aim-parquet up`, or Aim's `aim up`) and
Debian's headless Chromium driven by Playwright, timed from navigation to "drawn".

`python ui_side.py WORKLOAD JSON_PARAMS` prints one JSON line (see `common.serve`):

- `page_load`: `reps` cold loads of `path` (a new browser context each: empty cache), each from
  `goto` to `body[data-ready=true]` for aim_parquet, or for Aim until its charts have drawn
  `lines` line paths; also the bytes each load transferred (Resource Timing) and a screenshot.
- `scroll`: the runs table scrolled by 15 rows per frame for `frames` frames; every frame's
  duration (requestAnimationFrame intervals) and the long animation frames Chromium reports.
- `live`: a writer process tracks one point per `gap_s` and flushes it; the time from each flush
  to the moment the chart's `data-max-step` reaches that step.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

import common  # noqa: E402

from tests.ui.browser import launch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent.parent
SHOTS = ROOT / ".bench" / "screenshots"
READY = "body[data-ready=true]"
TIMEOUT_MS = 120_000
VIEWPORT = {"width": 1400, "height": 900}

BYTES_JS = """() => {
  const nav = performance.getEntriesByType('navigation').map(e => e.transferSize);
  const res = performance.getEntriesByType('resource').map(e => [e.name, e.transferSize]);
  return {nav, res};
}"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A UI server process: ours (`python -m aim_parquet up`) or Aim's (`aim up`)."""

    def __init__(self, kind: str, repo: str, aim_python: str | None = None) -> None:
        self.port = free_port()
        self.log = open(Path(repo).parent / f"ui-{kind}-{self.port}.log", "w")  # noqa: SIM115
        if kind == "ours":
            cmd = [sys.executable, "-m", "aim_parquet", "up", "--repo", repo]
        else:
            assert aim_python is not None
            cmd = [
                str(Path(aim_python).parent / "aim"),
                "up",
                "--repo",
                repo,
                "--host",
                "127.0.0.1",
            ]
        cmd += ["--port", str(self.port)]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.base = (
            f"http://localhost:{self.port}" if kind == "ours" else f"http://127.0.0.1:{self.port}"
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(self.base + "/", timeout=2):
                    break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{cmd} did not start (see {self.log.name})") from None
                time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def _bytes(page: Any) -> tuple[int, int]:
    """(all bytes this load transferred, bytes of the series/search responses)."""
    entries = page.evaluate(BYTES_JS)
    total = sum(entries["nav"]) + sum(size for _, size in entries["res"])
    series = sum(size for name, size in entries["res"] if "/search" in name)
    return int(total), int(series)


def page_load(p: dict[str, Any]) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    server = Server(p["server"], p["repo"], p.get("aim_python"))
    seconds, sent, series_sent = [], [], []
    try:
        with sync_playwright() as pw:
            browser = launch(pw)
            for rep in range(p["reps"]):
                context = browser.new_context(viewport=VIEWPORT)
                page = context.new_page()
                page.set_default_timeout(TIMEOUT_MS)
                t0 = time.perf_counter()
                page.goto(server.base + p["path"])
                if p["server"] == "ours":
                    page.wait_for_selector(READY)
                else:
                    page.wait_for_function(
                        "n => document.querySelectorAll('path.Line').length >= n", arg=p["lines"]
                    )
                seconds.append(time.perf_counter() - t0)
                total, series = _bytes(page)
                sent.append(total)
                series_sent.append(series)
                if rep == 0 and p.get("shot"):
                    SHOTS.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(SHOTS / f"{p['shot']}.png"))
                context.close()
            browser.close()
    finally:
        server.stop()
    return {"s": seconds, "bytes": sent, "series_bytes": series_sent}


SCROLL_JS = """async (frames) => {
  const long = [];
  let observer = null;
  try {
    observer = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) long.push(e.duration);
    });
    observer.observe({ type: 'long-animation-frame', buffered: false });
  } catch (_) { observer = null; }
  const el = document.querySelector('.vt-scroll');
  const times = [];
  await new Promise(r => requestAnimationFrame(r));
  let last = performance.now();
  for (let i = 0; i < frames; i++) {
    el.scrollTop += (i % 40 < 20 ? 450 : -450) + (i % 7) * 30;
    await new Promise(r => requestAnimationFrame(r));
    const now = performance.now();
    times.push(now - last);
    last = now;
  }
  if (observer) observer.disconnect();
  return { times, long, rows: document.querySelectorAll('.vt-row').length };
}"""


def scroll(p: dict[str, Any]) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    server = Server("ours", p["repo"])
    try:
        with sync_playwright() as pw:
            browser = launch(pw)
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(server.base + "/runs")
            page.wait_for_selector(READY)
            result = page.evaluate(SCROLL_JS, p["frames"])
            if p.get("shot"):
                SHOTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SHOTS / f"{p['shot']}.png"))
            browser.close()
    finally:
        server.stop()
    return {"frame_ms": result["times"], "long_ms": result["long"], "rows_in_dom": result["rows"]}


WRITER = """
import json, sys, time
import aim_parquet as aim
repo, points, gap = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
run = aim.Run(repo=repo, system_tracking_interval=None, capture_terminal_logs=False)
for step in range(200):
    run.track(1.0 / (1 + step), name="loss", step=step)
run.flush()
print(json.dumps({"ready": True}), flush=True)
sys.stdin.readline()  # the page is open
for k in range(points):
    step = 200 + k
    time.sleep(gap)
    run.track(1.0 / (1 + step), name="loss", step=step)
    run.flush()
    print(json.dumps({"step": step, "flushed": time.time()}), flush=True)
run.close()
"""

OBSERVE_JS = """() => {
  window.__seen = [];
  const chart = document.querySelector('section.chart');
  new MutationObserver(() => {
    window.__seen.push([Number(chart.dataset.maxStep), Date.now() / 1000]);
  }).observe(chart, { attributes: true, attributeFilter: ['data-max-step'] });
}"""


def live(p: dict[str, Any]) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    repo = p["repo"]
    Path(repo).mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, repo, str(p["points"]), str(p["gap_s"])],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert writer.stdin is not None and writer.stdout is not None
    json.loads(writer.stdout.readline())
    server = Server("ours", repo)
    try:
        with sync_playwright() as pw:
            browser = launch(pw)
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(server.base + "/metrics")
            page.wait_for_selector(READY)
            page.wait_for_selector("section.chart[data-max-step='199']")
            page.evaluate(OBSERVE_JS)
            writer.stdin.write("go\n")
            writer.stdin.flush()
            flushes = [json.loads(writer.stdout.readline()) for _ in range(p["points"])]
            last = flushes[-1]["step"]
            page.wait_for_function(
                "n => Number(document.querySelector('section.chart').dataset.maxStep) >= n",
                arg=last,
            )
            seen = page.evaluate("() => window.__seen")
            if p.get("shot"):
                SHOTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(SHOTS / f"{p['shot']}.png"))
            browser.close()
    finally:
        server.stop()
        writer.wait(60)
    latencies = []
    for f in flushes:
        shown = next(t for step, t in seen if step >= f["step"])
        latencies.append(shown - f["flushed"])
    return {"latency_s": latencies}


if __name__ == "__main__":
    common.serve({"page_load": page_load, "scroll": scroll, "live": live}, 0.0)
