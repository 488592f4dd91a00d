"""The web UI in a real headless Chromium (Debian's, driven by Playwright): each page on a real
repository, its contract attributes checked against the SDK's answer to the same query, a
screenshot of each, and no console error or request leaving the server anywhere."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

import aim_parquet as aim
from tests.conftest import ROOT, python_env
from tests.ui.browser import CHROMIUM, Watch, launch
from tests.ui.conftest import UiServer, quiet_run, start_server, stop_server

pytestmark = pytest.mark.browser
sync_api = pytest.importorskip("playwright.sync_api")

READY = "body[data-ready=true]"
TIMEOUT_MS = 30_000
SHOTS = Path(os.environ.get("AIM_PARQUET_SCREENSHOTS", ROOT / ".bench" / "screenshots"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


class Tab:
    """A page of a fresh browser context, watched for errors and outside requests."""

    def __init__(self, browser: Any, server: UiServer) -> None:
        self.server = server
        self.base = f"http://localhost:{server.port}"
        self.context = browser.new_context(viewport={"width": 1400, "height": 900})
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.watch = Watch(f"localhost:{server.port}")
        self.watch.attach(self.context, self.page)

    def open(self, path: str) -> Any:
        self.page.goto(self.base + path)
        self.page.wait_for_selector(READY)
        return self.page

    def shot(self, name: str) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=False)
        return path

    def close(self) -> None:
        self.context.close()
        self.watch.check()


@pytest.fixture
def tab(browser: Any, ui_server: UiServer) -> Iterator[Tab]:
    t = Tab(browser, ui_server)
    yield t
    t.close()


def attr(page: Any, selector: str, name: str) -> str:
    value = page.get_attribute(selector, name)
    assert value is not None, f"{selector} has no {name}"
    return str(value)


def wait_reloaded(page: Any, action: Any) -> None:
    """Run `action` (which reloads the data) and wait for data-ready to go false, then true."""
    page.evaluate("document.body.dataset.ready = 'stale'")
    action()
    page.wait_for_function("() => document.body.dataset.ready === 'true'")


def test_playwright_drives_the_installed_chromium(browser: Any) -> None:
    version = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, timeout=60)
    major = re.search(r"(\d+)\.\d+\.\d+", version.stdout)
    assert major is not None, version.stdout
    assert browser.version.split(".")[0] == major.group(1)
    pinned = re.search(r'"playwright==([\d.]+)"', (ROOT / "pyproject.toml").read_text())
    from importlib.metadata import version as installed

    assert pinned is not None and installed("playwright") == pinned.group(1)


def test_runs_page_count_matches_the_sdk(tab: Tab, ui_repo: Path) -> None:
    repo = aim.Repo(str(ui_repo))
    page = tab.open("/")
    assert int(attr(page, "#runs-table", "data-run-count")) == len(
        list(repo.query_runs("").iter_runs())
    )
    assert page.locator(".vt-row:visible").count() == 4
    assert page.get_by_text("Лосс 損失 run").is_visible()
    tab.shot("runs-4-runs")
    query = "run.hparams.lr < 0.05"
    page = tab.open(f"/runs?q={quote(query)}&metrics=loss")
    expected = len(list(repo.query_runs(query).iter_runs()))
    assert int(attr(page, "#runs-table", "data-run-count")) == expected == 2
    assert page.locator(".vt-head[data-key='metric:loss (subset=train)']").count() == 1
    page.click("button:text-is('Columns…')")
    page.uncheck("dialog input[value='hparams.batch_size']")
    page.click("dialog button:text-is('Show chosen')")
    page.wait_for_function("() => location.search.includes('params=')")
    assert page.locator(".vt-head[data-key='param:hparams.batch_size']").count() == 0
    assert page.locator(".vt-head[data-key='param:hparams.lr']").count() == 1
    tab.watch.expect_error("status of 400")  # the API's answer to the bad query
    wait_reloaded(
        page, lambda: (page.fill("input[name=q]", "run.hparams.lr >"), page.click("text=Search"))
    )
    error = page.locator("pre.error")
    assert error.is_visible() and "^" in error.inner_text()
    assert attr(page, "#runs-table", "data-run-count") == "0"
    tab.shot("runs-query-error")
    page.go_back()
    page.wait_for_function(
        f"() => document.querySelector('#runs-table').dataset.runCount === '{expected}'"
    )


def chart_expectations(repo: aim.Repo, query: str) -> tuple[int, dict[str, int]]:
    metrics = list(repo.query_metrics(query))
    per_chart: dict[str, int] = {}
    for m in metrics:
        per_chart[m.name] = max(per_chart.get(m.name, -1), int(m.last_step()))
    return len(metrics), per_chart


def test_metrics_page_contract_matches_the_sdk(tab: Tab, ui_repo: Path) -> None:
    repo = aim.Repo(str(ui_repo))
    page = tab.open("/metrics")
    count, per_chart = chart_expectations(repo, "")
    assert int(attr(page, "#metrics", "data-series-count")) == count
    charts = page.locator("section.chart")
    assert charts.count() == len(per_chart)
    for i in range(charts.count()):
        title = charts.nth(i).locator("h3 > span").inner_text()
        assert int(charts.nth(i).get_attribute("data-max-step") or -1) == per_chart[title]
    assert page.locator("canvas").count() >= len(per_chart)
    page.locator("section.chart").first.locator(".u-over").hover(position={"x": 120, "y": 60})
    assert page.locator(".tooltip:visible").count() in (0, 1)
    tab.shot("metrics-4-runs")


def test_metrics_view_state_lives_in_the_url(tab: Tab, ui_repo: Path) -> None:
    query = "metric.name == 'loss'"
    url = (
        f"/metrics?q={quote(query)}&x=epoch&chart_by=metric.context.subset"
        "&color_by=run.hparams.lr&agg=mean&band=std&smooth=0.6&ylog=1"
    )
    page = tab.open(url)
    assert page.input_value("select[name=x]") == "epoch"
    assert page.input_value("select[name=agg]") == "mean"
    assert page.input_value("input[name=color_by]") == "run.hparams.lr"
    assert page.locator("section.chart").count() == 2  # train, val
    count = len(list(aim.Repo(str(ui_repo)).query_metrics(query)))
    assert int(attr(page, "#metrics", "data-series-count")) == count
    tab.shot("metrics-aggregated-url-state")
    page.select_option("select[name=agg]", "none")
    page.wait_for_function("() => location.search.indexOf('agg=') === -1")
    wait_reloaded(page, lambda: page.select_option("select[name=x]", "wall"))
    assert "x=wall" in page.url
    tab.shot("metrics-wall-time")


def test_nan_inf_and_non_ascii_names(tab: Tab) -> None:
    page = tab.open("/metrics?q=" + quote("metric.name == '損失'"))
    assert attr(page, "#metrics", "data-series-count") == "1"
    assert attr(page, "section.chart", "data-max-step") == "6"
    assert page.locator("section.chart h3", has_text="3 NaN/inf not drawn").count() == 1
    assert page.locator(".legend-item", has_text="Лосс 損失 run").count() == 1
    tab.shot("metrics-nan-inf-unicode")


def test_empty_repository(browser: Any, tmp_path: Path) -> None:
    aim.Repo(str(tmp_path), init=True)
    server = start_server(tmp_path)
    try:
        tab = Tab(browser, server)
        page = tab.open("/runs")
        assert attr(page, "#runs-table", "data-run-count") == "0"
        assert page.get_by_text("No run matches this query.").is_visible()
        tab.shot("runs-empty-repo")
        page = tab.open("/metrics")
        assert attr(page, "#metrics", "data-series-count") == "0"
        assert page.locator(".empty:visible").count() == 1
        tab.shot("metrics-empty-repo")
        tab.close()
    finally:
        assert stop_server(server)[0] == 0


def test_runs_explorer_archive_edit_delete(browser: Any, tmp_path: Path) -> None:
    hashes = []
    for i in range(3):
        run = quiet_run(tmp_path, experiment=f"e{i}")
        run.track(float(i), name="loss", step=0)
        run.close()
        hashes.append(run.hash)
    server = start_server(tmp_path)
    try:
        tab = Tab(browser, server)
        page = tab.open("/runs")
        row = page.locator(f".vt-row[data-key='{hashes[0]}']")
        row.locator("input[type=checkbox]").check()
        wait_reloaded(page, lambda: page.click("button:text-is('Archive')"))
        assert attr(page, "#runs-table", "data-run-count") == "2"
        assert aim.Repo(str(tmp_path)).get_run(hashes[0]).archived is True
        page.check("input[name=archived]")
        page.wait_for_function(
            "() => document.querySelector('#runs-table').dataset.runCount === '3'"
        )
        page.locator(f".vt-row[data-key='{hashes[1]}'] button.edit").click()
        page.fill("dialog input[name=name]", "renamed by the UI")
        page.fill("dialog input[name=tags]", "good, 良い")
        wait_reloaded(page, lambda: page.click("dialog button:text-is('Save')"))
        run = aim.Repo(str(tmp_path)).get_run(hashes[1])
        assert run.name == "renamed by the UI" and list(run.tags) == ["good", "良い"]
        assert page.get_by_text("renamed by the UI").is_visible()
        page.locator(f".vt-row[data-key='{hashes[2]}'] input[type=checkbox]").check()
        page.click("button:text-is('Delete…')")
        page.click("dialog button:text-is('Cancel')")
        assert aim.Repo(str(tmp_path)).get_run(hashes[2]) is not None
        page.click("button:text-is('Delete…')")
        tab.shot("runs-delete-confirmation")
        wait_reloaded(page, lambda: page.click("dialog button:text-is('Delete')"))
        assert attr(page, "#runs-table", "data-run-count") == "2"
        assert aim.Repo(str(tmp_path)).get_run(hashes[2]) is None
        tab.close()
    finally:
        assert stop_server(server)[0] == 0


def test_many_runs_render_only_visible_rows(browser: Any, tmp_path: Path) -> None:
    for i in range(300):
        run = quiet_run(tmp_path, experiment=f"exp{i % 5}")
        run["hparams"] = {"lr": 10 ** -(1 + i % 4), "seed": i}
        for step in range(0, 1000, 50):
            run.track(1.0 / (1 + step * (1 + i % 7) / 100), name="loss", step=step)
        run.close()
    server = start_server(tmp_path)
    try:
        tab = Tab(browser, server)
        page = tab.open("/runs?metrics=loss")
        assert attr(page, "#runs-table", "data-run-count") == "300"
        assert page.locator(".vt-row").count() < 80  # virtual: rows in view only
        page.click(".vt-head[data-key='param:hparams.seed']")
        page.wait_for_function("() => location.search.includes('sort=param')")
        page.locator(".vt-scroll").evaluate("el => el.scrollTop = el.scrollHeight")
        page.get_by_text("299", exact=True).wait_for()
        tab.shot("runs-300-runs-scrolled")
        page = tab.open(
            "/metrics?q=" + quote("run.hparams.seed < 100") + "&color_by=run.hparams.lr"
        )
        assert attr(page, "#metrics", "data-series-count") == "100"
        tab.shot("metrics-100-runs")
        tab.close()
    finally:
        assert stop_server(server)[0] == 0


WRITER = """
import sys, time, math, pathlib
import aim_parquet as aim
repo, stop = sys.argv[1], pathlib.Path(sys.argv[2])
run = aim.Run(repo=repo, system_tracking_interval=None, capture_terminal_logs=False)
run.name = "live run"
step = 0
deadline = time.monotonic() + 90
while not stop.exists() and time.monotonic() < deadline:
    run.track(math.exp(-step / 100), name="loss", step=step)
    if step % 20 == 0:
        run.flush()
        print(step, flush=True)
    step += 1
    time.sleep(0.01)
