"""Image requests run in a pool of their own: slow thumbnails never delay the metrics and runs
requests (Aim's images tab blocks every other request, aim#2424). Also plotly.js served from the
installed plotly package, or a clear 404 without it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from aim_parquet.errors import MissingRunError
from aim_parquet.ui.api import media
from aim_parquet.ui.api.media import MEDIA_WORKERS
from aim_parquet.ui.api.state import DEFAULT_WORKERS
from aim_parquet.ui.server import bind, create_app
from tests.ui.objects_repo import ObjectsRepo, make_objects_repo

pytestmark = pytest.mark.filterwarnings("ignore:aim_parquet. skipping damaged run:RuntimeWarning")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> ObjectsRepo:
    return make_objects_repo(tmp_path_factory.mktemp("media-repo"))


@pytest.fixture
def server_url(repo: ObjectsRepo) -> Iterator[str]:
    import uvicorn

    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(repo.root), log_level="error", lifespan="off")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        with httpx.Client(base_url=f"http://localhost:{port}", timeout=10) as http:
            for _ in range(200):  # poll until it answers
                try:
                    http.get("/api/info")
                    break
                except httpx.TransportError:
                    threading.Event().wait(0.05)
        yield f"http://localhost:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_slow_images_never_delay_a_metrics_request(
    server_url: str, repo: ObjectsRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    entered = threading.Semaphore(0)
    original = media.read_object

    def slow_read(*args: Any) -> Any:
        entered.release()
        assert release.wait(30), "the test never released the slow images"
        return original(*args)

    monkeypatch.setattr(media, "read_object", slow_read)
    with httpx.Client(base_url=server_url, timeout=10) as http:
        listing = http.get("/api/images", params={"q": "images.name == 'samples'"}).json()
    seq = next(s for s in listing["sequences"] if s["run"] == repo.vision)
    urls = [f"/api/objects/{seq['run']}/{seq['seq']}/{seq['step']}/{i}?size=128" for i in range(6)]
    assert len(urls) >= DEFAULT_WORKERS + MEDIA_WORKERS  # as many as both pools together
    results: dict[int, httpx.Response] = {}

    def fetch(i: int) -> None:
        with httpx.Client(base_url=server_url, timeout=60) as http:
            results[i] = http.get(urls[i])

    threads = [threading.Thread(target=fetch, args=(i,)) for i in range(len(urls))]
    for t in threads:
        t.start()
    try:
        for _ in range(MEDIA_WORKERS):  # the media pool is full of slow images
            assert entered.acquire(timeout=20)
        with httpx.Client(base_url=server_url, timeout=10) as http:
            metrics = http.get("/api/metrics/search", params={"q": "metric.name == 'loss'"})
            assert metrics.status_code == 200
            assert http.get("/api/runs").json()["count"] == 3
            assert http.get("/api/images").status_code == 200  # listings use the main pool
        assert not results  # every image is still waiting
        assert not entered.acquire(timeout=0.2)  # and no more than MEDIA_WORKERS are being read
    finally:
        release.set()
        for t in threads:
            t.join(60)
    assert [results[i].status_code for i in range(len(urls))] == [200] * len(urls)


def test_plotly_js_comes_from_the_plotly_package_or_a_clear_404(
    server_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from aim_parquet.ui import plotly_asset

    bundle = tmp_path / "plotly" / "package_data" / "plotly.min.js"
    bundle.parent.mkdir(parents=True)
    style = "body{color:red}\\n.a:after{content:\\'x\\'}"
    bundle.write_text(
        'var P=1;(function(){if(!document.getElementById("abcdef0123456789")){var e=document.'
        f'createElement("style");e.id="abcdef0123456789",e.textContent=\'{style}\''
        ",document.head.appendChild(e)}})();"
    )
    monkeypatch.setattr(plotly_asset, "plotly_js_path", lambda: None)
    with httpx.Client(base_url=server_url, timeout=10) as http:
        assert http.get("/api/info", params={"plotly": 1}).json()["plotly"] is False
        missing = http.get("/vendor/plotly/plotly.min.js")
        assert missing.status_code == 404 and "pip install" in missing.json()["message"]
        monkeypatch.setattr(plotly_asset, "plotly_js_path", lambda: bundle)
        info = http.get("/api/info", params={"plotly": 1}).json()
        assert info["plotly"] is True and info["plotly_style_ids"] == ["abcdef0123456789"]
        js = http.get("/vendor/plotly/plotly.min.js")
        assert js.status_code == 200 and js.content == bundle.read_bytes()
        assert js.headers["content-type"].startswith("text/javascript")
        assert http.get(js.url, headers={"if-none-match": js.headers["etag"]}).status_code == 304
        css = http.get("/vendor/plotly/styles.css").text
        assert "body{color:red}\n.a:after{content:'x'}" in css


def test_a_finished_steps_objects_are_read_once(
    repo: ObjectsRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aim_parquet.storage import open_repo
    from aim_parquet.ui.api.objects import listing
    from aim_parquet.ui.api.state import UiState

    state = UiState(open_repo(repo.root))
    seq = next(
        s for s in listing(state, "images", "images.name == 'samples'", 20)["sequences"]
        if s["run"] == repo.vision
    )  # fmt: skip
    reads: list[Any] = []
    original = media.read_object_rows

    def counted(*args: Any, **kwargs: Any) -> Any:
        reads.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(media, "read_object_rows", counted)
    caches = media.Caches()
    address = (seq["run"], seq["seq"], 20)
    thumbs = [media.read_object(state, caches, (*address, i), 64, seq["version"]) for i in range(6)]
    assert len(reads) == 1 and reads[0]["index"] is None  # the whole step, once
    assert len({t.body for t in thumbs}) == 6 and all(
        t.cache_control == media.IMMUTABLE for t in thumbs
    )
    live = media.read_object(state, caches, (*address, 2), 64, None)  # no version: not cached
    assert len(reads) == 2 and reads[1]["index"] == 2 and live.cache_control == media.REVALIDATE
    assert live.body == thumbs[2].body
    with pytest.raises(MissingRunError):
        media.read_object(state, caches, (*address, 6), 64, seq["version"])
