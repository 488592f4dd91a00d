"""The run page, the object explorers, the params and scatter views and the static report in a real
headless Chromium: each page on a repository with every kind of object (and empty sequences,
runs without params, NaN/inf, non-ASCII names, a run being written, damaged runs), its contract
attributes checked against the SDK, a screenshot of each state, and no console error or request
leaving the server anywhere."""

from __future__ import annotations

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
from tests.ui.conftest import UiServer, start_server, stop_server
from tests.ui.objects_repo import ObjectsRepo, make_objects_repo
from tests.ui.test_browser import SHOTS, Tab, attr, wait_reloaded
from tests.ui.test_objects_api import sdk_objects_at

pytestmark = [
    pytest.mark.browser,
    pytest.mark.filterwarnings("ignore:aim_parquet. skipping damaged run:RuntimeWarning"),
]
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def objects_repo(tmp_path_factory: pytest.TempPathFactory) -> ObjectsRepo:
    return make_objects_repo(tmp_path_factory.mktemp("browser-objects"))


@pytest.fixture(scope="module")
def objects_server(objects_repo: ObjectsRepo) -> Iterator[UiServer]:
    server = start_server(objects_repo.root)
    yield server
    code, err = stop_server(server)
    assert code == 0, err


@pytest.fixture
def tab(browser: Any, objects_server: UiServer) -> Iterator[Tab]:
    t = Tab(browser, objects_server)
    yield t
    t.close()


def sdk_image_count(root: Path, query: str, step: int | None) -> int:
    found = sdk_objects_at(
        aim.Repo(str(root)).query_images(query), step if step is not None else 10**9
    )
    return sum(len(v) for v in found.values())


def test_images_explorer(tab: Tab, objects_repo: ObjectsRepo) -> None:
    page = tab.open("/images")
    assert (
        int(attr(page, "#images", "data-image-count"))
        == sdk_image_count(objects_repo.root, "", None)
        == 10
    )
    page.locator(".broken", has_text="not in any picture format").wait_for()
    loaded = page.evaluate(
        "[...document.querySelectorAll('.thumb img')].filter(i => i.complete && i.naturalWidth > 0).length"
    )
    assert loaded == 9  # every image but the undecodable one is on the first screen and drawn
    tab.shot("images-grid")
    page.locator(".image-card", has_text="sample 2").click()
    page.locator("dialog .full-image").wait_for()
    assert page.evaluate("document.querySelector('dialog .full-image').naturalWidth") == 64
    tab.shot("images-full-size")
    page.click("dialog button:text-is('Close')")
    wait_reloaded(
        page,
        lambda: page.locator("input[name=step]").evaluate(
            "el => { el.value = 1; el.dispatchEvent(new Event('input')); el.dispatchEvent(new Event('change')); }"
        ),
    )
    assert "step=10" in page.url
    assert (
        int(attr(page, "#images", "data-image-count"))
        == sdk_image_count(objects_repo.root, "", 10)
        == 9
    )
    page.fill("input[name=group_by]", "images.name")
    page.press("input[name=group_by]", "Enter")
    page.wait_for_function("() => document.querySelectorAll('.object-group').length === 4")
    tab.shot("images-step-10-by-name")
    page = tab.open("/images?q=" + quote("images.name == 'nothing'"))
    assert attr(page, "#images", "data-image-count") == "0"
    assert page.get_by_text("No image matches this query at this step.").is_visible()
    tab.shot("images-no-match")
    # the undecodable image's thumbnail and the request that reads why answer 422, each time
    # it is drawn; any other console error still fails the test
    assert any("422" in e for e in tab.watch.console_errors)
    tab.watch.console_errors[:] = [e for e in tab.watch.console_errors if "status of 422" not in e]


