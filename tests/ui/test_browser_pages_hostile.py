"""The part-two pages as a hostile user uses them, in Debian's headless Chromium: axis ticks past
10,000, a 400-run params view brushed and opened in the metrics explorer, a metric of one point
on the run page and in the report, an active run's page refreshing under a filter and a zoom,
logs and log records of a file cut short, a long log line scrolled sideways, and thousands of
distribution sequences. No console error and no request leaving the server anywhere."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

import aim_parquet as aim
from aim_parquet.objects import LogLine
from tests.conftest import PYTHON, python_env
from tests.ui.browser import launch
from tests.ui.conftest import UiServer, quiet_run, start_server, stop_server
from tests.ui.test_browser import READY, Tab, attr
from tests.ui.test_pages_hostile_api import cut_segments

pytestmark = pytest.mark.browser
sync_api = pytest.importorskip("playwright.sync_api")

RUNS = 400
"""More runs than fit by hash in one query (300): their `run.hash in [...]` was 14,000
characters and the metrics explorer answered "query refused"."""

BLUE_PIXELS = """([box, title]) => {
  // pixels of the first palette colour (#2563eb) on the canvas of the chart titled `title`
  const chart = [...document.querySelectorAll(`${box} section.chart`)].find((el) => el.querySelector("h3 span").textContent === title);
  const canvas = chart.querySelector("canvas");
  const { data } = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
  let n = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (Math.abs(data[i] - 37) < 40 && Math.abs(data[i + 1] - 99) < 40 && Math.abs(data[i + 2] - 235) < 40 && data[i + 3] > 200) n++;
  }
  return n;
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


def hostile_repo(root: Path) -> dict[str, str]:
    """400 runs with params and a loss; a run with a one-point metric and a 50,000-character
    log line; a run whose logs and log records were cut short; 500 distribution sequences."""
    hashes: dict[str, str] = {}
    for i in range(RUNS):
        run = quiet_run(root, experiment="sweep")
        run["hparams"] = {
            "lr": 10 ** -(1 + i % 5),
            "batch": 2 ** (4 + i % 4),
            "opt": ["adam", "sgd"][i % 2],
        }
        run.track(1.0 / (1 + i), name="loss", step=0)
        run.close()
    for i in range(5):  # a param key holding a dot: `run["hparams"].dotted.key` is not it
        run = quiet_run(root, experiment="dotted")
        run["hparams"] = {"dotted.key": float(i)}
        run.track(float(i), name="loss", step=0)
        run.close()
    run = quiet_run(root, experiment="odd")
    run.name = "odd shapes"
    run.track(float("nan"), name="once", step=0)
    run.track(0.5, name="once", step=1)  # the only finite point: a dot, not an empty chart
    run.track(1.0, name="__system__cpu", step=0)
    for i in range(50):
        run.track(
            LogLine(("LONG " + "x" * 50_000 + " needle") if i == 7 else f"line {i}"),
            name="logs",
            step=i,
        )
    run.close()
    hashes["odd"] = run.hash
    cut = quiet_run(root, experiment="damaged")
    cut.name = "cut logs"
    for i in range(300):
        cut.track(LogLine(f"line {i}"), name="logs", step=i)
    cut.log_warning("lost")
    cut.close()
    cut_segments(root, cut.hash, "logs")
    cut_segments(root, cut.hash, "__log_records")
    hashes["cut"] = cut.hash
    dists = quiet_run(root, experiment="layers")
    rng = np.random.default_rng(0)
    for layer in range(500):
        dists.track(aim.Distribution(hist=rng.random(8), bin_range=(0, 1)), name="weights",
                    step=0, context={"layer": layer})  # fmt: skip
    dists.close()
    return hashes


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    root = tmp_path_factory.mktemp("hostile-pages")
    return root, hostile_repo(root)


@pytest.fixture(scope="module")
def server(repo: tuple[Path, dict[str, str]]) -> Iterator[UiServer]:
    server = start_server(repo[0])
    yield server
    code, err = stop_server(server)
    assert code == 0, err


