"""The `/api/...` of `aim-parquet up`, through a real HTTP client against the real server process,
checked against the SDK's answer to the same query."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import aim_parquet as aim
from aim_parquet.ui.api.binary import decode
from tests.conftest import PYTHON
from tests.ui.conftest import UiServer, quiet_run, start_server, stop_server

TIMEOUT = httpx.Timeout(30.0)
CHANGE = {"X-Requested-By": "aim-parquet"}


def client(server: UiServer) -> httpx.Client:
    return httpx.Client(base_url=f"http://localhost:{server.port}", timeout=TIMEOUT)


def series(response: httpx.Response) -> tuple[dict[str, Any], Any]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-aim-parquet-series"
    return decode(response.content)


def test_runs_table_matches_the_sdk(ui_server: UiServer, ui_repo: Path) -> None:
    repo = aim.Repo(str(ui_repo))
    with client(ui_server) as http:
        for query in [
            "",
            "run.hparams.lr < 0.05",
            "run.experiment == 'wide'",
            "run.archived == True",
        ]:
            answer = http.get("/api/runs", params={"q": query}).json()
            expected = [c.run.hash for c in repo.query_runs(query).iter_runs()]
            assert answer["count"] == len(expected), query
            assert answer["columns"]["hash"] == expected, query
        answer = http.get("/api/runs", params={"metrics": "loss,損失"}).json()
    labels = {m["label"]: m for m in answer["metrics"]}
    assert {"loss (subset=train)", "loss (subset=val)", "損失 (sub set=ß)"} <= set(labels)
    by_hash = dict(zip(answer["columns"]["hash"], range(answer["count"]), strict=True))
    for metric in repo.query_metrics("metric.name == 'loss'"):
        label = f"loss (subset={metric.context['subset']})"
        assert labels[label]["values"][by_hash[metric.run.hash]] == pytest.approx(
            metric.values.last()[1]
        )
    unicode_row = answer["columns"]["name"].index("Лосс 損失 run")
    assert answer["params"]["hparams.lr"][unicode_row] == "NaN"  # strict JSON, no bare NaN
    assert answer["params"]["hparams.note"][unicode_row] == "größe"
    assert labels["損失 (sub set=ß)"]["values"][unicode_row] == 0.1


def test_query_errors_carry_the_sdk_message_and_caret(ui_server: UiServer) -> None:
    with client(ui_server) as http:
        bad = http.get("/api/runs", params={"q": "run.hparams.lr >"})
        assert bad.status_code == 400
        body = bad.json()
        assert body["error"] == "query_syntax"
        assert "^" in body["message"] and "run.hparams.lr >" in body["message"]
        refused = http.get("/api/metrics/search", params={"q": "__import__('os')"})
        assert refused.status_code == 400 and "not allowed" in refused.json()["message"]
        assert http.get("/api/metrics/search", params={"x": "banana"}).status_code == 400
        assert http.get("/api/metrics/search", params={"chart_by": "os.system"}).status_code == 400
        assert http.get("/api/runs/not-a-hash").status_code == 400
        assert http.get("/api/runs/" + "a" * 24).status_code == 404


def test_metric_search_is_binary_downsampled_and_matches_the_sdk(
    ui_server: UiServer, ui_repo: Path
) -> None:
    repo = aim.Repo(str(ui_repo))
    with client(ui_server) as http:
        header, read = series(http.get("/api/metrics/search", params={"width": 600}))
    sdk = {(m.run.hash, m.name, m.context.idx): m for m in repo.query_metrics("")}
    assert header["series_count"] == len(sdk)
    charts = {c["title"]: c for c in header["charts"]}
    assert set(charts) == {"loss", "accuracy", "損失"}
    for chart in header["charts"]:
        x = read(chart["x"])
        assert chart["mode"] == "exact" and np.all(np.diff(x) > 0)
        for s in chart["series"]:
            metric = sdk[(s["run"], s["name"], aim.sdk.sequence.Context(s["context"]).idx)]
            steps, values = metric.values.sparse_numpy()
            y = read(s["y"])
            drawn = np.isfinite(y)
            finite = np.isfinite(values.astype(float))
            assert x[drawn].tolist() == steps[finite].tolist()
            assert np.allclose(y[drawn], values[finite].astype(np.float32))
            assert s["nonfinite"] == int((~finite).sum())
        assert chart["max_step"] == max(
            sdk[(s["run"], s["name"], aim.sdk.sequence.Context(s["context"]).idx)].last_step()
            for s in chart["series"]
        )
    assert charts["損失"]["series"][0]["nonfinite"] == 3
    assert {r["name"] for r in header["runs"].values()} >= {"Лосс 損失 run"}


def test_chart_by_context_and_x_axes(ui_server: UiServer) -> None:
    with client(ui_server) as http:
        header, _ = series(
            http.get(
                "/api/metrics/search",
                params={"q": "metric.name == 'loss'", "chart_by": "metric.context.subset"},
            )
        )
        assert sorted(c["title"] for c in header["charts"]) == [
            "metric.context.subset=train",
            "metric.context.subset=val",
        ]
        for x_axis in ("epoch", "relative", "wall"):
            header, read = series(
                http.get("/api/metrics/search", params={"q": "metric.name == 'loss'", "x": x_axis})
            )
            assert header["x_axis"] == x_axis
            xs = read(header["charts"][0]["x"])
            assert xs.size and np.all(np.diff(xs) > 0)
            if x_axis == "epoch":
                assert xs.max() == 3.0  # 200 steps, epoch = step // 50
            if x_axis == "wall":
                assert xs.min() > 1e9


@pytest.fixture
def long_repo(tmp_path: Path) -> Path:
    run = quiet_run(tmp_path)
    rng = np.random.default_rng(1)
    values = rng.normal(1.0, 0.01, 200_000)
    values[123_457] = 99.0
    for step, value in enumerate(values.tolist()):
        run.track(value, name="loss", step=step)
    run.close()
    return tmp_path


def test_a_long_series_is_sent_per_pixel_column_and_keeps_its_spike(long_repo: Path) -> None:
    server = start_server(long_repo)
    try:
        with client(server) as http:
            response = http.get("/api/metrics/search", params={"width": 500})
            header, read = series(response)
            chart = header["charts"][0]
            assert chart["mode"] == "binned" and header["points_read"] == 200_000
            y = read(chart["series"][0]["y"])
            assert y.size == 1000 and np.nanmax(y) == pytest.approx(99.0)
            assert len(response.content) < 20_000  # 200,000 points -> ~1,000 float32 values
            zoomed, read_zoomed = series(
                http.get(
                    "/api/metrics/search", params={"width": 500, "x_min": 123_000, "x_max": 123_400}
                )
            )
            zx = read_zoomed(zoomed["charts"][0]["x"])
            assert zoomed["charts"][0]["mode"] == "exact" and zx[0] == 123_000 and zx[-1] == 123_400
    finally:
        assert stop_server(server)[0] == 0


def test_live_sends_only_points_after_the_cursor(tmp_path: Path) -> None:
    run = quiet_run(tmp_path)  # stays open: an active run
    try:
        for step in range(100):
            run.track(float(step), name="loss", step=step)
        run.flush()
        server = start_server(tmp_path)
        try:
            with client(server) as http:
                header, _ = series(http.get("/api/metrics/search"))
                s = header["charts"][0]["series"][0]
                assert header["runs"][s["run"]]["active"] is True
                cursor = f"{s['run']}:{s['seq']}:{s['last_step']}"
                for step in range(100, 130):
                    run.track(float(step), name="loss", step=step)
                run.flush()
                live, read = series(http.get("/api/metrics/live", params={"cursor": cursor}))
                assert live["active"] == [run.hash]
                (update,) = live["series"]
                assert update["is_new"] is False
                assert read(update["x"]).tolist() == list(range(s["last_step"] + 1, 130))
                assert read(update["y"]).tolist() == [
                    float(v) for v in range(s["last_step"] + 1, 130)
                ]
                nothing, _ = series(
                    http.get("/api/metrics/live", params={"cursor": f"{s['run']}:{s['seq']}:129"})
                )
                assert nothing["series"] == []
                run.close()
                done, _ = series(
                    http.get("/api/metrics/live", params={"cursor": f"{s['run']}:{s['seq']}:129"})
                )
                assert done["finished"] == [run.hash] and done["active"] == []
        finally:
            assert stop_server(server)[0] == 0
    finally:
        run.close()


def test_changes_need_same_origin_and_are_refused_for_live_runs(tmp_path: Path) -> None:
    finished = quiet_run(tmp_path, experiment="e")
    finished.track(1.0, name="loss", step=0)
    finished.close()
    live = quiet_run(tmp_path)
    server = start_server(tmp_path)
    try:
        with client(server) as http:
            path = f"/api/runs/{finished.hash}"
            assert http.post(path + "/archive", json={"archived": True}).status_code == 403
            evil = {**CHANGE, "Origin": "http://evil.example:43800"}
            assert (
                http.post(path + "/archive", json={"archived": True}, headers=evil).status_code
                == 403
            )
            assert (
                http.delete(path, headers={"Origin": f"http://localhost:{server.port}"}).status_code
                == 403
            )
            ok = http.post(path + "/archive", json={"archived": True}, headers=CHANGE)
            assert ok.status_code == 200 and ok.json()["archived"] is True
            assert aim.Repo(str(tmp_path)).get_run(finished.hash).archived is True
            edited = http.post(
                path,
                json={"name": "renamed ✓", "description": "why", "tags": ["a", "b", "a"]},
                headers=CHANGE,
            )
            assert edited.status_code == 200, edited.text
            run = aim.Repo(str(tmp_path)).get_run(finished.hash)
            assert (run.name, run.description, list(run.tags)) == ("renamed ✓", "why", ["a", "b"])
            assert http.post(path, json={"tags": "x"}, headers=CHANGE).status_code == 400
            assert http.post(path, content=b"{not json", headers=CHANGE).status_code == 400
            huge = http.post(path, content=b" " * 2_000_000, headers=CHANGE)
            assert huge.status_code == 400 and "too large" in huge.json()["message"]
            locked = http.post(
                f"/api/runs/{live.hash}/archive", json={"archived": True}, headers=CHANGE
            )
            assert locked.status_code == 409 and "being written" in locked.json()["message"]
            assert http.delete(f"/api/runs/{live.hash}", headers=CHANGE).status_code == 409
            assert http.delete(path, headers=CHANGE).status_code == 200
            assert aim.Repo(str(tmp_path)).get_run(finished.hash) is None
            assert http.delete(path, headers=CHANGE).status_code == 404
    finally:
        live.close()
        assert stop_server(server)[0] == 0


def test_host_check_static_confinement_and_headers(ui_server: UiServer) -> None:
    with client(ui_server) as http:
        page = http.get("/metrics")
        assert page.status_code == 200 and "static/js/pages/metrics.js" in page.text
        csp = page.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "connect-src 'self'" in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        rebinding = http.get("/api/runs", headers={"Host": f"evil.example:{ui_server.port}"})
        assert rebinding.status_code == 403
        for path in ["/static/../server.py", "/static/%2e%2e/server.py", "/static/..%2fserver.py"]:
            assert http.get(path).status_code == 404, path
        assert http.get("/static/vendor/uplot/LICENSE").text.startswith("The MIT License")
        for src in ("src=", "href="):
            for ref in page.text.split(src)[1:]:
                assert not ref.strip("\"'").startswith(("http", "/")), ref[:40]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_token_is_required_off_loopback(ui_repo: Path) -> None:
    server = start_server(ui_repo, "--host", "0.0.0.0")
    try:
        assert any("token was generated" in line for line in server.first_lines)
        token = server.url.split("token=")[1]
        base = f"http://127.0.0.1:{server.port}"
        with httpx.Client(base_url=base, timeout=TIMEOUT) as http:
            assert http.get("/api/runs").status_code == 401
            assert (
                http.get("/api/runs", headers={"Authorization": "Bearer nope"}).status_code == 401
            )
            ok = http.get("/api/runs", headers={"Authorization": f"Bearer {token}"})
            assert ok.status_code == 200 and ok.json()["count"] == 4
            landing = http.get(f"/metrics?token={token}&x=epoch")
            assert landing.status_code == 303 and landing.headers["location"] == "metrics?x=epoch"
            assert "HttpOnly" in landing.headers["set-cookie"]
            follow = http.get("/metrics?x=epoch")  # the client kept the cookie
            assert follow.status_code == 200
    finally:
        assert stop_server(server)[0] == 0


def test_base_path_and_cli_errors(ui_repo: Path, tmp_path: Path) -> None:
    server = start_server(ui_repo, "--base-path", "/aim/")
    try:
        assert server.url.endswith(f":{server.port}/aim/")
        with client(server) as http:
            assert http.get("/aim/metrics").status_code == 200
            assert http.get("/aim/api/runs").json()["count"] == 4
            assert http.get("/api/runs").status_code == 404
            assert http.get("/aim").status_code in (307, 308)
        busy = subprocess.run(
            [PYTHON, "-m", "aim_parquet", "up", "--repo", str(ui_repo), "--port", str(server.port)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert busy.returncode != 0 and "pass another --port" in busy.stderr
    finally:
        assert stop_server(server)[0] == 0
    missing = subprocess.run(
        [PYTHON, "-m", "aim_parquet", "up", "--repo", str(tmp_path / "none")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert missing.returncode == 1 and "repository" in missing.stderr.lower()
    assert missing.stderr.count("\n") == 1  # one line, no traceback