def test_audio_texts_and_distributions(tab: Tab, objects_repo: ObjectsRepo) -> None:
    page = tab.open("/audios")
    assert attr(page, "#audios", "data-audio-count") == "1"
    duration = page.locator("audio").evaluate(
        "a => new Promise(r => { a.preload = 'metadata'; a.onloadedmetadata = () => r(a.duration); a.load(); })"
    )
    assert abs(duration - 0.3) < 0.01  # the real clip, decoded by the browser
    tab.shot("audios")
    page = tab.open("/texts")
    assert attr(page, "#texts", "data-text-count") == "13"
    page.get_by_text("(empty)").wait_for()
    wait_reloaded(
        page,
        lambda: (
            page.fill("input[name=search]", "label=2"),
            page.press("input[name=search]", "Enter"),
        ),
    )
    assert attr(page, "#texts", "data-text-count") == "3"
    page.locator(".vt-row:visible", has_text="prediction 10").click()
    assert "«ünï»" in page.locator("dialog .full-text").inner_text()
    tab.shot("texts-search")
    page.click("dialog button:text-is('Close')")
    page = tab.open("/distributions")
    assert attr(page, "#distributions", "data-sequence-count") == "2"
    card = page.locator(".dist-card").first
    box = card.locator("canvas").first.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + 70, box["y"] + 60)  # the first step, on the heat map
    assert card.locator(".toolbar .mono").inner_text().startswith("step 0 ·")
    tab.shot("distributions")


def test_figures_with_and_without_plotly(browser: Any, objects_server: UiServer) -> None:
    tab = Tab(browser, objects_server)
    page = tab.open("/figures")
    assert attr(page, "#figures", "data-figure-count") == "1"
    page.locator(".figure-plot .main-svg").first.wait_for()
    assert "figure 1 · ünï" in page.locator(".figure-plot").inner_text()
    tab.shot("figures")
    tab.close()
    tab = Tab(browser, objects_server)  # the same page where the plotly package is missing
    tab.page.route(
        "**/api/info?plotly=1",
        lambda route: route.fulfill(json={"version": "x", "plotly": False, "plotly_style_ids": []}),
    )
    page = tab.open("/figures")
    page.locator("#plotly-missing").wait_for()
    assert "pip install 'aim_parquet[figures]'" in page.locator("#plotly-missing").inner_text()
    tab.shot("figures-without-plotly")
    tab.close()


def test_run_page(tab: Tab, objects_repo: ObjectsRepo) -> None:
    run = aim.Repo(str(objects_repo.root)).get_run(objects_repo.vision)
    names = {m.name for m in run.metrics()}
    page = tab.open(f"/runs/{objects_repo.vision}")
    assert attr(page, "#run-metrics", "data-chart-count") == str(
        len([n for n in names if not n.startswith("__system__")])
    )
    assert attr(page, "#run-system", "data-chart-count") == "2"
    assert "résnet" in page.locator("#params-tree").inner_text()
    assert page.locator("#run-metrics h3", has_text="2 NaN/inf not drawn").count() == 1
    tab.shot("run-overview")
    page.fill("input[name=metric-filter]", "acc")
    assert page.locator("#run-metrics section.chart:visible").count() == 1
    assert page.locator("#run-system section.chart:visible").count() == 0
    page.fill("input[name=metric-filter]", "")
    page.fill("textarea[name=description]", "edited on the run page ✓")
    page.click("button:text-is('Save description')")
    page.get_by_text("saved").wait_for()
    assert (
        aim.Repo(str(objects_repo.root)).get_run(objects_repo.vision).description
        == "edited on the run page ✓"
    )
    wait_reloaded(page, lambda: page.click(".tabs button:text-is('Logs')"))
    assert attr(page, "#logs", "data-line-count") == "300"
    wait_reloaded(
        page,
        lambda: (
            page.fill("input[name=log-search]", "GREEN"),
            page.press("input[name=log-search]", "Enter"),
        ),
    )
    page.locator(".log-line.hit mark").wait_for()
    assert page.locator("#log-matches").inner_text() == "1 of 1 match"
    tab.shot("run-logs-search")
    wait_reloaded(page, lambda: page.click(".tabs button:text-is('Log records')"))
    assert attr(page, "#log-records", "data-record-count") == "3"
    page.select_option("select[name=level]", "40")
    assert attr(page, "#log-records", "data-record-count") == "1"
    tab.shot("run-log-records")
    for name, selector, count in [
        ("Images", "#images", "data-image-count"),
        ("Texts", "#texts", "data-text-count"),
        ("Distributions", "#distributions", "data-sequence-count"),
        ("Audio", "#audios", "data-audio-count"),
        ("Figures", "#figures", "data-figure-count"),
    ]:
        wait_reloaded(page, lambda name=name: page.click(f".tabs button:text-is('{name}')"))
        shown = page.locator(f".tab-panel:not([hidden]) {selector}")
        assert int(shown.get_attribute(count) or -1) > 0, name
        tab.shot(f"run-tab-{name.lower()}")
    assert "tab=figures" in page.url
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert page.locator(".tabs button[aria-selected=true]").inner_text() == "Figures"


