"""The pages as a demanding user looks at them, in Debian's headless Chromium: every curve named
in its legend with one colour per run in every chart, the runs table's requested metrics and
params reachable, the back button restoring every control, a single point and values float32
cannot carry drawn and told exactly, series tracked at different steps aggregated, many
selected runs opened together, two tabs editing one run, and changes through a reverse proxy."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

import aim_parquet as aim
from tests.conftest import python_env
from tests.ui.browser import launch
from tests.ui.conftest import quiet_run, start_server, stop_server
from tests.ui.proxy import reverse_proxy
from tests.ui.test_browser import READY, WRITER, Tab, attr, wait_reloaded

pytestmark = pytest.mark.browser
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


def demo_like_repo(root: Path) -> Path:
    """What `make demo` tracks: 3 runs, 4 hparams, loss and accuracy for train and val."""
    for lr in (0.5, 0.1, 0.01):
        run = quiet_run(root, experiment="demo-softmax", log_system_params=False)
        run["hparams"] = {"learning_rate": lr, "batch_size": 64, "epochs": 5, "optimizer": "sgd"}
        for step in range(60):
            loss = math.exp(-step * lr / 5)
            for subset, scale in (("train", 1.0), ("val", 1.1)):
                if subset == "val" and step % 10:
                    continue
                ctx = {"subset": subset}
                run.track(loss * scale, name="loss", step=step, context=ctx)
                run.track(1 - loss * scale / 2, name="accuracy", step=step, context=ctx)
        run.close()
    return root


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    server = start_server(demo_like_repo(tmp_path_factory.mktemp("demo-like")))
    yield server
    code, err = stop_server(server)
    assert code == 0, err


@pytest.fixture
def demo_tab(browser: Any, demo_server: Any) -> Iterator[Tab]:
    tab = Tab(browser, demo_server)
    tab.context.set_default_timeout(30_000)
    yield tab
    tab.close()


LEGENDS = """() => [...document.querySelectorAll('section.chart')].map((chart) => {
  const legend = chart.querySelector('.legend'), box = chart.getBoundingClientRect();
  const items = [...legend.querySelectorAll('.legend-item')];
  return {
    title: chart.querySelector('h3 > span').textContent,
    series: Number(chart.dataset.seriesCount),
    clipped: legend.scrollHeight > legend.clientHeight + 1,
    outside: items.filter((i) => { const r = i.getBoundingClientRect();
      return r.bottom > box.bottom || r.right > box.right || r.height === 0; }).length,
    entries: items.map((i) => [i.textContent, i.querySelector('.swatch').style.backgroundColor]),
  };
})"""


def test_every_curve_is_in_its_legend_with_one_colour_per_run_everywhere(demo_tab: Tab) -> None:
    page = demo_tab.open("/metrics")
    charts = page.evaluate(LEGENDS)
    assert [c["title"] for c in charts] == ["loss", "accuracy"]
    colours: dict[str, str] = {}
    for chart in charts:
        # the page showed 4 entries for 6 series; the 5th curve (purple) was in none
        assert chart["series"] == 6 and len(chart["entries"]) == 6, chart
        assert not chart["clipped"] and chart["outside"] == 0, chart
        assert len({colour for _, colour in chart["entries"]}) == 6, chart
        for label, colour in chart["entries"]:
            assert colours.setdefault(label, colour) == colour, (label, chart["title"])
    assert len(colours) == 6  # "a8f4cc42 · subset=train" etc.: the same 6 in both charts
    demo_tab.shot("hostile-legend-demo")


def test_runs_table_shows_the_metrics_asked_for_first_and_reaches_the_params(
    demo_tab: Tab,
) -> None:
    demo_tab.page.set_viewport_size({"width": 1280, "height": 720})
    page = demo_tab.open("/runs?metrics=loss,accuracy")
    heads = page.evaluate(
        """() => { const box = document.querySelector('.vt-scroll').getBoundingClientRect();
        return [...document.querySelectorAll('.vt-head')].map((h) => {
          const r = h.getBoundingClientRect();
          return [h.dataset.key, r.left >= box.left - 1 && r.right <= box.right + 1]; }); }"""
    )
    keys = [key for key, _ in heads]
    metrics = [key for key in keys if key.startswith("metric:")]
    assert metrics == [
        "metric:loss (subset=train)",
        "metric:loss (subset=val)",
        "metric:accuracy (subset=train)",
        "metric:accuracy (subset=val)",
    ]
    visible = dict(heads)
    assert all(visible[key] for key in metrics), heads  # every asked-for metric in view
    params = [key for key in keys if key.startswith("param:hparams.")]
    assert len(params) == 4
    # the rest is announced, not hidden behind an invisible scrollbar
    assert attr(page, "#runs-table", "data-more-columns") == "true"
    demo_tab.shot("hostile-runs-first-view")
    page.click("button.more-columns")
    page.wait_for_function(
        "() => document.querySelector('#runs-table').dataset.moreColumns === 'false'"
    )
    shown = page.evaluate(
        """() => { const box = document.querySelector('.vt-scroll').getBoundingClientRect();
        const inView = (el) => { const r = el.getBoundingClientRect();
          return r.left >= box.left - 1 && r.right <= box.right + 1; };
        return { params: [...document.querySelectorAll(".vt-head[data-key^='param:']")]
                   .filter(inView).length,
                 name: inView(document.querySelector(".vt-row .vt-cell.sticky a")) }; }"""
    )
    assert shown == {"params": 4, "name": True}  # the run's name stays while scrolled
    demo_tab.shot("hostile-runs-scrolled-to-params")


def test_the_back_button_restores_every_control(demo_tab: Tab) -> None:
    page = demo_tab.open("/metrics")
    wait_reloaded(page, lambda: page.select_option("select[name=x]", "relative"))
    page.fill("input[name=chart_by]", "metric.context.subset")
    wait_reloaded(page, lambda: page.press("input[name=chart_by]", "Enter"))
    page.check("input[name=ylog]")
    wait_reloaded(page, lambda: page.select_option("select[name=x]", "wall"))
    wait_reloaded(page, lambda: page.go_back())
    assert "x=relative" in page.url
    assert page.input_value("select[name=x]") == "relative"  # it still said "wall time"
    assert page.input_value("input[name=chart_by]") == "metric.context.subset"
    assert page.is_checked("input[name=ylog]")
    wait_reloaded(page, lambda: page.go_back())
    assert page.input_value("select[name=x]") == "relative"
    assert page.input_value("input[name=chart_by]") == "metric.name"
    assert page.locator("section.chart").count() == 2


SERIES_PIXELS = """(colour) => { const canvas = document.querySelector('section.chart canvas');
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (Math.abs(data[i] - colour[0]) < 30 && Math.abs(data[i + 1] - colour[1]) < 30 &&
        Math.abs(data[i + 2] - colour[2]) < 30 && data[i + 3] > 200) n++;
  }
  return n; }"""


def tooltip_near(page: Any) -> str:
    """Sweep the plot until the tooltip shows; its text."""
    over = page.locator("section.chart .u-over").first
    box = over.bounding_box()
    assert box is not None
    for y in range(2, int(box["height"]), 8):
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + y)
        tip = page.locator(".tooltip:visible")
        if tip.count():
            return str(tip.inner_text())
    raise AssertionError("no tooltip anywhere on the chart")


def test_single_points_exact_values_and_steps_past_2_53(browser: Any, tmp_path: Path) -> None:
    run = quiet_run(tmp_path, log_system_params=False)
    run.track(42.0, name="single", step=7)
    for step, value in enumerate([1_234_567_891.0, 1_234_567_892.0, 1_234_567_893.0]):
        run.track(value, name="counter", step=step)
    run.track(1.0, name="bigstep", step=0)
    run.track(2.0, name="bigstep", step=2**62 + 1)
    run.close()
    server = start_server(tmp_path)
    try:
        tab = Tab(browser, server)
        page = tab.open("/metrics?q=" + quote("metric.name == 'single'"))
        blue = [0x25, 0x63, 0xEB]  # PALETTE[0]
        assert page.evaluate(SERIES_PIXELS, blue) > 10  # one point: a dot, not nothing
        tab.shot("hostile-single-point")
        page = tab.open("/metrics?q=" + quote("metric.name == 'counter'"))
        assert "1,234,567,892" in tooltip_near(page)  # float32 said 1,234,567,936
        page = tab.open("/metrics?q=" + quote("metric.name == 'bigstep'"))
        assert attr(page, "section.chart", "data-max-step") == str(2**62 + 1)
        assert str(2**62 + 1) in page.locator("section.chart h3").inner_text()
        tab.close()
    finally:
        assert stop_server(server)[0] == 0


def test_aggregation_interpolates_and_axis_ticks_keep_their_digits(demo_tab: Tab) -> None:
    page = demo_tab.open("/metrics")
    result = page.evaluate(
        """async () => {
          const series = await import(new URL('static/js/series.js', document.baseURI));
          const chart = await import(new URL('static/js/chart.js', document.baseURI));
          const a = [0, null, 0, null, 0, null], b = [null, 10, null, 10, null, 10];
          return {
            mean: series.aggregate([a, b], 'mean', 'minmax', [0, 1, 2, 3, 4, 5]),
            ticks: chart.fmtTicks([1234567890, 1234567900, 1234567910]),
            small: chart.fmtTicks([0.95, 0.9525, 0.955]),
            tiny: chart.fmtTicks([1e-5, 2e-5]),
            big: chart.fmtTicks([0, 5e17, 1e18, 1.5e18]),
          };
        }"""
    )
    # a run tracked at even steps and one at odd steps: their mean, not a 0/10 zigzag
    assert result["mean"]["line"] == [0, 5, 5, 5, 5, 10]
    assert result["mean"]["lower"][1:5] == [0, 0, 0, 0]
    assert result["mean"]["upper"][1:5] == [10, 10, 10, 10]
    assert result["ticks"] == ["1.23456789B", "1.2345679B", "1.23456791B"]
    assert result["small"] == ["0.95", "0.9525", "0.955"]
    assert result["tiny"] == ["1e-5", "2e-5"]
    assert result["big"] == ["0", "5e17", "1e18", "1.5e18"]


def test_many_selected_runs_open_together_or_say_why_not(browser: Any, tmp_path: Path) -> None:
    for i in range(305):
        run = quiet_run(tmp_path, log_system_params=False)
        run["hparams"] = {"seed": i}
        run.track(float(i), name="loss", step=0)
        run.close()
    server = start_server(tmp_path)
    try:
        tab = Tab(browser, server)
        page = tab.open("/runs?q=" + quote("run.hparams.seed >= 0"))
        page.check("input[aria-label='select all runs']")
        link = page.locator(".actions a")
        assert link.inner_text() == "Open 305 in metrics"
        # every run of the query: the query itself (305 hashes made a URL past the limits)
        assert link.get_attribute("href") == "metrics?q=" + quote("run.hparams.seed >= 0", "")
        page.locator(".vt-row input[data-action=select]").first.uncheck()
        assert link.get_attribute("aria-disabled") == "true"
        assert "at most 300" in (link.get_attribute("title") or "")
        page.check("input[aria-label='select all runs']")
        link.click()
        page.wait_for_url("**/metrics?q=*")
        page.wait_for_selector(READY)
        assert attr(page, "#metrics", "data-series-count") == "305"
        tab.close()
    finally:
        assert stop_server(server)[0] == 0


def test_two_tabs_editing_one_run_keep_each_others_changes(browser: Any, tmp_path: Path) -> None:
    run = quiet_run(tmp_path)
    run.track(1.0, name="loss", step=0)
    run.close()
    server = start_server(tmp_path)
    try:
        first, second = Tab(browser, server), Tab(browser, server)
        pages = [first.open("/runs"), second.open("/runs")]  # both loaded before any edit
        pages[0].click(f".vt-row[data-key='{run.hash}'] button.edit")
        pages[0].fill("dialog input[name=tags]", "from-tab-1")
        wait_reloaded(pages[0], lambda: pages[0].click("dialog button:text-is('Save')"))
        pages[1].click(f".vt-row[data-key='{run.hash}'] button.edit")  # its form: no tags yet
        pages[1].fill("dialog textarea[name=description]", "from tab 2")
        wait_reloaded(pages[1], lambda: pages[1].click("dialog button:text-is('Save')"))
        stored = aim.Repo(str(tmp_path)).get_run(run.hash)
        assert list(stored.tags) == ["from-tab-1"]  # tab 2 sent its stale empty tags
        assert stored.description == "from tab 2"
        first.close()
        second.close()
    finally:
        assert stop_server(server)[0] == 0


def test_archive_from_the_page_behind_a_reverse_proxy(browser: Any, tmp_path: Path) -> None:
    run = quiet_run(tmp_path)
    run.track(1.0, name="loss", step=0)
    run.close()
    server = start_server(tmp_path, "--base-path", "/tracker")
    try:
        with reverse_proxy(server.port, "/tracker", host="rewrite") as proxy_port:
            tab = Tab(browser, server)
            tab.base = f"http://127.0.0.1:{proxy_port}"
            tab.watch.allowed_netloc = f"127.0.0.1:{proxy_port}"
            page = tab.open("/tracker")  # no slash: a redirect that stays on the proxy
            assert page.url == f"http://127.0.0.1:{proxy_port}/tracker/"
            page.locator(f".vt-row[data-key='{run.hash}'] input[type=checkbox]").check()
            wait_reloaded(page, lambda: page.click("button:text-is('Archive')"))
            assert page.locator("pre.error").is_hidden()  # was "cross-origin change refused"
            assert aim.Repo(str(tmp_path)).get_run(run.hash).archived is True
            tab.shot("hostile-archive-through-proxy")
            tab.close()
    finally:
        assert stop_server(server)[0] == 0


def test_a_zoom_on_a_live_run_survives_its_updates(browser: Any, tmp_path: Path) -> None:
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
        while int(writer.stdout.readline() or -1) < 200:  # enough points to zoom into
            pass
        tab = Tab(browser, server)
        page = tab.open("/metrics")
        first = int(attr(page, "section.chart", "data-max-step"))
        box = page.locator("section.chart .u-over").bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + 40)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.75, box["y"] + 40, steps=5)
        page.mouse.up()
        page.wait_for_function(
            "() => document.querySelector('section.chart').dataset.mode.endsWith('zoomed')"
        )
        page.wait_for_function(  # live updates arrived meanwhile (one a second)
            f"() => Number(document.querySelector('section.chart').dataset.maxStep) > {first + 150}"
        )
        assert page.locator("section.chart").get_attribute("data-mode") == "exact zoomed"
        # the left edge of the plot is still about halfway through the first steps, not step 0
        box = page.locator("section.chart .u-over").bounding_box()  # its y axis got wider
        assert box is not None
        texts = []
        for y in range(2, int(box["height"]), 6):
            page.mouse.move(box["x"] + 4, box["y"] + y)
            if page.locator(".tooltip:visible").count():
                texts.append(page.locator(".tooltip:visible").inner_text())
                break
        assert texts, "no tooltip at the left edge"
        match = re.search(r"step (?:≈ )?([\d,]+):", texts[0])
        assert match and int(match.group(1).replace(",", "")) >= first * 0.4, texts[0]
        tab.shot("hostile-live-zoom-kept")
        page.locator("section.chart .u-over").dblclick()
        page.wait_for_function(
            "() => document.querySelector('section.chart').dataset.mode === 'exact'"
        )
        tab.close()
    finally:
        stop.touch()
        if writer.poll() is None:
            writer.kill()
        writer.communicate()
        assert stop_server(server)[0] == 0


def test_params_of_a_few_runs_each_show_in_their_rows(browser: Any, tmp_path: Path) -> None:
    from tests.ui.test_hostile_api import sparse_repo

    hashes = sparse_repo(tmp_path, 30)
    server = start_server(tmp_path)
    try:
        tab = Tab(browser, server)
        page = tab.open("/runs")
        heads = page.eval_on_selector_all(
            ".vt-head[data-key^='param:']", "els => els.map((e) => e.dataset.key)"
        )
        assert (
            heads[0] == "param:lr"
        )  # every run has it: first, before the cfg.* keys of one run each
        page = tab.open("/runs?params=cfg.k3,cfg.j3,lr")
        row = page.locator(f".vt-row[data-key='{hashes[3]}']")
        assert row.locator(".vt-cell").nth(-3).inner_text() == "3"
        assert row.locator(".vt-cell").nth(-2).inner_text() == "3"
        assert row.locator(".vt-cell").nth(-1).inner_text() == "0.1"
        other = page.locator(f".vt-row[data-key='{hashes[4]}']")
        assert other.locator(".vt-cell").nth(-3).inner_text() == ""
        tab.close()
    finally:
        assert stop_server(server)[0] == 0


def test_charts_out_of_view_are_drawn_when_scrolled_to(browser: Any, tmp_path: Path) -> None:
    """Charts by run.hash over 60 runs: only those near the view get a canvas (1,000 charts
    took 11 s to redraw for one change of a control), in the colours of their order."""
    for i in range(60):
        run = quiet_run(tmp_path, log_system_params=False)
        run["seed"] = i
        for step in range(20):
            run.track(float(step * i), name="loss", step=step)
        run.close()
    server = start_server(tmp_path)
    try:
        tab = Tab(browser, server)
        page = tab.open("/metrics?chart_by=run.hash")
        assert attr(page, "#metrics", "data-series-count") == "60"
        assert page.locator("section.chart").count() == 60
        assert 0 < page.locator("section.chart canvas").count() < 30
        page.select_option("select[name=agg]", "mean")  # redrawn at once: no data to load
        page.wait_for_function("() => location.search.includes('agg=mean')")
        assert page.locator("section.chart canvas").count() < 30
        page.select_option("select[name=agg]", "none")
        last = page.locator("section.chart").last
        last.scroll_into_view_if_needed()
        last.locator("canvas").wait_for()
        swatch = last.locator(".legend-item .swatch").first
        colour = swatch.evaluate("el => el.style.backgroundColor")
        assert colour == "rgb(190, 18, 60)"  # PALETTE[59 % 16]: the 60th chart's, drawn last
        tab.shot("hostile-60-charts-scrolled")
        tab.close()
    finally:
        assert stop_server(server)[0] == 0


def test_a_zoom_is_in_the_url_and_a_link_restores_it(browser: Any, tmp_path: Path) -> None:
    run = quiet_run(tmp_path, log_system_params=False)
    for step in range(20_000):
        run.track(float(step % 500 == 250) * 3.0 + step / 20_000, name="loss", step=step)
    run.close()
    server = start_server(tmp_path)
    try:
        tab = Tab(browser, server)
        page = tab.open("/metrics")
        chart = page.locator("section.chart")
        assert chart.get_attribute("data-mode") == "binned"
        box = chart.locator(".u-over").bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] * 0.30, box["y"] + 40)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.32, box["y"] + 40, steps=5)
        page.mouse.up()
        page.wait_for_function(
            "() => document.querySelector('section.chart').dataset.mode === 'exact zoomed'"
        )
        zoomed_max = chart.get_attribute("data-max-step")
        assert "zoom=" in page.url
        link = page.url
        other = Tab(browser, server)
        again = other.open(link.split(f":{server.port}", 1)[1])  # a new tab, from the link
        assert attr(again, "section.chart", "data-mode") == "exact zoomed"
        assert attr(again, "section.chart", "data-max-step") == zoomed_max
        other.shot("hostile-zoom-from-a-link")
        again.locator("section.chart .u-over").dblclick()
        again.wait_for_function(
            "() => document.querySelector('section.chart').dataset.mode === 'binned'"
        )
        again.wait_for_function("() => !location.search.includes('zoom=')")
        other.close()
        tab.close()
    finally:
        assert stop_server(server)[0] == 0