@pytest.fixture
def tab(browser: Any, server: UiServer) -> Iterator[Tab]:
    t = Tab(browser, server)
    yield t
    t.close()


def test_axis_ticks_past_ten_thousand_are_not_ten_times_too_small(tab: Tab) -> None:
    page = tab.open("/")
    ticks = page.evaluate("""async () => {
        const m = await import("./static/js/chart.js");
        return { spread: m.fmtTicks([0, 100000, 200000, 300000]), one: m.fmtTick(12500, 500),
                 small: m.fmtTick(5000, 1000), big: m.fmtTicks([1e6, 2e6]), neg: m.fmtTick(-250000, 50000) };
    }""")
    # 200,000 was "20k" and 12,500 "1.25k": divided by 10,000 and called thousands
    assert ticks == {"spread": ["0", "100k", "200k", "300k"], "one": "12.5k", "small": "5000",
                     "big": ["1M", "2M"], "neg": "-250k"}  # fmt: skip


def test_params_selection_of_hundreds_of_runs_opens_in_the_metrics_explorer(
    tab: Tab, repo: tuple[Path, dict[str, str]]
) -> None:
    page = tab.open(
        "/params?q=run.experiment%20%3D%3D%20'sweep'&params=hparams.lr,hparams.batch&metrics=loss"
    )
    assert attr(page, "#params", "data-run-count") == str(RUNS)
    link = page.get_by_role("link", name="Open in metrics")
    # nothing brushed: the page's own query, not 400 hashes
    assert parse_qs(urlsplit(link.get_attribute("href") or "").query)["q"] == [
        "run.experiment == 'sweep'"
    ]
    box = page.locator("#params canvas").bounding_box()
    assert box is not None
    # brush the lr axis (the first, 70 px in) from a fifth of its height down to its bottom
    # (not into the none / NaN band under it): lr 0.01 and below, 320 runs
    x, top, bottom = box["x"] + 70, box["y"] + 44, box["y"] + box["height"] - 58
    page.mouse.move(x, bottom - 0.2 * (bottom - top))
    page.mouse.down()
    page.mouse.move(x, bottom + 3, steps=4)
    page.mouse.up()
    selected = int(attr(page, "#params", "data-selected-count"))
    assert selected == 320
    href = link.get_attribute("href") or ""
    query = parse_qs(urlsplit(href).query)["q"][0]
    assert "run.hash" not in query and 'run["hparams"].lr >=' in query, query
    link.click()
    page.wait_for_url("**/metrics?**")
    page.wait_for_selector(READY)
    assert int(attr(page, "#metrics", "data-series-count")) == selected
    assert not page.locator("pre.error:visible").count()
    runs = aim.Repo(str(repo[0])).query_runs(query, report_mode=0)
    assert sum(1 for _ in runs.iter_runs()) == selected
    # brushing the none / NaN band of a param: no condition names it and 400 runs are too many
    # to name by hash: the links are disabled and say why
    page = tab.open("/params?params=hparams.lr,hparams.batch&metrics=loss")
    box = page.locator("#params canvas").bounding_box()
    assert box is not None
    page.mouse.move(x, box["y"] + 30)
    page.mouse.down()
    page.mouse.move(x, box["y"] + box["height"] - 2, steps=4)
    page.mouse.up()
    assert int(attr(page, "#params", "data-selected-count")) > 300
    disabled = page.locator("#app a.button.disabled", has_text="Open in metrics")
    assert "at most 300" in (disabled.get_attribute("title") or "")
    assert "cannot be named in one query" in page.inner_text("#selection-note")
    tab.shot("params-selection-too-large")
    # a key with a dot in it: the condition names no run, the server says so, the hashes are used
    page = tab.open(
        "/params?q=run.experiment%20%3D%3D%20'dotted'&params=hparams.dotted.key&metrics=loss"
    )
    box = page.locator("#params canvas").bounding_box()
    assert box is not None
    top, bottom = box["y"] + 44, box["y"] + box["height"] - 58
    page.mouse.move(x, top - 5)
    page.mouse.down()
    page.mouse.move(x, bottom + 3, steps=4)
    page.mouse.up()
    assert attr(page, "#params", "data-selected-count") == "5"
    page.get_by_role("link", name="Open in metrics").click()
    page.wait_for_url("**/metrics?**")
    page.wait_for_selector(READY)
    assert parse_qs(urlsplit(page.url).query)["q"][0].startswith("run.hash in [")
    assert attr(page, "#metrics", "data-series-count") == "5"