def test_run_page_of_damaged_missing_and_paramless_runs(
    tab: Tab, objects_repo: ObjectsRepo
) -> None:
    tab.watch.expect_error("500")  # the run's sidecar cannot be read: the page asks what can be
    page = tab.open(f"/runs/{objects_repo.damaged_sidecar}")
    assert "This run is damaged" in page.locator(".damage").inner_text()
    assert attr(page, "#salvaged-sequences", "data-sequence-count") == "1"
    tab.shot("run-damaged-sidecar")
    page = tab.open(f"/runs/{objects_repo.damaged_segment}")
    assert "loss (subset=train) of run" in page.locator(".notes").inner_text()
    assert attr(page, "#run-metrics", "data-chart-count") == "1"
    tab.shot("run-damaged-segment")
    page = tab.open("/metrics?q=" + quote(f"run.hash == '{objects_repo.damaged_segment}'"))
    assert attr(page, "#metrics", "data-series-count") == "1"  # the readable one is drawn
    assert "1 series could not be read (loss)" in page.locator("#status").inner_text()
    tab.shot("metrics-damaged-segment")
    page = tab.open(f"/runs/{objects_repo.plain}")
    assert "This run has no params" in page.locator("#params-tree").inner_text()
    tab.shot("run-without-params")
    tab.watch.expect_error("404")
    page = tab.open("/runs/0123456789abcdef01234567")
    assert "0123456789abcdef01234567" in page.locator("pre.error").inner_text()
    tab.shot("run-missing")


def test_run_page_and_explorers_under_a_base_path(browser: Any, objects_repo: ObjectsRepo) -> None:
    server = start_server(objects_repo.root, "--base-path", "/aim")
    try:
        tab = Tab(browser, server)
        page = tab.open(f"/aim/runs/{objects_repo.vision}")  # one folder deeper: <base href="../">
        assert int(attr(page, "#run-metrics", "data-chart-count")) == 2
        page.click("nav a[data-nav=images]")
        page.wait_for_url(re.compile(r"/aim/images$"))
        page.wait_for_selector("body[data-ready=true]")
        assert attr(page, "#images", "data-image-count") == "10"
        assert any("422" in e for e in tab.watch.console_errors)  # the undecodable image
        tab.watch.console_errors[:] = [
            e for e in tab.watch.console_errors if "status of 422" not in e
        ]
        tab.close()
    finally:
        assert stop_server(server)[0] == 0