run.close()
"""


def test_a_live_run_extends_on_screen(browser: Any, tmp_path: Path) -> None:
    aim.Repo(str(tmp_path), init=True)
    stop = tmp_path / "stop"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path), str(stop)],
        stdout=subprocess.PIPE,
        text=True,
        env=python_env(),
    )
    server = start_server(tmp_path)
    try:
        assert writer.stdout is not None
        while int(writer.stdout.readline() or -1) < 40:  # some points are on disk
            pass
        tab = Tab(browser, server)
        page = tab.open("/metrics")
        page.wait_for_selector("section.chart[data-max-step]")
        first = int(attr(page, "section.chart", "data-max-step"))
        page.wait_for_function(
            f"() => Number(document.querySelector('section.chart').dataset.maxStep) >= {first + 100}"
        )
        assert page.locator(".badge:visible", has_text="1 active run").count() == 1
        tab.shot("metrics-live-run")
        stop.touch()
        assert writer.wait(60) == 0
        page.wait_for_function("() => document.querySelector('.badge').hidden === true")
        tab.close()
    finally:
        stop.touch()
        if writer.poll() is None:
            writer.kill()
        writer.communicate()
        assert stop_server(server)[0] == 0


def test_base_path_works_in_the_browser(browser: Any, ui_repo: Path) -> None:
    server = start_server(ui_repo, "--base-path", "/aim")
    try:
        tab = Tab(browser, server)
        page = tab.open("/aim/")
        assert attr(page, "#runs-table", "data-run-count") == "4"
        page.click("nav a[data-nav=metrics]")
        page.wait_for_url(re.compile(r"/aim/metrics$"))
        page.wait_for_selector(READY)
        assert int(attr(page, "#metrics", "data-series-count")) > 0
        tab.close()
    finally:
        assert stop_server(server)[0] == 0


def test_zoom_fetches_the_range_at_full_resolution(browser: Any, tmp_path: Path) -> None:
    run = quiet_run(tmp_path)
    for step in range(50_000):
        run.track(float(step % 1000 == 500) * 5.0 + step / 50_000, name="loss", step=step)
    run.close()
    server = start_server(tmp_path)
    try:
        tab = Tab(browser, server)
        page = tab.open("/metrics")
        chart = page.locator("section.chart")
        assert chart.get_attribute("data-mode") == "binned"
        assert chart.get_attribute("data-max-step") == "49999"
        box = chart.locator(".u-over").bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] * 0.10, box["y"] + 40)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.12, box["y"] + 40, steps=5)
        page.mouse.up()
        page.wait_for_function(
            "() => document.querySelector('section.chart').dataset.mode === 'exact zoomed'"
        )
        zoomed_max = int(chart.get_attribute("data-max-step") or 0)
        assert 5_000 < zoomed_max < 7_000  # the last step inside the zoomed range
        tab.shot("metrics-zoomed")
        chart.locator(".u-over").dblclick()
        page.wait_for_function(
            "() => document.querySelector('section.chart').dataset.mode === 'binned'"
        )
        assert chart.get_attribute("data-max-step") == "49999"
        tab.close()
    finally:
        assert stop_server(server)[0] == 0