def test_a_single_point_is_drawn_on_the_run_page_and_in_the_report(
    browser: Any, tab: Tab, repo: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    root, hashes = repo
    page = tab.open(f"/runs/{hashes['odd']}")
    page.locator("#run-metrics section.chart canvas").first.wait_for()
    assert page.evaluate(BLUE_PIXELS, ["#run-metrics", "once"]) > 10  # a dot (an empty chart)
    page.locator("#run-system section.chart canvas").wait_for()
    assert page.evaluate(BLUE_PIXELS, ["#run-system", "cpu"]) > 10
    assert page.locator("#run-system .legend").inner_text().strip() == "cpu"
    tab.shot("run-page-single-points")
    out = tmp_path / "report.html"
    done = subprocess.run(
        [PYTHON, "-m", "aim_parquet", "--repo", str(root), "report", "--query",
         "metric.name == 'once'", "--output", str(out)],
        capture_output=True, text=True, timeout=120, env=python_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    report = context.new_page()
    report.goto(out.as_uri())  # from the file itself, as a mail attachment is opened
    report.wait_for_selector(READY)
    assert report.evaluate(BLUE_PIXELS, ["#report-charts", "once"]) > 10
    context.close()


WRITER = """
import pathlib, sys, time
import aim_parquet as aim
repo, stop = sys.argv[1], pathlib.Path(sys.argv[2])
run = aim.Run(repo=repo, system_tracking_interval=None, capture_terminal_logs=False)
run.name = "live three"
step, deadline = 0, time.monotonic() + 120
while not stop.exists() and time.monotonic() < deadline:
    for name in ("alpha", "beta", "gamma"):
        run.track(float(step), name=name, step=step)
    run.flush()
    print(step, flush=True)
    step += 1
    time.sleep(0.5)
run.close()
"""


def test_an_active_runs_refresh_keeps_its_filter_and_zoom(browser: Any, tmp_path: Path) -> None:
    aim.Repo(str(tmp_path), init=True)
    stop = tmp_path / "stop"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(stop)],
                              stdout=subprocess.PIPE, text=True, env=python_env())  # fmt: skip
    server = start_server(tmp_path)
    try:
        assert writer.stdout is not None
        while int(writer.stdout.readline() or -1) < 4:
            pass
        tab = Tab(browser, server)
        run_hash = next(iter(aim.Repo(str(tmp_path)).query_runs("").iter_runs())).run.hash
        page = tab.open(f"/runs/{run_hash}")
        page.fill("input[name=metric-filter]", "beta")
        shown = "[...document.querySelectorAll('#run-metrics section.chart')].filter((e) => !e.hidden).map((e) => e.querySelector('h3 span').textContent)"
        assert page.evaluate(shown) == ["beta"]
        beta = "#run-metrics section.chart:nth-child(2)"  # alpha, beta, gamma
        assert page.locator(f"{beta} h3 span").inner_text() == "beta"
        first = int(attr(page, beta, "data-max-step"))
        plot = page.locator(f"{beta} .u-over").bounding_box()
        assert plot is not None
        page.mouse.move(plot["x"] + plot["width"] * 0.2, plot["y"] + plot["height"] / 2)
        page.mouse.down()
        page.mouse.move(plot["x"] + plot["width"] * 0.5, plot["y"] + plot["height"] / 2, steps=4)
        page.mouse.up()
        zoom = "(s) => { const c = document.querySelector(s)._chart; return c.zoomRange && c.plot.scales.x.min; }"
        zoomed = page.evaluate(zoom, beta)
        assert zoomed is not None
        # the page refreshes an active run every 5 s: wait for new points on screen
        page.wait_for_function(f"() => Number(document.querySelector(\"{beta}\").dataset.maxStep) > {first}",
                               timeout=20_000)  # fmt: skip
        # it rebuilt every chart: all three shown again under the filter "beta", zoom gone
        assert page.evaluate(shown) == ["beta"]
        assert page.evaluate(zoom, beta) == zoomed
        stop.touch()
        assert writer.wait(60) == 0
        tab.close()
    finally:
        stop.touch()
        if writer.poll() is None:
            writer.kill()
        writer.communicate()
        assert stop_server(server)[0] == 0