def test_params_and_scatter_views(browser: Any, ui_server: UiServer, ui_repo: Path) -> None:
    tab = Tab(browser, ui_server)
    expected = len(list(aim.Repo(str(ui_repo)).query_runs("").iter_runs()))
    page = tab.open("/params?metrics=loss")
    assert int(attr(page, "#params", "data-run-count")) == expected == 4
    assert attr(page, "#params", "data-selected-count") == "4"
    box = page.locator("#params canvas").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + 70, box["y"] + 20)  # above the top of the first axis
    page.mouse.down()
    page.mouse.move(box["x"] + 70, box["y"] + box["height"] * 0.6, steps=4)
    page.mouse.up()
    selected = int(attr(page, "#params", "data-selected-count"))
    assert 0 < selected < 4
    assert page.get_by_text(f"{selected} selected").is_visible()
    tab.shot("params-brushed")
    page = tab.open(
        "/scatters?metrics=loss&x=" + quote("p:hparams.lr") + "&y=" + quote("m:loss (subset=train)")
    )
    assert attr(page, "#scatter", "data-run-count") == "4"
    assert (
        attr(page, "#scatter", "data-dot-count") == "3"
    )  # the NaN lr and the run without loss (train) are left out
    tab.shot("scatter")
    page = tab.open("/params?q=" + quote("run.experiment == 'old' and run.archived == True"))
    assert page.get_by_text("These runs have no params to compare").is_visible()
    tab.shot("params-runs-without-params")
    tab.close()


def test_every_page_on_an_empty_repository(browser: Any, tmp_path: Path) -> None:
    aim.Repo(str(tmp_path), init=True)
    server = start_server(tmp_path)
    try:
        tab = Tab(browser, server)
        for path, text in [
            ("/images", "no images yet"),
            ("/audios", "no audio yet"),
            ("/figures", "no figures yet"),
            ("/texts", "no texts yet"),
            ("/distributions", "no distributions yet"),
            ("/params", "no runs yet"),
            ("/scatters", "no runs yet"),
        ]:
            page = tab.open(path)
            assert page.get_by_text(text).is_visible(), path
            tab.shot(f"empty-repo-{path.strip('/')}")
        tab.close()
    finally:
        assert stop_server(server)[0] == 0


WRITER = """
import sys, time, math, pathlib
import numpy as np
import aim_parquet as aim
from aim_parquet.objects import LogLine
repo, stop = sys.argv[1], pathlib.Path(sys.argv[2])
run = aim.Run(repo=repo, system_tracking_interval=None, capture_terminal_logs=False)
run.name = "being written ✍"
step = 0
deadline = time.monotonic() + 90
while not stop.exists() and time.monotonic() < deadline:
    run.track(math.exp(-step / 100), name="loss", step=step)
    run.track(LogLine(f"line {step}"), name="logs", step=step)
    if step % 10 == 0:
        run.track(aim.Image(np.full((16, 16, 3), step % 256, np.uint8)), name="frames", step=step)
        run.flush()
        print(step, flush=True)
    step += 1
    time.sleep(0.01)
run.close()
"""


def test_pages_while_a_run_is_being_written(browser: Any, tmp_path: Path) -> None:
    aim.Repo(str(tmp_path), init=True)
    stop = tmp_path / "stop"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(stop)],
                              stdout=subprocess.PIPE, text=True, env=python_env())  # fmt: skip
    server = start_server(tmp_path)
    try:
        assert writer.stdout is not None
        while int(writer.stdout.readline() or -1) < 30:  # some points are on disk
            pass
        tab = Tab(browser, server)
        run_hash = aim.Repo(str(tmp_path)).query_runs("").iter_runs().__next__().run.hash
        page = tab.open(f"/runs/{run_hash}")
        assert page.locator(".run-head .badge", has_text="active").is_visible()
        assert attr(page, "#run-metrics", "data-chart-count") == "1"
        tab.shot("run-being-written")
        wait_reloaded(page, lambda: page.click(".tabs button:text-is('Logs')"))
        assert int(attr(page, "#logs", "data-line-count")) >= 30
        page = tab.open("/images")
        assert int(attr(page, "#images", "data-image-count")) == 1
        tab.shot("images-being-written")
        stop.touch()
        assert writer.wait(60) == 0
        tab.close()
    finally:
        stop.touch()
        if writer.poll() is None:
            writer.kill()
        writer.communicate()
        assert stop_server(server)[0] == 0


def test_static_report_opens_offline(
    browser: Any, objects_repo: ObjectsRepo, tmp_path: Path
) -> None:
    from aim_parquet.ui.report import write_report

    stats = write_report(objects_repo.root, "", tmp_path / "report.html", images=True)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(stats.path.as_uri())
    page.wait_for_selector("body[data-ready=true]")
    assert requests == [stats.path.as_uri()]  # the file itself, nothing else
    assert not errors, errors
    root = page.locator("#report")
    assert root.get_attribute("data-run-count") == str(stats.runs)
    assert root.get_attribute("data-series-count") == str(stats.series)
    assert root.get_attribute("data-image-count") == str(stats.images) == "10"
    assert page.locator("#report-charts canvas").count() >= stats.charts - 0
    assert re.search(
        r"could not be read", page.locator("#report").inner_text()
    )  # the damaged segment
    page.screenshot(path=str(SHOTS / "report.png"))
    context.close()


def test_report_survives_hostile_names(browser: Any, tmp_path: Path) -> None:
    """Run names and params are data: nothing in them ends the report's script or becomes HTML."""
    from aim_parquet.ui.report import write_report
    from tests.ui.conftest import quiet_run

    run = quiet_run(tmp_path / "repo", experiment="<b>bold?</b>")
    run.name = "x</script><!--<script>évil"
    run["hparams"] = {"note": "<img src=x onerror=alert(1)>", "lr": 0.1}
    for step in range(5):
        run.track(float(step), name="loss</script>", step=step)
    run.close()
    other = quiet_run(tmp_path / "repo")
    other["hparams"] = {"note": "plain", "lr": 0.2}
    other.track(1.0, name="loss</script>", step=0)
    other.close()
    stats = write_report(tmp_path / "repo", "", tmp_path / "hostile.html")
    context = browser.new_context()
    page = context.new_page()
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: errors.append(f"dialog: {d.message}"))
    page.goto(stats.path.as_uri())
    page.wait_for_selector("body[data-ready=true]")
    assert requests == [stats.path.as_uri()] and not errors, (requests, errors)
    table = page.locator("#report-runs").inner_text()
    assert "x</script><!--<script>évil" in table and "<img src=x onerror=alert(1)>" in table
    assert page.locator("#report-runs img, #report-runs b").count() == 0
    assert page.locator("#report-charts h3", has_text="loss</script>").count() == 1
    context.close()


def test_a_bad_query_is_shown_with_its_caret_on_every_page(tab: Tab) -> None:
    for path, query in [("/images", "images.name =="), ("/audios", "audios.name =="),
                        ("/figures", "figures.name =="), ("/texts", "texts.name =="),
                        ("/distributions", "distributions.name =="), ("/params", "run.hparams.lr >"),
                        ("/scatters", "run.hparams.lr >")]:  # fmt: skip
        tab.watch.expect_error("status of 400")
        page = tab.open(f"{path}?q={quote(query)}")
        error = page.locator("pre.error")
        assert error.is_visible() and "^" in error.inner_text(), path
        assert "unexpected end of query" in error.inner_text(), path
    tab.shot("params-query-error")


def test_pages_with_empty_sequences(browser: Any, tmp_path: Path) -> None:
    from tests.ui.objects_repo import make_empty_sequences_run

    run_hash = make_empty_sequences_run(tmp_path)
    server = start_server(tmp_path)
    try:
        tab = Tab(browser, server)
        for path, selector, name in [("/images", "#images", "data-image-count"),
                                     ("/audios", "#audios", "data-audio-count"),
                                     ("/figures", "#figures", "data-figure-count"),
                                     ("/texts", "#texts", "data-text-count")]:  # fmt: skip
            page = tab.open(path)
            assert attr(page, selector, name) == "0", path
        page = tab.open("/distributions")
        assert attr(page, "#distributions", "data-sequence-count") == "1"
        assert page.locator(".dist-card .mono").inner_text() == "no step"
        assert page.get_by_text("holds no histogram yet").is_visible()
        tab.shot("distributions-empty-sequence")
        page = tab.open(f"/runs/{run_hash}?tab=distributions")
        assert page.locator(".tabs button").count() == 6  # overview and a tab per object kind
        tab.shot("run-empty-sequences")
        tab.close()
    finally:
        assert stop_server(server)[0] == 0