def test_logs_and_records_of_a_cut_file_say_so(tab: Tab, repo: tuple[Path, dict[str, str]]) -> None:
    cut = repo[1]["cut"]
    page = tab.open(f"/runs/{cut}?tab=logs")
    alert = page.locator(".tab-panel pre.error[role=alert]:visible")
    assert "300 lines" in alert.inner_text() and "verify --repair" in alert.inner_text()
    assert "no terminal output" not in page.inner_text("#logs")  # what it said before
    tab.shot("logs-cut-short")
    page = tab.open(f"/runs/{cut}?tab=records")
    assert "1 record " in page.locator(".tab-panel pre.error[role=alert]:visible").inner_text()
    assert "has no log records" not in page.inner_text("#log-records")


def test_a_long_log_line_keeps_its_line_numbers_and_jumps_to_its_match(
    tab: Tab, repo: tuple[Path, dict[str, str]]
) -> None:
    page = tab.open(f"/runs/{repo[1]['odd']}?tab=logs")
    page.evaluate("document.getElementById('logs').scrollLeft = 20000")
    page.wait_for_function(
        "() => parseFloat(document.getElementById('logs').style.getPropertyValue('--sx')) > 10000"
    )
    numbers = page.evaluate("""() => {
        const box = document.getElementById('logs').getBoundingClientRect();
        return [...document.querySelectorAll('#logs .log-line:not([hidden]) .ln')].slice(0, 5)
          .map((el) => { const r = el.getBoundingClientRect(); return r.left >= box.left - 1 && r.right <= box.right; });
    }""")
    assert numbers and all(numbers)  # they scrolled away with the text
    page.fill("input[name=log-search]", "needle")
    page.press("input[name=log-search]", "Enter")
    page.wait_for_function(
        "() => document.getElementById('log-matches').textContent === '1 of 1 match'"
    )
    seen = page.evaluate("""() => {
        const mark = document.querySelector('#logs mark');
        const box = document.getElementById('logs').getBoundingClientRect(), r = mark.getBoundingClientRect();
        return r.left >= box.left && r.right <= box.right;
    }""")
    assert seen  # the match 50,000 characters along the line is in view
    page.fill("input[name=log-search]", "line 3")
    page.press("input[name=log-search]", "Enter")
    page.wait_for_function(
        "() => document.getElementById('log-matches').textContent === '1 of 11 matches'"
    )
    assert page.evaluate("document.getElementById('logs').scrollLeft") == 0
    tab.shot("logs-long-line")


def test_hundreds_of_distribution_sequences_show_the_first_that_fit(tab: Tab) -> None:
    page = tab.open("/distributions?q=run.experiment%20%3D%3D%20'layers'")
    assert attr(page, "#distributions", "data-sequence-count") == "500"
    shown = page.locator("#distributions section.dist-card").count()
    assert 0 < shown < 500
    assert f"the first {shown} shown: narrow the query" in page.inner_text(".toolbar .count")
